"""Selection: where the committee of students disagrees most on forces (DP-GEN's model_devi).

For one configuration with N atoms and K models predicting forces F_k,i (eV/Angstrom):

    committee (K >= 2):   dev = max_i sqrt( mean_k | F_k,i - mean_k F_k,i |^2 )
    student vs teacher:   dev = max_i | F_student,i - F_teacher,i |

(the first is DP-GEN's `max_devi_f`; the second is the same formula for a "committee" of the
student and the teacher, without the 1/2 of two members' standard deviation, so it is the error
itself). The trust window [lo, hi] sorts configurations into three kinds:

    dev < lo          accurate: the students already agree, nothing to learn
    lo <= dev <= hi   candidate: selected, highest deviation first, at most `cap` per round
    dev > hi, or NaN  failed: an exploded or unphysical configuration; not labeled

Pure functions on arrays; the tests build the force arrays by hand.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def committee_deviation(forces: np.ndarray) -> float:
    """forces [K, N, 3] (K >= 2 models, one configuration) -> max over atoms of the committee's
    force standard deviation (eV/Angstrom); NaN when any prediction is not finite."""
    forces = np.asarray(forces, dtype=np.float64)
    if forces.ndim != 3 or forces.shape[2] != 3 or forces.shape[0] < 2:
        raise ValueError(f"committee forces must have shape [K >= 2, N, 3], got {forces.shape}")
    if not np.isfinite(forces).all():
        return math.nan
    if forces.shape[1] == 0:
        return 0.0
    spread = forces - forces.mean(axis=0, keepdims=True)  # [K, N, 3]
    per_atom = np.sqrt((spread**2).sum(axis=2).mean(axis=0))  # [N]
    return float(per_atom.max())


def pair_deviation(forces: np.ndarray, reference: np.ndarray) -> float:
    """forces, reference [N, 3] -> max over atoms of |F - F_ref| (eV/Angstrom); NaN when not
    finite."""
    forces, reference = (
        np.asarray(forces, dtype=np.float64),
        np.asarray(reference, dtype=np.float64),
    )
    if forces.shape != reference.shape or forces.ndim != 2 or forces.shape[1] != 3:
        raise ValueError(
            f"forces and reference must both have shape [N, 3], got {forces.shape} and "
            f"{reference.shape}"
        )
    if not (np.isfinite(forces).all() and np.isfinite(reference).all()):
        return math.nan
    if len(forces) == 0:
        return 0.0
    return float(np.linalg.norm(forces - reference, axis=1).max())


@dataclass(frozen=True)
class Selection:
    """The outcome of one round's selection (indices into the explored configurations)."""

    selected: np.ndarray  # [s] int64, highest deviation first
    accurate: int  # dev < lo
    candidates: int  # lo <= dev <= hi (selected are the first `cap` of them)
    failed: int  # dev > hi or not finite


def select_configurations(
    deviations: Sequence[float] | np.ndarray, lo: float, hi: float, cap: int
) -> Selection:
    """The candidates of the trust window [lo, hi], highest deviation first, at most `cap`
    (ties: the earlier configuration first, so the choice is reproducible)."""
    if not 0 <= lo <= hi:
        raise ValueError(f"the trust window needs 0 <= lo <= hi, got lo={lo}, hi={hi}")
    if cap < 0:
        raise ValueError(f"cap must be >= 0, got {cap}")
    dev = np.asarray(deviations, dtype=np.float64).reshape(-1)  # [n]
    finite = np.isfinite(dev)
    inside = finite & (dev >= lo) & (dev <= hi)
    candidates = np.flatnonzero(inside)
    order = candidates[
        np.lexsort((candidates, -dev[candidates]))
    ]  # deviation descending, then index
    return Selection(
        selected=order[:cap].astype(np.int64),
        accurate=int((finite & (dev < lo)).sum()),
        candidates=len(candidates),
        failed=int((~finite | (dev > hi)).sum()),
    )


def evenly_spaced(count: int, cap: int) -> np.ndarray:
    """At most `cap` of `count` configurations, evenly spread (round 0: no committee yet)."""
    if count <= cap:
        return np.arange(count, dtype=np.int64)
    if cap <= 0:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.round(np.linspace(0, count - 1, cap)).astype(np.int64))


def deviation_statistics(deviations: Sequence[float] | np.ndarray) -> dict[str, float]:
    """min, mean, median, 90th percentile and max of the finite deviations (eV/Angstrom), NaN if
    none."""
    dev = np.asarray(deviations, dtype=np.float64).reshape(-1)
    dev = dev[np.isfinite(dev)]
    names = ("dev_min", "dev_mean", "dev_median", "dev_p90", "dev_max")
    if len(dev) == 0:
        return dict.fromkeys(names, math.nan)
    values = (dev.min(), dev.mean(), np.median(dev), np.percentile(dev, 90), dev.max())
    return {name: float(value) for name, value in zip(names, values, strict=True)}


def deviation_histogram(
    deviations: Sequence[float] | np.ndarray, edges: Sequence[float]
) -> list[int]:
    """Counts of the finite deviations in the bins of `edges` (the per-round distribution)."""
    dev = np.asarray(deviations, dtype=np.float64).reshape(-1)
    counts, _ = np.histogram(dev[np.isfinite(dev)], bins=np.asarray(edges, dtype=np.float64))
    return [int(c) for c in counts]
