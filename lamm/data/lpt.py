"""Greedy longest-processing-time (LPT) assignment of samples to ranks, many batches at once.

Inside one batch the samples are taken largest first and each goes to the rank with the least
work so far (Graham's LPT rule; fairchem's `BalancedBatchSampler` and LaMM's step 3). With a
memory cap, a sample goes to the least loaded rank that still has room for its atoms, and is
deferred when none has. Ties go to the lowest rank, so the result is deterministic.
"""

from __future__ import annotations

import numpy as np


def assign_lpt(
    batches: list[np.ndarray],
    work: np.ndarray,
    natoms: np.ndarray,
    world_size: int,
    cap: int | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """LPT inside every batch at once: largest sample first, to the least loaded rank with room.

    Returns (sample, batch, rank) of the placed samples and the samples deferred by the cap.
    Vectorized over batches: one pass per position in the sorted batches, not per sample.
    """
    empty = np.zeros(0, dtype=np.int64)
    if not batches:
        return empty, empty, empty, empty
    lengths = np.array([len(b) for b in batches])
    index = np.full((len(batches), lengths.max()), -1, dtype=np.int64)  # [K, P]
    index[np.arange(lengths.max()) < lengths[:, None]] = np.concatenate(batches)
    valid = index >= 0
    keys = np.where(valid, work[index], -np.inf)  # [K, P]
    order = np.argsort(-keys, axis=1, kind="stable")
    index, valid = np.take_along_axis(index, order, 1), np.take_along_axis(valid, order, 1)
    costs = np.where(valid, work[index], 0.0)  # [K, P]
    atoms = np.where(valid, natoms[index], 0)  # [K, P]
    rows = np.arange(len(batches))
    loads = np.zeros((len(batches), world_size), dtype=np.float64)  # [K, W]
    filled = np.zeros((len(batches), world_size), dtype=np.int64)  # [K, W] atoms per rank
    rank = np.full(index.shape, -1, dtype=np.int64)
    for p in range(index.shape[1]):
        candidates = (
            loads if cap is None else np.where(filled + atoms[:, p : p + 1] <= cap, loads, np.inf)
        )
        best = candidates.argmin(axis=1)  # [K]
        ok = valid[:, p] & np.isfinite(candidates[rows, best])
        rank[ok, p] = best[ok]
        loads[rows[ok], best[ok]] += costs[ok, p]
        filled[rows[ok], best[ok]] += atoms[ok, p]
    placed = rank >= 0
    batch_of = np.broadcast_to(rows[:, None], index.shape)
    return index[placed], batch_of[placed], rank[placed], index[valid & ~placed]
