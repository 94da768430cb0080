"""Denoising ablation (LaMM Fig. 7): one denoising subset alone, baseline vs relative noise labels.

Each mode is an ordinary pre-training run (`run_pretraining`, single rank here, tracked as stage
"ablation") of a base trainer config with a few keys overridden: the subset list becomes the one
denoising subset, `data.denoise_mode` the mode, and the budget (epochs, batch, validation
cadence) comes from the ablation settings. Everything else, the seed included, is shared, so
both runs see the same samples in the same order with the same noise draws (relative noise is
the baseline draw minus its mean, `lamm.data.noise`); the label's mean is the only difference.
The validation curves are read back from each run's validation.csv
(`lamm.analysis.denoising.learning_curve`).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lamm.config import validate_config
from lamm.data.noise import MODES
from lamm.data.store import StructureStore
from lamm.training.pretrain import SCHEMA, run_pretraining

ABLATION_MODES = ("baseline", "relative")  # plotting/table order
assert set(ABLATION_MODES) == set(MODES)


def check_denoising_store(data_dir: str | os.PathLike, subset: str) -> Path:
    """The store of `subset`, checked to be a denoising store with train and val samples."""
    path = Path(data_dir) / f"{subset}.lmdb"
    if not path.exists():
        available = sorted(p.stem for p in Path(data_dir).glob("*.lmdb"))
        raise ValueError(
            f"unknown subset {subset!r}: no store {path} (stores in {data_dir}: {available})"
        )
    store = StructureStore(path)
    task = store.info.get("task")
    if task != "denoising":
        raise ValueError(
            f"{path}: task is {task!r}, the denoising ablation needs a store with task 'denoising'"
        )
    for split in ("train", "val"):
        if len(store.indices(split)) == 0:
            raise ValueError(
                f"{path}: the {split} split is empty; the ablation trains on train and "
                "validates on val"
            )
    return path


def ablation_config(
    base: Mapping[str, Any],
    mode: str,
    *,
    subset: str,
    epochs: float,
    batch_per_rank: int,
    val_every_steps: int,
    val_max_samples: int,
    num_workers: int = 0,
) -> dict[str, Any]:
    """The trainer config of one ablation run: `base` with the ablation's overrides, validated."""
    if mode not in ABLATION_MODES:
        raise ValueError(f"unknown denoising mode {mode!r}; expected one of {ABLATION_MODES}")
    config = copy.deepcopy(dict(base))
    config["name"] = f"denoising-{mode}"
    config["data"] = {
        **config["data"],
        "subsets": [subset],
        "denoise_mode": mode,
        "num_workers": num_workers,
    }
    config["sampler"] = {**config.get("sampler", {}), "batch_per_rank": batch_per_rank}
    # No fractional-epoch checkpoints: only the final `last.pt` (the curves are the result).
    config["train"] = {
        **config.get("train", {}),
        "epochs": epochs,
        "val_every_steps": val_every_steps,
        "val_max_samples": val_max_samples,
        "checkpoint_epochs": [],
    }
    return validate_config(config, SCHEMA, name=f"denoising ablation config ({mode})")


def run_denoising_mode(
    base: Mapping[str, Any],
    mode: str,
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    **settings: Any,
) -> dict[str, Any]:
    """Train one mode into `out_dir` (validation.csv, metrics.csv, checkpoints/last.pt,
    summary.json)."""
    check_denoising_store(data_dir, settings["subset"])
    config = ablation_config(base, mode, **settings)
    summary = run_pretraining(config, data_dir, out_dir, stage="ablation")
    return {"mode": mode, **summary}


def run_denoising_ablation(
    base: Mapping[str, Any],
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    modes: Sequence[str] = ABLATION_MODES,
    **settings: Any,
) -> dict[str, dict[str, Any]]:
    """Every mode one after the other into `out_dir/<mode>`; {mode: training summary}."""
    return {
        mode: run_denoising_mode(base, mode, data_dir, Path(out_dir) / mode, **settings)
        for mode in modes
    }
