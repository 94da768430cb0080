"""The label keys an input offers, for errors that name them (a wrong --forces-key, a deepmd
set without force.npy): what the first frame, row or set of a file holds."""

from __future__ import annotations

from pathlib import Path


def _extxyz_keys(path: Path) -> str:
    from lamm.data.readers import input_files
    from lamm.data.readers.extxyz import EXTXYZ_SUFFIXES, iter_frames, open_text

    file = input_files(path, EXTXYZ_SUFFIXES)[0]
    with open_text(file) as handle:
        atoms = next(iter_frames(handle, file))
    results = sorted(atoms.calc.results) if atoms.calc is not None else []
    per_atom = sorted(set(atoms.arrays) - {"numbers", "positions"})
    return (
        f"in its first frame: per-frame keys {sorted(atoms.info) + results}, "
        f"per-atom arrays {per_atom}"
    )


def _deepmd_keys(path: Path) -> str:
    from lamm.data.readers.deepmd import find_systems

    system = find_systems(path)[0]
    sets = sorted(p for p in system.glob("set.*") if p.is_dir())
    if not sets:
        return f"no set.*/ folder in {system}"
    stems = sorted(p.stem for p in sets[0].glob("*.npy"))
    return f"in {sets[0]}: {', '.join(f'{s}.npy' for s in stems)}"


def _ase_db_keys(path: Path) -> str:
    from ase.db import connect

    from lamm.data.readers import input_files
    from lamm.data.readers.ase_db import ASE_DB_SUFFIXES

    file = input_files(path, ASE_DB_SUFFIXES)[0]
    row = next(connect(str(file)).select(limit=1))
    calculator = [k for k in ("energy", "forces") if row.get(k) is not None]
    return (
        f"in its first row: calculator results {calculator}, key_value_pairs "
        f"{sorted(row.key_value_pairs)}, data {sorted((row.get('data') or {}).keys())}"
    )


def _results_keys(path: Path) -> str:
    from ase.io import read

    atoms = read(str(path), index=0)
    return f"results {sorted(atoms.calc.results) if atoms.calc is not None else []}"


def available_keys(reader: str, path: str | Path) -> str:
    """A short description of the label keys of `path` for the reader `reader`."""
    path = Path(path)
    listing = {
        "extxyz": _extxyz_keys,
        "deepmd": _deepmd_keys,
        "ase_db": _ase_db_keys,
        "ase": _results_keys,
    }.get(reader)
    return listing(path) if listing else "labels as dpdata reads them"
