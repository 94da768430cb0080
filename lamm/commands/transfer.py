"""`lamm transfer`: a pre-trained model vs scratch vs the universal potentials on a DFT set."""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "transfer",
        help="fine-tune a pre-trained model and scratch on a real DFT set; score the anchors too",
        description="On one labeled file (extended XYZ, or any file ASE reads): a store split "
        "80/10/10 by contiguous blocks within each group, then `lamm finetune` from scratch, from "
        "the model, and from the model with its encoder frozen (full set only), same config and "
        "budget, for every fraction and seed; the composition fit; the anchors (SevenNet-0, "
        "CHGNet) zero-shot with energies shifted per element on the training split. Writes "
        "OUT/runs.csv, OUT/summary.csv, OUT/summary.json and OUT/summary.md (a markdown table); a "
        "rerun skips finished runs.",
    )
    parser.add_argument("--dataset", type=Path, required=True, help="the labeled DFT file")
    parser.add_argument("--name", required=True, help="the set's name (its store and head)")
    parser.add_argument("--model", required=True, help="a shipped model's name or a checkpoint")
    parser.add_argument(
        "--model-name",
        default=None,
        help="the model's name in the tables and run folders (default: a shipped model's name; "
        "for a checkpoint, <pre-training run>-<file stem>, e.g. mini-epoch_5)",
    )
    parser.add_argument(
        "--config", type=Path, required=True, help="fine-tuning config (its budget for every run)"
    )
    parser.add_argument("--out", type=Path, required=True, help="output directory")
    parser.add_argument(
        "--group-key", default=None, help="info key grouping the frames (e.g. config_group)"
    )
    parser.add_argument(
        "--total-steps",
        type=int,
        default=None,
        help="optimizer steps of every run (default: the config's epochs)",
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        help="fine-tuning seeds of every method (default: 0 1 2)",
    )
    parser.add_argument(
        "--fractions",
        type=float,
        nargs="+",
        default=[1.0, 0.1],
        help="fractions of the training split, each drawn per seed (default: 1.0 0.1)",
    )
    _add_anchor_arguments(parser)
    parser.add_argument(
        "--init-head",
        default=None,
        help="start the model's new head (frozen runs included) from this pre-training head, its "
        "energy references refit to the training split (DPA-2's change-bias), or auto: the head "
        "best on validation (default: the config's init_head); scratch runs have none",
    )
    parser.add_argument("--no-frozen", action="store_true", help="skip the frozen-encoder runs")
    parser.add_argument("--jobs", type=int, default=2, help="fine-tuning runs at a time")
    parser.add_argument("--split-seed", type=int, default=0, help="seed of the block split")
    parser.set_defaults(func=run)


def _add_anchor_arguments(parser: argparse.ArgumentParser) -> None:
    """The universal potentials scored beside the runs: zero-shot, and fine-tuned by their own
    trainer."""
    parser.add_argument(
        "--anchors",
        nargs="*",
        default=["sevennet-0", "chgnet-0.3.0"],
        help="universal potentials scored zero-shot (none: --anchors)",
    )
    parser.add_argument(
        "--anchor-fit-max",
        type=int,
        default=200,
        help="training structures (a seeded subsample) the anchors' energy shift is fitted on",
    )
    parser.add_argument(
        "--finetune-anchors",
        nargs="*",
        default=[],
        help="universal potentials also fine-tuned with their own trainer on each run's training "
        "records, same batch size and (whole epochs of) --total-steps: chgnet-0.3.0, "
        "chgnet-r2scan (default: none; about 0.5 s a step on one CPU core)",
    )
    parser.add_argument(
        "--anchor-seeds",
        type=int,
        nargs="+",
        default=None,
        help="seeds of the fine-tuned anchors' runs (default: --seeds)",
    )


def _finetune_all(args: argparse.Namespace, runs, store_path: Path) -> None:
    import yaml

    from lamm.analysis.transfer import (
        PRETRAINED_ONLY,
        finetune_command,
        frozen_config,
        run_kind,
        scratch_config,
    )
    from lamm.config import load_yaml

    config = load_yaml(args.config)
    configs = {
        "model": args.config.resolve(),
        "frozen": args.out / "config_frozen_encoder.yaml",
        "scratch": args.config.resolve(),
    }
    if any(run.frozen for run in runs):
        configs["frozen"].write_text(yaml.safe_dump(frozen_config(config), sort_keys=False))
    if any(config.get("finetune", {}).get(key) is not None for key in PRETRAINED_ONLY):
        # scratch has no pre-training head to copy: its runs take the config without those keys
        configs["scratch"] = args.out / "config_scratch.yaml"
        configs["scratch"].write_text(yaml.safe_dump(scratch_config(config), sort_keys=False))
    lamm = [sys.executable, "-m", "lamm", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

    def launch(run) -> tuple[str, int, float]:
        run_dir = args.out / "runs" / run.label
        if (run_dir / "test_metrics.json").is_file():
            return run.label, 0, 0.0
        run_dir.mkdir(parents=True, exist_ok=True)
        command = finetune_command(
            run,
            config=configs[run_kind(run)],
            store=store_path,
            out=run_dir,
            lamm=lamm,
            init_head=args.init_head,
        )
        if args.total_steps is not None:
            command += ["--total-steps", str(args.total_steps)]
        start = time.perf_counter()
        with open(run_dir / "finetune.log", "w") as logfile:
            status = subprocess.call(command, stdout=logfile, stderr=subprocess.STDOUT, env=env)
        return run.label, status, time.perf_counter() - start

    from lamm.log import progress

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for label, status, seconds in progress(
            pool.map(launch, runs), desc="transfer runs", total=len(runs), unit="run"
        ):
            if status:
                log.warning("run %s failed (exit %d): see its finetune.log", label, status)
            elif seconds:
                log.info("run %s done in %.0f s", label, seconds)


def _anchor(args: argparse.Namespace, name: str, store: Any) -> dict[str, Any]:
    """The anchor's zero-shot row, kept in OUT/anchors/ (minutes of a universal potential on the
    test and fit structures), so that a rerun re-summarizes without scoring it again."""
    from lamm.analysis.anchors import anchor_row

    cache = args.out / "anchors" / f"{name}_fit{args.anchor_fit_max}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    anchor = anchor_row(name, store, fit_max=args.anchor_fit_max)
    row = {"method": f"{name} (zero-shot)", "fraction": 1.0, "seed": 0, "run": name, **{
        k: v for k, v in anchor.items() if k not in ("model", "n_structures")
    }}  # fmt: skip
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".partial")
    partial.write_text(json.dumps(row, default=float))
    partial.replace(cache)
    return row


def _finetuned_anchors(
    args: argparse.Namespace, store_path: Path
) -> tuple[list[dict[str, Any]], list[str]]:
    """The fine-tuned anchors' rows, one per (anchor, fraction, seed), each kept in OUT/anchors/
    (a run takes tens of minutes of a core), run `--jobs` at a time in their own processes; and
    the runs that failed (logged; the others are kept)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from lamm.analysis.anchor_finetune import finetune_anchor_row
    from lamm.config import load_yaml

    batch_size = int(load_yaml(args.config)["sampler"]["batch_per_rank"])
    seeds = args.anchor_seeds if args.anchor_seeds is not None else args.seeds
    planned = [
        (
            name,
            fraction,
            seed,
            args.out / "anchors" / f"{name}_finetuned_f{fraction:g}_s{seed}.json",
        )
        for name in args.finetune_anchors
        for fraction in args.fractions
        for seed in seeds
    ]
    todo = [entry for entry in planned if not entry[3].is_file()]
    context = multiprocessing.get_context("spawn")  # a fresh torch per run, one thread each
    with ProcessPoolExecutor(max_workers=max(1, args.jobs), mp_context=context) as pool:
        futures = {
            pool.submit(
                finetune_anchor_row,
                name,
                store_path,
                fraction=fraction,
                seed=seed,
                steps=args.total_steps,
                batch_size=batch_size,
                work_dir=args.out / "anchors",
            ): cache
            for name, fraction, seed, cache in todo
        }
        for future, cache in futures.items():
            try:
                row = future.result()
            except Exception as err:  # noqa: BLE001 - one failed run must not drop the others
                log.warning("%s failed: %s", cache.stem, err)
                continue
            partial = cache.with_suffix(".partial")
            partial.write_text(json.dumps(row, default=float))
            partial.replace(cache)
            log.info("%s done: %s", row["run"], row)
    rows = [json.loads(cache.read_text()) for *_, cache in planned if cache.is_file()]
    return rows, [cache.stem for *_, cache in planned if not cache.is_file()]


def run(args: argparse.Namespace) -> int:
    from lamm.analysis.transfer import (
        COMPOSITION,
        SCRATCH,
        markdown_table,
        plan_runs,
        prepare_store,
        run_row,
        summarize,
    )
    from lamm.analysis.zero_shot import baseline_row
    from lamm.tables import write_csv

    if args.finetune_anchors:
        from lamm.analysis.anchor_finetune import check_finetunable

        check_finetunable(args.finetune_anchors)
        if args.total_steps is None:
            raise ValueError("--finetune-anchors needs --total-steps (the runs' step budget)")
    args.out.mkdir(parents=True, exist_ok=True)
    store_path = args.out / f"{args.name}.lmdb"
    store = prepare_store(
        args.dataset, args.name, store_path, group_key=args.group_key, split_seed=args.split_seed
    )
    runs = plan_runs(
        args.model, args.fractions, args.seeds, frozen=not args.no_frozen, name=args.model_name
    )
    _finetune_all(args, runs, store_path)
    rows = [r for run_ in runs if (r := run_row(run_, args.out / "runs" / run_.label))]
    missing = [
        run_.label
        for run_ in runs
        if not (args.out / "runs" / run_.label / "test_metrics.json").is_file()
    ]
    baseline = baseline_row(store)
    rows.append(
        {
            "method": COMPOSITION,
            "fraction": 1.0,
            "seed": 0,
            "run": "composition",
            "energy_mae_mev_per_atom": baseline.get("energy_mae_mev_per_atom", float("nan")),
            "forces_mae_mev_per_a": baseline.get("forces_mae_mev_per_a", float("nan")),
        }
    )
    rows += [_anchor(args, name, store) for name in args.anchors]
    anchor_rows, failed_anchors = _finetuned_anchors(args, store_path)
    rows += anchor_rows
    missing += failed_anchors
    write_csv(rows, args.out / "runs.csv")
    summary = summarize(rows)
    write_csv(summary, args.out / "summary.csv")
    result = {
        "dataset": str(args.dataset),
        "store": str(store_path),
        "splits": {s: int(len(store.indices(s))) for s in ("train", "val", "test")},
        "model": args.model,
        "model_name": next(r.init for r in runs if r.init != SCRATCH),
        "missing_runs": missing,
        "summary": summary,
    }
    (args.out / "summary.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    (args.out / "summary.md").write_text(markdown_table(summary))
    print(json.dumps({"out": str(args.out), "runs": len(rows), "missing_runs": missing}))
    return 1 if missing else 0
