"""Extended XYZ files (HME21), read one frame at a time.

ASE's own extxyz reader first scans the whole file for frame offsets and then seeks back, which
decompresses an `.xz` file twice; `iter_frames` instead cuts the stream into frames (count line,
comment line, one line per atom) and hands each frame to ASE's parser, so properties, `Lattice`,
`pbc`, `move_mask` (-> FixAtoms), `tags`, `energy` and `forces` keep ASE's meaning.
Frames with cell vectors given as `VEC` pseudo-atoms are not supported (no source uses them).

HME21 (DATASETS.md section 9): `energy` (eV) in the comment line and `forces` (eV/A) per atom,
which ASE puts in a SinglePointCalculator; the group of each frame is the frame itself, as no
grouping information is published.

A user's file names its labels as it likes (`REF_energy=` in the comment line, a `DFT_forces:R:3`
column): ASE keeps keys other than its own in `atoms.info` and `atoms.arrays`, where
`frame_labels` finds them; `Units` scales the frame to eV and Angstrom. The stress is ASE's
calculator stress (a `stress=` of 6 or 9 values in the comment line, ASE's sign), or the info key
`stress_key` names, or else a `virial=` (eV, as MACE and nequip files write it) as -virial / V.
"""

from __future__ import annotations

import bz2
import dataclasses
import gzip
import io
import lzma
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TextIO

import numpy as np
from ase import Atoms
from ase.io.extxyz import read_xyz

from lamm.data.readers import UNPARSABLE_RECORD, CorruptInputError, SourceItem, input_files, reading
from lamm.data.record import StructureRecord
from lamm.data.units import Units

MISSING_GROUP = "missing_group_key"  # group_by names an info key this frame does not have

EXTXYZ_SUFFIXES = tuple(
    stem + compression for stem in (".extxyz", ".xyz") for compression in ("", ".xz", ".gz", ".bz2")
)


def open_text(path: Path) -> TextIO:
    """A text stream of a plain, `.xz`-, `.gz`- or `.bz2`-compressed file."""
    if path.name.endswith(".xz"):
        return lzma.open(path, "rt", encoding="utf-8")
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8")
    if path.name.endswith(".bz2"):
        return bz2.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def iter_frames(handle: TextIO, path: Path) -> Iterator[Atoms]:
    """The frames of an extxyz stream, in order."""
    index = 0
    while True:
        header = handle.readline()
        if not header:
            return
        if not header.strip():
            continue  # blank lines between or after frames
        try:
            natoms = int(header.split()[0])
        except ValueError:
            raise CorruptInputError(
                f"{path}: frame {index}: expected an atom count, got {header.strip()[:60]!r}; "
                "not an extended-XYZ file? --format auto detects the format (vasprun.xml, "
                "OUTCAR, QE, CP2K, ...)"
            ) from None
        lines = [header, handle.readline()]
        lines.extend(handle.readline() for _ in range(natoms))
        if not all(lines):
            raise CorruptInputError(
                f"{path}: frame {index} ends early (expected {natoms} atom lines; truncated file?)"
            )
        with reading(path, f"frame {index}"):
            atoms = next(read_xyz(io.StringIO("".join(lines)), index=0))
        yield atoms
        index += 1


def _label(atoms: Atoms, key: str, per_atom: bool) -> object | None:
    """The value of label `key`: ASE's calculator results first (`energy`, `forces`), then
    `atoms.arrays` (per-atom) or `atoms.info` (per frame)."""
    results = atoms.calc.results if atoms.calc is not None else {}
    if key in results:
        return results[key]
    return atoms.arrays.get(key) if per_atom else atoms.info.get(key)


def frame_labels(
    atoms: Atoms, energy_key: str | None, forces_key: str | None
) -> tuple[float | None, np.ndarray | None]:
    """(energy, forces) of a frame under the given keys (None: not read, or absent).

    Raises ValueError when a value is present but not a number (array)."""
    energy = _label(atoms, energy_key, per_atom=False) if energy_key else None
    forces = _label(atoms, forces_key, per_atom=True) if forces_key else None
    energy = None if energy is None else float(energy)
    forces = None if forces is None else np.asarray(forces, dtype=np.float64)
    return energy, forces


def frame_stress(atoms: Atoms, stress_key: str | None) -> np.ndarray | None:
    """The 3 x 3 stress of a frame (module docstring), in the file's energy/length^3; None
    when the frame has none. Raises ValueError for a value that is not 6 or 9 numbers."""
    from ase.stress import voigt_6_to_full_3x3_stress

    results = atoms.calc.results if atoms.calc is not None else {}
    if stress_key not in (None, "stress"):
        value = atoms.info.get(stress_key)
    else:
        value = results.get("stress", atoms.info.get("stress"))
    sign = 1.0
    if value is None and stress_key is None and "virial" in atoms.info:
        volume = abs(float(np.linalg.det(atoms.cell.array)))
        if volume > 0:
            value, sign = np.asarray(atoms.info["virial"], dtype=np.float64) / volume, -1.0
    if value is None:
        return None
    value = np.asarray(value, dtype=np.float64).reshape(-1)
    if value.size not in (6, 9):
        raise ValueError(f"stress has {value.size} values, expected 6 or 9")
    full = voigt_6_to_full_3x3_stress(value) if value.size == 6 else value.reshape(3, 3)
    return sign * full


def group_of(info: Mapping[str, object], group_by: str, source_id: str, file: Path) -> str | None:
    """The split group of a frame: itself, its file, or the value of one of its info keys
    (extxyz `atoms.info`, ASE db `key_value_pairs`); None when that key is absent."""
    if group_by == "frame":
        return source_id
    if group_by == "file":
        return file.name
    value = info.get(group_by)
    return None if value is None else f"{group_by}={value}"


def read_extxyz(
    path: str | Path,
    *,
    energy_key: str | None = "energy",
    forces_key: str | None = "forces",
    units: Units = Units(),
    group_by: str = "frame",
    stress_key: str | None = None,
) -> Iterator[SourceItem]:
    """Every frame of an extxyz file (or of the extxyz files of a directory), in eV and Angstrom.

    Labels come from `energy_key` and `forces_key` (None: not read); a frame whose label cannot be
    read as a number is skipped as unparsable, one without its group key as `missing_group_key`.
    """
    for file in input_files(path, EXTXYZ_SUFFIXES):
        with reading(file), open_text(file) as handle:
            for index, atoms in enumerate(iter_frames(handle, file)):
                source_id = f"{file.name}:{index}"
                group = group_of(atoms.info, group_by, source_id, file)
                if group is None:
                    yield SourceItem(None, source_id, MISSING_GROUP)
                    continue
                try:
                    energy, forces = frame_labels(atoms, energy_key, forces_key)
                    stress = frame_stress(atoms, stress_key)
                except (TypeError, ValueError):
                    yield SourceItem(None, group, UNPARSABLE_RECORD)
                    continue
                record = StructureRecord.from_atoms(atoms, source_id=source_id)
                record = dataclasses.replace(record, energy=energy, forces=forces, stress=stress)
                yield SourceItem(units.apply(record), group)
