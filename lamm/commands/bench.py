"""`lamm bench`: one command group, one subcommand per benchmark (modules listed below).

Every benchmark writes `results/tables/<name>.csv` (overridable with `--out`) and prints a JSON
summary as the last stdout line.
"""

from __future__ import annotations

import argparse
from importlib import import_module

BENCHMARK_MODULES: tuple[str, ...] = (
    "lamm.commands.bench_data",
    "lamm.commands.bench_balance",
    "lamm.commands.bench_batching",
    "lamm.commands.bench_model",
    "lamm.commands.bench_throughput",
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="benchmarks (each writes results/tables/<name>.csv)"
    )
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    for name in BENCHMARK_MODULES:
        import_module(name).add_parser(benchmarks)

    def no_benchmark(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=no_benchmark)
