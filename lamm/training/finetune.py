"""Fine-tuning: one new head on a downstream subset, from a pre-training checkpoint or from scratch.

`run_finetuning` is what each rank executes (directly, or through `lamm.launch`):
1. the starting model (`starting_potential`): the checkpoint's encoder with its EMA weights
   when present, and a single new head named after the downstream subset, re-initialized
   with the seed or (`init_head`, DPA-2) copied from one channel of a pre-training head;
   `force_mode: gradient` drops the direct force head (conservative forces for MD);
2. reference energies and normalization refitted on the downstream training records actually
   used (a subsample with `train_fraction`), never the pre-training head's statistics: a head
   referenced for another subset starts off by the whole reference energy (the fairchem bug);
   a copied `init_head` is rescaled so that it still predicts its pre-trained eV and eV/A,
   and its element references are then refit to its own predictions on those records
   (`lamm.training.change_bias`, DPA-2's change-bias), so it starts at its zero-shot energies;
3. the same `Trainer`, loader, sampler and validation as pre-training, optionally with
   layer-wise learning-rate decay or a frozen encoder (JMP);
4. the final EMA model evaluated on the downstream `test` split -> `test_metrics.json`.

The splits are checked first (`lamm.training.finetune_splits.plan_splits`): a store without a
val or test split fails at once, or those records are carved from the training split when the
config asks (`finetune.carve_val`, `finetune.carve_test`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lamm.config import load_yaml, validate_config
from lamm.data.dataset import MultiStoreDataset
from lamm.data.referencing import compute_statistics, load_or_compute_statistics
from lamm.data.store import StructureStore
from lamm.device import log_device
from lamm.models.build import build_potential, resolve_model_config
from lamm.models.checkpoint import load_checkpoint, potential_from_checkpoint
from lamm.models.potential import Potential
from lamm.models.pretrained import MODEL_FILE
from lamm.run_labels import SCRATCH, epoch_label, epoch_of_checkpoint
from lamm.tracking import RunTracker, find_or_create_parent_run
from lamm.training.change_bias import choose_init_head, copyable_heads, refit_references
from lamm.training.distributed import (
    DistributedContext,
    init_distributed,
    main_rank_first,
    shutdown,
)
from lamm.training.finetune_splits import plan_splits
from lamm.training.pretrain import SCHEMA as TRAINER_SCHEMA
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
from lamm.training.validation import evaluate

log = logging.getLogger(__name__)

SCHEMA = Path(__file__).with_name("finetune.schema.yaml")
AUTO_HEAD = "auto"  # init_head: the pre-training head chosen on the validation split
_SUBSET_STREAM = 0x5A3F  # separates the train-fraction draw from other streams seeded with `seed`


def finetune_schema() -> dict[str, Any]:
    """The trainer schema with the fine-tuning sections (finetune.schema.yaml) merged in."""
    trainer, own = copy.deepcopy(TRAINER_SCHEMA), load_yaml(SCHEMA)
    # the trainer's model section, which may be null here (the checkpoint's model is used)
    model = {**trainer["properties"]["model"], **own["properties"]["model"]}
    model["type"] = ["object", "null"]
    return {
        **trainer,
        "description": own["description"],
        "required": own["required"],
        "properties": {**trainer["properties"], **own["properties"], "model": model},
    }


def load_finetune_config(path: str | os.PathLike) -> dict[str, Any]:
    """Read and validate a fine-tuning config (defaults filled, errors name the key and file)."""
    return validate_config(load_yaml(path), finetune_schema(), name=f"fine-tuning config {path}")


def checkpoint_label(
    path: str | os.PathLike | None, payload: Mapping[str, Any] | None = None
) -> str:
    """`scratch`, or the pre-training epoch of a checkpoint (`epoch_0.1.pt` -> `0.1`)."""
    if path is None:
        return SCRATCH
    if Path(path).name == MODEL_FILE:  # a shipped model, models/<name>/model.pt: its name
        return Path(path).parent.name
    epoch = epoch_of_checkpoint(path)
    if epoch is not None:
        return epoch
    if payload is not None and "training" in payload:
        return epoch_label(payload["training"]["epochs_done"])
    return Path(path).stem


def train_records(
    store: StructureStore, fraction: float, seed: int, *, pool: np.ndarray | None = None
) -> np.ndarray:
    """The training records of a `fraction` run: round(fraction * n) of them (at least 1), sorted.

    One seeded permutation of the split (or of `pool`, the training records left after carving
    val/test out of it), cut at the requested size, so smaller fractions are subsets of larger
    ones (a sample-efficiency curve adds data, it does not swap it).
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"train_fraction must be in (0, 1], got {fraction}")
    train = store.indices("train") if pool is None else np.asarray(pool, dtype=np.int64)
    if len(train) == 0:
        raise ValueError(f"{store.path}: the train split is empty")
    if fraction == 1:
        return train
    size = max(1, round(fraction * len(train)))
    order = np.random.default_rng([seed, _SUBSET_STREAM]).permutation(train)
    return np.sort(order[:size])


def _same_architecture(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return {**a, "force_mode": None} == {**b, "force_mode": None}


def copy_head_channel(target: Potential, source: Potential, channel: int) -> None:
    """Make `target`'s single-channel heads equal to channel `channel` of `source`'s heads.

    The hidden layers are shared by all channels and copied whole; the output layers hold one
    row per channel: the energy head's last Linear, and in the force head's last gated block
    `vector_out` (one row per channel) and `gate_net[2]` (rows d and D + d: the scalar output
    and the gate of channel d). A direct force head is copied only when both models have one.
    """
    rows = [channel]
    pairs = [(target.energy_head, source.energy_head, {"mlp.2.weight": rows, "mlp.2.bias": rows})]
    if target.force_head is not None and source.force_head is not None:
        last = len(source.force_head.blocks) - 1
        gate_rows = [channel, source.force_head.num_heads + channel]
        pairs.append(
            (
                target.force_head,
                source.force_head,
                {
                    f"blocks.{last}.vector_out.weight": rows,
                    f"blocks.{last}.gate_net.2.weight": gate_rows,
                    f"blocks.{last}.gate_net.2.bias": gate_rows,
                },
            )
        )
    for head, pretrained, channel_rows in pairs:
        state = pretrained.state_dict()
        own = head.state_dict()
        selected = {
            name: state[name][channel_rows[name]] if name in channel_rows else state[name]
            for name in own
        }
        head.load_state_dict(selected, strict=True)


def head_statistics(payload: Mapping[str, Any], head: str) -> dict[str, Any]:
    """energy_mean, energy_std (eV), force_rms (eV/A) and element_references ({Z: eV}, the
    nonzero ones) of a checkpoint's head: its normalizer buffers."""
    state, channel = payload["model"], list(payload["heads"]).index(head)
    names = ("energy_mean", "energy_std", "force_rms")
    statistics: dict[str, Any] = {
        name: float(state[f"normalizer.{name}"][channel]) for name in names
    }
    references = state["normalizer.element_references"][channel]
    statistics["element_references"] = {
        str(int(z)): float(references[z]) for z in torch.nonzero(references).flatten()
    }
    return statistics


def match_head_scale(
    potential: Potential, pretrained: Mapping[str, Any], downstream: Mapping[str, Any]
) -> dict[str, float]:
    """Rescale a copied head (`init_head`) so it predicts the same eV and eV/A as in pre-training.

    Heads predict normalized labels: energy = output * energy_std + mean + references, forces =
    output * force_rms. The downstream statistics are refitted, so a copied head whose outputs
    are left alone is off by std_downstream / std_pretrained in energy and force_rms ratio in
    forces (lamm-mini's oc20_s2ef head on the demo hme21: 3.7x in forces). Both output layers are
    linear in their rows, so scaling the rows by pretrained / downstream gives back the pre-trained
    predictions (up to the refitted element references and mean). Returns the two factors.
    """
    energy_factor = float(pretrained["energy_std"]) / float(downstream["energy_std"])
    force_factor = float(pretrained["force_rms"]) / float(downstream["force_rms"])
    with torch.no_grad():
        last = potential.energy_head.mlp[2]
        last.weight.mul_(energy_factor)
        last.bias.mul_(energy_factor)
        if potential.force_head is not None:
            potential.force_head.blocks[-1].vector_out.weight.mul_(force_factor)
    return {"energy": energy_factor, "forces": force_factor}


def starting_potential(
    model_config: Mapping[str, Any] | None,
    checkpoint: Mapping[str, Any] | None,
    subset: str,
    *,
    init_head: str | None = None,
    force_mode: str | None = None,
    seed: int = 0,
    source: str = "checkpoint",
) -> tuple[Potential, dict[str, Any]]:
    """(the model fine-tuning starts from, its resolved model config); see the module docstring.

    From scratch (`checkpoint` None) the model is `model_config` freshly initialized. With a
    checkpoint, its own model_config (which `model_config`, if given, must match) and its
    encoder weights (EMA when present); the new head is initialized with `seed` (so every run
    of a sweep starts its head alike) unless `init_head` names a pre-training head to copy.
    """
    if checkpoint is None:
        if init_head is not None:
            raise ValueError(
                f"init_head {init_head!r} needs a pre-training checkpoint, not scratch"
            )
        if not model_config:
            raise ValueError(
                "fine-tuning from scratch needs the model section in the fine-tuning config"
            )
        config = resolve_model_config(model_config)
    else:
        config = resolve_model_config(checkpoint["model_config"])
        if model_config and not _same_architecture(resolve_model_config(model_config), config):
            raise ValueError(
                f"{source}: its model_config {config} differs from the fine-tuning config's model "
                f"{resolve_model_config(model_config)}; scratch and pre-trained runs must "
                "share one architecture"
            )
    if force_mode is not None:
        config["force_mode"] = force_mode
    potential = build_potential(config, [subset], seed=seed)
    if checkpoint is None:
        return potential, config
    heads = list(checkpoint["heads"])
    if init_head is not None and init_head not in heads:
        raise ValueError(
            f"init_head {init_head!r} is not a head of {source}; its heads are {', '.join(heads)}"
        )
    pretrained = potential_from_checkpoint(checkpoint, use_ema=True, source=source)
    potential.encoder.load_state_dict(pretrained.encoder.state_dict(), strict=True)
    if init_head is not None:
        copy_head_channel(potential, pretrained, heads.index(init_head))
    return potential, config


def parameter_groups(
    potential: Potential,
    lr: float,
    *,
    layer_decay: float | None = None,
    freeze_encoder: bool = False,
) -> list[dict[str, Any]]:
    """AdamW groups: the heads at `lr`; the encoder frozen, or at lr * decay^(L + 1 - k) (JMP).

    k is the encoder layer of a parameter: the first integer in its dotted name plus one
    (`messages.2.x` -> 3), 0 for parameters outside the numbered layers (the embedding), so the
    layers nearest the input change least.
    """
    head_params = [p for name, p in potential.named_parameters() if not name.startswith("encoder.")]
    groups: list[dict[str, Any]] = [{"params": head_params, "lr": lr, "name": "heads"}]
    encoder = list(potential.encoder.named_parameters())
    if freeze_encoder:
        for _, param in encoder:
            param.requires_grad_(False)
        return groups
    if layer_decay is None:
        groups.append({"params": [p for _, p in encoder], "lr": lr, "name": "encoder"})
        return groups
    depth = {}
    for name, _ in encoder:
        numbers = re.findall(r"\.(\d+)(?:\.|$)", "." + name)
        depth[name] = int(numbers[0]) + 1 if numbers else 0
    num_layers = max(depth.values(), default=0)
    for k in sorted(set(depth.values())):
        params = [p for name, p in encoder if depth[name] == k]
        groups.append(
            {
                "params": params,
                "lr": lr * layer_decay ** (num_layers + 1 - k),
                "name": f"encoder_layer_{k}",
            }
        )
    return groups


def same_steps_config(
    config: Mapping[str, Any], full_train: int, batches_per_epoch: int, world_size: int
) -> dict[str, Any]:
    """`config` with `train.epochs` rescaled so a run on a fraction of the training split takes as
    many optimizer steps as on the whole split (`train.epochs` counts epochs of the whole split):
    a sample-efficiency curve then compares training-set sizes, not training lengths."""
    full_batches = math.ceil(full_train / (config["sampler"]["batch_per_rank"] * world_size))
    if batches_per_epoch == full_batches:
        return dict(config)
    epochs = config["train"]["epochs"] * full_batches / batches_per_epoch
    return {**config, "train": {**config["train"], "epochs": epochs}}


def check_starting_checkpoint(config: Mapping[str, Any], checkpoint: str | os.PathLike) -> None:
    """Fail before launching when the checkpoint cannot start this run (not a checkpoint, an
    unknown init_head, another architecture than the config's model); one readable error."""
    payload = load_checkpoint(checkpoint)
    init_head, heads = config["finetune"]["init_head"], list(payload["heads"])
    if init_head == AUTO_HEAD:
        statistics = payload.get("statistics") or [{}] * len(heads)
        if not copyable_heads(heads, statistics):
            raise ValueError(
                f"init_head auto: {checkpoint} has no head that learned energies and forces to "
                f"copy; its heads are {', '.join(heads)} (a fresh head: init_head null, "
                "`lamm finetune --init-head none`)"
            )
    elif init_head is not None and init_head not in heads:
        raise ValueError(
            f"init_head {init_head!r} is not a head of {checkpoint}; its heads are "
            f"{', '.join(heads)}"
        )
    model_config = config.get("model")
    if model_config and not _same_architecture(
        resolve_model_config(model_config), resolve_model_config(payload["model_config"])
    ):
        raise ValueError(
            f"{checkpoint}: its model differs from the fine-tuning config's model section; "
            "drop that section (or pass --config without one) to fine-tune the "
            "checkpoint's own architecture"
        )


def downstream_statistics(
    store: StructureStore, records: np.ndarray, config: Mapping[str, Any]
) -> dict[str, Any]:
    """Referencing and normalization of the records trained on (the whole split: cached beside the
    store)."""
    samples, seed = config["data"]["statistics_samples"], config["seed"]
    scale = config["data"]["energy_scale"]
    if len(records) == len(store.indices("train")):
        return load_or_compute_statistics(store, max_samples=samples, seed=seed, energy_scale=scale)
    return compute_statistics(
        store, max_samples=samples, seed=seed, indices=records, energy_scale=scale
    )


def evaluate_test(
    model: nn.Module,
    store: StructureStore,
    model_config: Mapping[str, Any],
    context: DistributedContext,
    *,
    max_samples: int,
    batch_size: int,
    records: np.ndarray | None = None,
    split: str = "test",
) -> dict[str, float]:
    """Energy MAE (meV/atom), force MAE (meV/A) and, for a store with stress labels, stress MAE
    (GPa) of `model` on the store's `test` split, or on `records` of `split` (a test set carved
    from the training split)."""
    test_set = MultiStoreDataset(
        [store],
        split,
        cutoff=model_config["cutoff"],
        max_neighbors=model_config["max_neighbors"],
        records=None if records is None else [records],
    )
    if len(test_set) == 0:
        raise ValueError(f"{store.path}: the test split is empty")
    metrics = evaluate(
        model,
        test_set,
        [store.subset],
        [False],
        context,
        max_per_subset=max_samples,
        batch_size=batch_size,
        gradient_forces=model_config["force_mode"] == "gradient",
        compute_stress=store.has_stress,
    )
    prefix = f"val/{store.subset}/"
    stress = {"stress_mae_gpa": metrics[prefix + "stress_mae_gpa"]} if store.has_stress else {}
    return {
        "energy_mae_mev_per_atom": metrics.get(prefix + "energy_mae_mev_per_atom", float("nan")),
        "forces_mae_mev_per_a": metrics.get(prefix + "forces_mae_mev_per_a", float("nan")),
        **stress,
        "structures": min(len(test_set), max_samples),
    }


def run_finetuning(
    config: Mapping[str, Any],
    checkpoint: str | os.PathLike | None,
    store_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    resume: bool = False,
    max_steps: int | None = None,
    parent_run: str | None = None,
) -> dict[str, Any]:
    """Fine-tune on this rank; returns the summary (identical on every rank).

    `checkpoint` None means from scratch. `config` is a validated fine-tuning config (its
    `finetune` section carries init_head, train_fraction, force_mode, layer_decay, freeze_encoder).
    """
    options, data = config["finetune"], config["data"]
    context = init_distributed(config["device"], config["threads_per_rank"])
    out_dir = Path(out_dir)
    device_line = log_device(context.device, f"fine-tuning (rank {context.rank})")
    try:
        check_shared_folder(out_dir, context)  # every rank's out_dir is one folder
        subset = data["subset"]
        store = _open_store(store_path, subset)
        splits = _plan_splits(store, config)
        records = train_records(store, options["train_fraction"], config["seed"], pool=splits.train)
        label, model, model_config, pretrained_statistics, init_head = _starting_model(
            config, checkpoint, store, records, splits.val
        )
        statistics = _fit_statistics(model, store, records, config, context, pretrained_statistics)
        train_set, val_set = _datasets(store, splits, records, model_config, config["seed"])
        loader = build_train_loader(train_set, config, context, temperature=None)
        config = same_steps_config(config, len(splits.train), len(loader), context.world_size)
        config, has_stress = with_stress_weight(config, [store])
        groups = _parameter_groups(model, config)
        last, state = resume_state(out_dir, resume)
        run_info = {
            "checkpoint": label,
            "checkpoint_path": str(checkpoint) if checkpoint is not None else None,
            "train_fraction": options["train_fraction"],
            "train_structures": len(records),
            "force_mode": model_config["force_mode"],
            "init_head": init_head,
            "device": device_line,
            "lambda_stress": config["loss"]["lambda_stress"],
            **splits.info(),
        }
        if context.is_main:
            write_run_inputs(out_dir, config, [statistics])
            _write_json(out_dir / "splits.json", splits.record(store))
        validate = validation(
            val_set, [subset], [False], context, config, model_config, compute_stress=has_stress
        )
        inputs = [store.path] + ([checkpoint] if checkpoint is not None else [])
        with _tracker(config, run_info, out_dir, inputs, context, parent_run, state) as tracker:
            trainer = Trainer(
                model,
                loader,
                validate,
                context=context,
                config=config,
                out_dir=out_dir,
                tracker=tracker,
                checkpoint_extra={
                    "model_config": model_config,
                    "heads": [subset],
                    "statistics": [statistics],
                    "finetune": run_info,
                    "splits": splits.record(store),
                },
                max_steps=max_steps,
                param_groups=groups,
            )
            summary = fit(trainer, state, last)
            test = _test(trainer, store, splits, model_config, context, config)
            summary.update(run_info, world_size=context.world_size, test=test)
            _report_test(trainer, tracker, test, run_info, summary, out_dir, context.is_main)
        return summary
    finally:
        shutdown()


def _plan_splits(store: StructureStore, config: Mapping[str, Any]) -> Any:
    """The run's train/val/test records (lamm.training.finetune_splits), carved ones logged."""
    options = config["finetune"]
    splits = plan_splits(
        store, config["seed"], carve_test=options["carve_test"], carve_val=options["carve_val"]
    )
    if splits.carved:
        log.info("%s: carved from the training split for this run: %s", store.path, splits.carved)
    return splits


def _parameter_groups(model: Potential, config: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The optimizer's parameter groups under the config's layer decay and encoder freeze."""
    return parameter_groups(
        model,
        config["optimizer"]["lr"],
        layer_decay=config["finetune"]["layer_decay"],
        freeze_encoder=config["finetune"]["freeze_encoder"],
    )


def _open_store(path: str | os.PathLike, subset: str) -> StructureStore:
    """The downstream store, which must hold the subset the config fine-tunes on."""
    store = StructureStore(path)
    if store.subset != subset:
        raise ValueError(
            f"{store.path} holds subset {store.subset!r}, the config fine-tunes on {subset!r}"
        )
    return store


def _starting_model(
    config: Mapping[str, Any],
    checkpoint: str | os.PathLike | None,
    store: StructureStore,
    records: np.ndarray,
    val_records: np.ndarray,
) -> tuple[str, Potential, dict[str, Any], dict[str, Any] | None, str | None]:
    """(run label, model, its config, the copied head's pre-training statistics or None, the
    copied head or None) of a run from `checkpoint` (None: scratch); the checkpoint's payload is
    dropped afterwards. `init_head: auto` is resolved here (scratch: no head to copy)."""
    options = config["finetune"]
    payload = load_checkpoint(checkpoint) if checkpoint is not None else None
    label = checkpoint_label(checkpoint, payload)
    init_head = options["init_head"]
    if init_head == AUTO_HEAD:
        init_head = _auto_head(config, payload, store, records, val_records, str(checkpoint))
    model, model_config = starting_potential(
        config.get("model"),
        payload,
        config["data"]["subset"],
        init_head=init_head,
        force_mode=options["force_mode"],
        seed=config["seed"],
        source=str(checkpoint),
    )
    pretrained_statistics = None
    if init_head is not None:
        pretrained_statistics = head_statistics(payload, init_head)
    return label, model, model_config, pretrained_statistics, init_head


def _auto_head(
    config: Mapping[str, Any],
    payload: Mapping[str, Any] | None,
    store: StructureStore,
    records: np.ndarray,
    val_records: np.ndarray,
    source: str,
) -> str | None:
    """The head `init_head: auto` copies (lamm.training.change_bias.choose_init_head), scored on
    at most val_max_samples validation records (a seeded subset); None from scratch."""
    if payload is None:
        log.info("init_head auto: from scratch there is no pre-training head to copy")
        return None
    cap = config["train"]["val_max_samples"]
    if len(val_records) > cap:
        rng = np.random.default_rng([config["seed"], _SUBSET_STREAM])
        val_records = np.sort(rng.choice(val_records, size=cap, replace=False))
    pretrained = potential_from_checkpoint(payload, use_ema=True, source=source)
    heads = list(payload["heads"])
    candidates = copyable_heads(heads, payload.get("statistics") or [{}] * len(heads))
    head, _ = choose_init_head(pretrained, store, records, val_records, candidates)
    return head


def _fit_statistics(
    model: Potential,
    store: StructureStore,
    records: np.ndarray,
    config: Mapping[str, Any],
    context: Any,
    pretrained_statistics: dict[str, Any] | None,
) -> dict[str, Any]:
    """The downstream statistics of the training records, set on the model's one head; a head
    copied with init_head is rescaled to them and its references refit to its own predictions
    (`lamm.training.change_bias`). The other ranks read the cache rank 0 wrote."""
    statistics = main_rank_first(lambda: downstream_statistics(store, records, config), context)
    if pretrained_statistics is not None:
        # the copied head keeps its pre-training mean: a constant per structure (eV), which no
        # per-element reference can stand in for on a set of 2- to 100-atom cells; and its
        # references, which the refit below shifts: an element the training records lack keeps
        # its pre-training reference, not the 0 eV of a fit to labels it never occurs in (at 10%
        # of the demo's hme21, 19 cells holding 19 of its 22 metals, that cost 1395 against 843
        # meV/atom on validation at step 0)
        statistics = {
            **statistics,
            "energy_mean": pretrained_statistics["energy_mean"],
            "element_references": pretrained_statistics["element_references"],
        }
    model.normalizer.set_head(0, statistics)
    if pretrained_statistics is not None:
        log.info(
            "the copied head rescaled to the downstream statistics by %s",
            match_head_scale(model, pretrained_statistics, statistics),
        )
        # every rank fits the same records with the same weights: the same references
        statistics = refit_references(model, store, records, statistics)
    return statistics


def _tracker(
    config: Mapping[str, Any],
    run_info: dict[str, Any],
    out_dir: Path,
    inputs: list,
    context: Any,
    parent_run: str | None,
    state: Mapping[str, Any] | None,
) -> RunTracker:
    """The run's MLflow run (rank 0), nested under the sweep's parent run when one is named;
    a resumed run continues its own."""
    parent_id = (
        find_or_create_parent_run(parent_run, "finetune")
        if parent_run and context.is_main and state is None
        else None
    )
    return RunTracker(
        "finetune",
        f"{config['name']}-{out_dir.name}",
        params={**config, **run_info, "world_size": context.world_size},
        inputs=inputs,
        enabled=context.is_main,
        parent_run_id=parent_id,
        resume_run_id=state["training"]["mlflow_run_id"] if state else None,
    )


def _report_test(
    trainer: Trainer,
    tracker: RunTracker,
    test: dict[str, Any],
    run_info: dict[str, Any],
    summary: dict[str, Any],
    out_dir: Path,
    main: bool,
) -> None:
    """Test metrics to MLflow, and (rank 0) test_metrics.json and summary.json."""
    tracker.log_metrics(
        {f"test/{k}": v for k, v in test.items() if k != "structures"}, step=trainer.step
    )
    if not main:
        return
    model_kind = "ema" if trainer.ema else "final"
    _write_json(
        out_dir / "test_metrics.json", {**test, **run_info, "split": "test", "model": model_kind}
    )
    _write_json(out_dir / "summary.json", summary)
    for name in ("validation.csv", "test_metrics.json"):
        tracker.log_artifact(out_dir / name)


def _datasets(
    store: StructureStore,
    splits: Any,
    records: np.ndarray,
    model_config: Mapping[str, Any],
    seed: int,
) -> tuple[MultiStoreDataset, MultiStoreDataset]:
    """The training records and the (possibly carved) validation split of the store."""
    dataset_args = dict(
        cutoff=model_config["cutoff"], max_neighbors=model_config["max_neighbors"], seed=seed
    )
    train_set = MultiStoreDataset([store], "train", records=[records], **dataset_args)
    val_set = MultiStoreDataset(
        [store], splits.dataset_split("val"), records=[splits.val], **dataset_args
    )
    return train_set, val_set


def _test(
    trainer: Trainer,
    store: StructureStore,
    splits: Any,
    model_config: Mapping[str, Any],
    context: Any,
    config: Mapping[str, Any],
) -> dict[str, Any]:
    """Test metrics of the trained model (its EMA weights when it keeps them)."""
    with trainer.ema.applied_to(trainer.model) if trainer.ema else contextlib.nullcontext():
        return evaluate_test(
            trainer.model,
            store,
            model_config,
            context,
            max_samples=config["finetune"]["test_max_samples"],
            batch_size=config["sampler"]["batch_per_rank"],
            records=splits.test,
            split=splits.dataset_split("test"),
        )


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(value, indent=1))
    os.replace(tmp, path)
