"""The records a fine-tuning run trains, validates and tests on, checked before anything expensive.

A downstream store needs three non-empty splits: train (what the head learns), val (the
validation curve) and test (the final evaluation, `test_metrics.json`). A user's store may lack
val or test; `plan_splits` then either fails with one line naming the store and the fix, or,
when asked (`carve_test` / `carve_val`, `lamm finetune --carve-test 0.1`), takes a share of the
*training* records for that split for this run only:

- each training record i gets a key `splitmix64(seed, stream, i)` (a pure function of the seed
  and the record index; one stream per carved split), and the round(fraction * n_train) records
  (at least one) with the smallest keys are carved: the same seed gives the same records, on
  every rank, whatever else the store holds;
- test is carved first, val from what remains; the carved records never reach training (the
  train fraction of `train_records` is then a nested subset of the remaining records).

Only the store's metadata is read (`StructureStore.indices`): this runs in well under a second.

The run records its records (`RunSplits.record`: `<out>/splits.json` and the checkpoint's
`splits`), so `lamm evaluate CHECKPOINT --store STORE --split test` scores the very records a
run carved (`StoreSplits`), not an empty split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from lamm.data.store import StructureStore

CARVE_STREAMS = {"test": 0x7E57, "val": 0x0A1D}  # separate the carve keys from other seeded streams
log = logging.getLogger(__name__)

_FIXES = {
    "test": "convert with --test-input, a split policy with test_fraction, or pass "
    "--carve-test 0.1",
    "val": "convert with --val-input, a split policy with val_fraction, or pass --carve-val 0.1",
}
_MASK64 = np.uint64(0xFFFFFFFFFFFFFFFF)


@dataclass(frozen=True)
class RunSplits:
    """Record indices (sorted int64) of each role, and how many of val/test were carved from
    train."""

    train: np.ndarray  # the training pool (before `train_fraction`)
    val: np.ndarray
    test: np.ndarray
    carved: dict[str, int]  # split -> records carved from train (only carved splits)

    def dataset_split(self, role: str) -> str:
        """The store split whose records `role` uses (`MultiStoreDataset(split=...,
        records=...)`)."""
        return "train" if role in self.carved else role

    def record(self, store: StructureStore) -> dict[str, object]:
        """What the run folder (splits.json) and the checkpoint keep: the store, and the val and
        test records when they were carved from the training split."""
        return {
            "store": str(store.path),
            "subset": store.subset,
            "structures": len(store),
            "carved": dict(self.carved),
            **{role: getattr(self, role).tolist() for role in self.carved},
        }

    def info(self) -> dict[str, int | str]:
        """What summary.json and test_metrics.json record about the splits."""
        out: dict[str, int | str] = {}
        for role in ("val", "test"):
            out[f"{role}_split"] = "carved from train" if role in self.carved else "store"
            out[f"{role}_structures"] = int(len(getattr(self, role)))
        out["train_pool_structures"] = int(len(self.train))
        return out


def splitmix64(seed: int, stream: int, index: np.ndarray) -> np.ndarray:
    """[n] uint64 keys, a pure function of (seed, stream, index): SplitMix64 of the combined
    value."""
    with np.errstate(over="ignore"):
        x = np.asarray(index, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        x = (
            x
            + np.uint64(
                (seed * 0xD1B54A32D192ED03 + stream * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
            )
        ) & _MASK64
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def carve_records(
    pool: np.ndarray, fraction: float, seed: int, stream: int, *, of: int | None = None
) -> np.ndarray:
    """The round(fraction * of) records of `pool` (at least 1; `of` defaults to len(pool)) with the
    smallest keys, sorted. Deterministic in (seed, stream, record index)."""
    if not 0 < fraction < 1:
        raise ValueError(f"a carve fraction must lie in (0, 1), got {fraction}")
    pool = np.asarray(pool, dtype=np.int64)
    size = max(1, round(fraction * (len(pool) if of is None else of)))
    if size >= len(pool):
        raise ValueError(
            f"carving {size} records leaves none of the {len(pool)} training records to train on"
        )
    order = np.argsort(splitmix64(seed, stream, pool), kind="stable")
    return np.sort(pool[order[:size]])


def plan_splits(
    store: StructureStore,
    seed: int,
    *,
    carve_test: float | None = None,
    carve_val: float | None = None,
    name: str | None = None,
) -> RunSplits:
    """The run's train pool, val and test records (module docstring); a missing split raises
    ValueError with one line naming the store (`name`, default its path) and the fix."""
    name = name or str(store.path)
    total = len(store)
    train = store.indices("train")
    if len(train) == 0:
        raise ValueError(
            f"{name} has no train split (0 of {total} structures); fine-tuning needs "
            "training records "
            "(convert the training files as --input / train files)"
        )
    splits, carved = {"train": train}, {}
    for role, fraction in (("test", carve_test), ("val", carve_val)):
        own = store.indices(role)
        if len(own) or fraction is None:
            if len(own) and fraction is not None:
                log.warning(
                    "%s has its own %s split (%d structures): not carving one", name, role, len(own)
                )
            if not len(own):
                raise ValueError(
                    f"{name} has no {role} split (0 of {total} structures); {_FIXES[role]}"
                )
            splits[role] = own
            continue
        try:
            records = carve_records(
                splits["train"], fraction, seed, CARVE_STREAMS[role], of=len(train)
            )
        except ValueError as err:
            raise ValueError(
                f"{name}: cannot carve a {role} split from {len(splits['train'])} training "
                f"records: {err}"
            ) from None
        splits[role] = records
        splits["train"] = np.setdiff1d(splits["train"], records)
        carved[role] = int(len(records))
    return RunSplits(train=splits["train"], val=splits["val"], test=splits["test"], carved=carved)


class StoreSplits:
    """A store whose splits named in `records` are given record indices (a run's carved val or
    test records); everything else is the store's own."""

    def __init__(self, store: StructureStore, records: dict[str, np.ndarray]) -> None:
        self._store, self._records = store, records

    def indices(self, split: str) -> np.ndarray:
        if split in self._records:
            return np.asarray(self._records[split], dtype=np.int64)
        return self._store.indices(split)

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)


def carved_splits(
    payload: dict[str, object], store: StructureStore, split: str
) -> StoreSplits | None:
    """The store with a checkpoint's carved records for `split` (and `all`: every carved one),
    when the store's own split is empty and the checkpoint was fine-tuned on this store (same
    subset and size); else None."""
    recorded = payload.get("splits") or {}
    carved = recorded.get("carved") or {}
    wanted = [s for s in carved if split in (s, "all") and not len(store.indices(s))]
    if not wanted or recorded.get("subset") != store.subset:
        return None
    if recorded.get("structures") != len(store):
        log.warning(
            "the checkpoint carved its %s records from a store of %s structures, %s has %d: "
            "not reused",
            "/".join(wanted),
            recorded.get("structures"),
            store.path,
            len(store),
        )
        return None
    log.info("%s: scoring the %s records the fine-tuning run carved", store.path, "/".join(wanted))
    return StoreSplits(store, {s: np.asarray(recorded[s], dtype=np.int64) for s in wanted})
