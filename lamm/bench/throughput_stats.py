"""Step-time statistics of measured DDP runs and the cost model calibrated from them.

Input: the trainer's `timings.csv` (one row per step and rank: data_s, forward_s, backward_s,
optimizer_s, compute_s, atoms, structures; see `lamm.training.timing`). Per step:
- step time = max over ranks of data + forward + backward + optimizer (the ranks meet at the
  gradient all-reduce, so every rank's wall time through the step is the step's);
- idle time = max over ranks of compute minus the mean over ranks (the wait before the
  all-reduce that load balancing removes);
- samples/s of a run = structures of all ranks over the summed step times;
- efficiency = sum of mean rank compute / sum of max rank compute (the balance simulation's
  efficiency, measured). On a machine shared with other work, wall-clock samples/s carries the
  others' load; the efficiency, a ratio within each step, mostly does not.

Calibration: `compute_s` of a rank-step is fitted as per_structure * structures + per_atom *
atoms (+ per_edge * edges when the timings carry an `edges` column)
(`lamm.data.cost.CostModel.fit`); what a step costs besides the slowest rank's compute (data,
optimizer, communication) is a fixed overhead = mean(step time - max compute). The predicted step
time is then max over ranks of the cost plus the overhead.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lamm.data.cost import CostModel

TIMING_COLUMNS = (
    "step",
    "rank",
    "data_s",
    "forward_s",
    "backward_s",
    "optimizer_s",
    "compute_s",
    "atoms",
    "structures",
)


def read_timings(path: str | os.PathLike) -> pd.DataFrame:
    """A trainer `timings.csv`, checked for its columns and for complete steps."""
    path = Path(path)
    table = pd.read_csv(path)
    missing = [c for c in TIMING_COLUMNS if c not in table]
    if missing:
        raise ValueError(f"{path}: not a trainer timings.csv, missing columns {missing}")
    ranks = table.groupby("step")["rank"].nunique()
    if len(table) and ranks.nunique() != 1:
        raise ValueError(
            f"{path}: steps with different numbers of ranks ({sorted(ranks.unique().tolist())})"
        )
    return table


def step_table(timings: pd.DataFrame, warmup: int = 0) -> pd.DataFrame:
    """One row per step (after the first `warmup` steps): step_s, idle_s, compute_max_s,
    compute_mean_s, compute_sum_s (all ranks), structures, atoms, max_atoms (on one rank), and
    edges when the timings carry an `edges` column."""
    timings = timings[timings["step"] > timings["step"].min() + warmup - 1] if warmup else timings
    if timings.empty:
        raise ValueError(f"no steps left after dropping {warmup} warm-up steps")
    wall = timings[["data_s", "forward_s", "backward_s", "optimizer_s"]].sum(axis=1)
    grouped = timings.assign(wall_s=wall).groupby("step")
    table = pd.DataFrame(
        {
            "step_s": grouped["wall_s"].max(),
            "compute_max_s": grouped["compute_s"].max(),
            "compute_mean_s": grouped["compute_s"].mean(),
            "structures": grouped["structures"].sum(),
            "atoms": grouped["atoms"].sum(),
            "max_atoms": grouped["atoms"].max(),
            "compute_sum_s": grouped["compute_s"].sum(),
            "ranks": grouped["rank"].nunique(),
        }
    )
    if "edges" in timings:
        table["edges"] = grouped["edges"].sum()
    table["idle_s"] = table["compute_max_s"] - table["compute_mean_s"]
    return table.reset_index()


def cut_at_quantile(values: Sequence[float], q: float = 0.95) -> np.ndarray:
    """The values at or below their q-quantile (the paper's violins drop the slowest 5 %)."""
    values = np.asarray(values, dtype=np.float64)
    if not 0 < q <= 1:
        raise ValueError(f"quantile must be in (0, 1], got {q}")
    if values.size == 0:
        return values
    return values[values <= np.quantile(values, q)]


def moving_average(values: Sequence[float], window: int = 5) -> np.ndarray:
    """Mean of each run of `window` consecutive values (len(values) - window + 1 of them)."""
    values = np.asarray(values, dtype=np.float64)
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    if values.size < window:
        return np.empty(0)
    return np.convolve(values, np.ones(window) / window, mode="valid")


def summarize_steps(steps: pd.DataFrame) -> dict[str, float]:
    """Throughput and step-time statistics of a step table (or several concatenated)."""
    step_s = steps["step_s"].to_numpy()
    return {
        "steps": int(len(steps)),
        "samples_per_s": float(steps["structures"].sum() / step_s.sum()),
        "atoms_per_s": float(steps["atoms"].sum() / step_s.sum()),
        "step_time_mean_s": float(step_s.mean()),
        "step_time_median_s": float(np.median(step_s)),
        "step_time_p95_s": float(np.quantile(step_s, 0.95)),
        "step_time_std_s": float(step_s.std(ddof=1)) if len(step_s) > 1 else 0.0,
        "idle_mean_s": float(steps["idle_s"].mean()),
        "idle_fraction": float(steps["idle_s"].sum() / steps["compute_max_s"].sum()),
        # as in the balance simulation: mean rank work / slowest rank's work, summed over steps;
        # a ratio inside each step, so a slowdown shared by the ranks cancels out
        "efficiency": float(steps["compute_mean_s"].sum() / steps["compute_max_s"].sum()),
        # robust to a few steps slowed down by other processes on a shared machine
        "samples_per_s_median_step": float(steps["structures"].mean() / np.median(step_s)),
        "compute_max_mean_s": float(steps["compute_max_s"].mean()),
        # all ranks' forward + backward over the steps: the work itself, whatever the balance.
        # Per edge it shows what the batching costs beyond balance: with glibc's default malloc
        # a CPU batch of 10k+ edges ran ~35% slower per edge than one of 5k (page faults; see
        # lamm.training.cpu_memory), so a sampler that put the largest structures together paid
        # more for the same structures.
        "compute_total_s": float(steps["compute_sum_s"].sum()),
        "compute_us_per_edge": float(1e6 * steps["compute_sum_s"].sum() / steps["edges"].sum())
        if "edges" in steps
        else None,
        "structures_per_step": float(steps["structures"].mean()),
        "peak_atoms_per_rank": int(steps["max_atoms"].max()),
        "mean_max_atoms_per_rank": float(steps["max_atoms"].mean()),
    }


def rank_series(
    timings: pd.DataFrame, rank: int, warmup: int = 0, window: int = 5
) -> tuple[np.ndarray, np.ndarray]:
    """(steps, moving average of this rank's forward + backward work) (Fig. 6c).

    The work is `compute_s`: backward_s also holds the waits for the other ranks at the
    all-reduces, which would make every rank's curve the slowest rank's.
    """
    own = timings[
        (timings["rank"] == rank) & (timings["step"] > timings["step"].min() + warmup - 1)
    ].sort_values("step")
    values = moving_average(own["compute_s"].to_numpy(), window)
    return own["step"].to_numpy()[window - 1 : window - 1 + len(values)], values


def fit_cost_model(
    timings: Sequence[pd.DataFrame], warmup: int = 0, *, use_edges: bool = False
) -> tuple[CostModel, float, float]:
    """(cost model of compute_s per rank-step, fixed overhead per step in s, R^2 of the fit).

    `use_edges` fits an edge term too (every table needs an `edges` column)."""
    rows = [t[t["step"] > t["step"].min() + warmup - 1] for t in timings]
    data = pd.concat(rows, ignore_index=True)
    if len(data) < 3:
        raise ValueError(f"calibration needs at least 3 rank-steps, got {len(data)}")
    if use_edges and "edges" not in data:
        raise ValueError("use_edges needs an 'edges' column in the timings")
    edges = data["edges"].to_numpy() if use_edges else None
    model = CostModel.fit(
        data["structures"].to_numpy(),
        data["atoms"].to_numpy(),
        data["compute_s"].to_numpy(),
        edges=edges,
    )
    predicted = rank_cost(model, data["structures"].to_numpy(), data["atoms"].to_numpy(), edges)
    residual = data["compute_s"].to_numpy() - predicted
    total = data["compute_s"].to_numpy() - data["compute_s"].mean()
    r2 = 1.0 - float((residual**2).sum() / max((total**2).sum(), 1e-30))
    steps = pd.concat([step_table(t, warmup) for t in timings], ignore_index=True)
    overhead = float((steps["step_s"] - steps["compute_max_s"]).mean())
    return model, max(overhead, 0.0), r2


def rank_cost(
    model: CostModel, structures: np.ndarray, atoms: np.ndarray, edges: np.ndarray | None = None
) -> np.ndarray:
    """Cost of a rank-step holding `structures` structures with `atoms` atoms (and `edges` edges) in
    total."""
    cost = model.per_structure * np.asarray(
        structures, dtype=np.float64
    ) + model.per_atom * np.asarray(atoms, dtype=np.float64)
    if model.per_edge:
        if edges is None:
            raise ValueError("this cost model needs edge counts")
        cost = cost + model.per_edge * np.asarray(edges, dtype=np.float64)
    return cost


def predicted_step_time(
    timings: pd.DataFrame, model: CostModel, overhead: float, warmup: int = 0
) -> float:
    """Mean predicted step time of the measured steps (their own per-rank structures and atoms)."""
    timings = timings[timings["step"] > timings["step"].min() + warmup - 1]
    edges = timings["edges"].to_numpy() if "edges" in timings else None
    cost = rank_cost(model, timings["structures"].to_numpy(), timings["atoms"].to_numpy(), edges)
    per_step = timings.assign(cost=cost).groupby("step")["cost"].max()
    return float(per_step.mean() + overhead)


def summarize_repeats(tables: Sequence[pd.DataFrame]) -> dict[str, float]:
    """Statistics of the pooled steps of several repeats, plus the spread of samples/s and of
    idle time between repeats (min, max)."""
    if not tables:
        raise ValueError("no repeats to summarize")
    row = summarize_steps(pd.concat(tables, ignore_index=True))
    per_repeat = [summarize_steps(t) for t in tables]
    rates = [r["samples_per_s"] for r in per_repeat]
    idles = [r["idle_mean_s"] for r in per_repeat]
    efficiencies = [r["efficiency"] for r in per_repeat]
    row.update(
        repeats=len(tables),
        samples_per_s_min=min(rates),
        samples_per_s_max=max(rates),
        idle_mean_min_s=min(idles),
        idle_mean_max_s=max(idles),
        efficiency_min=min(efficiencies),
        efficiency_max=max(efficiencies),
    )
    return row
