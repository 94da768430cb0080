"""`lamm summarize finetune|sample-efficiency`: tables and figures from fine-tuning run folders."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path


def _clean(rows):
    # JSON summary: inf/NaN are not JSON
    return [
        {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
        for row in rows
    ]


def _summary_path(table: str, summary: str | None, stem: str) -> str:
    """--summary, or beside the table: table3_finetune[_NAME].csv -> table3_summary[_NAME].csv
    (the workflow passes it explicitly), sample_efficiency[_NAME].csv ->
    sample_efficiency_summary[_NAME].csv."""
    if summary is not None:
        return summary
    path = Path(table)
    suffix = path.stem.removeprefix(stem) if path.stem.startswith(stem) else f"_{path.stem}"
    short = "table3" if stem == "table3_finetune" else stem
    return str(path.with_name(f"{short}_summary{suffix}{path.suffix}"))


def _finetune(args: argparse.Namespace) -> int:
    from lamm.analysis.finetune import (
        ENERGY,
        FORCES,
        TABLE3_COLUMNS,
        default_thresholds,
        finetune_table,
        load_run,
        table3_summary,
    )
    from lamm.analysis.finetune_figures import finetune_curves
    from lamm.tables import write_csv
    from lamm.tracking import RunTracker

    runs = [load_run(d) for d in args.runs]
    defaults = default_thresholds(runs)
    thresholds = {
        ENERGY: defaults[ENERGY] if args.energy_threshold is None else args.energy_threshold,
        FORCES: defaults[FORCES] if args.forces_threshold is None else args.forces_threshold,
    }
    with RunTracker(
        "analysis", "table3-finetune", params={"runs": args.runs, **thresholds}, inputs=args.runs
    ) as tracker:
        rows = finetune_table(runs, thresholds[ENERGY], thresholds[FORCES])
        write_csv([{c: row[c] for c in TABLE3_COLUMNS} for row in rows], args.table)
        summary_path = _summary_path(args.table, args.summary, "table3_finetune")
        summary = table3_summary(rows)
        write_csv(summary, summary_path)
        finetune_curves(runs, args.figure, thresholds=thresholds, window=args.window)
        for row in summary:  # the mean over seeds (one seed: that run's value)
            tracker.log_metrics(
                {
                    f"{row['checkpoint']}/{ENERGY}": row[f"{ENERGY}_mean"],
                    f"{row['checkpoint']}/{FORCES}": row[f"{FORCES}_mean"],
                }
            )
        for path in (args.table, summary_path, args.figure):
            tracker.log_artifact(path)
    print(
        json.dumps(
            {
                "table": args.table,
                "summary": summary_path,
                "figure": args.figure,
                "thresholds": thresholds,
                "rows": _clean(rows),
            }
        )
    )
    return 0


def _sample_efficiency(args: argparse.Namespace) -> int:
    from lamm.analysis.finetune import (
        SAMPLE_EFFICIENCY_COLUMNS,
        load_run,
        sample_efficiency_summary,
        sample_efficiency_table,
    )
    from lamm.analysis.finetune_figures import sample_efficiency
    from lamm.tables import write_csv
    from lamm.tracking import RunTracker

    with RunTracker(
        "analysis", "sample-efficiency", params={"runs": args.runs}, inputs=args.runs
    ) as tracker:
        rows = sample_efficiency_table([load_run(d) for d in args.runs])
        write_csv([{c: row[c] for c in SAMPLE_EFFICIENCY_COLUMNS} for row in rows], args.table)
        summary_path = _summary_path(args.table, args.summary, "sample_efficiency")
        write_csv(sample_efficiency_summary(rows), summary_path)
        sample_efficiency(rows, args.figure)
        for path in (args.table, summary_path, args.figure):
            tracker.log_artifact(path)
    print(
        json.dumps(
            {
                "table": args.table,
                "summary": summary_path,
                "figure": args.figure,
                "rows": _clean(rows),
            }
        )
    )
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "summarize",
        help="tables and figures from fine-tuning runs (Table 3, Fig. 9, sample efficiency)",
    )
    commands = parser.add_subparsers(dest="summary", metavar="SUMMARY", required=True)
    table3 = commands.add_parser(
        "finetune",
        help="Table 3 and Fig. 9: best validation MAE, steps to thresholds, speedup vs scratch",
        epilog="Runs with different budgets (total_steps) are told apart: a row and a summary row "
        "per checkpoint and budget, speedups against the scratch run of the same seed and budget.",
        description="Reads `lamm finetune` run folders (exactly one from scratch per seed and "
        "budget) and writes Table 3 (one row per run and seed: best and final validation "
        "energy/force MAE, test MAE of the final model, first validation step at or below each "
        "threshold, speedup = the same seed's scratch steps / the run's, the budget in steps and "
        "the pre-training seed of the start), its summary over seeds (per checkpoint and budget: "
        "n seeds, pre-training runs, mean/std/min/max, ratios to scratch) and Fig. 9 (validation "
        "curves; training loss terms as moving averages). Runs of several budgets or from "
        "several pre-training runs may be given together: the report then chooses each start's "
        "budget on the final validation error and pools the pre-training runs.",
    )
    table3.add_argument("runs", nargs="+", help="fine-tuning run folders")
    table3.add_argument(
        "--energy-threshold",
        type=float,
        default=None,
        help="validation energy MAE threshold, meV/atom (default: the largest best validation "
        "MAE of the scratch runs, i.e. where scratch ends; of all runs without scratch)",
    )
    table3.add_argument(
        "--forces-threshold",
        type=float,
        default=None,
        help="validation force MAE threshold, meV/A (default: as for energy)",
    )
    table3.add_argument(
        "--window",
        type=int,
        default=31,
        help="moving-average window of the training curves (paper: 31)",
    )
    table3.add_argument(
        "--table",
        default="table3_finetune.csv",
        help="output CSV (the workflow: results/tables/table3_finetune.csv)",
    )
    table3.add_argument(
        "--summary",
        default=None,
        help="per-checkpoint summary over seeds (default: table3_summary.csv beside --table)",
    )
    table3.add_argument(
        "--figure",
        default="fig9_finetune.png",
        help="output figure (the workflow: results/figures/fig9_finetune.png)",
    )
    table3.set_defaults(func=_finetune)
    efficiency = commands.add_parser(
        "sample-efficiency",
        help="final test error against downstream training-set size, pre-trained vs scratch",
        description="Reads `lamm finetune` run folders trained on fractions of the "
        "downstream training split "
        "and writes their test energy/force MAE against the number of training structures "
        "(one row per run and "
        "seed), and the summary over seeds per checkpoint and fraction.",
    )
    efficiency.add_argument("runs", nargs="+", help="fine-tuning run folders")
    efficiency.add_argument(
        "--table", required=True, help="output CSV (results/tables/sample_efficiency.csv)"
    )
    efficiency.add_argument(
        "--summary",
        default=None,
        help="per checkpoint and fraction over seeds (default: "
        "sample_efficiency_summary.csv beside --table)",
    )
    efficiency.add_argument(
        "--figure", required=True, help="output figure (results/figures/sample_efficiency.png)"
    )
    efficiency.set_defaults(func=_sample_efficiency)
