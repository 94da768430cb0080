"""How fast structures come out of a `StructureStore` versus a fairchem-style pickled-Data LMDB.

Both hold the same structures. Reads are random (a seeded permutation, repeated to `reads`),
each one decoded: the store to a `StructureRecord` of numpy arrays (zero-copy views of the LMDB
value), the fairchem LMDB to the `torch_geometric.data.Data` its `pickle.loads` returns (tensors),
opening one read transaction per read as fairchem's datasets do. Measured in one process, and
with 2 DataLoader workers whose collate reduces each batch to its atom count, so the number is
the reading and decoding rate rather than the cost of sending samples between processes.
Every measurement follows a warm-up pass, so both files are in the page cache.

Without an input store the benchmark builds its own: Cu(111) 3x4x6 slabs (72 atoms) with an
adsorbate of 1-6 atoms (73-78 atoms, like OC20), rattled, bottom half fixed, OC20 tags, labeled
by ASE's EMT.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import lmdb
import numpy as np
import torch
from ase.build import add_adsorbate, fcc111, molecule
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms
from torch_geometric.data import Data

from lamm.data.record import StructureRecord
from lamm.data.store import StructureStore, StructureStoreWriter
from lamm.log import progress

ADSORBATES = ("H", "O", "OH", "CO", "N2", "H2O", "CH3", "CH3OH")  # 1 to 6 atoms, all EMT elements


def emt_slab(seed: int) -> StructureRecord:
    """One EMT-labeled Cu(111) slab with an adsorbate, 73-78 atoms."""
    rng = np.random.default_rng(seed)
    slab = fcc111("Cu", size=(3, 4, 6), vacuum=8.0)
    adsorbate = molecule(ADSORBATES[rng.integers(len(ADSORBATES))])
    cell = slab.cell.array
    x, y = rng.uniform(0.0, 1.0, 2) @ cell[:2, :2]
    add_adsorbate(slab, adsorbate, height=float(rng.uniform(1.6, 2.2)), position=(x, y))
    slab.positions += rng.normal(0.0, 0.05, slab.positions.shape)
    layer = np.repeat(np.arange(6), 12)  # fcc111 lists atoms layer by layer, bottom first
    slab.set_tags(np.concatenate([(layer >= 3).astype(int), np.full(len(adsorbate), 2)]))
    slab.set_constraint(FixAtoms(indices=np.flatnonzero(layer < 3)))
    slab.calc = EMT()
    slab.get_potential_energy()
    return StructureRecord.from_atoms(slab, source_id=f"emt-slab-{seed}")


def build_store(path: Path, count: int, seed: int, processes: int = 2) -> StructureStore:
    """A store of `count` EMT slabs (labeled in `processes` processes)."""
    seeds = [seed * 1_000_003 + i for i in range(count)]
    with (
        get_context("fork").Pool(processes) as pool,
        StructureStoreWriter(path, subset="bench", source="emt-slabs") as writer,
    ):
        for record in progress(
            pool.imap(emt_slab, seeds, chunksize=16),
            desc="EMT slabs",
            total=count,
            unit="structures",
        ):
            writer.add(record)
    return StructureStore(path)


def fairchem_data(record: StructureRecord, index: int) -> Data:
    """The record as fairchem's AtomsToGraphs + preprocess_ef.py store it (legacy y/force)."""
    n = record.natoms
    return Data(
        pos=torch.tensor(record.positions, dtype=torch.float32),
        cell=torch.tensor(record.cell, dtype=torch.float32).view(1, 3, 3),
        atomic_numbers=torch.tensor(np.asarray(record.atomic_numbers), dtype=torch.float32),
        natoms=n,
        tags=torch.tensor(
            np.zeros(n) if record.tags is None else np.asarray(record.tags), dtype=torch.long
        ),
        fixed=torch.tensor(
            np.zeros(n) if record.fixed is None else np.asarray(record.fixed), dtype=torch.float32
        ),
        sid=index,
        fid=0,
        y=0.0 if record.energy is None else record.energy,
        force=torch.tensor(
            np.zeros((n, 3)) if record.forces is None else record.forces, dtype=torch.float32
        ),
    )


def write_pickle_lmdb(path: Path, store: StructureStore, count: int) -> None:
    env = lmdb.open(str(path), subdir=False, map_size=2**40, meminit=False, map_async=True)
    with env.begin(write=True) as txn:
        for index in progress(range(count), desc="pickled Data LMDB", unit="structures"):
            txn.put(
                f"{index}".encode("ascii"),
                pickle.dumps(fairchem_data(store.get_record(index), index), protocol=-1),
            )
        txn.put(b"length", pickle.dumps(count, protocol=-1))
    env.sync()
    env.close()


class PickleLmdb:
    """fairchem's way of reading: lazily opened per process, one transaction per read, unpickle."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._env: lmdb.Environment | None = None
        self._pid = -1

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "_env": None, "_pid": -1}

    def get(self, index: int) -> Data:
        if self._pid != os.getpid():
            if self._env is not None:
                # inherited through fork: py-lmdb refuses a second open of the file
                self._env.close()
            self._env = lmdb.open(
                str(self.path),
                subdir=False,
                readonly=True,
                lock=False,
                readahead=False,
                meminit=False,
                max_readers=1,
            )
            self._pid = os.getpid()
        return pickle.loads(self._env.begin().get(f"{index}".encode("ascii")))


class _Reads(torch.utils.data.Dataset):
    def __init__(self, read: Callable[[int], Any], size: int) -> None:
        self.read, self.size = read, size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> Any:
        return self.read(index)


def _atom_count(batch: list[Any]) -> tuple[int, int]:
    return len(batch), sum(int(item.natoms) for item in batch)


def reads_per_second_one_process(read: Callable[[int], Any], order: np.ndarray) -> float:
    start = time.perf_counter()
    for index in order:
        read(int(index))
    return len(order) / (time.perf_counter() - start)


def reads_per_second_workers(
    read: Callable[[int], Any], size: int, order: np.ndarray, workers: int, batch_size: int = 64
) -> float:
    """Rate after the first batch arrives (worker start-up excluded)."""
    if len(order) < 2 * batch_size * workers:
        raise ValueError(
            f"{len(order)} reads are too few to time {workers} workers with batches of {batch_size}"
        )
    loader = torch.utils.data.DataLoader(
        _Reads(read, size),
        batch_size=batch_size,
        sampler=order.tolist(),
        num_workers=workers,
        collate_fn=_atom_count,
        multiprocessing_context="fork",
    )
    iterator = iter(loader)
    next(iterator)
    start = time.perf_counter()
    count = sum(batch for batch, _ in iterator)
    return count / (time.perf_counter() - start)


@dataclass
class Measurement:
    reader: str  # lamm_store | pickle_lmdb
    mode: str  # 1_process | 2_workers
    reads_per_s: float
    bytes_per_record: float


def _pickle_bytes(path: Path, count: int) -> float:
    """Mean value size of the pickled-Data LMDB (opened and closed before any timed read)."""
    env = lmdb.open(str(path), subdir=False, readonly=True, lock=False)
    try:
        with env.begin() as txn:
            sizes = [len(txn.get(f"{i}".encode("ascii"))) for i in range(count)]
    finally:
        env.close()
    return float(np.mean(sizes))


def run(
    store_path: Path,
    pickle_path: Path,
    count: int,
    reads: int,
    seed: int,
    repeats: int,
    workers: int = 2,
) -> list[Measurement]:
    """Best of `repeats` measurements of each reader in each mode."""
    store = StructureStore(store_path)
    pickled = PickleLmdb(pickle_path)
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(count) for _ in range(-(-reads // count))])[:reads]
    readers: dict[str, Callable[[int], Any]] = {
        "lamm_store": store.get_record,
        "pickle_lmdb": pickled.get,
    }
    sizes = {
        "lamm_store": float(
            np.mean([len(store.get_record(i).encode()) for i in range(count)])
        ),  # the stored bytes
        "pickle_lmdb": _pickle_bytes(pickle_path, count),
    }
    results = []
    for name, read in readers.items():
        reads_per_second_one_process(
            read, np.arange(count)
        )  # warm-up: every record in the page cache
        best = max(reads_per_second_one_process(read, order) for _ in range(repeats))
        results.append(Measurement(name, "1_process", best, sizes[name]))
        best = max(reads_per_second_workers(read, count, order, workers) for _ in range(repeats))
        results.append(Measurement(name, f"{workers}_workers", best, sizes[name]))
    return results


def benchmark(
    workdir: Path,
    *,
    store_path: Path | None = None,
    count: int = 4000,
    reads: int = 40_000,
    seed: int = 0,
    repeats: int = 3,
    workers: int = 2,
) -> tuple[list[Measurement], int]:
    """Build the inputs in `workdir` (or use `store_path`) and measure; returns (results,
    structures)."""
    if count < 1 or repeats < 1 or workers < 1:
        raise ValueError("count, repeats and workers must be positive")
    if reads < 256 * workers:
        raise ValueError(
            f"reads must be at least {256 * workers} (two batches of 64 per worker, twice)"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    if store_path is None:
        store_path = workdir / "emt_slabs.lmdb"
        build_store(store_path, count, seed)
    store = StructureStore(store_path)
    count = min(count, len(store))
    if count == 0:
        raise ValueError(f"{store_path} holds no structures")
    pickle_path = workdir / "fairchem_pickled_data.lmdb"
    write_pickle_lmdb(pickle_path, store, count)
    return run(store_path, pickle_path, count, reads, seed, repeats, workers), count


def rows(results: Sequence[Measurement], count: int, reads: int) -> list[dict[str, Any]]:
    """CSV rows; `speedup_vs_pickle` compares readers in the same mode."""
    pickle_rate = {m.mode: m.reads_per_s for m in results if m.reader == "pickle_lmdb"}
    return [
        {
            "reader": m.reader,
            "mode": m.mode,
            "structures": count,
            "reads": reads,
            "reads_per_s": round(m.reads_per_s, 1),
            "bytes_per_record": round(m.bytes_per_record, 1),
            "speedup_vs_pickle": round(m.reads_per_s / pickle_rate[m.mode], 3),
        }
        for m in results
    ]
