"""`lamm bench balance`: simulated load balance of the random, greedy and lamm samplers."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lamm.data.balance import STRATEGIES  # numpy only: `lamm --help` stays fast


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "balance",
        help="load-balance simulation of the samplers (efficiency, predicted speedup, peak atoms)",
        description="Plans epochs exactly as the training sampler would and reports, per "
        "world size W, "
        "per-rank batch B' and strategy: efficiency (sum of mean rank load / sum of max "
        "rank load), "
        "the predicted epoch speedup over random, and the peak atoms on one rank. The last stdout "
        "line is a JSON summary.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--stores",
        nargs="+",
        metavar="STORE",
        help="structure stores, one subset each (train split)",
    )
    source.add_argument(
        "--natoms",
        metavar="FILE",
        help=".npy, .txt (one count per line) or .csv (natoms[, subset, work])",
    )
    source.add_argument(
        "--synthetic-scale",
        type=float,
        metavar="X",
        help="Fig. 4-like atom counts, Table 2 sample counts times X",
    )
    _add_simulation_arguments(parser)
    parser.set_defaults(func=run)


def _add_simulation_arguments(parser: argparse.ArgumentParser) -> None:
    """What is simulated and how a rank's load is counted."""
    parser.add_argument(
        "--world-sizes",
        type=int,
        nargs="+",
        default=[4, 16, 64],
        metavar="W",
        help="world sizes (ranks) to simulate",
    )
    parser.add_argument(
        "--batch-per-rank",
        type=int,
        nargs="+",
        default=[1, 2, 4, 8],
        metavar="B",
        help="per-rank batch sizes B' to simulate",
    )
    parser.add_argument(
        "--strategies",
        nargs="+",
        choices=STRATEGIES,
        default=list(STRATEGIES),
        help="samplers to compare",
    )
    parser.add_argument(
        "--temperature", type=float, default=2.0, help="temperature sampling T (default 2)"
    )
    parser.add_argument(
        "--no-temperature",
        action="store_true",
        help="draw every sample once (no temperature sampling)",
    )
    parser.add_argument(
        "--num-splits", type=int, default=10_000, help="LaMM's S (default 10,000, the paper's)"
    )
    parser.add_argument("--epochs", type=int, default=1, help="epochs to simulate (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the splits and shuffles")
    parser.add_argument(
        "--work",
        choices=["atoms", "edges", "cost"],
        default="atoms",
        help="what a rank's load is (stores only for edges/cost)",
    )
    parser.add_argument(
        "--cost",
        type=float,
        nargs=3,
        metavar=("PER_STRUCTURE", "PER_ATOM", "PER_EDGE"),
        help="cost model for --work cost",
    )
    parser.add_argument(
        "--cutoff",
        type=float,
        default=6.0,
        help="radius of the graphs whose edges are counted (Angstrom)",
    )
    parser.add_argument(
        "--max-neighbors", type=int, default=None, help="neighbor cap of those graphs"
    )
    parser.add_argument(
        "--step-overhead",
        type=float,
        default=0.0,
        help="fixed cost per step added to the predicted time (work units)",
    )
    parser.add_argument(
        "--max-atoms-per-rank",
        type=int,
        default=None,
        help="memory cap applied to the lamm strategy",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results/tables/balance_simulation.csv"),
        help="CSV to write",
    )


def run(args: argparse.Namespace) -> int:
    from lamm.bench import balance as sim
    from lamm.data.cost import CostModel
    from lamm.tables import write_csv
    from lamm.tracking import RunTracker

    if args.work == "cost" and args.cost is None:
        raise SystemExit(
            "lamm bench balance: --work cost needs --cost PER_STRUCTURE PER_ATOM PER_EDGE"
        )
    if args.work != "atoms" and not args.stores:
        raise SystemExit(
            "lamm bench balance: --work edges/cost needs --stores (edges come from the structures)"
        )
    if args.stores:
        cost_model = CostModel(*args.cost) if args.cost else None
        workload = sim.workload_from_stores(
            args.stores,
            work=args.work,
            cutoff=args.cutoff,
            max_neighbors=args.max_neighbors,
            cost_model=cost_model,
        )
        inputs = args.stores
    elif args.natoms:
        workload, inputs = sim.workload_from_file(args.natoms), [args.natoms]
    else:
        workload, inputs = sim.synthetic_natoms(args.synthetic_scale, args.seed), []
    temperature = None if args.no_temperature else args.temperature
    params = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"
    }
    with RunTracker("bench", "bench-balance", params=params, inputs=inputs) as tracker:
        rows = sim.simulate(
            workload,
            world_sizes=args.world_sizes,
            batches_per_rank=args.batch_per_rank,
            strategies=args.strategies,
            temperature=temperature,
            num_splits=args.num_splits,
            seed=args.seed,
            epochs=args.epochs,
            step_overhead=args.step_overhead,
            max_atoms_per_rank=args.max_atoms_per_rank,
        )
        for row in rows:
            row["input"] = workload.source
            row["work"] = args.work
        path = write_csv(rows, args.out)
        summary = sim.summarize(rows)
        for metric, per_strategy in summary.items():
            tracker.log_metrics(
                {
                    f"{metric}.{s}.{k}": v
                    for s, values in per_strategy.items()
                    for k, v in values.items()
                }
            )
        tracker.log_artifact(path)
    samples = {name: len(n) for name, n in zip(workload.names, workload.natoms, strict=True)}
    print(json.dumps({"table": str(path), "input": workload.source, "samples": samples, **summary}))
    return 0
