"""`lamm bench batching`: structures per second from stores into `Batch` objects."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batching",
        help="throughput of the data path (stores -> noise -> vesin graphs -> Batch) with "
        "DataLoader workers",
        description="Times the training data path on the train split of the stores: lamm-sampled, "
        "temperature-sampled batches, decoding, denoising noise, neighbor lists and "
        "collation, for each "
        "worker count. The last stdout line is a JSON summary.",
    )
    parser.add_argument(
        "--stores",
        nargs="+",
        required=True,
        metavar="STORE",
        help="structure stores (.lmdb) to batch",
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[0, 2],
        help="DataLoader worker counts to time (default 0 2)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=8, help="structures per batch (default 8)"
    )
    parser.add_argument(
        "--batches", type=int, default=100, help="batches timed per worker count (default 100)"
    )
    parser.add_argument(
        "--warmup", type=int, default=3, help="batches before the clock starts (default 3)"
    )
    parser.add_argument(
        "--cutoff", type=float, default=6.0, help="graph radius in Angstrom (default 6)"
    )
    parser.add_argument(
        "--max-neighbors", type=int, default=50, help="neighbor cap (default 50; 0 for none)"
    )
    parser.add_argument(
        "--temperature", type=float, default=2.0, help="temperature of the subset sampling"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results/tables/batching_throughput.csv"),
        help="CSV to write",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from lamm.bench.batching import measure_batching
    from lamm.tables import write_csv
    from lamm.tracking import RunTracker

    params = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"
    }
    with RunTracker("bench", "bench-batching", params=params, inputs=args.stores) as tracker:
        rows = measure_batching(
            args.stores,
            workers=args.workers,
            batch_size=args.batch_size,
            batches=args.batches,
            warmup=args.warmup,
            cutoff=args.cutoff,
            max_neighbors=args.max_neighbors or None,
            temperature=args.temperature,
            seed=args.seed,
        )
        path = write_csv(rows, args.out)
        for row in rows:
            tracker.log_metrics(
                {f"structures_per_s.workers{row['workers']}": row["structures_per_s"]}
            )
        tracker.log_artifact(path)
    summary = {f"workers_{row['workers']}": round(row["structures_per_s"], 1) for row in rows}
    print(json.dumps({"table": str(path), "structures_per_s": summary}))
    return 0
