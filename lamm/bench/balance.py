"""Simulated load balance of the three samplers over world sizes and per-rank batches.

For each (W, B', strategy) the exact plan the training sampler would use
(`DistributedBatchSampler.plan`, temperature sampling included) is built for a number of
epochs, and from the work on each rank at each step:
- efficiency = sum over steps of the mean rank load / sum over steps of the max rank load
  (1 = no rank ever waits for another before the gradient all-reduce);
- predicted step time = max rank load (+ a fixed per-step overhead), and the predicted speedup
  of an epoch over the random sampler at the same W and B';
- peak atoms on one rank (the memory a rank must be able to hold), and the mean per-step max.

Workloads come from stores (one subset per store, their train split), from a natoms file, or
from `synthetic_natoms`: per-subset atom counts drawn to mimic LaMM Fig. 4 from Table 2 (sample
counts scaled down, mean atoms per subset as in the table). The shape of each distribution
(log-normal, the spread and the ranges below) is our assumption, not data from the paper.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lamm.data.balance import TooFewSamplesError
from lamm.data.cost import CostModel, edge_counts
from lamm.data.sampler import STRATEGIES, DistributedBatchSampler
from lamm.data.store import StructureStore
from lamm.log import progress

log = logging.getLogger(__name__)

# subset: (samples in Table 2, mean atoms in Table 2, log-normal sigma, min atoms, max atoms)
# Ranges: OC20/OC22 slabs with adsorbates (~10-225 atoms), ODAC23 MOFs capped at 300 atoms,
# Transition1x/QM7-X molecules of up to 7 heavy atoms (<= 23 atoms), QMugs/PubChem3D drug-like.
FIG4_SUBSETS: dict[str, tuple[float, float, float, int, int]] = {
    "oc20_s2ef": (134e6, 73, 0.35, 7, 225),
    "oc22_s2ef": (8.2e6, 80, 0.35, 10, 230),
    "odac23_s2ef": (29e6, 160, 0.35, 30, 300),
    "transition1x": (9.5e6, 14, 0.20, 4, 23),
    "qm7x": (4.2e6, 17, 0.20, 4, 23),
    "qmugs": (2.0e6, 55, 0.35, 10, 230),
    "pubchem3d": (94e6, 46, 0.40, 3, 200),
    "oc20_is2re": (0.46e6, 78, 0.35, 7, 225),
    "oc22_is2re": (0.046e6, 84, 0.35, 10, 230),
    "odac23_is2re": (0.132e6, 162, 0.35, 30, 300),
}


@dataclass(frozen=True)
class Workload:
    """Atom counts (and work per sample) of the subsets that temperature sampling mixes."""

    names: list[str]
    natoms: list[np.ndarray]  # per subset, [n_d] int64
    work: list[np.ndarray] | None = None  # per subset, [n_d] float (None: atoms)
    source: str = ""


def synthetic_natoms(scale: float = 1e-3, seed: int = 0) -> Workload:
    """Fig. 4-like atom counts: Table 2's sample counts times `scale`, log-normal per subset."""
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    rng = np.random.default_rng(seed)
    names, natoms = [], []
    for name, (samples, mean, sigma, low, high) in FIG4_SUBSETS.items():
        count = max(1, round(samples * scale))
        mu = np.log(mean) - sigma**2 / 2  # log-normal with this mean
        drawn = np.clip(np.rint(rng.lognormal(mu, sigma, count)), low, high).astype(np.int64)
        names.append(name)
        natoms.append(drawn)
    return Workload(names, natoms, source=f"synthetic Fig. 4 (scale {scale:g}, seed {seed})")


def workload_from_stores(
    paths: Sequence[str | os.PathLike],
    *,
    split: str = "train",
    work: str = "atoms",
    cutoff: float = 6.0,
    max_neighbors: int | None = None,
    cost_model: CostModel | None = None,
) -> Workload:
    """The split of each store as one subset; work = atoms, edges, or a cost model's time."""
    if work not in ("atoms", "edges", "cost"):
        raise ValueError(f"work must be atoms, edges or cost, got {work!r}")
    if work == "cost" and cost_model is None:
        raise ValueError("work 'cost' needs a cost model")
    names, natoms, works = [], [], []
    for path in paths:
        store = StructureStore(path)
        indices = store.indices(split)
        names.append(store.subset)
        natoms.append(store.natoms[indices].astype(np.int64))
        if work == "atoms":
            continue
        needs_edges = work == "edges" or cost_model.per_edge > 0
        edges = edge_counts(store, cutoff, max_neighbors)[indices] if needs_edges else None
        # a structure of isolated atoms (a cell stretched past the cutoff) has no edges; give every
        # structure at least one edge of work, or a cost model fitted with the edge term alone
        # prices it at zero, which no balancer accepts
        edges = None if edges is None else np.maximum(edges, 1).astype(np.float64)
        works.append(edges if work == "edges" else cost_model(natoms[-1], edges))
    return Workload(
        names,
        natoms,
        works if work != "atoms" else None,
        source=f"{len(paths)} stores ({split}, work {work})",
    )


def workload_from_file(path: str | os.PathLike) -> Workload:
    """Atom counts from `.npy` (one subset), `.csv` (column `natoms`, optional `subset` and
    `work`), or text with one count per line (one subset)."""
    path = Path(path)
    if path.suffix == ".npy":
        return Workload([path.stem], [np.asarray(np.load(path), dtype=np.int64)], source=str(path))
    if path.suffix == ".csv":
        import pandas as pd

        table = pd.read_csv(path)
        if "natoms" not in table:
            raise ValueError(
                f"{path}: a natoms CSV needs a 'natoms' column, found {list(table.columns)}"
            )
        groups = table.groupby("subset", sort=False) if "subset" in table else [(path.stem, table)]
        names = [str(name) for name, _ in groups]
        natoms = [group["natoms"].to_numpy(dtype=np.int64) for _, group in groups]
        works = (
            [group["work"].to_numpy(dtype=np.float64) for _, group in groups]
            if "work" in table
            else None
        )
        return Workload(names, natoms, works, source=str(path))
    values = np.loadtxt(path, dtype=np.int64, ndmin=1)
    return Workload([path.stem], [values], source=str(path))


def simulate(
    workload: Workload,
    *,
    world_sizes: Sequence[int] = (4, 16, 64),
    batches_per_rank: Sequence[int] = (1, 2, 4, 8),
    strategies: Sequence[str] = STRATEGIES,
    temperature: float | None = 2.0,
    num_splits: int = 10_000,
    seed: int = 0,
    epochs: int = 1,
    step_overhead: float = 0.0,
    max_atoms_per_rank: int | None = None,
) -> list[dict]:
    """One row per (W, B', strategy); see the module docstring for the columns.

    `max_atoms_per_rank` caps the lamm strategy (the baselines have no cap); samples that never
    fit are counted in `skipped`.
    """
    unknown = set(strategies) - set(STRATEGIES)
    if unknown:
        raise ValueError(f"unknown strategies {sorted(unknown)}; expected some of {STRATEGIES}")
    natoms = np.concatenate(workload.natoms)
    work = None if workload.work is None else np.concatenate(workload.work)
    sizes = [len(n) for n in workload.natoms]
    rows = []
    configurations = [(w, b) for w in world_sizes for b in batches_per_rank]
    too_large: set[int] = set()
    for world_size, batch_per_rank in progress(
        configurations, desc="balance simulation", unit="config"
    ):
        if world_size in too_large:
            continue
        group = []
        try:
            for strategy in ("random", *[s for s in strategies if s != "random"]):
                cap = max_atoms_per_rank if strategy == "lamm" else None
                sampler = DistributedBatchSampler(
                    natoms,
                    sizes,
                    world_size=world_size,
                    batch_per_rank=batch_per_rank,
                    strategy=strategy,
                    temperature=temperature,
                    num_splits=num_splits,
                    seed=seed,
                    work=work,
                    max_atoms_per_rank=cap,
                )
                row = {
                    "strategy": strategy,
                    "world_size": world_size,
                    "batch_per_rank": batch_per_rank,
                    "num_splits": num_splits,
                    "temperature": temperature,
                    "epochs": epochs,
                    "max_atoms_per_rank": cap,
                }
                group.append({**row, **_measure(sampler, natoms, work, epochs, step_overhead)})
        except TooFewSamplesError as err:
            # a small dataset (the tiny demo) has fewer samples than the larger world sizes
            log.warning("balance simulation: world size %d skipped: %s", world_size, err)
            too_large.add(world_size)
            continue
        baseline = group[0]["predicted_time"]
        for row in group:
            row["speedup_vs_random"] = baseline / row["predicted_time"]
        rows.extend(r for r in group if r["strategy"] in strategies)
    return rows


def _measure(
    sampler: DistributedBatchSampler,
    natoms: np.ndarray,
    work: np.ndarray | None,
    epochs: int,
    step_overhead: float,
) -> dict:
    mean_load = max_load = steps = samples = skipped = 0.0
    peak_atoms, max_atoms_sum = 0, 0.0
    for epoch in range(epochs):
        plan, epoch_samples = sampler.plan(epoch)
        loads = plan.loads(
            natoms[epoch_samples] if work is None else work[epoch_samples]
        )  # [steps, W]
        atoms = plan.loads(natoms[epoch_samples])  # [steps, W]
        mean_load += loads.mean(axis=1).sum()
        max_load += loads.max(axis=1).sum()
        steps += len(plan)
        samples += len(plan.sample)
        skipped += sum(len(v) for v in plan.skipped.values())
        peak_atoms = max(peak_atoms, int(atoms.max()))
        max_atoms_sum += atoms.max(axis=1).sum()
    return {
        "samples": int(samples),
        "steps": int(steps),
        "skipped": int(skipped),
        "efficiency": float(mean_load / max_load),
        "predicted_time": float(max_load + step_overhead * steps),
        "peak_atoms_per_rank": peak_atoms,
        "mean_max_atoms_per_rank": float(max_atoms_sum / steps),
    }


def summarize(rows: list[dict]) -> dict:
    """{metric: {strategy: {"W16_B1": value}}} for the JSON line of `lamm bench balance`."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for metric in ("efficiency", "speedup_vs_random", "peak_atoms_per_rank"):
        summary[metric] = {}
        for row in rows:
            key = f"W{row['world_size']}_B{row['batch_per_rank']}"
            summary[metric].setdefault(row["strategy"], {})[key] = round(float(row[metric]), 4)
    return summary
