"""`lamm data ...`: the data stage's subcommands, one `add_*_parser` + `run_*` pair each.

    lamm data demo --out DIR [--scale tiny|small|medium] [--seed N] [--workers N] [--subsets ...]
    lamm data stats STORE... --out DIR
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

DEMO_SCALES = ("tiny", "small", "medium")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data", help="datasets: offline demo data, statistics",
        description="Build and inspect the structure stores of the joint dataset.",
    )
    commands = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    add_demo_parser(commands)
    add_stats_parser(commands)


def add_demo_parser(commands: argparse._SubParsersAction) -> None:
    from lamm.data.demo.catalog import SUBSET_NAMES

    parser = commands.add_parser(
        "demo", help="generate the offline mini joint dataset (EMT, GFN-xTB, MMFF94s)",
        description="Generate the ten pre-training subsets and the downstream set offline, labeled by "
        "EMT (slabs, frameworks), GFN2-xTB (molecules), GFN1-xTB (downstream) and unlabeled MMFF94s "
        "conformers, one store per subset: DIR/<subset>.lmdb. The last stdout line is a JSON summary "
        "(samples, atom counts and labeling failures per subset).",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="directory for the <subset>.lmdb stores")
    parser.add_argument("--scale", choices=DEMO_SCALES, default="small",
                        help="tiny: seconds (tests); small: the default demo (minutes); medium: thousands per subset")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (same seed, same bytes)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="labeling processes (default: all cores)")
    parser.add_argument("--subsets", nargs="+", choices=SUBSET_NAMES, metavar="SUBSET", default=None,
                        help=f"write only these subsets (default: all): {', '.join(SUBSET_NAMES)}")
    parser.set_defaults(func=run_demo)


def run_demo(args: argparse.Namespace) -> int:
    from lamm.data.demo.generate import generate_demo
    from lamm.tracking import RunTracker

    params = {"scale": args.scale, "seed": args.seed, "workers": args.workers,
              "subsets": args.subsets or "all", "out": str(args.out)}
    with RunTracker("data", f"data-demo-{args.scale}", params=params) as tracker:
        report = generate_demo(args.out, scale=args.scale, seed=args.seed, subsets=args.subsets,
                               workers=args.workers)
        summary = report.as_dict()
        summary_path = args.out / "demo_summary.json"
        tmp = summary_path.with_name(summary_path.name + ".tmp")
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
        tmp.replace(summary_path)
        metrics = {"wall_s": report.wall_s}
        for subset, entry in report.subsets.items():
            metrics[f"samples.{subset}"] = entry["samples"]
            metrics[f"failures.{subset}"] = entry["failed"]
            metrics[f"natoms_mean.{subset}"] = entry["natoms_mean"]
        tracker.log_metrics(metrics)
        tracker.log_artifact(summary_path)
    print(json.dumps(summary))
    return 0


def add_stats_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "stats", help="Table 2 (CSV) and Figs. 2 and 4 of a set of stores",
        description="From store metadata only (never decoding a sample): DIR/tables/table2_datasets.csv "
        "(task, labels, periodic, samples, samples with temperature sampling T=2, avg atoms, elements "
        "per subset, and a total row), DIR/figures/fig2_elements.png (periodic table: subsets "
        "containing each element) and DIR/figures/fig4_natoms.png (atom-count KDE per subset). "
        "IS2RE subsets are left out of the figures, as in the paper.",
    )
    parser.add_argument("stores", nargs="+", type=Path, metavar="STORE", help="structure store files (.lmdb)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="results directory (tables/ and figures/ inside)")
    parser.add_argument("--temperature", type=float, default=2.0, help="temperature of the sampling column (LaMM: 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the KDE subsample (at most 100,000 per subset)")
    parser.set_defaults(func=run_stats)


def run_stats(args: argparse.Namespace) -> int:
    from lamm.analysis.dataset_stats import write_dataset_stats
    from lamm.tracking import RunTracker

    params = {"stores": [str(p) for p in args.stores], "out": str(args.out),
              "temperature": args.temperature, "seed": args.seed}
    with RunTracker("data", "data-stats", params=params, inputs=args.stores) as tracker:
        start = time.perf_counter()
        outputs, table = write_dataset_stats(args.stores, args.out, temperature=args.temperature, seed=args.seed)
        metrics = {"wall_s": time.perf_counter() - start}
        for row in table.to_dict("records"):
            metrics[f"samples.{row['subset']}"] = row["samples"]
            metrics[f"avg_atoms.{row['subset']}"] = row["avg_atoms"]
        tracker.log_metrics(metrics)
        for path in outputs.values():
            tracker.log_artifact(path)
    print(json.dumps({name: str(path) for name, path in outputs.items()}))
    return 0
