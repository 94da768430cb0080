"""Package a pre-training checkpoint as a shipped model: `models/<name>/model.pt` plus its card.

The shipped file is an ordinary lamm checkpoint holding only what inference and fine-tuning
read: the EMA weights (as `model`), the model config, the heads, the per-head label statistics
and a `training` entry with the run's provenance (steps, epochs, samples seen, MLflow run id,
trainer config); no optimizer state, so it is a fraction of the run's checkpoint.

Next to it `card.json` (machine-readable) and `README.md` (the model card) record where it came
from (checkpoint, commit, MLflow run, data) and the validation metrics per pre-training subset on
each named evaluation set (e.g. the demo stores it was trained on, and the `tiny` demo stores,
which a test regenerates in seconds to check the shipped file against its card).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lamm.analysis.evaluation import compute_metrics, predict_split
from lamm.data.store import StructureStore
from lamm.models.checkpoint import (
    checkpoint_dict,
    load_checkpoint,
    potential_from_checkpoint,
    save_checkpoint,
)
from lamm.models.potential import Potential
from lamm.models.pretrained import CARD_FILE, MODEL_FILE

CARD_JSON = "card.json"
CARD_METRICS = ("energy_mae_mev_per_atom", "forces_mae_mev_per_a", "n_structures")
# the markers of a generated results block (lamm.analysis.report_markdown; not imported here:
# it pulls in pandas, and loading a model must not)
RESULTS_START, RESULTS_END = "<!-- lamm-results:start -->", "<!-- lamm-results:end -->"
# provenance kept from the run's `training` entry (the rest is optimizer and sampler state)
_PROVENANCE = ("step", "epochs_done", "samples_seen", "mlflow_run_id", "config")


def shipped_checkpoint(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The inference/fine-tuning part of a training checkpoint, EMA weights as `model`."""
    potential = potential_from_checkpoint(checkpoint, use_ema=True)
    shipped = checkpoint_dict(potential, checkpoint["model_config"])
    shipped["statistics"] = checkpoint.get("statistics")
    training = checkpoint.get("training") or {}
    shipped["training"] = {key: training[key] for key in _PROVENANCE if key in training}
    return shipped


def subset_metrics(
    potential: Potential, data_dir: str | os.PathLike, split: str = "val", batch_size: int = 16
) -> dict[str, dict[str, float | int]]:
    """Per head of `potential` with a store `<data_dir>/<head>.lmdb`: the CARD_METRICS of that
    head on the store's `split` (heads without a store or without labels are left out)."""
    metrics = {}
    for head in potential.heads:
        path = Path(data_dir) / f"{head}.lmdb"
        if not path.is_file():
            continue
        store = StructureStore(path)
        if not len(store.indices(split)):
            continue
        values = compute_metrics(
            predict_split(potential, store, split, [head], batch_size=batch_size)[head]
        )
        kept = {key: values[key] for key in CARD_METRICS if key in values}
        if set(kept) - {"n_structures"}:  # PubChem3D (denoising) has no energy or force labels
            metrics[head] = kept
    return metrics


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def package_model(
    checkpoint_path: str | os.PathLike,
    name: str,
    models_dir: str | os.PathLike,
    *,
    evaluations: Mapping[str, str | os.PathLike],
    data: Mapping[str, Any],
    notes: str = "",
    split: str = "val",
    results: str | None = None,
) -> Path:
    """Write `models_dir/name/` (model.pt, card.json, README.md) and return the folder.

    `evaluations`: label -> folder of demo stores whose `split` is scored per head; `data`: what
    the model was trained on, as the card should state it (source, scale, seed, subsets, sizes,
    labelers); `notes`: Markdown for the card's "good for / not for" section; `results`: the
    results directory (relative to the model's folder, e.g. "reproduction") whose committed
    tables the card's generated results block quotes (`lamm.analysis.report_markdown`), filled
    in now when its tables are there, else by `lamm report --markdown --card` once they are."""
    checkpoint = load_checkpoint(checkpoint_path)
    shipped = shipped_checkpoint(checkpoint)
    folder = Path(models_dir) / name
    model_path = save_checkpoint(folder / MODEL_FILE, shipped)
    potential = potential_from_checkpoint(shipped).eval()
    card = {
        "name": name,
        "source_checkpoint": str(checkpoint_path),
        "commit": _commit(),
        "mlflow_run_id": shipped["training"].get("mlflow_run_id"),
        "training": {key: value for key, value in shipped["training"].items() if key != "config"},
        "model_config": shipped["model_config"],
        "heads": list(potential.heads),
        "parameters": sum(p.numel() for p in potential.parameters()),
        "file_bytes": model_path.stat().st_size,
        "data": dict(data),
        "metrics_split": split,
        "metrics": {
            label: subset_metrics(potential, path, split) for label, path in evaluations.items()
        },
        "evaluation_data": {label: str(path) for label, path in evaluations.items()},
        **({"results": results} if results else {}),
    }
    _write_text(folder / CARD_JSON, json.dumps(card, indent=1, default=str) + "\n")
    _write_text(folder / CARD_FILE, card_markdown(card, shipped["training"].get("config"), notes))
    if results and (folder / results / "tables").is_dir():
        from lamm.analysis.report_markdown import write_block

        write_block(folder / CARD_FILE, folder / results)
    return folder


def _write_text(path: Path, text: str) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text)
    os.replace(partial, path)


def card_markdown(card: Mapping[str, Any], config: Mapping[str, Any] | None, notes: str) -> str:
    """The model card (README.md) from card.json's content, the trainer config and the notes."""
    model = card["model_config"]
    encoder = model["encoder"]
    training = card["training"]
    lines = [
        f"# {card['name']}",
        "",
        f"A {encoder} encoder ({card['parameters']:,} parameters, "
        f"{card['file_bytes'] / 1e6:.1f} MB) with one "
        f"head per pre-training subset, pre-trained with LaMM's recipe. Load it by name: "
        f'`lamm finetune --checkpoint {card["name"]}`, `LaMMCalculator("{card["name"]}")`, or '
        f"`finetune: {{models: [{card['name']}]}}` in the workflow config.",
        "",
        "## Provenance",
        "",
        f"- commit `{card['commit']}`; MLflow run `{card['mlflow_run_id']}`; checkpoint "
        f"`{card['source_checkpoint']}`",
        f"- {training.get('step')} optimizer steps, {training.get('epochs_done')} epochs, "
        f"{training.get('samples_seen')} samples seen; EMA weights",
        f"- model: `{json.dumps(model, sort_keys=True)}`",
    ]
    if config:
        sections = ("sampler", "loss", "optimizer", "train")
        trainer = {k: config[k] for k in sections if k in config}
        lines.append(f"- trainer: `{json.dumps(trainer, sort_keys=True)}`")
    lines += ["", "## Data", ""]
    lines += [f"- {key}: {value}" for key, value in card["data"].items()]
    lines += [
        "",
        f"## Validation metrics per subset ({card['metrics_split']} split, EMA weights)",
        "",
    ]
    for label, per_head in card["metrics"].items():
        lines += [
            f"On `{card['evaluation_data'][label]}` ({label}):",
            "",
            "| subset (head) | structures | energy MAE (meV/atom) | force MAE (meV/A) |",
            "|---|---|---|---|",
        ]
        for head, values in per_head.items():
            energy, forces = (
                values.get("energy_mae_mev_per_atom"),
                values.get("forces_mae_mev_per_a"),
            )
            lines.append(
                f"| {head} | {values.get('n_structures')} | "
                f"{'-' if energy is None else f'{energy:.1f}'} | "
                f"{'-' if forces is None else f'{forces:.1f}'} |"
            )
        lines.append("")
    if notes:
        lines += [notes.strip(), ""]
    if card.get("results") and RESULTS_START not in notes:
        lines += [
            f"## Results (generated from `{card['results']}/tables/`)",
            "",
            RESULTS_START,
            RESULTS_END,
            "",
        ]
    return "\n".join(lines)
