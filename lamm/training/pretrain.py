"""Pre-training: assemble stores, statistics, model, sampler and trainer on every rank.

`run_pretraining` is what each rank executes (directly, or through `lamm.launch`). It reads
`<data_dir>/<subset>.lmdb` for the configured subsets (head order = subset order), fits or
loads the referencing/normalization statistics (rank 0 first, cached beside the stores), builds
the model and the load-balanced loader, and runs the `Trainer`. With `resume=True` it continues
from `<out_dir>/checkpoints/last.pt` when that exists (and starts fresh otherwise), so a
restarted or requeued job resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch.distributed as dist

from lamm.config import load_yaml, validate_config
from lamm.data.dataset import MultiStoreDataset
from lamm.data.noise import DEFAULT_SIGMA
from lamm.data.referencing import load_or_compute_statistics
from lamm.data.store import StructureStore
from lamm.models.build import build_potential, model_schema, resolve_model_config
from lamm.tracking import RunTracker
from lamm.training.distributed import (
    DistributedContext,
    init_distributed,
    main_rank_first,
    shutdown,
)
from lamm.training.run_setup import (
    build_train_loader,
    fit,
    resume_state,
    validation,
    with_stress_weight,
    write_run_inputs,
)
from lamm.training.shared_folder import check_shared_folder
from lamm.training.trainer import Trainer

log = logging.getLogger(__name__)


def trainer_schema() -> dict[str, Any]:
    """config.schema.yaml with its `model:` section spelled out by `model_schema()` (keys and
    types declared once, by the model builder), so model keys get the same "did you mean"."""
    schema = load_yaml(Path(__file__).with_name("config.schema.yaml"))
    own = schema["properties"]["model"]
    schema["properties"]["model"] = {**model_schema(), "description": own["description"]}
    return schema


SCHEMA = trainer_schema()


def load_trainer_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a trainer config (defaults filled, errors name the key and file)."""
    return validate_config(load_yaml(path), SCHEMA, name=f"trainer config {path}")


def prepare_statistics(
    stores: list[StructureStore], config: Mapping[str, Any], context: DistributedContext
) -> list[dict[str, Any]]:
    """Per-subset statistics, computed once by rank 0 (cached beside each store), read by all."""
    data = config["data"]
    sigma = data["denoise_sigma"] or DEFAULT_SIGMA

    def compute() -> list[dict[str, Any]]:
        return [
            load_or_compute_statistics(
                store,
                noise_sigma=sigma,
                max_samples=data["statistics_samples"],
                seed=config["seed"],
                energy_scale=data["energy_scale"],
            )
            for store in stores
        ]

    return main_rank_first(compute, context)  # the other ranks read the caches rank 0 wrote


def _no_validation(model: Any) -> dict[str, float]:
    return {}


def _datasets(
    stores: list[StructureStore], config: Mapping[str, Any], model_config: Mapping[str, Any]
) -> tuple[MultiStoreDataset, MultiStoreDataset]:
    """The training and validation sets over every store, with the model's graph and the
    config's denoising."""
    data = config["data"]
    dataset_args = dict(
        cutoff=model_config["cutoff"],
        max_neighbors=model_config["max_neighbors"],
        noise_sigma=data["denoise_sigma"] or DEFAULT_SIGMA,
        noise_mode=data["denoise_mode"],
        seed=config["seed"],
    )
    return (
        MultiStoreDataset(stores, "train", **dataset_args),
        MultiStoreDataset(stores, "val", **dataset_args),
    )


def _validation(
    val_set: MultiStoreDataset,
    stores: list[StructureStore],
    context: Any,
    config: Mapping[str, Any],
    model_config: Mapping[str, Any],
    has_stress: bool,
) -> Any:
    """Validation on every subset (a denoising subset by its denoising error), with the stress
    MAE when the stores have stress labels."""
    denoising = [store.info.get("task") == "denoising" for store in stores]
    return validation(
        val_set,
        config["data"]["subsets"],
        denoising,
        context,
        config,
        model_config,
        compute_stress=has_stress,
    )


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
    data = config["data"]
    owns_group = not (dist.is_available() and dist.is_initialized())
    context = init_distributed(config["device"], config["threads_per_rank"])
    out_dir = Path(out_dir)
    try:
        check_shared_folder(out_dir, context)  # every rank's out_dir is one folder
        stores = [StructureStore(Path(data_dir) / f"{subset}.lmdb") for subset in data["subsets"]]
        statistics = prepare_statistics(stores, config, context)
        model_config = resolve_model_config(config["model"])
        model = build_potential(model_config, data["subsets"], seed=config["seed"])
        for head, stats in enumerate(statistics):
            model.normalizer.set_head(head, stats)
        config, has_stress = with_stress_weight(config, stores)
        train_set, val_set = _datasets(stores, config, model_config)
        loader = build_train_loader(train_set, config, context, temperature=data["temperature"])
        last, payload = resume_state(out_dir, resume)
        if context.is_main:
            write_run_inputs(out_dir, config, statistics)
        validate_model = (
            _validation(val_set, stores, context, config, model_config, has_stress)
            if validate
            else _no_validation
        )
        tracker = RunTracker(
            stage,
            config["name"],
            params={**config, "world_size": context.world_size},
            inputs=[s.path for s in stores],
            enabled=context.is_main and track,
            resume_run_id=payload["training"]["mlflow_run_id"] if payload else None,
        )
        with tracker:
            trainer = Trainer(
                model,
                loader,
                validate_model,
                context=context,
                config=config,
                out_dir=out_dir,
                tracker=tracker,
                checkpoint_extra={
                    "model_config": model_config,
                    "heads": list(data["subsets"]),
                    "statistics": statistics,
                },
                max_steps=max_steps,
            )
            summary = fit(trainer, payload, last)
            summary["world_size"] = context.world_size
            if context.is_main:
                (out_dir / "summary.json").write_text(json.dumps(summary, indent=1))
                tracker.log_artifact(out_dir / "timings.csv")
                tracker.log_artifact(out_dir / "validation.csv")
        return summary
    finally:
        if owns_group:
            shutdown()
