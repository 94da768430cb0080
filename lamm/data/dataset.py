"""A map-style dataset over several stores (one per subset) for one split, returning graphs.

Subset d (its position in `stores`) is head d: every graph carries `dataset_index = d`. Samples
are numbered globally: the split's samples of store 0, then of store 1, and so on. Items are
addressed by a `SampleKey` (global index, epoch, position in the epoch) that the batch sampler
makes; the denoising noise of a sample is drawn from a generator seeded with (seed, epoch,
position), so it is fresh each time the sample is drawn (a repeat within an epoch has another
position) and identical when a resumed run draws that position again.

Labels are returned as stored (eV, eV/Angstrom); normalization happens in the training step
with the `Normalizer`. Denoising subsets (store info `task == "denoising"`) get noisy positions
and force labels minus the noise (`lamm.data.noise`), with force mask 1 and energy and stress
masks 0.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from lamm.data.graph import AtomicGraph, structure_to_graph
from lamm.data.noise import DEFAULT_SIGMA, MODES, denoise
from lamm.data.store import SPLITS, StructureStore

_NOISE_STREAM = 0x0D15E  # separates the noise stream from others seeded with (seed, epoch, ...)


class SampleKey(NamedTuple):
    """What a batch sampler hands to the dataset (small and picklable, for DataLoader workers)."""

    index: int  # global sample index over the dataset's stores
    epoch: int
    position: int  # position of this draw in the epoch (distinct for repeats of one sample)


class MultiStoreDataset(Dataset):
    """Graphs of one split of several stores; `dataset[SampleKey(...)]` or `dataset[i]`.

    An integer index i means `SampleKey(i, 0, i)` (evaluation, or any use without a sampler).
    """

    def __init__(
        self,
        stores: Sequence[StructureStore | str | os.PathLike],
        split: str = "train",
        *,
        cutoff: float = 6.0,
        max_neighbors: int | None = None,
        noise_sigma: float = DEFAULT_SIGMA,
        noise_mode: str = "relative",
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
        records: Sequence[np.ndarray] | None = None,
    ) -> None:
        """`records`: per store, the record indices to use instead of its whole split (a
        subsample, e.g. a fraction of a downstream training set); each must belong to the split."""
        if not stores:
            raise ValueError("a dataset needs at least one store")
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
        if noise_mode not in MODES:
            raise ValueError(f"unknown noise_mode {noise_mode!r}; expected one of {MODES}")
        if not noise_sigma > 0:
            raise ValueError(f"noise_sigma must be positive, got {noise_sigma}")
        if not cutoff > 0:
            raise ValueError(f"cutoff must be positive, got {cutoff}")
        self.stores = [
            store if isinstance(store, StructureStore) else StructureStore(store)
            for store in stores
        ]
        self.split = split
        self.cutoff, self.max_neighbors = float(cutoff), max_neighbors
        self.noise_sigma, self.noise_mode, self.seed, self.dtype = (
            float(noise_sigma),
            noise_mode,
            int(seed),
            dtype,
        )
        self.store_indices = [
            store.indices(split) for store in self.stores
        ]  # split sample -> record
        if records is not None:
            if len(records) != len(self.stores):
                raise ValueError(
                    f"records: one index array per store expected ({len(self.stores)}), got "
                    f"{len(records)}"
                )
            for store, split_records, chosen in zip(
                self.stores, self.store_indices, records, strict=True
            ):
                outside = np.setdiff1d(np.asarray(chosen, dtype=np.int64), split_records)
                if len(outside):
                    raise ValueError(
                        f"{store.path}: records {outside[:5].tolist()} are not in the "
                        f"{split!r} split"
                    )
            self.store_indices = [np.asarray(chosen, dtype=np.int64) for chosen in records]
        self.sizes = np.array([len(i) for i in self.store_indices], dtype=np.int64)  # [D]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)])  # [D + 1]
        self.denoising = [store.info.get("task") == "denoising" for store in self.stores]
        self.subsets = [store.subset for store in self.stores]

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @functools.cached_property
    def natoms(self) -> np.ndarray:
        """[len] atom count of every sample, in global order (what samplers balance)."""
        return np.concatenate(
            [store.natoms[idx] for store, idx in zip(self.stores, self.store_indices, strict=True)]
        ).astype(np.int64)

    @property
    def dataset_index(self) -> np.ndarray:
        """[len] subset (head) of every sample, in global order."""
        return np.repeat(np.arange(len(self.stores)), self.sizes)

    def locate(self, index: int) -> tuple[int, int]:
        """(subset, record index in its store) of global sample `index`."""
        if not 0 <= index < len(self):
            raise IndexError(f"sample {index} out of range for a dataset of {len(self)} samples")
        subset = int(np.searchsorted(self.offsets, index, side="right") - 1)
        return subset, int(self.store_indices[subset][index - self.offsets[subset]])

    def noise_generator(self, key: SampleKey) -> np.random.Generator:
        return np.random.default_rng([self.seed, key.epoch, key.position, _NOISE_STREAM])

    def __getitem__(self, key: SampleKey | int) -> AtomicGraph:
        if not isinstance(key, SampleKey):
            key = SampleKey(int(key), 0, int(key))
        subset, record_index = self.locate(key.index)
        record = self.stores[subset].get_record(record_index)
        if self.denoising[subset]:
            noisy, labels = denoise(
                record.positions,
                self.noise_sigma,
                self.noise_mode,
                self.noise_generator(key),
                cell=record.cell if record.pbc.any() else None,
                pbc=record.pbc if record.pbc.any() else None,
            )
            record = dataclasses.replace(
                record, positions=noisy, forces=labels, energy=None, stress=None
            )
        return structure_to_graph(
            record,
            cutoff=self.cutoff,
            max_neighbors=self.max_neighbors,
            dataset_index=subset,
            sample_index=record_index,
            dtype=self.dtype,
        )

    def __repr__(self) -> str:
        parts = ", ".join(
            f"{name}={size}" for name, size in zip(self.subsets, self.sizes.tolist(), strict=True)
        )
        return f"MultiStoreDataset(split={self.split!r}, {parts})"
