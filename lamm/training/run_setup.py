"""The setup pre-training and fine-tuning share around the `Trainer`, in one place.

Both runs build the same load-balanced loader from the config's `sampler` section, validate with
the same `evaluate` call, write the same run inputs (config.yaml, statistics.json), and resume
from `<out_dir>/checkpoints/last.pt` the same way; what differs (the stores, statistics, the
starting model, the MLflow run, fine-tuning's test evaluation) stays in `pretrain` and `finetune`.
"""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from torch import nn

from lamm.data.dataset import MultiStoreDataset
from lamm.data.loader import EpochLoader, build_loader
from lamm.data.sampler import DistributedBatchSampler
from lamm.data.store import StructureStore
from lamm.models.checkpoint import load_checkpoint
from lamm.training.distributed import DistributedContext
from lamm.training.trainer import Trainer
from lamm.training.validation import evaluate

log = logging.getLogger(__name__)

# The stress weight when `loss.lambda_stress` is null (auto) and a training store has stress
# labels; the stress target is normalized by its own RMS (`lamm.models.normalizer`).
DEFAULT_LAMBDA_STRESS = 1.0


def with_stress_weight(
    config: Mapping[str, Any], stores: Sequence[StructureStore]
) -> tuple[dict[str, Any], bool]:
    """(`config` with `loss.lambda_stress` resolved, whether the stores have stress labels).

    null (the default) means DEFAULT_LAMBDA_STRESS when a store has stress labels, else 0; a
    number is kept (0 turns the stress off). Stress labels also turn on the validation stress MAE.
    """
    has_stress = any(store.has_stress for store in stores)
    weight = config["loss"].get("lambda_stress")
    if weight is None:
        weight = DEFAULT_LAMBDA_STRESS if has_stress else 0.0
    if has_stress:
        log.info("stress labels found: stress loss weight %g", weight)
    return {**config, "loss": {**config["loss"], "lambda_stress": float(weight)}}, has_stress


def build_train_loader(
    train_set: MultiStoreDataset,
    config: Mapping[str, Any],
    context: DistributedContext,
    *,
    temperature: float | None,
) -> EpochLoader:
    """This rank's training loader: the config's sampler over `train_set` (temperature None:
    subsets drawn in proportion to their size, as fine-tuning's single subset needs)."""
    sampler_config = config["sampler"]
    sampler = DistributedBatchSampler(
        train_set.natoms,
        train_set.sizes,
        world_size=context.world_size,
        rank=context.rank,
        batch_per_rank=sampler_config["batch_per_rank"],
        strategy=sampler_config["strategy"],
        temperature=temperature,
        num_splits=sampler_config["num_splits"],
        seed=config["seed"],
        max_atoms_per_rank=sampler_config["max_atoms_per_rank"],
    )
    if sampler.skipped:
        log.warning(
            "samples that never fit under max_atoms_per_rank: %s",
            {k: len(v) for k, v in sampler.skipped.items()},
        )
    return build_loader(train_set, sampler, num_workers=config["data"]["num_workers"])


def validation(
    val_set: MultiStoreDataset,
    subsets: Sequence[str],
    denoising: Sequence[bool],
    context: DistributedContext,
    config: Mapping[str, Any],
    model_config: Mapping[str, Any],
    *,
    compute_stress: bool = False,
) -> Callable[[nn.Module], dict[str, float]]:
    """The Trainer's validation: `evaluate` on `val_set` with the config's limits and loss weights
    (`compute_stress`: the stores have stress labels, so the stress MAE is measured too)."""
    return functools.partial(
        evaluate,
        dataset=val_set,
        subsets=list(subsets),
        denoising=list(denoising),
        context=context,
        max_per_subset=config["train"]["val_max_samples"],
        batch_size=config["sampler"]["batch_per_rank"],
        gradient_forces=model_config["force_mode"] == "gradient",
        lambda_energy=config["loss"]["lambda_energy"],
        lambda_forces=config["loss"]["lambda_forces"],
        lambda_stress=config["loss"].get("lambda_stress") or 0.0,
        compute_stress=compute_stress,
    )


def resume_state(out_dir: Path, resume: bool) -> tuple[Path, dict[str, Any] | None]:
    """(the run's last.pt, its payload when resuming and it exists, else None: a fresh start)."""
    last = out_dir / "checkpoints" / "last.pt"
    return last, load_checkpoint(last) if resume and last.is_file() else None


def write_run_inputs(
    out_dir: Path, config: Mapping[str, Any], statistics: Sequence[Mapping[str, Any]]
) -> None:
    """The run folder with the config and the per-head statistics it trains with (main rank
    only)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.yaml").write_text(yaml.safe_dump(dict(config), sort_keys=False))
    (out_dir / "statistics.json").write_text(json.dumps(list(statistics), indent=1))


def fit(trainer: Trainer, state: Mapping[str, Any] | None, source: Path) -> dict[str, Any]:
    """Train to the end, first restoring `state` (read from `source`) when resuming."""
    if state is None:
        return trainer.fit()
    trainer.restore(state)
    log.info("resumed from %s at step %d", source, trainer.step)
    return trainer.fit(resume_step=trainer.step)
