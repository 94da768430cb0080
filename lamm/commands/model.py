"""`lamm model package`: a pre-training checkpoint -> a shipped model (models/<name>/) with its
card."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _evaluation(text: str) -> tuple[str, str]:
    label, sep, folder = text.partition("=")
    if not sep or not label or not folder:
        raise argparse.ArgumentTypeError(f"expected LABEL=FOLDER, got {text!r}")
    return label, folder


def _package(args: argparse.Namespace) -> int:
    from lamm.models.model_card import package_model

    for label, folder in args.evaluate:
        if not Path(folder).is_dir():
            raise FileNotFoundError(
                f"--evaluate {label}={folder}: no such folder of <subset>.lmdb stores"
            )
    data = json.loads(Path(args.data_json).read_text()) if args.data_json else {}
    notes = Path(args.notes).read_text() if args.notes else ""
    folder = package_model(
        args.checkpoint,
        args.name,
        args.models_dir,
        evaluations=dict(args.evaluate),
        data=data,
        notes=notes,
        split=args.split,
        results=args.results,
    )
    card = json.loads((folder / "card.json").read_text())
    print(
        json.dumps(
            {"folder": str(folder), "file_bytes": card["file_bytes"], "metrics": card["metrics"]}
        )
    )
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    model = subparsers.add_parser("model", help="shipped pre-trained models")
    commands = model.add_subparsers(dest="model_command", metavar="COMMAND", required=True)
    package = commands.add_parser(
        "package",
        help="package a pre-training checkpoint as a named model with a model card",
        description="Write MODELS_DIR/NAME/model.pt (the checkpoint's EMA weights, model "
        "config, heads, label "
        "statistics and provenance; no optimizer state), card.json and README.md (the "
        "model card: provenance, data, "
        "validation metrics per subset on each --evaluate set, your --notes). The model "
        "then loads by name: "
        "lamm finetune --checkpoint NAME, LaMMCalculator(NAME).",
    )
    package.add_argument(
        "checkpoint",
        help="a pre-training checkpoint (e.g. results/pretrain/mini/checkpoints/epoch_12.pt)",
    )
    package.add_argument(
        "--name", required=True, help="the model's name (a folder name, e.g. lamm-mini)"
    )
    package.add_argument("--models-dir", default="models", help="where shipped models live")
    package.add_argument(
        "--evaluate",
        action="append",
        type=_evaluation,
        default=[],
        metavar="LABEL=FOLDER",
        help="score the model per head on FOLDER/<head>.lmdb (repeatable), e.g. small=results/data",
    )
    package.add_argument(
        "--split", default="val", help="the split the card's metrics are measured on"
    )
    package.add_argument(
        "--data-json", default=None, help="JSON file: what the model was trained on, for the card"
    )
    package.add_argument(
        "--notes",
        default=None,
        help="Markdown file: what the model is good for and what not (result figures go in the "
        "generated block, not here: see --results)",
    )
    package.add_argument(
        "--results",
        default=None,
        metavar="DIR",
        help="results directory, relative to the model's folder (e.g. reproduction), whose "
        "committed tables the card quotes: card.json records it and README.md gets a generated "
        "results block (`lamm report --markdown --card MODELS_DIR/NAME` refreshes it)",
    )
    package.set_defaults(func=_package)
