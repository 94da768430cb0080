"""`lamm ablation denoising` (one or both training runs) and `lamm ablation denoising-summary`
(table, Fig. 7, epochs-to-threshold ratio)."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def _mode_dir(text: str) -> tuple[str, str]:
    mode, sep, path = text.partition("=")
    if not sep or mode not in ("baseline", "relative") or not path:
        raise argparse.ArgumentTypeError(f"expected baseline=DIR or relative=DIR, got {text!r}")
    return mode, path


def _denoising(args: argparse.Namespace) -> int:
    from lamm.training.denoising_ablation import run_denoising_ablation
    from lamm.training.pretrain import load_trainer_config

    base = load_trainer_config(args.config)
    if args.seed is not None:
        base["seed"] = args.seed
    summaries = run_denoising_ablation(
        base,
        args.data,
        args.out,
        modes=args.modes,
        subset=args.subset,
        epochs=args.epochs,
        batch_per_rank=args.batch_per_rank,
        val_every_steps=args.val_every_steps,
        val_max_samples=args.val_max_samples,
        num_workers=args.num_workers,
    )
    print(json.dumps({"out": str(args.out), "runs": summaries}))
    return 0


def _summary(args: argparse.Namespace) -> int:
    from lamm.analysis.denoising import (
        METRICS,
        learning_curve,
        plot_denoising,
        summarize,
        table_rows,
    )
    from lamm.tables import write_csv
    from lamm.tracking import RunTracker

    runs = dict(args.run)
    missing = [mode for mode in ("baseline", "relative") if mode not in runs]
    if missing:
        raise SystemExit(f"lamm ablation denoising-summary: pass --run for {missing}")
    params = {"runs": runs, "subset": args.subset, "threshold_a": args.threshold}
    csvs = [Path(d) / "validation.csv" for d in runs.values()]
    with RunTracker("ablation", "denoising-summary", params=params, inputs=csvs) as tracker:
        curves = {
            mode: learning_curve(Path(d) / "validation.csv", args.subset)
            for mode, d in runs.items()
        }
        summary = summarize(curves, args.threshold)
        summary["subset"] = args.subset
        write_csv(table_rows(curves), args.table)
        plot_denoising(curves, summary, args.figure, subset=args.subset)
        out = Path(args.summary)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(summary, indent=1))
        tmp.replace(out)
        metrics = {}
        for metric in METRICS:
            for mode, values in summary[metric]["modes"].items():
                metrics[f"{metric}/{mode}/final"] = values["final_error_a"]
            for name in ("threshold", "common_threshold"):
                ratio = summary[metric][name]["ratio"]
                if ratio is not None and math.isfinite(ratio):
                    metrics[f"{metric}/{name}_ratio"] = ratio
        tracker.log_metrics(metrics)
        for path in (args.table, args.figure, out):
            tracker.log_artifact(path)
    print(json.dumps(summary))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "ablation", help="ablations of the paper (denoising labels, Fig. 7)"
    )
    commands = parser.add_subparsers(dest="ablation", metavar="ABLATION", required=True)

    run = commands.add_parser(
        "denoising",
        help="train on one denoising subset alone with baseline and/or relative noise labels",
        description="Train the base trainer config on one denoising subset alone (one "
        "rank, this process), "
        "once per mode, with the same seed and budget; each run goes to <out>/<mode>/ "
        "(validation.csv "
        "holds val/<subset>/denoising_error_centered_a and denoising_error_a per validation).",
    )
    run.add_argument(
        "--config", required=True, help="base trainer config (e.g. config/pretrain/demo.yaml)"
    )
    run.add_argument("--data", required=True, help="directory of <subset>.lmdb stores")
    run.add_argument("--out", required=True, help="output directory; each mode in <out>/<mode>")
    run.add_argument(
        "--modes",
        nargs="+",
        choices=["baseline", "relative"],
        default=["baseline", "relative"],
        help="denoising label modes to train",
    )
    run.add_argument(
        "--subset", default="pubchem3d", help="the denoising subset (a store with task 'denoising')"
    )
    run.add_argument(
        "--epochs", type=float, default=6.0, help="training length in epochs of the subset"
    )
    run.add_argument("--batch-per-rank", type=int, default=8, help="structures per step")
    run.add_argument(
        "--val-every-steps", type=int, default=20, help="optimizer steps between validations"
    )
    run.add_argument(
        "--val-max-samples", type=int, default=200, help="validation structures (fixed noise)"
    )
    run.add_argument(
        "--num-workers", type=int, default=0, help="DataLoader workers (0: load in this process)"
    )
    run.add_argument(
        "--seed", type=int, default=None, help="override the config's seed (same for every mode)"
    )
    run.set_defaults(func=_denoising)

    _add_summary_parser(commands)


def _add_summary_parser(commands: argparse._SubParsersAction) -> None:
    """`lamm ablation denoising-summary`."""
    summary = commands.add_parser(
        "denoising-summary",
        help="denoising.csv, Fig. 7 and the epochs-to-threshold ratio from the two runs",
        description="Read <dir>/validation.csv of the baseline and relative runs and write "
        "the learning "
        "curves (mode, step, epoch, val_error_a = each run against its own labels as in the paper, "
        "val_error_centered_a = mean displacement removed), the figure, and "
        "a JSON summary (final errors, epochs to --threshold and to the common threshold, ratios).",
    )
    summary.add_argument(
        "--run",
        action="append",
        type=_mode_dir,
        required=True,
        metavar="MODE=DIR",
        help="baseline=DIR and relative=DIR (each a `lamm ablation denoising` run directory)",
    )
    summary.add_argument(
        "--subset", default="pubchem3d", help="the denoising subset the runs trained on"
    )
    summary.add_argument(
        "--threshold",
        type=float,
        default=0.03,
        help="validation error threshold, Angstrom (paper: 0.03)",
    )
    summary.add_argument(
        "--table", default="results/tables/denoising.csv", help="learning-curve CSV to write"
    )
    summary.add_argument(
        "--figure", default="results/figures/fig7_denoising.png", help="Fig. 7 to write"
    )
    summary.add_argument(
        "--summary", default="results/tables/denoising_summary.json", help="summary JSON to write"
    )
    summary.set_defaults(func=_summary)
