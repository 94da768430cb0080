"""Train/val/test splits that do not leak: whole groups, or contiguous blocks within groups.

    split_by_groups(groups, val_fraction=0.1, test_fraction=0.1, *, seed=0, mode="auto")
        -> np.ndarray [n] of "train" / "val" / "test", one per frame

`groups` holds one label per frame, in file order (for MD, time order): a file, a trajectory,
a deepmd system, or the value of an info key such as FitSNAP's `config_group`. A pure function
of its arguments: the same groups, fractions and seed give the same split.

- mode "groups": whole groups go to one side. The groups are shuffled (seeded); each in turn
  goes to test while test holds fewer than its target round(test_fraction * n) frames and the
  group would not take it past 1.5 times the target, then likewise to val, else to train.
  Nothing of a group is on two sides, which measures transfer to unseen groups; a split whose
  target no group fits stays empty.
- mode "blocks": every group is cut into at most four contiguous pieces, train | val | test |
  train (val and test in a seeded order, the first train piece of seeded length), so
  consecutive MD frames are never interleaved across splits and every group is represented
  in every split. The held-out frames per group follow the fractions with the largest-remainder
  rule over all groups, so the totals are round(fraction * n) even when groups are small.
- mode "auto": "groups" when there are at least MIN_GROUPS groups and that fills every split
  asked for; otherwise "blocks" (one AIMD run, a few trajectories, a 10-frame file).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np

MODES = ("auto", "groups", "blocks")
MIN_GROUPS = 10  # fewer groups than this: whole-group splits are too coarse to follow fractions
_STREAM = 0xB10C  # separates this splitter's draws from other streams seeded with the same seed
_OVERSHOOT = 1.5  # a group may take a held-out split to at most this multiple of its target


def _targets(n: int, val_fraction: float, test_fraction: float) -> dict[str, int]:
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ValueError(f"{name} must lie in [0, 1), got {value}")
    if val_fraction + test_fraction >= 1:
        raise ValueError("val_fraction + test_fraction must be below 1")
    # half-up rounding (Python's round(0.5) is 0), and at least one frame for a positive fraction
    targets = {
        split: max(1, int(np.floor(fraction * n + 0.5))) if fraction > 0 and n > 1 else 0
        for split, fraction in (("test", test_fraction), ("val", val_fraction))
    }
    while targets["test"] + targets["val"] >= n > 0:  # keep a frame to train on: val gives first
        targets["val" if targets["val"] else "test"] -= 1
    return targets


def _group_rows(groups: Sequence[Hashable]) -> list[np.ndarray]:
    """Frame indices of each group, groups in order of first appearance."""
    rows: dict[Hashable, list[int]] = {}
    for index, group in enumerate(groups):
        rows.setdefault(group, []).append(index)
    return [np.asarray(r, dtype=np.int64) for r in rows.values()]


def _whole_groups(rows: list[np.ndarray], targets: dict[str, int], rng) -> np.ndarray:
    n = sum(len(r) for r in rows)
    out = np.full(n, "train", dtype="<U5")
    counts = {"test": 0, "val": 0}
    for g in rng.permutation(len(rows)):
        size = len(rows[g])
        for split in ("test", "val"):
            target = targets[split]
            if counts[split] < target and counts[split] + size <= _OVERSHOOT * target:
                out[rows[g]] = split
                counts[split] += size
                break
    return out


def _held_out_per_group(sizes: np.ndarray, target: int, rng) -> np.ndarray:
    """Largest-remainder allocation of `target` frames over groups of `sizes`, seeded ties."""
    total = sizes.sum()
    quota = sizes * (target / total) if total else sizes * 0.0
    take = np.floor(quota).astype(np.int64)
    remainder = quota - take
    order = np.lexsort((rng.random(len(sizes)), -remainder))  # largest remainder, random ties
    for g in order[: target - take.sum()]:
        take[g] += 1
    return take


def _blocks(rows: list[np.ndarray], targets: dict[str, int], rng) -> np.ndarray:
    n = sum(len(r) for r in rows)
    out = np.full(n, "train", dtype="<U5")
    sizes = np.asarray([len(r) for r in rows], dtype=np.int64)
    test = _held_out_per_group(sizes, targets["test"], rng)
    val = _held_out_per_group(sizes - test, targets["val"], rng)
    for g, row in enumerate(rows):
        n_train = len(row) - test[g] - val[g]
        start = int(rng.integers(0, n_train + 1))  # frames of train before the held-out blocks
        held = ["val"] * int(val[g]) + ["test"] * int(test[g])
        if rng.random() < 0.5:
            held = ["test"] * int(test[g]) + ["val"] * int(val[g])
        out[row[start : start + len(held)]] = held
    return out


def split_by_groups(
    groups: Sequence[Hashable],
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    *,
    seed: int = 0,
    mode: str = "auto",
) -> np.ndarray:
    """The split of every frame (module docstring): [n] array of "train", "val", "test"."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    rows = _group_rows(groups)
    n = len(groups)
    targets = _targets(n, val_fraction, test_fraction)
    if n == 0:
        return np.empty(0, dtype="<U5")
    if mode in ("auto", "groups"):
        out = _whole_groups(rows, targets, np.random.default_rng([seed, _STREAM, 0]))
        filled = all((out == split).any() for split, target in targets.items() if target)
        if mode == "groups" or (len(rows) >= MIN_GROUPS and filled and (out == "train").any()):
            return out
    return _blocks(rows, targets, np.random.default_rng([seed, _STREAM, 1]))


def chosen_mode(groups: Sequence[Hashable], split: np.ndarray) -> str:
    """ "groups" when no group of `groups` lies on two sides of `split`, else "blocks"."""
    sides: dict[Hashable, set[str]] = {}
    for group, side in zip(groups, split, strict=True):
        sides.setdefault(group, set()).add(str(side))
    return "groups" if all(len(s) == 1 for s in sides.values()) else "blocks"
