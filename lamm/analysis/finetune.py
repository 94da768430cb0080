"""Reading fine-tuning runs and reducing them to Table 3 and the sample-efficiency table.

A run directory (`lamm finetune --out`) holds `summary.json` (which checkpoint, train fraction,
force mode), `validation.csv` (long format: step, epoch, metric, value), `metrics.csv` (the
training loss terms per logged step) and `test_metrics.json`.

Table 3 (SPEC section 8): per run the best validation energy MAE (meV/atom) and force MAE
(meV/A), the first validation step at which each falls to its threshold, and the speedup
relative to scratch = scratch's steps to the threshold / this run's. A run that never reaches
a threshold has no step count (empty) and no speedup; neither has any run when scratch never
reaches it (the ratio would have no denominator).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

ENERGY = "energy_mae_mev_per_atom"
FORCES = "forces_mae_mev_per_a"
SCRATCH = "scratch"

TABLE3_COLUMNS = [
    "checkpoint", ENERGY, FORCES, "steps_to_energy_threshold", "steps_to_forces_threshold",
    "energy_speedup", "forces_speedup", "energy_threshold", "forces_threshold",
    f"test_{ENERGY}", f"test_{FORCES}", "steps", "train_structures", "force_mode", "run_dir",
]
SAMPLE_EFFICIENCY_COLUMNS = ["checkpoint", "train_fraction", "train_structures", f"test_{ENERGY}", f"test_{FORCES}", "test_structures", "run_dir"]

Curve = list[tuple[int, float]]  # (step, value), steps increasing


@dataclass
class FinetuneRun:
    """One fine-tuning run as written by `lamm finetune`."""

    run_dir: Path
    summary: dict[str, Any]
    test: dict[str, Any]
    validation: dict[str, Curve] = field(default_factory=dict)  # ENERGY / FORCES -> curve
    training: dict[str, Curve] = field(default_factory=dict)  # loss/energy, loss/forces -> curve

    @property
    def checkpoint(self) -> str:
        return str(self.summary["checkpoint"])

    @property
    def epoch(self) -> float:
        """The pre-training epoch (-1 for scratch), for ordering."""
        return -1.0 if self.checkpoint == SCRATCH else float(self.checkpoint)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path} is missing: not a finished `lamm finetune` run") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def read_validation(path: Path) -> dict[str, Curve]:
    """ENERGY and FORCES curves of a validation.csv (any subset's `val/<subset>/<metric>`)."""
    curves: dict[str, Curve] = {ENERGY: [], FORCES: []}
    try:
        with open(path, newline="") as handle:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                try:
                    metric, step, value = row["metric"], int(row["step"]), float(row["value"])
                except (KeyError, TypeError, ValueError) as err:
                    raise ValueError(f"{path} line {line}: expected step, metric, value columns ({err})") from None
                for name in (ENERGY, FORCES):
                    if metric.endswith("/" + name):
                        curves[name].append((step, value))
    except FileNotFoundError:
        raise ValueError(f"{path} is missing: not a finished `lamm finetune` run") from None
    return {name: sorted(curve) for name, curve in curves.items()}


def read_training(path: Path) -> dict[str, Curve]:
    """The normalized training loss terms of a metrics.csv (empty curves when absent)."""
    curves: dict[str, Curve] = {"loss/energy": [], "loss/forces": []}
    if not path.is_file():
        return curves
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            for name in curves:
                value = float(row[name]) if row.get(name) not in (None, "") else math.nan
                if math.isfinite(value):
                    curves[name].append((int(row["step"]), value))
    return curves


def load_run(run_dir: str | os.PathLike) -> FinetuneRun:
    run_dir = Path(run_dir)
    return FinetuneRun(
        run_dir=run_dir,
        summary=_read_json(run_dir / "summary.json"),
        test=_read_json(run_dir / "test_metrics.json"),
        validation=read_validation(run_dir / "validation.csv"),
        training=read_training(run_dir / "metrics.csv"),
    )


def steps_to_threshold(curve: Curve, threshold: float) -> int | None:
    """The first step whose value is at or below `threshold`; None if it never gets there."""
    for step, value in curve:
        if value <= threshold:
            return step
    return None


def best(curve: Curve) -> float:
    """The lowest value of a curve (NaN for an empty one)."""
    return min((value for _, value in curve), default=math.nan)


def speedup(scratch_steps: int | None, steps: int | None) -> float | None:
    """scratch_steps / steps; None when either never reached the threshold, inf when steps is 0."""
    if scratch_steps is None or steps is None:
        return None
    return math.inf if steps == 0 else scratch_steps / steps


def finetune_table(runs: Sequence[FinetuneRun], energy_threshold: float, forces_threshold: float) -> list[dict[str, Any]]:
    """Table 3 rows, scratch first then by pre-training epoch; exactly one run must be scratch."""
    scratch = [run for run in runs if run.checkpoint == SCRATCH]
    if len(scratch) != 1:
        raise ValueError(f"Table 3 needs exactly one scratch run among {[str(r.run_dir) for r in runs]}, found {len(scratch)}")
    reference = {
        ENERGY: steps_to_threshold(scratch[0].validation[ENERGY], energy_threshold),
        FORCES: steps_to_threshold(scratch[0].validation[FORCES], forces_threshold),
    }
    rows = []
    for run in sorted(runs, key=lambda r: r.epoch):
        energy_steps = steps_to_threshold(run.validation[ENERGY], energy_threshold)
        forces_steps = steps_to_threshold(run.validation[FORCES], forces_threshold)
        rows.append({
            "checkpoint": run.checkpoint,
            ENERGY: best(run.validation[ENERGY]),
            FORCES: best(run.validation[FORCES]),
            "steps_to_energy_threshold": energy_steps,
            "steps_to_forces_threshold": forces_steps,
            "energy_speedup": speedup(reference[ENERGY], energy_steps),
            "forces_speedup": speedup(reference[FORCES], forces_steps),
            "energy_threshold": energy_threshold,
            "forces_threshold": forces_threshold,
            f"test_{ENERGY}": run.test.get(ENERGY),
            f"test_{FORCES}": run.test.get(FORCES),
            "steps": run.summary.get("steps"),
            "train_structures": run.summary.get("train_structures"),
            "force_mode": run.summary.get("force_mode"),
            "run_dir": str(run.run_dir),
        })
    return rows


def sample_efficiency_table(runs: Sequence[FinetuneRun]) -> list[dict[str, Any]]:
    """Final test errors against the training-set size, by starting checkpoint then size."""
    rows = [
        {
            "checkpoint": run.checkpoint,
            "train_fraction": float(run.summary["train_fraction"]),
            "train_structures": int(run.summary["train_structures"]),
            f"test_{ENERGY}": run.test.get(ENERGY),
            f"test_{FORCES}": run.test.get(FORCES),
            "test_structures": run.test.get("structures"),
            "run_dir": str(run.run_dir),
        }
        for run in runs
    ]
    keys = [(row["checkpoint"], row["train_fraction"]) for row in rows]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"several runs for the same (checkpoint, train fraction): {duplicates}")
    order = {run.checkpoint: run.epoch for run in runs}
    return sorted(rows, key=lambda row: (order[row["checkpoint"]], row["train_fraction"]))


def moving_average(curve: Curve, window: int = 31) -> Curve:
    """Centered moving average over `window` points (the paper's 31); shorter curves use all points."""
    if not curve:
        return []
    window = max(1, min(window, len(curve)))
    steps = np.array([s for s, _ in curve], dtype=np.float64)
    values = np.array([v for _, v in curve], dtype=np.float64)
    kernel = np.ones(window) / window
    smoothed = np.convolve(values, kernel, mode="valid")  # [len - window + 1]
    centers = np.convolve(steps, kernel, mode="valid")
    return [(int(round(s)), float(v)) for s, v in zip(centers, smoothed)]
