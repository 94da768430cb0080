"""`lamm finetune`: parse, then launch `lamm.training.finetune.run_finetuning` (one rank by default)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lamm.commands.train import add_launch_arguments, launch_settings
from lamm.launch import launch


def _finetune(args: argparse.Namespace) -> int:
    from lamm.training.finetune import SCRATCH, load_finetune_config, run_finetuning

    config = load_finetune_config(args.config)
    if args.seed is not None:
        config["seed"] = args.seed
    overrides = {"init_head": args.init_head, "train_fraction": args.train_fraction, "force_mode": args.force_mode}
    config["finetune"].update({key: value for key, value in overrides.items() if value is not None})
    checkpoint = None if args.checkpoint == SCRATCH else Path(args.checkpoint)
    if checkpoint is not None and not checkpoint.is_file():
        raise SystemExit(f"checkpoint {checkpoint} does not exist (or pass --checkpoint scratch)")
    store = Path(args.store) if args.store else Path(args.data or config["data"]["dir"]) / f"{config['data']['subset']}.lmdb"
    if not store.exists():
        raise SystemExit(f"downstream store {store} does not exist")
    label = "scratch" if checkpoint is None else f"epoch_{checkpoint.stem.removeprefix('epoch_')}"
    out_dir = Path(args.out or Path("results") / "finetune" / config["name"] / label)
    last = out_dir / "checkpoints" / "last.pt"
    if last.exists() and not args.resume:
        raise SystemExit(f"{last} exists: pass --resume to continue that run, or choose another --out")
    summary = launch(
        run_finetuning,
        {"config": config, "checkpoint": checkpoint, "store_path": store, "out_dir": out_dir, "resume": args.resume,
         "max_steps": args.max_steps, "parent_run": args.parent_run},
        launch_settings(args),
        folder=out_dir / "submitit",
        name=f"lamm-finetune-{config['name']}-{out_dir.name}",
    )
    print(json.dumps(summary))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a pre-trained (or fresh) model on the downstream subset",
        description="Fine-tune the encoder of a pre-training checkpoint with one new head on the downstream "
        "store (reference energies and normalization refitted on its training split), or train the same "
        "model from scratch. Writes <out>/checkpoints/last.pt, metrics.csv, validation.csv, summary.json "
        "and test_metrics.json (the final EMA model on the test split).",
    )
    parser.add_argument("--config", required=True, help="fine-tuning config (e.g. config/finetune/demo.yaml)")
    parser.add_argument("--checkpoint", required=True, help="a pre-training checkpoint, or 'scratch'")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--data", default=None, help="directory of <subset>.lmdb (default: the config's data.dir)")
    where.add_argument("--store", default=None, help="the downstream store itself")
    parser.add_argument("--out", default=None, help="output directory (default results/finetune/<name>/<scratch|epoch_E>)")
    parser.add_argument("--init-head", default=None, help="start the new head from this pre-training head (DPA-2)")
    parser.add_argument("--train-fraction", type=float, default=None, help="use this fraction of the training split (seeded subset)")
    parser.add_argument("--force-mode", choices=["direct", "gradient"], default=None, help="direct force head or conservative forces")
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps")
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/last.pt if it exists")
    parser.add_argument("--parent-run", default=None, help="MLflow parent run (a sweep) this run is nested under")
    add_launch_arguments(parser)
    parser.set_defaults(func=_finetune, launcher="none")
