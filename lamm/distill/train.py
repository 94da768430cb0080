"""Training the students: fine-tuning from scratch (`lamm.training.finetune.run_finetuning`) on a
round's `train.lmdb`, so a student gets what every fine-tuned model gets: statistics refitted on
its labels, the shared Trainer (AdamW, warmup + cosine, EMA), its checkpoint format and an
exact resume from `checkpoints/last.pt` when a round is interrupted mid-training.

The fine-tuning config is built from the distillation config's `student` section: its model
(trained from scratch), its trainer sections (sampler, loss, optimizer, train) and the run's
seed, device and threads; it is validated with the fine-tuning schema, so a misspelled trainer
key fails before anything runs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lamm.config import validate_config
from lamm.models.build import resolve_model_config

log = logging.getLogger(__name__)

# what a student run needs that a user rarely sets: random batches, no intermediate checkpoints
_SAMPLER = {"strategy": "random", "batch_per_rank": 4, "num_splits": 1}
_TRAIN = {"checkpoint_epochs": [], "log_every_steps": 10, "save_every_minutes": 5.0}


def student_finetune_config(config: Mapping[str, Any], *, subset: str, seed: int) -> dict[str, Any]:
    """The validated fine-tuning config of one student (committee member with `seed`)."""
    from lamm.training.finetune import finetune_schema

    student = config["student"]
    model = resolve_model_config(student["model"])
    if model["force_mode"] != "gradient":
        log.warning(
            "student force_mode %r: its forces are not -dE/dx, its MD will not conserve energy",
            model["force_mode"],
        )
    raw = {
        "name": f"distill-{config['name']}",
        "seed": seed,
        "device": config["device"],
        "threads_per_rank": config["threads"],
        "model": model,
        "data": {
            "subset": subset,
            "statistics_samples": student["statistics_samples"],
            "num_workers": 0,
        },
        "finetune": {"force_mode": model["force_mode"]},
        "sampler": {**_SAMPLER, **dict(student["sampler"])},
        "loss": dict(student["loss"]),
        "optimizer": dict(student["optimizer"]),
        "train": {**_TRAIN, **dict(student["train"])},
    }
    return validate_config(
        raw, finetune_schema(), name=f"student training of distillation config {config['name']!r}"
    )


def train_student(
    finetune_config: Mapping[str, Any],
    store_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    parent_run: str | None = None,
) -> dict[str, Any]:
    """Train (or finish training) one student in `out_dir`; returns run_finetuning's summary,
    whose `test` entry is the student's error against the teacher on the validation set."""
    from lamm.training.finetune import run_finetuning

    return run_finetuning(
        finetune_config, None, store_path, Path(out_dir), resume=True, parent_run=parent_run
    )
