"""fairchem (OCP) LMDBs of pickled torch_geometric `Data` objects: OC20, OC22, ODAC23.

Layout (fairchem `preprocess_ef.py`, `oc22_lmdb_dataset.py`): one `.lmdb` file (`subdir=False`)
or a directory of them (`data.0000.lmdb`, ...; read in sorted order, as fairchem globs them).
Keys are `f"{i}".encode("ascii")` for i in 0..length-1; an optional `length` key holds the
pickled count (without it the count is the number of entries).

Per object: `pos` [N,3] float32 (IS2RE: the initial structure), `cell` [1,3,3], `atomic_numbers`
(stored as floats), `natoms`, `tags` (0 subsurface, 1 surface, 2 adsorbate), `fixed` (1 = fixed),
`sid`, `fid`, and labels under names that differ between writers: legacy `y`/`force`, newer
`energy`/`forces`, IS2RE `y_relaxed`, ODAC23 total energy `raw_y`. The caller says which names
to try, in order (`config/datasets/<source>.yaml`, key `fields`).

Pickles written before PyG 2.0 unpickle into `Data` objects that keep their fields in
`__dict__` without PyG 2's `_store`; they are read from `__dict__`, the same fields fairchem's
`pyg2_data_transform` rebuilds as `Data(**obj.__dict__)`.

Unpickling runs code named in the file: read only releases you trust (checksum-verified ones).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import lmdb
import numpy as np

from lamm.data.readers import MISSING_REFERENCE, SourceItem, input_files, reading
from lamm.data.record import StructureRecord


def _fields(obj: Any) -> dict[str, Any]:
    """The attributes of a pickled Data object (PyG 2.x, pre-2.0) or a plain dict."""
    if isinstance(obj, Mapping):
        return dict(obj)
    state = getattr(obj, "__dict__", None)
    if state is None:
        raise TypeError(f"expected a torch_geometric Data object, got {type(obj).__name__}")
    if "_store" in state:  # PyG >= 2.0
        return dict(obj.to_dict())
    return {key: value for key, value in state.items() if value is not None}


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _scalar(value: Any) -> Any:
    array = _numpy(value).reshape(-1)
    if array.size != 1:
        raise ValueError(f"expected one value, got shape {_numpy(value).shape}")
    return array[0].item()


def _first(fields: Mapping[str, Any], names: Sequence[str]) -> Any:
    for name in names:
        if fields.get(name) is not None:
            return fields[name]
    return None


def _atomic_numbers(value: Any) -> np.ndarray:
    """fairchem stores atomic numbers as floats; a non-integral value becomes 0 (unknown
    element)."""
    numbers = _numpy(value).reshape(-1)
    if numbers.dtype.kind == "f":
        rounded = np.rint(numbers)
        bad = ~np.isfinite(numbers) | (rounded != numbers)
        numbers = np.where(bad, 0, rounded)
    return numbers.astype(np.int64)


def data_to_item(
    obj: Any,
    *,
    energy_fields: Sequence[str],
    forces_fields: Sequence[str],
    periodic: bool,
    reference_energies: Mapping[str, float] | None = None,
) -> SourceItem:
    """One unpickled object as a SourceItem; the group is its system id (`sid`)."""
    fields = _fields(obj)
    sid = fields.get("sid")
    sid_text = "" if sid is None else str(_scalar(sid))
    fid = fields.get("fid")
    source_id = sid_text if fid is None else f"{sid_text}/{_scalar(fid)}"
    numbers = _atomic_numbers(fields["atomic_numbers"])
    cell = fields.get("cell")
    cell = np.zeros((3, 3)) if cell is None else _numpy(cell).astype(np.float64).reshape(3, 3)
    pbc = fields.get("pbc")
    pbc = np.full(3, periodic) if pbc is None else _numpy(pbc).astype(bool).reshape(3)
    energy = _first(fields, energy_fields)
    energy = None if energy is None else float(_scalar(energy))
    if energy is not None and reference_energies is not None:
        # fairchem: total = adsorption + oc20_ref["random<sid>"]
        reference = reference_energies.get(f"random{sid_text}")
        if reference is None:
            return SourceItem(None, sid_text, MISSING_REFERENCE)
        energy += float(reference)
    forces = _first(fields, forces_fields)
    fixed = fields.get("fixed")
    tags = fields.get("tags")
    record = StructureRecord(
        atomic_numbers=numbers,
        positions=_numpy(fields["pos"]).astype(np.float64),
        cell=cell,
        pbc=pbc,
        energy=energy,
        forces=None if forces is None else _numpy(forces).astype(np.float64),
        fixed=None if fixed is None else _numpy(fixed).reshape(-1).astype(bool),
        tags=None if tags is None else _numpy(tags).reshape(-1).astype(np.int64),
        source_id=source_id,
    )
    return SourceItem(record, sid_text or source_id)


def lmdb_length(env: lmdb.Environment) -> int:
    """The `length` key when present (pickled int), else the number of entries."""
    with env.begin() as txn:
        raw = txn.get(b"length")
    if raw is not None:
        return int(pickle.loads(raw))
    return int(env.stat()["entries"])


def read_fairchem_lmdb(
    path: str | Path,
    *,
    energy_fields: Sequence[str],
    forces_fields: Sequence[str],
    periodic: bool,
    reference_energies: Mapping[str, float] | None = None,
) -> Iterator[SourceItem]:
    """Every object of an `.lmdb` file or of the `*.lmdb` files of a directory."""
    for file in input_files(path, (".lmdb",)):
        with reading(file):
            env = lmdb.open(
                str(file),
                subdir=False,
                readonly=True,
                lock=False,
                readahead=True,
                meminit=False,
                max_readers=1,
            )
            try:
                length = lmdb_length(env)
                with env.begin() as txn:
                    for index in range(length):
                        raw = txn.get(f"{index}".encode("ascii"))
                        if raw is None:
                            raise KeyError(
                                f"key {index} missing although the file holds {length} objects"
                            )
                        with reading(file, f"object {index}"):
                            item = data_to_item(
                                pickle.loads(raw),
                                energy_fields=energy_fields,
                                forces_fields=forces_fields,
                                periodic=periodic,
                                reference_energies=reference_energies,
                            )
                        yield item
            finally:
                env.close()


def load_reference_energies(path: str | Path) -> dict[str, float]:
    """`oc20_ref.pkl`: a pickled dict "random<sid>" -> eV (fairchem docs, oc22.md)."""
    path = Path(path)
    with reading(path), open(path, "rb") as handle:
        table = pickle.load(handle)
    if not isinstance(table, Mapping):
        raise ValueError(
            f"{path}: expected a pickled dict of reference energies, got {type(table).__name__}"
        )
    return {str(key): float(value) for key, value in table.items()}
