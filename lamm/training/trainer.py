"""The training loop shared by pre-training and fine-tuning (one process per rank).

One step on each rank: next batch -> normalize its labels with the model's Normalizer ->
forward -> universal loss over the *global* batch -> backward (DDP all-reduce) -> clip -> AdamW
-> schedule -> EMA. Around it: checkpoints at the requested fractional epochs and a resumable
`last` checkpoint (atomic, every few minutes), validation, per-rank timings, MLflow on rank 0.

Global loss normalization: eq. 5 averages over the structures of the whole mini-batch (W x B').
The LaMM sampler gives ranks different numbers of structures (it balances atoms), so the plain
DDP average of per-rank means would weight structures on lightly loaded ranks more. Each rank
therefore scales its summed terms by W / (global label count); DDP's average of gradients is
then exactly the gradient of eq. 5 over the global batch.

Non-finite steps: the clipped gradient norm is computed after the all-reduce and is identical
on every rank, so all ranks skip the same step together; skips are counted and training stops
after `max_nonfinite_steps`.
"""

from __future__ import annotations

import csv
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lamm import keys as K
from lamm.log import progress
from lamm.models.checkpoint import epoch_label, save_checkpoint
from lamm.tracking import RunTracker
from lamm.training import stop
from lamm.training.distributed import DistributedContext, all_gather_rows, all_reduce_sum
from lamm.training.ema import ExponentialMovingAverage
from lamm.training.loss import universal_loss_terms
from lamm.training.schedule import warmup_cosine
from lamm.training.timing import COLUMNS as TIMING_COLUMNS
from lamm.training.timing import BucketClock, StepClock, timed_allreduce_hook

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Too many steps with a non-finite loss or gradient."""


class CsvLog:
    """Append rows to a CSV; on resume, rows after the resumed step are dropped (they are redone)."""

    def __init__(
        self, path: Path, columns: Sequence[str], keep_until_step: int | None, enabled: bool
    ) -> None:
        self.path, self.columns, self.enabled = path, list(columns), enabled
        if not enabled:
            return
        kept: list[dict[str, str]] = []
        if keep_until_step is not None and path.is_file():
            with open(path, newline="") as handle:
                kept = [
                    row for row in csv.DictReader(handle) if int(row["step"]) <= keep_until_step
                ]
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns)
            writer.writeheader()
            writer.writerows(kept)

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        if not self.enabled or not rows:
            return
        with open(self.path, "a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=self.columns, extrasaction="ignore")
            writer.writerows(rows)


class Trainer:
    """Runs the loop; `fit()` returns a summary. Build the parts with `lamm.training.pretrain`.

    Args:
        model: a `lamm.models.potential.Potential` with its normalizer statistics loaded.
        loader: `lamm.data.loader.EpochLoader` (set_epoch, len, state_dict) of this rank.
        validate: callable(model) -> metrics dict, run on every rank (EMA weights applied).
        config: the validated trainer config (sections optimizer, loss, train).
        out_dir: where checkpoints and CSV logs go.
        checkpoint_extra: what every checkpoint carries besides training state (model_config,
            heads, statistics, ...).
        param_groups: AdamW parameter groups (`{"params": [...], "lr": ...}`), e.g. layer-wise
            learning rates or a frozen encoder left out (fine-tuning, JMP); the schedule scales
            every group's lr. Default: every parameter at the config's lr.
    """

    def __init__(
        self,
        model: nn.Module,
        loader: Any,
        validate: Callable[[nn.Module], dict[str, float]],
        *,
        context: DistributedContext,
        config: Mapping[str, Any],
        out_dir: Path,
        tracker: RunTracker,
        checkpoint_extra: Mapping[str, Any],
        max_steps: int | None = None,
        param_groups: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        self.context, self.config, self.out_dir, self.tracker = (
            context,
            config,
            Path(out_dir),
            tracker,
        )
        self.model = model.to(context.device)
        self.loader, self.validate = loader, validate
        self.checkpoint_extra = dict(checkpoint_extra)
        optim, train = config["optimizer"], config["train"]
        self.bucket_clock = BucketClock(synchronize=context.device.type == "cuda")
        if context.distributed:
            self.wrapped: nn.Module = DistributedDataParallel(
                self.model,
                device_ids=[context.device.index] if context.device.type == "cuda" else None,
                forward_sync_buffers=False,
                find_unused_parameters=False,
            )
            self.wrapped.register_comm_hook(self.bucket_clock, timed_allreduce_hook)
        else:
            self.wrapped = self.model
        if train["compile"]:
            self.wrapped = torch.compile(self.wrapped, dynamic=True)
        groups = (
            [dict(group) for group in param_groups]
            if param_groups is not None
            else self.model.parameters()
        )
        self.optimizer = torch.optim.AdamW(
            groups, lr=optim["lr"], betas=tuple(optim["betas"]), weight_decay=optim["weight_decay"]
        )
        self.batches_per_epoch = len(loader)
        self.accumulate = int(optim["accumulate"])
        total_batches = math.ceil(train["epochs"] * self.batches_per_epoch)
        self.total_steps = (
            max(1, total_batches // self.accumulate)
            if train.get("total_steps") is None
            else int(train["total_steps"])
        )
        # `max_steps` stops early as an interruption would: the schedule still spans the whole
        # run, so stopping at step k and resuming reproduces the uninterrupted run exactly.
        self.stop_step = self.total_steps if max_steps is None else min(self.total_steps, max_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda step: warmup_cosine(
                step,
                total_steps=self.total_steps,
                warmup_steps=optim["warmup_steps"],
                min_lr_ratio=optim["min_lr_ratio"],
            ),
        )
        self.ema = (
            ExponentialMovingAverage(self.model, optim["ema_decay"]) if optim["ema_decay"] else None
        )
        precision = train["precision"]
        if precision == "fp16" and context.device.type != "cuda":  # GradScaler is CUDA's
            raise ValueError("train.precision fp16 needs a GPU; use bf16 or fp32 on the CPU")
        self.autocast_dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[
            precision
        ]
        self.scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
        # the fractional epochs to keep, as optimizer steps
        self.checkpoint_steps = {
            min(self.total_steps, round(e * self.batches_per_epoch / self.accumulate)): float(e)
            for e in train["checkpoint_epochs"]
        }
        self.skip_update = False  # a micro-batch of this step had a non-finite loss
        self.step = 0  # optimizer steps done
        self.epoch = 0
        self.nonfinite = 0
        self.samples_seen = 0

    # --- checkpoints ---------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        return {
            **self.checkpoint_extra,
            "model": self.model.state_dict(),
            **({"ema": self.ema.shadow} if self.ema else {}),
            "training": {
                "step": self.step,
                "epoch": self.epoch,
                "epochs_done": self.step * self.accumulate / self.batches_per_epoch,
                "nonfinite": self.nonfinite,
                "samples_seen": self.samples_seen,
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "ema": self.ema.state_dict() if self.ema else None,
                "scaler": self.scaler.state_dict(),
                "loader": self.loader.state_dict(),
                "torch_rng": torch.get_rng_state(),
                "config": dict(self.config),
                "mlflow_run_id": self.tracker.run_id,
            },
        }

    def save(self, name: str) -> Path | None:
        if not self.context.is_main:
            return None
        return save_checkpoint(self.out_dir / "checkpoints" / f"{name}.pt", self._state())

    def restore(self, payload: Mapping[str, Any]) -> None:
        """Continue from a checkpoint written by `save` (weights, optimizer, position, RNG)."""
        training = payload["training"]
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(training["optimizer"])
        self.scheduler.load_state_dict(training["scheduler"])
        if self.ema and training["ema"]:
            self.ema.load_state_dict(training["ema"])
        self.scaler.load_state_dict(training["scaler"])
        self.loader.load_state_dict(training["loader"])
        torch.set_rng_state(training["torch_rng"])
        self.step, self.epoch = int(training["step"]), int(training["epoch"])
        self.nonfinite, self.samples_seen = (
            int(training["nonfinite"]),
            int(training["samples_seen"]),
        )

    # --- one step ------------------------------------------------------------------------------
    def _loss(self, batch: Any, clock: StepClock) -> tuple[torch.Tensor, dict[str, float], bool]:
        """(loss of this rank, global means of the terms, whether every rank's loss is finite).

        Marks "forward" when this rank's own work is done and "reduced" after the all-reduce, so
        the wait for slower ranks is not counted as this rank's compute.
        """
        normalizer = self.model.normalizer
        atom_subset = batch[K.DATASET_INDEX][batch[K.BATCH]]
        target_energy = normalizer.normalize_energy(
            batch[K.ENERGY], batch[K.ATOMIC_NUMBERS], batch[K.BATCH], batch[K.DATASET_INDEX]
        )
        target_forces = normalizer.normalize_forces(batch[K.FORCES], atom_subset)
        loss_config = self.config["loss"]
        lambda_stress = float(loss_config.get("lambda_stress", 0.0))
        with torch.autocast(
            self.context.device.type,
            dtype=self.autocast_dtype or torch.float32,
            enabled=self.autocast_dtype is not None,
        ):
            # the stress (a strain derivative) is computed only when the loss uses it
            output = (
                self.wrapped(batch, compute_stress=True)
                if lambda_stress > 0
                else self.wrapped(batch)
            )
        stress = {}
        if lambda_stress > 0:
            target_stress = normalizer.normalize_stress(batch[K.STRESS], batch[K.DATASET_INDEX])
            stress = {
                "pred_stress": output[K.PRED_STRESS].float(),
                "target_stress": target_stress.float(),
                "stress_mask": batch[K.STRESS_MASK],
            }
        terms = universal_loss_terms(
            output[K.PRED_ENERGY].float(),
            output[K.PRED_FORCES].float(),
            target_energy.float(),
            target_forces.float(),
            batch[K.DATASET_INDEX],
            batch[K.ENERGY_MASK],
            batch[K.FORCE_MASK],
            batch[K.BATCH],
            **stress,
        )
        # One all-reduce: label counts (for the global normalization), the three summed terms (for
        # logging) and the number of ranks whose loss is not finite (all ranks skip together).
        stress_count = (
            batch[K.STRESS_MASK].sum()
            if stress
            else torch.zeros((), device=batch[K.ENERGY_MASK].device)
        )
        local_counts = (
            torch.stack([batch[K.ENERGY_MASK].sum(), batch[K.FORCE_MASK].sum(), stress_count])
            .double()
            .cpu()
        )
        local_sums = (
            torch.stack([terms.energy.detach(), terms.forces.detach(), terms.stress.detach()])
            .double()
            .cpu()
            * local_counts
        )
        finite_local = bool(torch.isfinite(local_sums).all())
        clock.mark("forward")
        shared = torch.cat(
            [
                local_counts,
                torch.nan_to_num(local_sums),
                torch.tensor([0.0 if finite_local else 1.0], dtype=torch.float64),
            ]
        )
        shared = all_reduce_sum(shared, self.context)
        clock.mark("reduced")
        global_counts = shared[:3].clamp(min=1)
        finite = bool(shared[6] == 0)
        scale = (self.context.world_size * local_counts / global_counts).to(
            terms.energy.device
        )  # [3]
        loss = (
            loss_config["lambda_energy"] * terms.energy * scale[0]
            + loss_config["lambda_forces"] * terms.forces * scale[1]
        )
        if stress:
            loss = loss + lambda_stress * terms.stress * scale[2]
        global_means = (shared[3:6] / global_counts).tolist()
        parts = {
            "loss/energy": global_means[0],
            "loss/forces": global_means[1],
            **({"loss/stress": global_means[2]} if stress else {}),
        }
        return loss / self.accumulate, parts, finite

    def _optimizer_step(self) -> tuple[float, bool]:
        self.scaler.unscale_(self.optimizer)
        clip = self.config["optimizer"]["grad_clip"]
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), clip if clip else float("inf")
        )
        finite = bool(torch.isfinite(grad_norm))
        if finite:
            self.scaler.step(self.optimizer)
            self.scheduler.step()
            if self.ema:
                self.ema.update(self.model)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        return float(grad_norm), finite

    # --- the loop ------------------------------------------------------------------------------
    def fit(self, resume_step: int | None = None) -> dict[str, Any]:
        """Train to the stop step. A stop signal (`lamm.training.stop`) on any rank ends every
        rank after the same step: rank 0 saves `last` and each raises TrainingStopped."""
        with stop.checked_at_step_ends():
            return self._fit(resume_step)

    def _fit(self, resume_step: int | None) -> dict[str, Any]:
        train = self.config["train"]
        main = self.context.is_main
        metrics_log = CsvLog(
            self.out_dir / "metrics.csv",
            [
                "step",
                "epoch",
                "loss",
                "loss/energy",
                "loss/forces",
                "lr",
                "grad_norm",
                "samples_per_s",
                "atoms_per_s",
                "nonfinite",
            ],
            resume_step,
            main,
        )
        val_log = CsvLog(
            self.out_dir / "validation.csv", ["step", "epoch", "metric", "value"], resume_step, main
        )
        timing_log = CsvLog(
            self.out_dir / "timings.csv", ["step", "rank", *TIMING_COLUMNS], resume_step, main
        )
        if self.step == 0:
            self._validate(val_log)  # the starting point of every learning curve
            if 0 in self.checkpoint_steps:
                self.save(f"epoch_{epoch_label(self.checkpoint_steps[0])}")
        last_save = time.monotonic()
        self.model.train()
        bar = (
            iter(
                progress(
                    range(self.step, self.stop_step),
                    desc="train",
                    total=self.stop_step - self.step,
                    unit="step",
                )
            )
            if main
            else None
        )
        start_wall = time.monotonic()
        pending: dict[str, float] = {}
        while self.step < self.stop_step:
            self.loader.set_epoch(self.epoch)
            clock = StepClock(self.context.device)
            clock.mark("start")
            micro = 0
            for batch in self.loader:
                batch = batch.to(self.context.device)
                clock.mark("batch")
                self.bucket_clock.last_ready = None
                loss, parts, loss_finite = self._loss(batch, clock)
                if loss_finite:
                    self.scaler.scale(loss).backward()
                else:
                    self.skip_update = True  # every rank skips this backward: DDP stays in step
                clock.mark("backward")
                micro += 1
                self.samples_seen += int(batch.num_graphs) * self.context.world_size
                if micro < self.accumulate:
                    continue
                micro = 0
                if self.skip_update:
                    self.optimizer.zero_grad(set_to_none=True)
                    grad_norm, finite = float("nan"), False
                    self.skip_update = False
                else:
                    grad_norm, finite = self._optimizer_step()
                clock.mark("optimizer")
                self.step += 1
                if bar is not None:
                    next(bar, None)
                row = clock.row(self.bucket_clock, int(batch.num_nodes), int(batch.num_graphs))
                # the per-step all-gather also carries each rank's pending stop signal (0: none)
                rows = all_gather_rows(
                    torch.tensor([*row, stop.pending()], dtype=torch.float64), self.context
                )
                stop_signal, rows = int(rows[:, -1].max()), rows[:, :-1]
                timing_log.write(
                    [
                        {"step": self.step, "rank": r, **dict(zip(TIMING_COLUMNS, values))}
                        for r, values in enumerate(rows.tolist())
                    ]
                )
                if not finite:
                    self.nonfinite += 1
                    log.warning(
                        "step %d: non-finite loss or gradient (%d so far); step skipped",
                        self.step,
                        self.nonfinite,
                    )
                    if self.nonfinite > train["max_nonfinite_steps"]:
                        raise NonFiniteLossError(
                            f"stopped after {self.nonfinite} steps with a non-finite loss or gradient"
                        )
                step_time = rows[:, 1:4].sum(dim=1).max().item() + rows[:, 0].max().item()
                compute = rows[:, 4]
                pending = {
                    "loss": float(loss.detach()) * self.accumulate if finite else float("nan"),
                    **parts,
                    "lr": self.scheduler.get_last_lr()[0],
                    "grad_norm": grad_norm,
                    "samples_per_s": rows[:, 6].sum().item() / max(step_time, 1e-9),
                    "atoms_per_s": rows[:, 5].sum().item() / max(step_time, 1e-9),
                    "time/step_s": step_time,
                    "time/idle_s": (compute.max() - compute.mean()).item(),
                    "nonfinite": self.nonfinite,
                }
                if self.step % train["log_every_steps"] == 0 or self.step == self.stop_step:
                    self.tracker.log_metrics(
                        {k: v for k, v in pending.items() if math.isfinite(v)}, step=self.step
                    )
                    metrics_log.write(
                        [{"step": self.step, "epoch": self._epochs_done(), **pending}]
                    )
                if self.step % train["val_every_steps"] == 0 or self.step == self.stop_step:
                    self._validate(val_log)
                if self.step in self.checkpoint_steps:
                    self.save(f"epoch_{epoch_label(self.checkpoint_steps[self.step])}")
                if time.monotonic() - last_save > 60 * train["save_every_minutes"]:
                    self.save("last")
                    last_save = time.monotonic()
                if stop_signal and self.step < self.stop_step:
                    self.save("last")
                    raise stop.honour(stop_signal, self.step)
                if self.step >= self.stop_step:
                    break
                clock = StepClock(self.context.device)
                clock.mark("start")
            else:
                self.epoch += 1
        self.save("last")
        wall = time.monotonic() - start_wall
        summary = {
            "steps": self.step,
            "total_steps": self.total_steps,
            "epochs": self._epochs_done(),
            "samples_seen": self.samples_seen,
            "nonfinite_steps": self.nonfinite,
            "wall_s": wall,
        }
        self.tracker.log_metrics(
            {"summary/wall_s": wall, "summary/samples_seen": self.samples_seen}, step=self.step
        )
        return summary

    def _epochs_done(self) -> float:
        return self.step * self.accumulate / self.batches_per_epoch

    def _validate(self, val_log: CsvLog) -> None:
        if self.ema:
            with self.ema.applied_to(self.model):
                metrics = self.validate(self.model)
        else:
            metrics = self.validate(self.model)
        self.tracker.log_metrics(metrics, step=self.step)
        val_log.write(
            [
                {"step": self.step, "epoch": self._epochs_done(), "metric": k, "value": v}
                for k, v in metrics.items()
            ]
        )
        if self.context.is_main:
            shown = ", ".join(
                f"{k.removeprefix('val/')}={v:.4g}" for k, v in sorted(metrics.items())
            )
            log.info("step %d validation: %s", self.step, shown)
