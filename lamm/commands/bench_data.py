"""`lamm bench data`: random-access reads per second, StructureStore vs fairchem's pickled Data."""

from __future__ import annotations

import argparse
import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "data",
        help="store random-access reads/s vs a fairchem-style pickled-Data LMDB (1 "
        "process, 2 workers)",
        description="Random reads, each decoded two ways: 'data' (both sides to the same "
        "torch_geometric Data: the store's record converted, the fairchem LMDB unpickled) and "
        "'native' (store: numpy arrays; fairchem LMDB: its unpickled Data), in one process and "
        "with DataLoader workers, after a warm-up pass; the readers interleaved, their order "
        "rotated per repeat. Without --store the benchmark labels its own Cu(111)+adsorbate "
        "slabs (73-78 atoms) with EMT. Writes a CSV table (median and range over repeats); the "
        "last stdout line is a JSON summary.",
    )
    parser.add_argument(
        "--store", type=Path, metavar="PATH", help="read this store (e.g. a demo or converted one)"
    )
    parser.add_argument(
        "--count",
        type=int,
        default=4000,
        help="structures (default 4000; with --store at most its size)",
    )
    parser.add_argument(
        "--reads", type=int, default=40_000, help="random reads per measurement (default 40000)"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="measurements per reader, decode and mode, interleaved; the table keeps the median "
        "and the range (default 3)",
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="DataLoader workers of the parallel mode (default 2)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the structures and the read order"
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="where to build the inputs (default: a temporary directory, removed)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("results/tables/data_throughput.csv"), help="the CSV table"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lamm.bench.store_reads import benchmark, rows
    from lamm.tracking import RunTracker

    params = {
        k: (str(v) if isinstance(v, Path) else v)
        for k, v in vars(args).items()
        if k in ("store", "count", "reads", "repeats", "workers", "seed")
    }
    with RunTracker("bench", "bench-data", params=params) as tracker:
        with tempfile.TemporaryDirectory(dir=args.workdir, prefix="lamm-bench-data-") as workdir:
            results, count = benchmark(
                Path(workdir),
                store_path=args.store,
                count=args.count,
                reads=args.reads,
                seed=args.seed,
                repeats=args.repeats,
                workers=args.workers,
            )
        table = rows(results, count, args.reads)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(f".{args.out.name}.tmp-{os.getpid()}")
        with open(tmp, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(table[0]))
            writer.writeheader()
            writer.writerows(table)
        os.replace(tmp, args.out)
        tracker.log_metrics(
            {
                f"{row['reader']}_{row['decode']}_{row['mode']}_reads_per_s": row["reads_per_s"]
                for row in table
            }
        )
        tracker.log_artifact(args.out)
    summary: dict[str, Any] = {
        "benchmark": "data",
        "structures": count,
        "reads": args.reads,
        "table": str(args.out),
    }
    for decode, mode in sorted({(row["decode"], row["mode"]) for row in table}):
        mine = [row for row in table if (row["decode"], row["mode"]) == (decode, mode)]
        rates = {row["reader"]: row["reads_per_s"] for row in mine}
        ranges = {row["reader"]: [row["reads_per_s_min"], row["reads_per_s_max"]] for row in mine}
        summary[f"{decode}/{mode}"] = {
            **rates,
            "speedup": round(rates["lamm_store"] / rates["pickle_lmdb"], 2),
            "ranges": ranges,
        }
    print(json.dumps(summary))
    return 0
