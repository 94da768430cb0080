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


def temperature_epoch(
    sizes: Sequence[int] | np.ndarray,
    temperature: float | None,
    seed: int,
    epoch: int,
) -> list[np.ndarray]:
    """The samples of one epoch, per subset: local indices 0..n_i-1 drawn to the virtual size.

    Subset i (n_i samples, virtual size v_i = `temperature_sizes`; v_i = n_i when `temperature`
    is None) contributes floor(v_i / n_i) copies of every sample plus v_i mod n_i further
    samples drawn without replacement, shuffled. So every sample appears q or q + 1 times, and
    its expected count is exactly v_i / n_i (unbiased), unlike drawing v_i with replacement
    (which leaves about 1/e of a subset of size v_i unseen). The largest subset is seen exactly
    once. A pure function of (sizes, temperature, seed, epoch): resumed runs redraw it exactly.
    """
    n = np.asarray(sizes, dtype=np.int64)
    virtual = n.copy() if temperature is None else temperature_sizes(n, temperature)
    if epoch < 0:
        raise ValueError(f"epoch must be non-negative, got {epoch}")
    draws = []
    for subset, (count, target) in enumerate(zip(n.tolist(), virtual.tolist(), strict=True)):
        rng = np.random.default_rng([seed, epoch, subset, _EPOCH_STREAM])
        if count == 0:
            draws.append(np.zeros(0, dtype=np.int64))
            continue
        repeats, remainder = divmod(target, count)
        extra = rng.permutation(count)[:remainder]
        local = np.concatenate([np.tile(np.arange(count, dtype=np.int64), repeats), extra])
        draws.append(rng.permutation(local))
    return draws


# Distinguishes this module's random streams from others seeded with the same (seed, epoch).
_EPOCH_STREAM = 0x7E3D
