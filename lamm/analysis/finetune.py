"""Reading fine-tuning runs and reducing them to Table 3 and the sample-efficiency table.

A run directory (`lamm finetune --out`) holds `summary.json` (which checkpoint, train fraction,
force mode), `validation.csv` (long format: step, epoch, metric, value), `metrics.csv` (the
training loss terms per logged step) and `test_metrics.json`.

Table 3 (SPEC section 8): per run the best validation energy MAE (meV/atom) and force MAE
(meV/A), the first validation step at which each falls to its threshold, and the speedup
relative to scratch = scratch's steps to the threshold / this run's. A run that never reaches
a threshold has no step count (empty) and no speedup; neither has any run when scratch never
reaches it (the ratio would have no denominator).

With several seeds (`lamm finetune --seed`), every seed has its own scratch run and each run is
compared with the scratch run of its seed; `table3_summary` then reduces the rows to one per
checkpoint (n seeds, mean/std/min/max, ratios of the means to scratch's), so a reader sees the
seed-to-seed spread next to the effect.

"Best" validation MAE (the `energy_mae_mev_per_atom`, `forces_mae_mev_per_a` columns, the paper's
Table 3 metric) is the lowest point of a run's validation curve; the test MAE is of the final
model, whose own validation error is `final_val_*`. Model selection reads validation only: runs
of one start at several budgets (`steps`; each budget with its own scratch run per seed) are
kept apart, and the findings choose each start's budget by its mean `final_val_*`
(`lamm.analysis.findings_finetune.select_budget`), then read the test columns of that budget
once. Runs from several pre-training runs of one start (`pretrain_seed`: the seed of the
pre-training config stored in the starting checkpoint) are kept apart per seed and pooled over
in the findings, so the spread covers pre-training too.
"""

from __future__ import annotations

import csv
import functools
import json
import logging
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

log = logging.getLogger(__name__)

ENERGY = "energy_mae_mev_per_atom"
FORCES = "forces_mae_mev_per_a"
STRESS = "stress_mae_gpa"  # validation and test, for stores with stress labels
SCRATCH = "scratch"

TABLE3_COLUMNS = [
    "checkpoint",
    "seed",
    "pretrain_seed",
    ENERGY,
    FORCES,
    f"final_val_{ENERGY}",
    f"final_val_{FORCES}",
    "steps_to_energy_threshold",
    "steps_to_forces_threshold",
    "energy_speedup",
    "forces_speedup",
    "energy_threshold",
    "forces_threshold",
    f"test_{ENERGY}",
    f"test_{FORCES}",
    "steps",
    "train_structures",
    "force_mode",
    STRESS,
    "test_stress_mae_gpa",
    "run_dir",
]
SAMPLE_EFFICIENCY_COLUMNS = [
    "checkpoint",
    "seed",
    "train_fraction",
    "train_structures",
    f"test_{ENERGY}",
    f"test_{FORCES}",
    "test_structures",
    "run_dir",
]

Curve = list[tuple[int, float]]  # (step, value), steps increasing


@dataclass
class FinetuneRun:
    """One fine-tuning run as written by `lamm finetune`."""

    run_dir: Path
    summary: dict[str, Any]
    test: dict[str, Any]
    validation: dict[str, Curve] = field(default_factory=dict)  # ENERGY / FORCES -> curve
    training: dict[str, Curve] = field(default_factory=dict)  # loss/energy, loss/forces -> curve
    seed: int | None = None  # the fine-tuning seed (None: the run does not say)

    @property
    def checkpoint(self) -> str:
        return str(self.summary["checkpoint"])

    @property
    def steps(self) -> int | None:
        """The fine-tuning budget (optimizer steps) the run trained for."""
        steps = self.summary.get("steps")
        return None if steps is None else int(steps)

    @property
    def pretrain_seed(self) -> int | None:
        """The seed of the pre-training run the start came from (None: scratch, or unknown)."""
        if self.checkpoint == SCRATCH:
            return None
        if self.summary.get("pretrain_seed") is not None:
            return int(self.summary["pretrain_seed"])
        return checkpoint_seed(self.summary.get("checkpoint_path"))

    @property
    def epoch(self) -> float:
        """The pre-training epoch (-1 for scratch, +inf for a shipped model: after the run's own
        checkpoints), for ordering."""
        if self.checkpoint == SCRATCH:
            return -1.0
        try:
            return float(self.checkpoint)
        except ValueError:  # a shipped model's name (lamm-mini)
            return math.inf


@functools.lru_cache(maxsize=64)
def checkpoint_seed(path: str | None) -> int | None:
    """The `seed` of the training config stored in a checkpoint (a pre-training checkpoint or a
    shipped model); None when the file is not there (e.g. summarized on another machine) or does
    not say. Memory-mapped: the weights are not read."""
    if not path or not Path(path).is_file():
        return None
    import torch

    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as err:  # a file that is not a checkpoint: say which
        raise ValueError(f"{path}: not a readable checkpoint ({err})") from err
    seed = ((payload.get("training") or {}).get("config") or {}).get("seed")
    return None if seed is None else int(seed)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"{path} is missing: not a finished `lamm finetune` run") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from None


def read_validation(path: Path) -> dict[str, Curve]:
    """ENERGY, FORCES and STRESS curves of a validation.csv (any subset's `val/<subset>/<metric>`;
    STRESS empty for a store without stress labels)."""
    curves: dict[str, Curve] = {ENERGY: [], FORCES: [], STRESS: []}
    try:
        with open(path, newline="") as handle:
            for line, row in enumerate(csv.DictReader(handle), start=2):
                try:
                    metric, step, value = row["metric"], int(row["step"]), float(row["value"])
                except (KeyError, TypeError, ValueError) as err:
                    raise ValueError(
                        f"{path} line {line}: expected step, metric, value columns ({err})"
                    ) from None
                for name in (ENERGY, FORCES, STRESS):
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


def run_seed(run_dir: Path, summary: dict[str, Any]) -> int | None:
    """The seed a run trained with: summary.json's `seed` if it has one, else the `seed` of the
    config the run wrote (config.yaml, after `--seed` overrode it), else the workflow's
    `_seed<k>` folder suffix; None when none of them says (never guessed)."""
    if summary.get("seed") is not None:
        return int(summary["seed"])
    config = run_dir / "config.yaml"
    if config.is_file():
        seed = (yaml.safe_load(config.read_text()) or {}).get("seed")
        if seed is not None:
            return int(seed)
    match = re.search(r"_seed([0-9]+)$", run_dir.name)
    return int(match[1]) if match else None


def load_run(run_dir: str | os.PathLike) -> FinetuneRun:
    run_dir = Path(run_dir)
    summary = _read_json(run_dir / "summary.json")
    return FinetuneRun(
        run_dir=run_dir,
        summary=summary,
        test=_read_json(run_dir / "test_metrics.json"),
        validation=read_validation(run_dir / "validation.csv"),
        training=read_training(run_dir / "metrics.csv"),
        seed=run_seed(run_dir, summary),
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


def final(curve: Curve) -> float:
    """The last value of a curve: the final model's validation error (NaN for an empty one)."""
    return curve[-1][1] if curve else math.nan


def speedup(scratch_steps: int | None, steps: int | None) -> float | None:
    """scratch_steps / steps; None when either never reached the threshold, inf when steps is 0."""
    if scratch_steps is None or steps is None:
        return None
    return math.inf if steps == 0 else scratch_steps / steps


def _seed_order(seed: int | None) -> tuple[bool, int]:
    return (seed is not None, seed or 0)


def default_thresholds(runs: Sequence[FinetuneRun]) -> dict[str, float]:
    """The thresholds when none are given: for energy and forces, the largest best validation MAE
    among the scratch runs (every scratch run reaches it at its best step, so a speedup says how
    much sooner a pre-trained run gets where scratch ends); without scratch runs, the largest
    best validation MAE of all runs."""
    pool = [run for run in runs if run.checkpoint == SCRATCH] or list(runs)
    return {
        column: max((best(run.validation[column]) for run in pool), default=math.nan)
        for column in (ENERGY, FORCES)
    }


def finetune_table(
    runs: Sequence[FinetuneRun],
    energy_threshold: float | None = None,
    forces_threshold: float | None = None,
) -> list[dict[str, Any]]:
    """Table 3 rows, by seed, then scratch first and by pre-training epoch. Within one seed and
    budget (`steps`), at most one run per (checkpoint, pre-training seed); speedups are against
    the scratch run of that seed and budget (None without one: a warning). Thresholds default to
    `default_thresholds`."""
    defaults = default_thresholds(runs)
    energy_threshold = defaults[ENERGY] if energy_threshold is None else energy_threshold
    forces_threshold = defaults[FORCES] if forces_threshold is None else forces_threshold
    by_seed: dict[int | None, list[FinetuneRun]] = {}
    for run in runs:
        by_seed.setdefault(run.seed, []).append(run)
    rows = []
    for seed in sorted(by_seed, key=_seed_order):
        group = by_seed[seed]
        keys = [(run.checkpoint, run.pretrain_seed, run.steps) for run in group]
        if len(set(keys)) != len(keys):
            twice = sorted({key for key in keys if keys.count(key) > 1}, key=str)
            raise ValueError(
                f"seed {seed}: several runs of the same (checkpoint, pre-training seed, steps): "
                f"{twice} (fine-tune them with other seeds)"
            )
        for steps in sorted({run.steps for run in group}, key=lambda s: (s is not None, s or 0)):
            budget = [run for run in group if run.steps == steps]
            scratch = [run for run in budget if run.checkpoint == SCRATCH]
            if not scratch:
                log.warning(
                    "seed %s, %s steps: no scratch run to compare with: no speedups", seed, steps
                )
            scratch_run = scratch[0] if scratch else None
            rows += _seed_rows(budget, scratch_run, seed, energy_threshold, forces_threshold)
    return rows


def _seed_rows(
    group: Sequence[FinetuneRun],
    scratch: FinetuneRun | None,
    seed: int | None,
    energy_threshold: float,
    forces_threshold: float,
) -> list[dict[str, Any]]:
    reference = {
        ENERGY: None
        if scratch is None
        else steps_to_threshold(scratch.validation[ENERGY], energy_threshold),
        FORCES: None
        if scratch is None
        else steps_to_threshold(scratch.validation[FORCES], forces_threshold),
    }
    rows = []
    for run in sorted(group, key=lambda r: (r.epoch, _seed_order(r.pretrain_seed))):
        energy_steps = steps_to_threshold(run.validation[ENERGY], energy_threshold)
        forces_steps = steps_to_threshold(run.validation[FORCES], forces_threshold)
        rows.append(
            {
                "checkpoint": run.checkpoint,
                "seed": seed,
                "pretrain_seed": run.pretrain_seed,
                ENERGY: best(run.validation[ENERGY]),
                FORCES: best(run.validation[FORCES]),
                f"final_val_{ENERGY}": final(run.validation[ENERGY]),
                f"final_val_{FORCES}": final(run.validation[FORCES]),
                "steps_to_energy_threshold": energy_steps,
                "steps_to_forces_threshold": forces_steps,
                "energy_speedup": speedup(reference[ENERGY], energy_steps),
                "forces_speedup": speedup(reference[FORCES], forces_steps),
                "energy_threshold": energy_threshold,
                "forces_threshold": forces_threshold,
                f"test_{ENERGY}": run.test.get(ENERGY),
                f"test_{FORCES}": run.test.get(FORCES),
                "steps": run.steps,
                "train_structures": run.summary.get("train_structures"),
                "force_mode": run.summary.get("force_mode"),
                "test_stress_mae_gpa": run.test.get("stress_mae_gpa"),
                STRESS: best(run.validation.get(STRESS, [])),
                "run_dir": str(run.run_dir),
            }
        )
    return rows


def sample_efficiency_table(runs: Sequence[FinetuneRun]) -> list[dict[str, Any]]:
    """Final test errors against the training-set size, by starting checkpoint, size, then seed."""
    rows = [
        {
            "checkpoint": run.checkpoint,
            "seed": run.seed,
            "train_fraction": float(run.summary["train_fraction"]),
            "train_structures": int(run.summary["train_structures"]),
            f"test_{ENERGY}": run.test.get(ENERGY),
            f"test_{FORCES}": run.test.get(FORCES),
            "test_structures": run.test.get("structures"),
            "run_dir": str(run.run_dir),
        }
        for run in runs
    ]
    keys = [(row["checkpoint"], row["train_fraction"], row["seed"]) for row in rows]
    duplicates = sorted({key for key in keys if keys.count(key) > 1}, key=str)
    if duplicates:
        raise ValueError(
            f"several runs for the same (checkpoint, train fraction, seed): {duplicates}"
        )
    order = {run.checkpoint: run.epoch for run in runs}
    return sorted(
        rows,
        key=lambda row: (order[row["checkpoint"]], row["train_fraction"], _seed_order(row["seed"])),
    )


# --- over seeds ------------------------------------------------------------------------------

# Table 3's per-seed columns reduced over seeds: errors (lower is better) and steps to the
# thresholds
SUMMARY_ERRORS = [
    f"test_{ENERGY}",
    f"test_{FORCES}",
    ENERGY,
    FORCES,
    f"final_val_{ENERGY}",
    f"final_val_{FORCES}",
]
SUMMARY_STEPS = ["steps_to_energy_threshold", "steps_to_forces_threshold"]
STATISTICS = ("mean", "std", "min", "max")


def spread(values: Sequence[float | None]) -> dict[str, float]:
    """n, mean, sample std (ddof 1: NaN for one value, the spread is unknown), min and max of the
    finite values (a run that never reached a threshold has no step count: it is left out and
    counted by the caller)."""
    finite = np.array(
        [v for v in values if v is not None and math.isfinite(float(v))], dtype=np.float64
    )
    if finite.size == 0:
        return {"n": 0, **{name: math.nan for name in STATISTICS}}
    return {
        "n": int(finite.size),
        "mean": float(finite.mean()),
        "std": float(finite.std(ddof=1)) if finite.size > 1 else math.nan,
        "min": float(finite.min()),
        "max": float(finite.max()),
    }


def _ratio(reference: float, value: float) -> float:
    """reference / value: how many times lower this error (or these steps) than scratch's."""
    if not (math.isfinite(reference) and math.isfinite(value)):
        return math.nan
    return math.inf if value == 0 else reference / value


def table3_summary(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per checkpoint and budget (scratch first, Table 3's order) over its seeds (and
    pre-training runs): `seeds` (rows), `pretrain_runs`, `steps`, the thresholds, then per error
    and steps column `<column>_{mean,std,min,max}`; `<steps column>_reached` = runs that reached
    the threshold (the statistics are over those); `<column>_ratio_vs_scratch` = scratch's mean
    at the same budget / this mean (> 1: lower error, or fewer steps, than scratch)."""
    keys = list(dict.fromkeys((row["checkpoint"], row.get("steps")) for row in rows))
    stats: dict[tuple[str, Any], dict[str, dict[str, float]]] = {}
    for key in keys:
        mine = [row for row in rows if (row["checkpoint"], row.get("steps")) == key]
        stats[key] = {
            column: spread([row.get(column) for row in mine])
            for column in SUMMARY_ERRORS + SUMMARY_STEPS
        }
    out = []
    for checkpoint, steps in keys:
        mine = [row for row in rows if (row["checkpoint"], row.get("steps")) == (checkpoint, steps)]
        pretrain = {row.get("pretrain_seed") for row in mine} - {None}
        row: dict[str, Any] = {
            "checkpoint": checkpoint,
            "seeds": len(mine),
            "pretrain_runs": 0 if checkpoint == SCRATCH else max(len(pretrain), 1),
            "steps": steps,
            "energy_threshold": mine[0]["energy_threshold"],
            "forces_threshold": mine[0]["forces_threshold"],
        }
        own = stats[(checkpoint, steps)]
        for column in SUMMARY_ERRORS + SUMMARY_STEPS:
            if column in SUMMARY_STEPS:
                row[f"{column}_reached"] = own[column]["n"]
            row.update({f"{column}_{name}": own[column][name] for name in STATISTICS})
        scratch = stats.get((SCRATCH, steps), {})
        for column in SUMMARY_ERRORS + SUMMARY_STEPS:
            reference = scratch.get(column, {"mean": math.nan})["mean"]
            row[f"{column}_ratio_vs_scratch"] = _ratio(reference, own[column]["mean"])
        out.append(row)
    return out


def sample_efficiency_summary(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (checkpoint, train fraction) over its seeds: `seeds`, `train_structures`, the
    test errors' mean/std/min/max and the ratio of scratch's mean at the same fraction to this
    mean."""
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["checkpoint"], row["train_fraction"]), []).append(row)
    errors = [f"test_{ENERGY}", f"test_{FORCES}"]
    stats = {
        key: {column: spread([row[column] for row in group]) for column in errors}
        for key, group in groups.items()
    }
    out = []
    for (checkpoint, fraction), group in groups.items():
        row: dict[str, Any] = {
            "checkpoint": checkpoint,
            "train_fraction": fraction,
            "seeds": len(group),
            "train_structures": group[0]["train_structures"],
        }
        for column in errors:
            row.update(
                {
                    f"{column}_{name}": stats[(checkpoint, fraction)][column][name]
                    for name in STATISTICS
                }
            )
        for column in errors:
            scratch = stats.get((SCRATCH, fraction), {}).get(column, {"mean": math.nan})["mean"]
            row[f"{column}_ratio_vs_scratch"] = _ratio(
                scratch, stats[(checkpoint, fraction)][column]["mean"]
            )
        out.append(row)
    return out


def moving_average(curve: Curve, window: int = 31) -> Curve:
    """Centered moving average over `window` points (the paper's 31); shorter curves use all
    points."""
    if not curve:
        return []
    window = max(1, min(window, len(curve)))
    steps = np.array([s for s, _ in curve], dtype=np.float64)
    values = np.array([v for _, v in curve], dtype=np.float64)
    kernel = np.ones(window) / window
    smoothed = np.convolve(values, kernel, mode="valid")  # [len - window + 1]
    centers = np.convolve(steps, kernel, mode="valid")
    return [(int(round(s)), float(v)) for s, v in zip(centers, smoothed, strict=True)]
