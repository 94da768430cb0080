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
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from lamm import keys as K
from lamm.log import progress
from lamm.models.checkpoint import save_checkpoint
from lamm.run_labels import epoch_run_label
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
    """Append rows to a CSV; on resume, rows after the resumed step are dropped (they are
    redone)."""

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


# metrics.csv: one row every `log_every_steps` optimizer steps
METRIC_COLUMNS = [
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
]


@dataclass
class _FitLogs:
    """The CSV logs of one fit (rank 0 writes them)."""

    metrics: CsvLog
    validation: CsvLog
    timings: CsvLog


@dataclass
class _FitRun:
    """What one call of `fit` tracks besides the trainer's resumable state."""

    bar: Iterator[int] | None
    last_save: float
    started: float = field(default_factory=time.monotonic)


@dataclass
class _MicroStep:
    """The last micro-batch of an optimizer step, its loss (scaled by 1 / accumulate) and the
    global means of its loss terms."""

    batch: Any
    loss: torch.Tensor
    parts: dict[str, float]


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
        self.wrapped = self._wrap(self.model, compile_model=train["compile"])
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

    def _wrap(self, model: nn.Module, compile_model: bool) -> nn.Module:
        """The module the steps call: DDP (with the hook that times this rank's last gradient
        bucket) when distributed, compiled when asked."""
        wrapped: nn.Module = model
        if self.context.distributed:
            device = self.context.device
            wrapped = DistributedDataParallel(
                model,
                device_ids=[device.index] if device.type == "cuda" else None,
                forward_sync_buffers=False,
                find_unused_parameters=False,
            )
            wrapped.register_comm_hook(self.bucket_clock, timed_allreduce_hook)
        if compile_model:
            wrapped = torch.compile(wrapped, dynamic=True)
        return wrapped

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
        # null (auto) is resolved by the caller (run_setup.with_stress_weight); 0 without it
        lambda_stress = float(loss_config.get("lambda_stress") or 0.0)
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
        return self._global_loss(batch, terms, bool(stress), clock)

    def _global_loss(
        self, batch: Any, terms: Any, with_stress: bool, clock: StepClock
    ) -> tuple[torch.Tensor, dict[str, float], bool]:
        """This rank's loss scaled for eq. 5 over the global batch (see the module docstring).

        One all-reduce: label counts (for the global normalization), the three summed terms (for
        logging) and the number of ranks whose loss is not finite (all ranks skip together)."""
        loss_config = self.config["loss"]
        stress_count = (
            batch[K.STRESS_MASK].sum()
            if with_stress
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
        if with_stress:
            loss = loss + float(loss_config["lambda_stress"]) * terms.stress * scale[2]
        global_means = (shared[3:6] / global_counts).tolist()
        parts = {
            "loss/energy": global_means[0],
            "loss/forces": global_means[1],
            **({"loss/stress": global_means[2]} if with_stress else {}),
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
        try:
            with stop.checked_at_step_ends():
                return self._fit(resume_step)
        finally:
            close = getattr(self.loader, "close", None)  # an EpochLoader's workers stop here
            if close is not None:
                close()

    def _fit(self, resume_step: int | None) -> dict[str, Any]:
        logs = self._open_logs(resume_step)
        if self.step == 0:
            self._on_fit_start(logs)
        self.model.train()
        run = _FitRun(bar=self._progress_bar(), last_save=time.monotonic())
        while self.step < self.stop_step:
            self._train_one_epoch(logs, run)
        self.save("last")
        return self._on_fit_end(run)

    def _train_one_epoch(self, logs: _FitLogs, run: _FitRun) -> None:
        """Optimizer steps over one pass of the loader, or up to the stop step. The epoch
        advances only when the loader runs out; micro-batches left over at the end of an epoch
        keep their gradients for the next step."""
        self.loader.set_epoch(self.epoch)
        batches = iter(self.loader)
        while True:
            clock = StepClock(self.context.device)
            clock.mark("start")
            micro = self._micro_steps(batches, clock)
            if micro is None:
                self.epoch += 1
                return
            grad_norm, finite = self._take_optimizer_step()
            clock.mark("optimizer")
            self.step += 1
            self._after_step(micro, clock, grad_norm, finite, logs, run)
            if self.step >= self.stop_step:
                return

    def _micro_steps(self, batches: Iterator[Any], clock: StepClock) -> _MicroStep | None:
        """`accumulate` micro-batches: load, forward and loss, backward. The last one's loss,
        terms and batch describe the step; None when the loader runs out first."""
        for _ in range(self.accumulate):
            batch = self._load_batch(batches, clock)
            if batch is None:
                return None
            self.bucket_clock.last_ready = None
            loss, parts, loss_finite = self._loss(batch, clock)
            if loss_finite:
                self.scaler.scale(loss).backward()
            else:
                self.skip_update = True  # every rank skips this backward: DDP stays in step
            clock.mark("backward")
            self.samples_seen += int(batch.num_graphs) * self.context.world_size
        return _MicroStep(batch, loss, parts)

    def _load_batch(self, batches: Iterator[Any], clock: StepClock) -> Any | None:
        batch = next(batches, None)
        if batch is None:
            return None
        batch = batch.to(self.context.device)
        clock.mark("batch")
        return batch

    def _take_optimizer_step(self) -> tuple[float, bool]:
        """(gradient norm, whether the step was taken); a step with a non-finite micro-batch is
        dropped on every rank."""
        if not self.skip_update:
            return self._optimizer_step()
        self.optimizer.zero_grad(set_to_none=True)
        self.skip_update = False
        return float("nan"), False

    def _after_step(
        self,
        micro: _MicroStep,
        clock: StepClock,
        grad_norm: float,
        finite: bool,
        logs: _FitLogs,
        run: _FitRun,
    ) -> None:
        """Timings and stop signals, the non-finite count, metrics, validation, checkpoints,
        and the stop if a rank was signalled."""
        if run.bar is not None:
            next(run.bar, None)
        rows, stop_signal = self._gather_timings(micro.batch, clock, logs)
        if not finite:
            self._count_nonfinite()
        self._log_step(self._step_metrics(rows, micro, grad_norm, finite), logs)
        train = self.config["train"]
        if self.step % train["val_every_steps"] == 0 or self.step == self.stop_step:
            self._validate(logs.validation)
        self._checkpoint_if_due(run)
        if stop_signal and self.step < self.stop_step:
            self.save("last")
            raise stop.honour(stop_signal, self.step)

    def _gather_timings(
        self, batch: Any, clock: StepClock, logs: _FitLogs
    ) -> tuple[torch.Tensor, int]:
        """Every rank's timing row of this step ([W, len(TIMING_COLUMNS)]) and the largest
        pending stop signal over ranks (0: none): one all-gather carries both."""
        row = clock.row(self.bucket_clock, int(batch.num_nodes), int(batch.num_graphs))
        rows = all_gather_rows(
            torch.tensor([*row, stop.pending()], dtype=torch.float64), self.context
        )
        stop_signal, rows = int(rows[:, -1].max()), rows[:, :-1]
        logs.timings.write(
            [
                {"step": self.step, "rank": r, **dict(zip(TIMING_COLUMNS, values, strict=True))}
                for r, values in enumerate(rows.tolist())
            ]
        )
        return rows, stop_signal

    def _count_nonfinite(self) -> None:
        self.nonfinite += 1
        log.warning(
            "step %d: non-finite loss or gradient (%d so far); step skipped",
            self.step,
            self.nonfinite,
        )
        if self.nonfinite > self.config["train"]["max_nonfinite_steps"]:
            raise NonFiniteLossError(
                f"stopped after {self.nonfinite} steps with a non-finite loss or gradient"
            )

    def _step_metrics(
        self, rows: torch.Tensor, micro: _MicroStep, grad_norm: float, finite: bool
    ) -> dict[str, float]:
        """The step's metrics; its time is the slowest rank's data wait plus the slowest rank's
        forward, backward and optimizer."""
        step_time = rows[:, 1:4].sum(dim=1).max().item() + rows[:, 0].max().item()
        compute = rows[:, 4]
        return {
            "loss": float(micro.loss.detach()) * self.accumulate if finite else float("nan"),
            **micro.parts,
            "lr": self.scheduler.get_last_lr()[0],
            "grad_norm": grad_norm,
            "samples_per_s": rows[:, 6].sum().item() / max(step_time, 1e-9),
            "atoms_per_s": rows[:, 5].sum().item() / max(step_time, 1e-9),
            "time/step_s": step_time,
            "time/idle_s": (compute.max() - compute.mean()).item(),
            "nonfinite": self.nonfinite,
        }

    def _log_step(self, metrics: dict[str, float], logs: _FitLogs) -> None:
        if self.step % self.config["train"]["log_every_steps"] and self.step != self.stop_step:
            return
        self.tracker.log_metrics(
            {k: v for k, v in metrics.items() if math.isfinite(v)}, step=self.step
        )
        logs.metrics.write([{"step": self.step, "epoch": self._epochs_done(), **metrics}])

    def _checkpoint_if_due(self, run: _FitRun) -> None:
        """The requested fractional epochs, and `last` every `save_every_minutes`."""
        if self.step in self.checkpoint_steps:
            self.save(epoch_run_label(self.checkpoint_steps[self.step]))
        if time.monotonic() - run.last_save > 60 * self.config["train"]["save_every_minutes"]:
            self.save("last")
            run.last_save = time.monotonic()

    # --- start and end of a fit ----------------------------------------------------------------
    def _open_logs(self, resume_step: int | None) -> _FitLogs:
        """metrics.csv, validation.csv and timings.csv (rank 0 writes); a resumed run drops the
        rows after its step."""
        main = self.context.is_main
        return _FitLogs(
            metrics=CsvLog(self.out_dir / "metrics.csv", METRIC_COLUMNS, resume_step, main),
            validation=CsvLog(
                self.out_dir / "validation.csv",
                ["step", "epoch", "metric", "value"],
                resume_step,
                main,
            ),
            timings=CsvLog(
                self.out_dir / "timings.csv", ["step", "rank", *TIMING_COLUMNS], resume_step, main
            ),
        )

    def _on_fit_start(self, logs: _FitLogs) -> None:
        """Step 0: the starting point of every learning curve, and the initialized model when
        epoch 0 is a requested checkpoint."""
        self._validate(logs.validation)
        if 0 in self.checkpoint_steps:
            self.save(epoch_run_label(self.checkpoint_steps[0]))

    def _progress_bar(self) -> Iterator[int] | None:
        if not self.context.is_main:
            return None
        steps = range(self.step, self.stop_step)
        return iter(progress(steps, desc="train", total=len(steps), unit="step"))

    def _on_fit_end(self, run: _FitRun) -> dict[str, Any]:
        wall = time.monotonic() - run.started
        self.tracker.log_metrics(
            {"summary/wall_s": wall, "summary/samples_seen": self.samples_seen}, step=self.step
        )
        return {
            "steps": self.step,
            "total_steps": self.total_steps,
            "epochs": self._epochs_done(),
            "samples_seen": self.samples_seen,
            "nonfinite_steps": self.nonfinite,
            "wall_s": wall,
        }

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
