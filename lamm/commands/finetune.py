"""`lamm finetune`: parse, check the store's splits and the checkpoint, then launch
`lamm.training.finetune.run_finetuning` (one rank by default)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from lamm.commands.errors import USER_ERRORS, fail
from lamm.commands.train import add_launch_arguments, add_length_arguments, launch_settings
from lamm.device import add_device_argument
from lamm.launch import launch

log = logging.getLogger(__name__)

# without --config: the recipe measured on real DFT (Ta, InP: the pre-training head best on the
# validation split copied, its references refit), from this checkout; the model is the
# checkpoint's. The demo's Table 3 keeps the paper's fresh head: config/finetune/demo.yaml.
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config" / "finetune" / "transfer.yaml"
# --init-head none: a fresh head (the config's null)
FRESH_HEAD = "none"


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"a fraction in (0, 1) expected, got {text}")
    return value


def _finetune(args: argparse.Namespace) -> int:
    try:
        return _run_finetune(args)
    except USER_ERRORS as err:
        return fail("finetune", err)


def _check_store_splits(args: argparse.Namespace, seed: int = 0) -> None:
    """The store's splits (metadata only), before torch is imported: a store without a test
    split fails in about a second. The carve sizes, and so their errors, do not depend on the
    seed."""
    from lamm.config import load_yaml
    from lamm.data.store import StructureStore
    from lamm.training.finetune_splits import plan_splits

    path = Path(args.store)
    if not path.is_file():
        raise ValueError(f"downstream store {path} does not exist")
    raw = load_yaml(args.config or DEFAULT_CONFIG).get("finetune") or {}  # validated later
    carve_test = args.carve_test if args.carve_test is not None else raw.get("carve_test")
    carve_val = args.carve_val if args.carve_val is not None else raw.get("carve_val")
    plan_splits(
        StructureStore(path), seed, carve_test=carve_test, carve_val=carve_val, name=str(path)
    )


def _stress_and_device(config: dict, args: argparse.Namespace) -> None:
    """--lambda-stress and --device into `config`: by hand (no --config) the stress is trained
    where the store has stress labels (the transfer recipe's 0 is what its tables measured, not
    what a user with stresses expects) and the device is auto; a config keeps its own unless the
    options say otherwise."""
    if args.lambda_stress is not None:
        config["loss"]["lambda_stress"] = args.lambda_stress
    elif args.config is None:
        config["loss"]["lambda_stress"] = None
    if args.device is not None or args.config is None:
        config["device"] = args.device or "auto"


def _run_finetune(args: argparse.Namespace) -> int:
    if args.store:
        _check_store_splits(args)
    from lamm.data.store import StructureStore
    from lamm.models.pretrained import resolve_checkpoint
    from lamm.training.finetune import (
        SCRATCH,
        check_starting_checkpoint,
        load_finetune_config,
        run_finetuning,
    )
    from lamm.training.finetune_splits import plan_splits

    config = _config_with_overrides(args, load_finetune_config(args.config or DEFAULT_CONFIG))
    _stress_and_device(config, args)
    try:  # a checkpoint file, or a shipped model's name (lamm.models.pretrained)
        checkpoint = None if args.checkpoint == SCRATCH else resolve_checkpoint(args.checkpoint)
    except FileNotFoundError as err:
        raise ValueError(f"{err} (or pass --checkpoint scratch)") from None
    if args.config is None and checkpoint is not None:
        # the default config's model is the demo's: fine-tune the checkpoint's own
        config["model"] = None
    if args.store:
        store_path = Path(args.store)
    else:
        store_path = Path(args.data or config["data"]["dir"]) / f"{config['data']['subset']}.lmdb"
    if not store_path.is_file():
        raise ValueError(f"downstream store {store_path} does not exist")
    store = StructureStore(store_path)
    # the cheap checks first (store metadata), so a store without val/test fails in a second
    plan_splits(
        store,
        config["seed"],
        carve_test=config["finetune"]["carve_test"],
        carve_val=config["finetune"]["carve_val"],
        name=str(store_path),
    )
    named = config["data"]["subset"]
    if store.subset != named and not args.store:
        raise ValueError(
            f"{store_path} holds subset {store.subset!r}, the config fine-tunes on {named!r}"
        )
    if checkpoint is not None:
        check_starting_checkpoint(config, checkpoint)
    if store.subset != named:
        log.info(
            "fine-tuning on %s: its subset %r (the config names %r) is the new head",
            store_path,
            store.subset,
            named,
        )
        config["data"]["subset"] = store.subset
    if args.config is None:
        # the run's name (MLflow, default --out) is the user's dataset, not "demo"
        config["name"] = store.subset
    label = _run_label(args.checkpoint, checkpoint)
    out_dir = Path(args.out or Path("results") / "finetune" / config["name"] / label)
    last = out_dir / "checkpoints" / "last.pt"
    if last.exists() and not args.resume:
        raise ValueError(
            f"{last} exists: pass --resume to continue that run, or choose another --out"
        )
    summary = launch(
        run_finetuning,
        {
            "config": config,
            "checkpoint": checkpoint,
            "store_path": store_path,
            "out_dir": out_dir,
            "resume": args.resume,
            "max_steps": args.max_steps,
            "parent_run": args.parent_run,
        },
        launch_settings(args),
        folder=out_dir / "submitit",
        name=f"lamm-finetune-{config['name']}-{out_dir.name}",
    )
    print(json.dumps(summary))
    return 0


def _add_stress_and_device(parser: argparse.ArgumentParser) -> None:
    """The stress weight and the device, over the config's."""
    parser.add_argument(
        "--lambda-stress",
        type=float,
        default=None,
        metavar="W",
        help="weight of the stress term (default: the config's; null there means 1 when the "
        "store has stress labels, else 0; 0 turns the stress off)",
    )
    add_device_argument(parser, default=None)


def _config_with_overrides(args: argparse.Namespace, config: dict[str, Any]) -> dict[str, Any]:
    """The fine-tuning config with the command line's seed, step budget and options over it."""
    if args.seed is not None:
        config["seed"] = args.seed
    if args.total_steps is not None:
        config["train"]["total_steps"] = args.total_steps
    overrides = {
        "init_head": args.init_head,
        "train_fraction": args.train_fraction,
        "force_mode": args.force_mode,
        "carve_test": args.carve_test,
        "carve_val": args.carve_val,
    }
    config["finetune"].update({key: value for key, value in overrides.items() if value is not None})
    if args.init_head == FRESH_HEAD:
        config["finetune"]["init_head"] = None
    return config


def _run_label(name: str, checkpoint: Path | None) -> str:
    """The run folder's label: `scratch`, a shipped model's name, or `epoch_<e>` of the file."""
    from lamm.models.pretrained import is_model_name
    from lamm.run_labels import SCRATCH, run_label_of_checkpoint

    if checkpoint is None:
        return SCRATCH
    if is_model_name(name):
        return name  # a shipped model: results/finetune/<name>/<model name>
    return run_label_of_checkpoint(checkpoint)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "finetune",
        help="fine-tune a pre-trained (or fresh) model on the downstream subset",
        description="Fine-tune the encoder of a pre-training checkpoint with one new head "
        "on the downstream "
        "store (reference energies and normalization refitted on its training split), or "
        "train the same "
        "model from scratch. Writes <out>/checkpoints/last.pt, metrics.csv, "
        "validation.csv, summary.json "
        "and test_metrics.json (the final EMA model on the test split). The store needs "
        "train, val and test "
        "splits (checked first); --carve-test/--carve-val take a seeded share of the "
        "training records instead.",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="fine-tuning config (default: config/finetune/transfer.yaml of this checkout, the "
        "recipe measured on real DFT, with the checkpoint's own model and the stress trained "
        "where the store has stress labels)",
    )
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="a pre-training checkpoint file, a shipped model's name (models/<name>/), or "
        "'scratch'",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--data", default=None, help="directory of <subset>.lmdb (default: the config's data.dir)"
    )
    where.add_argument(
        "--store",
        default=None,
        help="the downstream store itself; its subset names the new head (overrides the "
        "config's data.subset)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="output directory (default results/finetune/<name>/<scratch|epoch_E>)",
    )
    parser.add_argument(
        "--init-head",
        default=None,
        help="start the new head from this pre-training head (DPA-2), its energy references "
        "refit on the training records; auto: the head best on the validation records; none: "
        "a fresh head (the paper's protocol) (default: the config's init_head)",
    )
    parser.add_argument(
        "--train-fraction",
        type=float,
        default=None,
        help="use this fraction of the training split (seeded subset)",
    )
    parser.add_argument(
        "--force-mode",
        choices=["direct", "gradient"],
        default=None,
        help="direct force head or conservative forces",
    )
    _add_split_arguments(parser)
    _add_stress_and_device(parser)
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    add_length_arguments(parser)
    parser.add_argument(
        "--resume", action="store_true", help="continue from <out>/checkpoints/last.pt if it exists"
    )
    parser.add_argument(
        "--parent-run", default=None, help="MLflow parent run (a sweep) this run is nested under"
    )
    add_launch_arguments(parser)
    parser.set_defaults(func=_finetune, launcher="none")


def _add_split_arguments(parser: argparse.ArgumentParser) -> None:
    """Carving test or validation records out of a store that lacks them."""
    parser.add_argument(
        "--carve-test",
        type=_fraction,
        default=None,
        metavar="FRACTION",
        help="if the store has no test split: test on this seeded share of the training records",
    )
    parser.add_argument(
        "--carve-val",
        type=_fraction,
        default=None,
        metavar="FRACTION",
        help="if the store has no val split: validate on this seeded share of the training records",
    )
