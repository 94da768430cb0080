"""The `lamm` command: argument parsing only; every subcommand calls into the library.

Global options come before the subcommand:
    lamm [-v|-q] [--tag KEY=VALUE ...] SUBCOMMAND ...
`--tag` adds tags to every MLflow run the command opens (the Snakemake rules pass the rule
name and wildcards this way, so the library never needs to know about Snakemake).
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
from collections.abc import Sequence

from lamm import __version__
from lamm.commands.errors import USER_ERRORS, fail
from lamm.log import setup_logging
from lamm.tracking import TAGS_ENV, tracking_uri
from lamm.training.stop import restore_default_signals

# Each module adds one subcommand group with `add_parser(subparsers)`; its parsers set
# `func`, called with the parsed arguments and returning the exit status.
COMMAND_MODULES: tuple[str, ...] = (
    "lamm.commands.data",
    "lamm.commands.train",
    "lamm.commands.bench",
    "lamm.commands.report",
    "lamm.commands.finetune",
    "lamm.commands.summarize",
    "lamm.commands.downstream",
    "lamm.commands.ablation",
    "lamm.commands.umap",
    "lamm.commands.distill",
    "lamm.commands.model",
    "lamm.commands.transfer",
)


def _tag(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already states it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if (
            action.option_strings
            and "default" not in text.lower()
            and "%(default)" not in text
            # identity, not ==: a default of 0 is worth stating, False (a flag) is not
            and not any(default is nothing for nothing in (None, False, argparse.SUPPRESS))
            and default != []
            and not isinstance(action, argparse._StoreConstAction)
        ):
            text += " (default: %(default)s)"
        return text


class RawDescriptionDefaultsHelpFormatter(
    DefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter
):
    """The same for parsers whose description is laid out by hand."""


def _with_defaults(parser: argparse.ArgumentParser) -> None:
    """Give `parser` and every subcommand parser below it the defaults-stating formatter, and
    each command its name (`command_name`, for one-line errors)."""
    raw = issubclass(parser.formatter_class, argparse.RawDescriptionHelpFormatter)
    parser.formatter_class = RawDescriptionDefaultsHelpFormatter if raw else DefaultsHelpFormatter
    subcommands = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subcommands:
        parser.set_defaults(command_name=parser.prog.removeprefix("lamm "))
    for action in subcommands:
        for sub in set(action.choices.values()):
            _with_defaults(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lamm",
        description="LaMM: semi-supervised pre-training and fine-tuning of neural network "
        "potentials.",
        epilog="Every subcommand has --help. Runs are tracked in MLflow "
        "(MLFLOW_TRACKING_URI, default sqlite:///results/mlflow.db).",
    )
    parser.add_argument("--version", action="version", version=f"lamm {__version__}")
    verbosity = parser.add_mutually_exclusive_group()
    verbosity.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv: also libraries)"
    )
    verbosity.add_argument("-q", "--quiet", action="store_true", help="warnings and errors only")
    parser.add_argument(
        "--tag",
        action="append",
        type=_tag,
        default=[],
        metavar="KEY=VALUE",
        help="add a tag to every MLflow run this command opens (repeatable)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    from importlib import import_module

    for name in COMMAND_MODULES:
        import_module(name).add_parser(subparsers)
    _with_defaults(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # SIGINT/SIGTERM stop `lamm` in a background job too (a shell starts those with SIGINT
    # ignored), and a crash in native code (SIGBUS, SIGSEGV) prints a traceback, not nothing.
    restore_default_signals()
    if not faulthandler.is_enabled() and sys.__stderr__ is not None:
        faulthandler.enable(file=sys.__stderr__)
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(-1 if args.quiet else args.verbose)
    if args.tag:
        inherited = json.loads(os.environ.get(TAGS_ENV) or "{}")
        os.environ[TAGS_ENV] = json.dumps({**inherited, **dict(args.tag)})
    # Child processes (DDP ranks, submitit workers) may start elsewhere: pin the store's path.
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri()
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as err:
        # expected failures (a missing file, a bad store, a config error) are one line, not a
        # traceback; `-v` logs the traceback too. Commands catch what they can say better.
        return fail(getattr(args, "command_name", "lamm"), err)
