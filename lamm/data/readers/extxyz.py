"""Extended XYZ files (HME21), read one frame at a time.

ASE's own extxyz reader first scans the whole file for frame offsets and then seeks back, which
decompresses an `.xz` file twice; `iter_frames` instead cuts the stream into frames (count line,
comment line, one line per atom) and hands each frame to ASE's parser, so properties, `Lattice`,
`pbc`, `move_mask` (-> FixAtoms), `tags`, `energy` and `forces` keep ASE's meaning.
Frames with cell vectors given as `VEC` pseudo-atoms are not supported (no source uses them).

HME21 (DATASETS.md section 9): `energy` (eV) in the comment line and `forces` (eV/A) per atom,
which ASE puts in a SinglePointCalculator; the group of each frame is the frame itself, as no
grouping information is published.
"""

from __future__ import annotations

import io
import lzma
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from ase import Atoms
from ase.io.extxyz import read_xyz

from lamm.data.readers import CorruptInputError, SourceItem, input_files, reading
from lamm.data.record import StructureRecord

EXTXYZ_SUFFIXES = (".extxyz", ".xyz", ".extxyz.xz", ".xyz.xz")


def open_text(path: Path) -> TextIO:
    """A text stream of a plain or `.xz`-compressed file."""
    if path.name.endswith(".xz"):
        return lzma.open(path, "rt", encoding="utf-8")
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
            raise CorruptInputError(f"{path}: frame {index}: expected an atom count, got {header.strip()[:60]!r}") from None
        lines = [header, handle.readline()]
        lines.extend(handle.readline() for _ in range(natoms))
        if not all(lines):
            raise CorruptInputError(f"{path}: frame {index} ends early (expected {natoms} atom lines; truncated file?)")
        with reading(path, f"frame {index}"):
            atoms = next(read_xyz(io.StringIO("".join(lines)), index=0))
        yield atoms
        index += 1


def read_extxyz(path: str | Path) -> Iterator[SourceItem]:
    """Every frame of an extxyz file (or of the extxyz files of a directory)."""
    for file in input_files(path, EXTXYZ_SUFFIXES):
        with reading(file), open_text(file) as handle:
            for index, atoms in enumerate(iter_frames(handle, file)):
                source_id = f"{file.name}:{index}"
                yield SourceItem(StructureRecord.from_atoms(atoms, source_id=source_id), source_id)
