"""`lamm bench ...`: one subcommand per benchmark, each from the stream that owns it.

Each module in BENCHMARK_MODULES has `add_parser(subparsers)`. Benchmarks write
`results/tables/<name>.csv` (overridable with `--out`) and print a JSON summary as the last
stdout line.
"""

from __future__ import annotations

import sys
from importlib import import_module
from typing import Any

BENCHMARK_MODULES: tuple[str, ...] = ("lamm.commands.bench_data",)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser("bench", help="benchmarks (tables under results/tables/)",
                                   description="Benchmarks; each writes a CSV table and prints a JSON summary last.")
    sub = parser.add_subparsers(dest="bench_command", metavar="BENCHMARK")
    for name in BENCHMARK_MODULES:
        import_module(name).add_parser(sub)
    parser.set_defaults(func=lambda args: parser.print_help(sys.stderr) or 2)
