"""`lamm bench throughput`: measured DDP step throughput of the random, greedy and lamm samplers.

Real training steps (the pre-training Trainer, launched like `lamm pretrain`) per sampler,
dataset (one subset, or `joint` = every subset of the trainer config, temperature-sampled) and
per-rank batch, plus lamm at a larger batch under a memory cap: the cap is the peak atoms per
rank that random needs at `--cap-reference-batch` (over a planned epoch), so random at the larger
batch would exceed it. Random is timed at the larger batch too (uncapped, where memory allows:
`--no-random-at-capped-batch` leaves it out), so the report can judge the balance at that batch
apart from the batch size itself. Cases rotate their order per repeat (`case_order`). Writes the
step statistics (`--out`), the cost model calibrated on these steps with the balance simulation
scaled to more ranks (`--scaling-out`), and Fig. 6.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lamm.commands.train import add_launch_arguments, launch_settings
from lamm.data.balance import STRATEGIES  # numpy only: `lamm --help` stays fast


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "throughput",
        help="measured DDP step throughput of the samplers (Fig. 6) and the calibrated scaling "
        "simulation",
        description="Runs real DDP training steps for each sampler, dataset and per-rank batch, "
        "and "
        "writes samples/s, step-time statistics and idle time per configuration, Fig. 6, and the "
        "balance simulation with a cost model fitted to the measured steps. The last stdout line "
        "is a JSON summary.",
    )
    parser.add_argument(
        "--config",
        required=True,
        help="trainer config whose model and data settings are used (e.g. "
        "config/pretrain/demo.yaml)",
    )
    parser.add_argument(
        "--data",
        default=None,
        help="directory of <subset>.lmdb stores (default: the config's data.dir)",
    )
    parser.add_argument(
        "--samplers", nargs="+", default=list(STRATEGIES), help=f"some of {', '.join(STRATEGIES)}"
    )
    parser.add_argument(
        "--datasets",
        nargs="+",
        default=["oc20_s2ef", "joint"],
        help="subsets of the config, or 'joint' (all, temperature-sampled)",
    )
    parser.add_argument(
        "--batch-per-rank",
        type=int,
        nargs="+",
        default=[2, 4],
        metavar="B",
        help="per-rank batch sizes B' to time",
    )
    parser.add_argument(
        "--capped-batch",
        type=int,
        default=8,
        help="lamm's per-rank batch under the memory cap (0: none)",
    )
    parser.add_argument(
        "--no-random-at-capped-batch",
        dest="random_at_capped_batch",
        action="store_false",
        help="do not time random at the capped batch (default: time it, uncapped; it needs more "
        "memory per rank than the cap: leave it out where that does not fit, e.g. a GPU; the "
        "larger-batch claim is then judged against random at --cap-reference-batch, batch and "
        "balance together)",
    )
    parser.add_argument(
        "--cap-reference-batch",
        type=int,
        default=4,
        help="the cap is random's peak atoms per rank at this batch",
    )
    _add_run_arguments(parser)
    add_launch_arguments(parser)
    parser.set_defaults(func=run)


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """Steps, repeats, the scaling simulation, and where everything goes."""
    parser.add_argument("--steps", type=int, default=30, help="optimizer steps per run")
    parser.add_argument(
        "--warmup", type=int, default=5, help="first steps of each run left out of the statistics"
    )
    parser.add_argument(
        "--group-steps",
        type=int,
        default=5,
        help="steps one lamm group of splits lasts (sets S); warm-up and measured steps must be "
        "whole groups",
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="runs of every configuration (interleaved)"
    )
    parser.add_argument(
        "--budget-minutes",
        type=float,
        default=None,
        metavar="MIN",
        help="run another repeat only while it fits in MIN minutes of measuring (a loaded host "
        "runs fewer repeats, not longer; the table reports how many ran; default: no budget)",
    )
    parser.add_argument(
        "--scaling-world-sizes",
        type=int,
        nargs="+",
        default=[2, 16, 64],
        metavar="W",
        help="world sizes of the calibrated balance simulation",
    )
    parser.add_argument(
        "--scaling-epochs", type=int, default=2, help="epochs the scaling simulation plans"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the samplers and the model")
    parser.add_argument(
        "--threads-per-rank", type=int, default=1, help="torch threads of each rank"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=Path("results/bench/throughput"),
        help="trainer outputs of every run",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="analyze the timings already in --work-dir (same cases) instead of measuring",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("results/tables/throughput.csv"), help="CSV to write"
    )
    parser.add_argument(
        "--scaling-out",
        type=Path,
        default=Path("results/tables/throughput_scaling.csv"),
        help="CSV of the fitted cost model and the scaling simulation",
    )
    parser.add_argument(
        "--figure",
        type=Path,
        default=Path("results/figures/fig6_step_time.png"),
        help="step-time figure (Fig. 6) to write",
    )


def _check(args: argparse.Namespace, subsets: list[str]) -> None:
    from lamm.bench.throughput import dataset_subsets

    unknown = [s for s in args.samplers if s not in STRATEGIES]
    if unknown:
        raise SystemExit(
            f"lamm bench throughput: unknown sampler(s) {unknown}; expected some of "
            f"{list(STRATEGIES)}"
        )
    for dataset in args.datasets:
        try:
            dataset_subsets(dataset, subsets)
        except ValueError as err:
            raise SystemExit(f"lamm bench throughput: {err} ({args.config})") from None
    if args.steps <= args.warmup + 1:
        raise SystemExit(
            f"lamm bench throughput: --steps {args.steps} leaves fewer than 2 steps after "
            f"--warmup {args.warmup}"
        )
    if (
        args.group_steps < 1
        or args.warmup % args.group_steps
        or (args.steps - args.warmup) % args.group_steps
    ):
        raise SystemExit(
            f"lamm bench throughput: --warmup {args.warmup} and --steps minus --warmup "
            f"({args.steps - args.warmup}) "
            f"must be multiples of --group-steps {args.group_steps} (lamm's epoch runs large to "
            f"small within a group)"
        )
    if min(args.batch_per_rank) < 1 or args.capped_batch < 0 or args.repeats < 1:
        raise SystemExit("lamm bench throughput: batches and repeats must be positive")


def run(args: argparse.Namespace) -> int:
    from lamm.bench.throughput_run import run_benchmark
    from lamm.training.pretrain import load_trainer_config

    config = load_trainer_config(args.config)
    config["threads_per_rank"] = args.threads_per_rank
    _check(args, list(config["data"]["subsets"]))
    summary = run_benchmark(args, config, launch_settings(args))
    print(json.dumps(summary))
    return 0
