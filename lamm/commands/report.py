"""`lamm report`: one HTML page with every table and figure of a workflow run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _report(args: argparse.Namespace) -> int:
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
    parser.add_argument(
        "--ui-url",
        default="http://127.0.0.1:5000",
        help="where `mlflow ui` serves, for the run links",
    )
    parser.set_defaults(func=_report)
