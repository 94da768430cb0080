"""Pre-training: assemble stores, statistics, model, sampler and trainer on every rank.

`run_pretraining` is what each rank executes (directly, or through `lamm.launch`). It reads
`<data_dir>/<subset>.lmdb` for the configured subsets (head order = subset order), fits or
loads the referencing/normalization statistics (rank 0 first, cached beside the stores), builds
the model and the load-balanced loader, and runs the `Trainer`. With `resume=True` it continues
from `<out_dir>/checkpoints/last.pt` when that exists (and starts fresh otherwise), so a
restarted or requeued job resumes where it stopped.
"""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch.distributed as dist
import yaml

from lamm.config import load_yaml, validate_config
from lamm.data.dataset import MultiStoreDataset
from lamm.data.loader import build_loader
from lamm.data.noise import DEFAULT_SIGMA
from lamm.data.referencing import load_or_compute_statistics
from lamm.data.sampler import DistributedBatchSampler
from lamm.data.store import StructureStore
from lamm.models.build import build_potential, resolve_model_config
from lamm.tracking import RunTracker
from lamm.models.checkpoint import load_checkpoint
from lamm.training.distributed import DistributedContext, init_distributed, main_rank_first, shutdown
from lamm.training.trainer import Trainer
from lamm.training.validation import evaluate

log = logging.getLogger(__name__)

SCHEMA = Path(__file__).with_name("config.schema.yaml")


def load_trainer_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a trainer config (defaults filled, errors name the key and file)."""
    return validate_config(load_yaml(path), SCHEMA, name=f"trainer config {path}")


def prepare_statistics(stores: list[StructureStore], config: Mapping[str, Any], context: DistributedContext) -> list[dict[str, Any]]:
    """Per-subset statistics, computed once by rank 0 (cached beside each store), read by all."""
    data = config["data"]
    sigma = data["denoise_sigma"] or DEFAULT_SIGMA

    def compute() -> list[dict[str, Any]]:
        return [
            load_or_compute_statistics(store, noise_sigma=sigma, max_samples=data["statistics_samples"], seed=config["seed"])
            for store in stores
        ]

    return main_rank_first(compute, context)  # the other ranks read the caches rank 0 wrote


def _no_validation(model: Any) -> dict[str, float]:
    return {}


def run_pretraining(
    config: Mapping[str, Any],
    data_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    max_steps: int | None = None,
    track: bool = True,
    validate: bool = True,
    stage: str = "pretrain",
) -> dict[str, Any]:
    """Train on this rank; returns the summary (identical on every rank).

    `track=False` opens no MLflow run and `validate=False` skips validation (a caller such as
    `lamm bench throughput` runs many short trainings inside its own run and times only steps).
    A process group that already exists (the caller's) is used and left open, so one group can
    run several trainings one after the other. `stage` is the MLflow stage tag (the denoising
    ablation reuses this loop as stage "ablation").
    """
    data, sampler_config = config["data"], config["sampler"]
    owns_group = not (dist.is_available() and dist.is_initialized())
    context = init_distributed(config["device"], config["threads_per_rank"])
    out_dir = Path(out_dir)
    try:
        stores = [StructureStore(Path(data_dir) / f"{subset}.lmdb") for subset in data["subsets"]]
        statistics = prepare_statistics(stores, config, context)
        model_config = resolve_model_config(config["model"])
        model = build_potential(model_config, data["subsets"], seed=config["seed"])
        for head, stats in enumerate(statistics):
            model.normalizer.set_head(head, stats)
        dataset_args = dict(
            cutoff=model_config["cutoff"], max_neighbors=model_config["max_neighbors"],
            noise_sigma=data["denoise_sigma"] or DEFAULT_SIGMA, noise_mode=data["denoise_mode"], seed=config["seed"],
        )
        train_set = MultiStoreDataset(stores, "train", **dataset_args)
        val_set = MultiStoreDataset(stores, "val", **dataset_args)
        sampler = DistributedBatchSampler(
            train_set.natoms, train_set.sizes, world_size=context.world_size, rank=context.rank,
            batch_per_rank=sampler_config["batch_per_rank"], strategy=sampler_config["strategy"],
            temperature=data["temperature"], num_splits=sampler_config["num_splits"], seed=config["seed"],
            max_atoms_per_rank=sampler_config["max_atoms_per_rank"],
        )
        if sampler.skipped:
            log.warning("samples that never fit under max_atoms_per_rank: %s", {k: len(v) for k, v in sampler.skipped.items()})
        loader = build_loader(train_set, sampler, num_workers=data["num_workers"])
        last = out_dir / "checkpoints" / "last.pt"
        payload = load_checkpoint(last) if resume and last.is_file() else None
        if context.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
            (out_dir / "config.yaml").write_text(yaml.safe_dump(dict(config), sort_keys=False))
            (out_dir / "statistics.json").write_text(json.dumps(statistics, indent=1))
        denoising = [store.info.get("task") == "denoising" for store in stores]
        validation = functools.partial(
            evaluate, dataset=val_set, subsets=data["subsets"], denoising=denoising, context=context,
            max_per_subset=config["train"]["val_max_samples"], batch_size=sampler_config["batch_per_rank"],
            gradient_forces=model_config["force_mode"] == "gradient",
            lambda_energy=config["loss"]["lambda_energy"], lambda_forces=config["loss"]["lambda_forces"],
        )
        tracker = RunTracker(
            stage, config["name"], params={**config, "world_size": context.world_size},
            inputs=[s.path for s in stores], enabled=context.is_main and track,
            resume_run_id=payload["training"]["mlflow_run_id"] if payload else None,
        )
        with tracker:
            trainer = Trainer(
                model, loader, validation if validate else _no_validation, context=context, config=config, out_dir=out_dir, tracker=tracker,
                checkpoint_extra={"model_config": model_config, "heads": list(data["subsets"]), "statistics": statistics},
                max_steps=max_steps,
            )
            if payload is not None:
                trainer.restore(payload)
                log.info("resumed from %s at step %d", last, trainer.step)
            summary = trainer.fit(resume_step=trainer.step if payload is not None else None)
            summary["world_size"] = context.world_size
            if context.is_main:
                (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
                tracker.log_artifact(out_dir / "timings.csv")
                tracker.log_artifact(out_dir / "validation.csv")
        return summary
    finally:
        if owns_group:
            shutdown()
