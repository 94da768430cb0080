"""Pre-trained models shipped with the checkout, loadable by name wherever a checkpoint is taken.

A shipped model is a folder `models/<name>/` of this checkout holding `model.pt` (an ordinary
lamm checkpoint) and `README.md` (its model card: data, config, commit, MLflow run, metrics,
what it is good for and what not). `resolve_checkpoint("lamm-mini")` gives the path of its
`model.pt`; a path to a file is returned as it is, so every command and `LaMMCalculator`
accept either. `$LAMM_MODELS_DIR` points at another folder of such models.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

MODELS_DIR_ENV = "LAMM_MODELS_DIR"
MODEL_FILE, CARD_FILE = "model.pt", "README.md"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def models_dir() -> Path:
    """`models/` of this checkout, or `$LAMM_MODELS_DIR`."""
    override = os.environ.get(MODELS_DIR_ENV)
    return Path(override) if override else Path(__file__).resolve().parents[2] / "models"


def shipped_models() -> dict[str, Path]:
    """Name -> model.pt of every shipped model (folders with a model.pt), sorted by name."""
    root = models_dir()
    if not root.is_dir():
        return {}
    return {
        folder.name: folder / MODEL_FILE
        for folder in sorted(root.iterdir())
        if (folder / MODEL_FILE).is_file()
    }


def is_model_name(spec: str | os.PathLike) -> bool:
    """Whether `spec` reads as a model name (no folder, no .pt) rather than a file path."""
    text = str(spec)
    return bool(_NAME.match(text)) and not text.endswith(".pt") and os.sep not in text


def resolve_checkpoint(spec: str | os.PathLike) -> Path:
    """The checkpoint file `spec` names: an existing file path, or a shipped model's name.

    Raises FileNotFoundError for a missing path, ValueError for an unknown model name (listing
    the shipped ones)."""
    path = Path(spec)
    if path.is_file():
        return path
    if is_model_name(spec):
        models = shipped_models()
        if str(spec) in models:
            return models[str(spec)]
        shipped = ", ".join(models) or "none in this checkout"
        raise ValueError(
            f"no checkpoint file and no shipped model named {str(spec)!r} (shipped models: "
            f"{shipped}; "
            f"looked in {models_dir()})"
        )
    raise FileNotFoundError(f"checkpoint {path} does not exist")
