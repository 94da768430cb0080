"""Argument parsers of the `lamm` subcommands, one module per command group.

Each module has `add_parser(subparsers)`; its parsers set `func(args) -> int`. Parsing and
printing only: the work is done by the library modules these call.
"""
