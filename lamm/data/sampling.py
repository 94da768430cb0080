"""Temperature sampling of subsets (JMP, T = 2 in LaMM; SPEC section 2)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def temperature_sizes(sizes: Sequence[int] | np.ndarray, temperature: float = 2.0) -> np.ndarray:
    """Virtual epoch size of each subset: v_i = N_max * (n_i / N_max)^(1/T), rounded.

    Subset i is drawn with probability proportional to n_i^(1/T); LaMM keeps the largest
    subset's count fixed (it is seen once per epoch) and repeats the smaller ones, so
    T = 1 leaves the sizes unchanged and T -> infinity makes all subsets as large as the
    largest. Empty subsets stay empty.
    """
    n = np.asarray(sizes, dtype=np.float64)
    if n.ndim != 1 or len(n) == 0:
        raise ValueError("sizes must be a non-empty 1-D sequence")
    if (n < 0).any():
        raise ValueError(f"sizes must be non-negative, got {n.tolist()}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    largest = n.max()
    if largest == 0:
        return np.zeros(len(n), dtype=np.int64)
    virtual = largest * (n / largest) ** (1.0 / temperature)
    return np.rint(virtual).astype(np.int64)
