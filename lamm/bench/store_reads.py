"""How fast structures come out of a `StructureStore` versus a fairchem-style pickled-Data LMDB.

Both hold the same structures. Reads are random (a seeded permutation, repeated to `reads`),
each one decoded, in one of two ways (`DECODES`), both measured:
- `data`: both sides end as the same kind of object, a `torch_geometric.data.Data` with the same
  fields and dtypes (`fairchem_data`: what a PyTorch loader hands on): the store's record is
  converted to it, the fairchem LMDB's value unpickles to it;
- `native`: each side's own decode: the store to a `StructureRecord` of numpy arrays (zero-copy
  views of the LMDB value), the fairchem LMDB to its unpickled `Data`. Not the same object: the
  store's side skips building tensors, which the `data` mode charges it for.
The fairchem side opens one read transaction per read, as fairchem's datasets do. Measured in
one process, and with 2 DataLoader workers whose collate reduces each batch to its atom count,
so the number is the reading and decoding rate rather than the cost of sending samples between
processes. The readers are interleaved: each repeat times every reader once, in an order that
rotates per repeat, so a burst of load from other processes hits both sides alike; the table
keeps the median and the range over repeats. A warm-up pass puts both files in the page cache.

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


DECODES = ("data", "native")
READERS = ("lamm_store", "pickle_lmdb")


class _StoreAsData:
    """The store's record as the `Data` the pickled LMDB holds (the `data` decode)."""

    def __init__(self, store: StructureStore) -> None:
        self.store = store

    def __call__(self, index: int) -> Data:
        return fairchem_data(self.store.get_record(index), index)


@dataclass
class Measurement:
    reader: str  # lamm_store | pickle_lmdb
    mode: str  # 1_process | <n>_workers
    decode: str  # data | native (DECODES)
    rates: list[float]  # reads/s of each repeat
    bytes_per_record: float

    @property
    def reads_per_s(self) -> float:
        return float(np.median(self.rates))


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
    """Every reader in every decode and mode, `repeats` times, interleaved (see the module)."""
    store = StructureStore(store_path)
    pickled = PickleLmdb(pickle_path)
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(count) for _ in range(-(-reads // count))])[:reads]
    readers: dict[tuple[str, str], Callable[[int], Any]] = {
        ("lamm_store", "data"): _StoreAsData(store),
        ("pickle_lmdb", "data"): pickled.get,
        ("lamm_store", "native"): store.get_record,
        ("pickle_lmdb", "native"): pickled.get,
    }
    sizes = {
        # the stored bytes
        "lamm_store": float(np.mean([len(store.get_record(i).encode()) for i in range(count)])),
        "pickle_lmdb": _pickle_bytes(pickle_path, count),
    }
    for reader in READERS:  # warm-up: every record in the page cache
        reads_per_second_one_process(readers[(reader, "native")], np.arange(count))
    modes: dict[str, Callable[[Callable[[int], Any]], float]] = {
        "1_process": lambda read: reads_per_second_one_process(read, order),
        f"{workers}_workers": lambda read: reads_per_second_workers(read, count, order, workers),
    }
    results = {
        (reader, mode, decode): Measurement(reader, mode, decode, [], sizes[reader])
        for decode in DECODES
        for mode in modes
        for reader in READERS
    }
    keys = list(results)
    for repeat in range(repeats):
        shift = repeat % len(keys)
        for reader, mode, decode in keys[shift:] + keys[:shift]:
            rate = modes[mode](readers[(reader, decode)])
            results[(reader, mode, decode)].rates.append(rate)
    return list(results.values())


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
    """CSV rows: the median and range over repeats; `speedup_vs_pickle` compares the medians of
    the readers in the same decode and mode, and `apart` says whether their ranges do not
    overlap."""
    pickle = {(m.mode, m.decode): m for m in results if m.reader == "pickle_lmdb"}
    out = []
    for m in results:
        other = pickle[(m.mode, m.decode)]
        out.append(
            {
                "reader": m.reader,
                "decode": m.decode,
                "mode": m.mode,
                "structures": count,
                "reads": reads,
                "repeats": len(m.rates),
                "reads_per_s": round(m.reads_per_s, 1),
                "reads_per_s_min": round(min(m.rates), 1),
                "reads_per_s_max": round(max(m.rates), 1),
                "bytes_per_record": round(m.bytes_per_record, 1),
                "speedup_vs_pickle": round(m.reads_per_s / other.reads_per_s, 3),
                "apart": min(m.rates) > max(other.rates) or max(m.rates) < min(other.rates),
            }
        )
    return out
