"""Checkpoint files: written atomically, loaded with `weights_only=True`.

A checkpoint alone rebuilds the model and its calculator:

    format: "lamm-checkpoint", version: 1
    model_config   the model mapping (`lamm.models.build.build_potential`)
    heads          subset names, in head order
    model          state_dict of the Potential (the trained weights; the normalizer rides in it)
    ema            state_dict of the exponential moving average of the weights, or absent
    statistics     the referencing/normalization statistics per head (provenance)
    training       everything needed to resume exactly: optimizer, scheduler, sampler position,
                   RNG states, step, epoch, trainer config, MLflow run id

Only plain containers, numbers, strings and tensors: no pickled modules (STYLE.md).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

FORMAT = "lamm-checkpoint"
VERSION = 1


def save_checkpoint(path: str | os.PathLike, payload: Mapping[str, Any]) -> Path:
    """Write `payload` (plus format and version) to `path` via a temporary file and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint; errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise ValueError(f"{path} is not a readable checkpoint: {err}") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a lamm checkpoint (format {payload.get('format') if isinstance(payload, dict) else type(payload).__name__})")
    if payload.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {payload.get('version')} is not supported (expected {VERSION})")
    for key in ("model_config", "heads", "model"):
        if key not in payload:
            raise ValueError(f"{path}: checkpoint lacks {key!r}")
    return payload


def epoch_label(epoch: float) -> str:
    """File-name form of a fractional epoch: 0 -> '0', 0.1 -> '0.1', 2.0 -> '2'."""
    text = f"{epoch:.6f}".rstrip("0").rstrip(".")
    return text or "0"
