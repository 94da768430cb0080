"""ASE databases (`.db`, SQLite; also `.json`), one row at a time.

Where a row keeps its labels: `ase.db` stores a calculator's results as the columns `energy` and
`forces`; other tools write them as `key_value_pairs` (`REF_energy=...`, numbers only) or in the
row's `data` (arrays, e.g. `data["DFT_forces"]`). `row_labels` looks in that order. The group of
a row is the row itself, or the value of one of its key-value pairs (`group_by`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from ase.db import connect

from lamm.data.readers import UNPARSABLE_RECORD, SourceItem, input_files, reading
from lamm.data.readers.extxyz import MISSING_GROUP, group_of
from lamm.data.record import StructureRecord
from lamm.data.units import Units

ASE_DB_SUFFIXES = (".db", ".json")


def _row_value(row: Any, key: str) -> Any:
    if key in ("energy", "forces") and row.get(key) is not None:  # the stored calculator's results
        return row.get(key)
    if key in row.key_value_pairs:
        return row.key_value_pairs[key]
    data = row.get("data") or {}
    return data.get(key)


def row_labels(
    row: Any, energy_key: str | None, forces_key: str | None
) -> tuple[float | None, np.ndarray | None]:
    """(energy, forces) of a row under the given keys (None: not read, or absent)."""
    energy = _row_value(row, energy_key) if energy_key else None
    forces = _row_value(row, forces_key) if forces_key else None
    return (None if energy is None else float(energy)), (
        None if forces is None else np.asarray(forces, dtype=np.float64)
    )


def read_ase_db(
    path: str | Path,
    *,
    energy_key: str | None = "energy",
    forces_key: str | None = "forces",
    units: Units = Units(),
    group_by: str = "frame",
) -> Iterator[SourceItem]:
    """Every row of an ASE database (or of the databases in a directory), in eV and Angstrom."""
    for file in input_files(path, ASE_DB_SUFFIXES):
        if file.stat().st_size == 0:
            raise FileNotFoundError(f"{file} is empty: not an ASE database")
        with reading(file, "ASE database"):
            database = connect(str(file), type="json" if file.suffix == ".json" else "db")
            for row in database.select():
                yield _item(row, file, energy_key, forces_key, units, group_by)


def _item(
    row: Any,
    file: Path,
    energy_key: str | None,
    forces_key: str | None,
    units: Units,
    group_by: str,
) -> SourceItem:
    source_id = f"{file.name}:id={row.id}"
    group = group_of(row.key_value_pairs, group_by, source_id, file)
    if group is None:
        return SourceItem(None, source_id, MISSING_GROUP)
    try:
        energy, forces = row_labels(row, energy_key, forces_key)
        atoms = row.toatoms()
    except (TypeError, ValueError, KeyError):
        return SourceItem(None, group, UNPARSABLE_RECORD)
    record = StructureRecord.from_atoms(atoms, source_id=source_id)
    return SourceItem(units.apply(dataclasses.replace(record, energy=energy, forces=forces)), group)
