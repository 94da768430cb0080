"""`StructureStore`: the one on-disk format of the project (an LMDB file of encoded records).

Layout of a store file (LMDB, `subdir=False`, two named databases):
- `records`: key = sample index as 8-byte big-endian integer, value = `StructureRecord.encode()`.
- `meta`: `info` -> JSON (count, subset, source, energy_kind, label counts, element counts, ...),
  `natoms` -> int32[count], `split` -> uint8[count] (0 train, 1 val, 2 test).

So samplers, load balancers and statistics read two small arrays and never decode samples.

Readers open the file once per process (`readonly=True, lock=False`) and reopen it after a fork,
so DataLoader workers each get their own environment; a pickled store carries only its path. Writers
write to a temporary file beside the target and rename it when complete: a store either exists whole
or not at all, and an interrupted conversion leaves nothing behind.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import lmdb
import numpy as np
from ase import Atoms

from lamm import __version__
from lamm.data.lmdb_check import check_lmdb_file
from lamm.data.record import MAX_ATOMIC_NUMBER, StructureRecord

log = logging.getLogger(__name__)

FORMAT_NAME = "lamm-structure-store"
FORMAT_VERSION = 1
SPLITS = {"train": 0, "val": 1, "test": 2}
ENERGY_KINDS = ("total", "adsorption", "none")  # "none": the source has no energies (PubChem3D)
_MAP_SIZE = 2**40  # address space only; the file grows with its content
_RECORDS, _META = b"records", b"meta"


def _key(index: int) -> bytes:
    return int(index).to_bytes(8, "big")


# One read-only environment per store file and process, shared by every StructureStore on that
# file: LMDB (and py-lmdb's guard) forbid opening one file twice in a process, and handles must
# not cross a fork. Keyed by (device, inode), so a store re-written at the same path is a new file.
_ENVIRONMENTS: dict[tuple[int, int], tuple[int, lmdb.Environment, Any, Any]] = {}


def _file_identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_dev, stat.st_ino


def _environment(path: Path, file_id: tuple[int, int]) -> tuple[lmdb.Environment, Any, Any]:
    """(environment, records db, meta db) of a store file, opened once per process."""
    entry = _ENVIRONMENTS.get(file_id)
    if entry is not None and entry[0] == os.getpid():
        return entry[1:]
    if entry is not None:
        # Inherited through fork (a DataLoader worker): drop the parent's mapping in this
        # process, then open our own.
        entry[1].close()
    check_lmdb_file(
        path
    )  # a file cut short would SIGBUS inside LMDB's mmap: fail with a message instead
    env = lmdb.open(
        str(path),
        subdir=False,
        readonly=True,
        lock=False,
        readahead=False,
        meminit=False,
        max_dbs=2,
    )
    try:
        handles = (env, env.open_db(_RECORDS, create=False), env.open_db(_META, create=False))
    except lmdb.Error:
        env.close()
        raise
    _ENVIRONMENTS[file_id] = (os.getpid(), *handles)
    return handles


class StructureStore:
    """Read-only access to a store file. `len(store)`, `store.natoms`, `store.get_atoms(i)`."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no structure store at {self.path}")
        self._file_id = _file_identity(self.path)
        try:
            env, _, meta_db = _environment(self.path, self._file_id)
            with env.begin(db=meta_db) as txn:
                info_raw = txn.get(b"info")
                natoms_raw = txn.get(b"natoms")
                split_raw = txn.get(b"split")
        except lmdb.Error as err:
            raise ValueError(f"{self.path} is not a readable structure store: {err}") from err
        if info_raw is None or natoms_raw is None or split_raw is None:
            raise ValueError(f"{self.path} is not a structure store (metadata missing)")
        self.info: dict[str, Any] = json.loads(info_raw)
        if self.info.get("format") != FORMAT_NAME or self.info.get("version") != FORMAT_VERSION:
            raise ValueError(
                f"{self.path}: unsupported store format {self.info.get('format')} "
                f"v{self.info.get('version')}"
            )
        self.natoms: np.ndarray = np.frombuffer(natoms_raw, dtype="<i4").copy()
        self.split: np.ndarray = np.frombuffer(split_raw, dtype="u1").copy()
        if len(self.natoms) != self.info["count"] or len(self.split) != self.info["count"]:
            raise ValueError(
                f"{self.path}: metadata arrays disagree with count {self.info['count']}"
            )

    def __len__(self) -> int:
        return int(self.info["count"])

    @property
    def subset(self) -> str:
        return str(self.info["subset"])

    @property
    def energy_kind(self) -> str:
        return str(self.info["energy_kind"])

    @property
    def element_counts(self) -> np.ndarray:
        """[119] int64: number of atoms of each element (index = atomic number)."""
        return np.asarray(self.info["element_atoms"], dtype=np.int64)

    @property
    def has_stress(self) -> bool:
        """Whether any record has a stress label: the writer's count (`with_stress`), or for a
        store written before that count existed, whether one of its first 64 records has one."""
        if "with_stress" in self.info:
            return int(self.info["with_stress"]) > 0
        return any(self.get_record(i).stress is not None for i in range(min(len(self), 64)))

    def indices(self, split: str) -> np.ndarray:
        """Sample indices of one split (`train`, `val`, `test`)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
        return np.flatnonzero(self.split == SPLITS[split])

    def get_record(self, index: int) -> StructureRecord:
        """The decoded arrays of sample `index` (the fast path used by training)."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {self.path} with {len(self)} samples")
        env, records, _ = _environment(self.path, self._file_id)
        try:
            with env.begin(db=records, buffers=False) as txn:
                raw = txn.get(_key(index))
        except lmdb.Error as err:  # a corrupted page (MDB_CORRUPTED, MDB_PAGE_NOTFOUND)
            raise ValueError(
                f"{self.path}: record {index} cannot be read, the store is corrupted: {err}"
            ) from err
        if raw is None:
            raise KeyError(f"{self.path}: record {index} missing although count is {len(self)}")
        return StructureRecord.decode(raw)

    def get_atoms(self, index: int) -> Atoms:
        """Sample `index` as ase.Atoms; `atoms.calc.results` holds the labels the source has."""
        atoms = self.get_record(index).to_atoms()
        atoms.info["subset"] = self.subset
        atoms.info["energy_kind"] = self.energy_kind
        return atoms

    def __iter__(self) -> Iterator[StructureRecord]:
        env, records, _ = _environment(self.path, self._file_id)
        with env.begin(db=records, buffers=False) as txn:
            for _, raw in txn.cursor():
                yield StructureRecord.decode(raw)

    def __repr__(self) -> str:
        return f"StructureStore({str(self.path)!r}, subset={self.subset!r}, samples={len(self)})"


class StructureStoreWriter:
    """Write a store atomically: records go to `<path>.tmp-<pid>`, renamed on `close()`.

    Use as a context manager; an exception (or KeyboardInterrupt) removes the temporary file.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        subset: str,
        source: str,
        energy_kind: str = "total",
        extra_info: Mapping[str, Any] | None = None,
        commit_every: int = 2000,
    ) -> None:
        if energy_kind not in ENERGY_KINDS:
            raise ValueError(f"energy_kind must be one of {ENERGY_KINDS}, got {energy_kind!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(self.path)
        self.tmp_path = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        self.tmp_path.unlink(missing_ok=True)
        self._env = lmdb.open(
            str(self.tmp_path),
            subdir=False,
            map_size=_MAP_SIZE,
            lock=False,
            max_dbs=2,
            meminit=True,
            sync=False,
        )
        self._records = self._env.open_db(_RECORDS)
        self._meta = self._env.open_db(_META)
        self._txn = self._env.begin(write=True, db=self._records)
        self._commit_every = commit_every
        self._info = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "subset": subset,
            "source": source,
            "energy_kind": energy_kind,
            "written_by": f"lamm {__version__}",
            **(dict(extra_info) if extra_info else {}),
        }
        self._natoms: list[int] = []
        self._split: list[int] = []
        self._element_atoms = np.zeros(MAX_ATOMIC_NUMBER + 1, dtype=np.int64)
        self._element_structures = np.zeros(MAX_ATOMIC_NUMBER + 1, dtype=np.int64)
        self._with_energy = 0
        self._with_forces = 0
        self._with_stress = 0
        self._closed = False

    def __len__(self) -> int:
        return len(self._natoms)

    def update_info(self, extra: Mapping[str, Any]) -> None:
        """Add keys to the store's info (e.g. counts known only at the end of a conversion)."""
        reserved = sorted(
            set(extra) & {"format", "version", "subset", "source", "energy_kind", "count"}
        )
        if reserved:
            raise ValueError(f"info keys {reserved} are the writer's own")
        self._info.update(extra)

    def add(self, record: StructureRecord, split: str = "train") -> int:
        """Append one record; returns its index."""
        record.validate()
        if record.energy is not None and self._info["energy_kind"] == "none":
            raise ValueError(
                f"record {record.source_id!r} has an energy but the store's energy_kind is 'none'"
            )
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
        index = len(self._natoms)
        self._txn.put(_key(index), record.encode(), append=True)
        self._natoms.append(record.natoms)
        self._split.append(SPLITS[split])
        counts = np.bincount(
            np.asarray(record.atomic_numbers, dtype=np.int64), minlength=MAX_ATOMIC_NUMBER + 1
        )
        self._element_atoms += counts
        self._element_structures += counts > 0
        self._with_energy += record.energy is not None
        self._with_forces += record.forces is not None
        self._with_stress += record.stress is not None
        if (index + 1) % self._commit_every == 0:
            self._txn.commit()
            self._txn = self._env.begin(write=True, db=self._records)
        return index

    def set_splits(self, splits: Sequence[str]) -> None:
        """Assign every record written so far to a split at once (a splitter that needs the
        whole input first, `lamm.data.splitting`); one name per record, in write order."""
        if len(splits) != len(self._natoms):
            raise ValueError(f"{len(splits)} split names for {len(self._natoms)} records")
        unknown = sorted(set(splits) - set(SPLITS))
        if unknown:
            raise ValueError(f"unknown split(s) {unknown}; expected some of {sorted(SPLITS)}")
        self._split = [SPLITS[name] for name in splits]

    def close(self) -> StructureStore:
        """Write the metadata, flush, and move the file into place. Returns the opened store."""
        if self._closed:
            raise RuntimeError("writer already closed")
        self._txn.commit()
        natoms = np.asarray(self._natoms, dtype="<i4")
        info = {
            **self._info,
            "count": len(natoms),
            "with_energy": self._with_energy,
            "with_forces": self._with_forces,
            "with_stress": self._with_stress,
            "atoms_total": int(natoms.sum()),
            "element_atoms": self._element_atoms.tolist(),
            "element_structures": self._element_structures.tolist(),
        }
        with self._env.begin(write=True, db=self._meta) as txn:
            txn.put(b"info", json.dumps(info, sort_keys=True).encode())
            txn.put(b"natoms", natoms.tobytes())
            txn.put(b"split", np.asarray(self._split, dtype="u1").tobytes())
        self._env.sync(True)
        self._env.close()
        self._closed = True
        os.replace(self.tmp_path, self.path)
        return StructureStore(self.path)

    def abort(self) -> None:
        """Drop everything written so far."""
        if self._closed:
            return
        try:
            self._txn.abort()
            self._env.close()
        finally:
            self._closed = True
            self.tmp_path.unlink(missing_ok=True)

    def __enter__(self) -> StructureStoreWriter:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
        elif not self._closed:
            self.close()


def _remove_stale_temporaries(path: Path) -> None:
    """Delete `<path>.tmp-<pid>` files left by writers whose process no longer exists."""
    for tmp in path.parent.glob(f"{path.name}.tmp-*"):
        pid_text = tmp.name.rsplit("-", 1)[-1]
        if not pid_text.isdigit():
            continue
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            log.info("removing %s left by an interrupted writer", tmp)
            tmp.unlink(missing_ok=True)
        except PermissionError:  # a live process of another user
            pass
