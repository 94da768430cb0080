"""SD files, shared by the QMugs and PubChem3D readers: records cut from a text stream and
parsed by RDKit without sanitization (only elements and coordinates are needed, and
sanitization would reject valid geometries with unusual valences)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TextIO

import numpy as np
from rdkit import Chem

from lamm.data.record import StructureRecord

RECORD_END = "$$$$"


def iter_sdf_blocks(handle: TextIO) -> Iterator[str]:
    """The records of an SDF stream, each up to and including its `$$$$` line."""
    lines: list[str] = []
    for line in handle:
        lines.append(line)
        if line.rstrip("\r\n") == RECORD_END:
            yield "".join(lines)
            lines = []
    if any(line.strip() for line in lines):
        yield "".join(lines)  # a last record without `$$$$`; RDKit decides whether it parses


def parse_sdf_block(block: str) -> Chem.Mol | None:
    """The molecule of one SDF record with its data fields as properties, or None."""
    supplier = Chem.SDMolSupplier()
    supplier.SetData(block, sanitize=False, removeHs=False)
    if len(supplier) == 0:
        return None
    return supplier[0]


def mol_to_record(mol: Chem.Mol, energy: float | None, source_id: str) -> StructureRecord:
    """A molecule (first conformer, Angstrom) as a non-periodic record."""
    numbers = np.array([atom.GetAtomicNum() for atom in mol.GetAtoms()], dtype=np.int64)
    positions = (
        mol.GetConformer().GetPositions()
        if mol.GetNumConformers()
        else np.full((len(numbers), 3), np.nan)
    )
    return StructureRecord(
        atomic_numbers=numbers,
        positions=np.asarray(positions, dtype=np.float64).reshape(len(numbers), 3),
        cell=np.zeros((3, 3)),
        pbc=np.zeros(3, dtype=bool),
        energy=energy,
        source_id=source_id,
    )
