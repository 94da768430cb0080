"""`lamm bench`: one subcommand per benchmark; each writes results/tables/<name>.csv (`--out`)
and prints a JSON summary as its last stdout line."""

from __future__ import annotations

import argparse
from importlib import import_module

# One entry per benchmark module (each with `add_parser(subparsers)`); streams add theirs here.
BENCHMARK_MODULES: tuple[str, ...] = ("lamm.commands.bench_model",)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks (tables under results/tables/)")
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    for name in BENCHMARK_MODULES:
        import_module(name).add_parser(benchmarks)

    def _help(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    parser.set_defaults(func=_help)
