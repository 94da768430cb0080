"""`lamm report`: one HTML page with every table and figure of a workflow run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _markdown(args: argparse.Namespace) -> int:
    """--markdown: write (or with --check, verify) a results block of committed tables."""
    from lamm.analysis import report_markdown as md

    if args.check:
        problems = [p for path in args.check for p in md.check_file(Path(path))]
        for problem in problems:
            print(problem)
        print(json.dumps({"checked": args.check, "problems": len(problems)}))
        return 1 if problems else 0
    transfer = False  # a `lamm transfer` folder: its blocks are in the transfer style
    if args.card:
        folder = Path(args.card)
        results, into = md.card_results(folder), folder / "README.md"
    else:
        results, into = Path(args.results), Path(args.into) if args.into else None
        transfer = (results / md.TRANSFER_SUMMARY).is_file() and not (results / "tables").is_dir()
        style = args.style or ("transfer" if transfer else "full")
        missing = md.missing_source(results, style)
        if missing:
            raise FileNotFoundError(f"--results {results}: {missing}")
        if into is None:
            print(md.results_markdown(results, results.as_posix(), style), end="")
            return 0
    # new markers take a transfer folder's style; else a block keeps the style it declares
    md.write_block(into, results, args.style or ("transfer" if transfer else None))
    print(json.dumps({"markdown": str(into), "results": str(results)}))
    return 0


def _report(args: argparse.Namespace) -> int:
    if args.markdown:
        return _markdown(args)
    from lamm.analysis.report import write_report
    from lamm.tracking import RunTracker, tracking_uri

    results = Path(args.results)
    out = Path(args.out or results / "report.html")
    with RunTracker(
        "report",
        "report",
        params={"results": str(results), "configs": [str(c) for c in args.config]},
    ) as tracker:
        summary = write_report(
            results,
            out,
            configs=args.config,
            tracking_uri=tracking_uri(),
            ui_url=args.ui_url,
            downstream=args.downstream,
        )
        tracker.log_metrics(
            {"items_found": len(summary["found"]), "items_missing": len(summary["missing"])}
        )
        tracker.log_artifact(out)
    print(json.dumps({"report": str(out), **summary}))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report",
        help="write results/report.html: every table and figure, the configs, links to the "
        "MLflow runs",
        description="Collect the tables (CSV) and figures (PNG) of a results directory into one "
        "self-contained HTML page (figures embedded), with the configs verbatim and a list of all "
        "MLflow runs linked into `mlflow ui`. Results that are missing are listed as missing.",
    )
    parser.add_argument("--results", default="results", help="the workflow's results directory")
    parser.add_argument("--out", default=None, help="the HTML file (default <results>/report.html)")
    parser.add_argument(
        "--config", action="append", default=[], help="a config file to show (repeatable)"
    )
    parser.add_argument(
        "--downstream",
        nargs="+",
        default=[],
        metavar="NAME",
        help="the downstream sets in the workflow's order (data.downstream): one "
        "fine-tuning section "
        "each, the first with tables/table3_finetune.csv ..., a further NAME with "
        "table3_finetune_NAME.csv ...",
    )
    markdown = parser.add_argument_group(
        "Markdown results block",
        "README.md and model cards quote results only between <!-- lamm-results:start --> and "
        "<!-- lamm-results:end -->, generated from committed tables; `pytest -k numbers` fails "
        "when "
        "a block differs from what its tables generate.",
    )
    markdown.add_argument(
        "--markdown",
        action="store_true",
        help="write the results block of --results into --into (or of a model card, --card) "
        "instead of the HTML page; without --into or --card, print it",
    )
    markdown.add_argument(
        "--into", default=None, metavar="FILE", help="Markdown file whose results block to replace"
    )
    markdown.add_argument(
        "--card",
        default=None,
        metavar="FOLDER",
        help="a model's folder (models/NAME): its README.md's block, from the results directory "
        'its card.json declares ("results", relative to the folder)',
    )
    markdown.add_argument(
        "--style",
        choices=["brief", "full", "transfer"],
        default=None,
        help="brief: the findings with their verdicts (a README); full: also each spread and the "
        "fine-tuning tables over seeds (a model card); transfer: the table of a `lamm transfer` "
        "folder (--results OUT); default: the block's own, else full",
    )
    markdown.add_argument(
        "--check",
        nargs="+",
        default=None,
        metavar="FILE",
        help="with --markdown: check that the blocks of these files match their tables (exit 1 if "
        "not)",
    )
    parser.add_argument(
        "--ui-url",
        default="http://127.0.0.1:5000",
        help="where `mlflow ui` serves, for the run links",
    )
    parser.set_defaults(func=_report)
