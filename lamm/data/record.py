"""One structure with its labels, as numpy arrays, and its compact binary encoding.

The encoding is what `StructureStore` keeps per LMDB record: a 16-byte header, the source id,
then the arrays back to back (8-byte aligned), decoded with `np.frombuffer` without copying.
No pickled Python objects: a record written today decodes with any numpy, forever.

    header  <BBHId : version, flags, len(source_id), natoms, energy (NaN when absent)
    source_id       utf-8, padded to 8 bytes
    cell            float64 [3, 3]   Angstrom
    positions       float64 [n, 3]   Angstrom
    forces          float64 [n, 3]   eV/Angstrom           (flag FORCES)
    atomic_numbers  uint8   [n]
    fixed           uint8   [n]      1 = held fixed        (flag FIXED)
    tags            int8    [n]      OC20 tags             (flag TAGS)
    stress          float64 [3, 3]   eV/Angstrom^3, ASE's sign (flag STRESS), after padding to 8
    bytes

Stress came later (flag bit 7, which older code ignores) and sits at the end, so records
without it are byte for byte what they were, and older decoders read records with it
correctly, minus the stress.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.constraints import FixAtoms
from ase.stress import full_3x3_to_voigt_6_stress, voigt_6_to_full_3x3_stress

ENCODING_VERSION = 1
_HEADER = struct.Struct("<BBHId")
_HAS_ENERGY, _HAS_FORCES, _HAS_FIXED, _HAS_TAGS = 1, 2, 4, 8
_PBC_SHIFT = 4  # bits 4, 5, 6 hold pbc along a, b, c
_HAS_STRESS = 128
MAX_ATOMIC_NUMBER = 118


def _pad8(n: int) -> int:
    return (n + 7) & ~7


@dataclass(frozen=True)
class StructureRecord:
    """A structure and whichever labels its source provides (eV, Angstrom, eV/Angstrom)."""

    atomic_numbers: np.ndarray  # [n] integer
    positions: np.ndarray  # [n, 3] float64, Angstrom
    cell: np.ndarray  # [3, 3] float64, Angstrom (zeros for a molecule)
    pbc: np.ndarray  # [3] bool
    energy: float | None = None  # eV
    forces: np.ndarray | None = None  # [n, 3] float64, eV/Angstrom
    fixed: np.ndarray | None = None  # [n] bool
    tags: np.ndarray | None = None  # [n] integer
    source_id: str = ""
    stress: np.ndarray | None = (
        None  # [3, 3] float64, eV/Angstrom^3, ASE's sign: (1/V) dE/d(strain)
    )

    @property
    def natoms(self) -> int:
        return int(self.atomic_numbers.shape[0])

    def validate(self) -> None:
        """Raise ValueError when the arrays do not describe one structure consistently."""
        n = self.natoms
        if self.atomic_numbers.ndim != 1:
            raise ValueError(f"atomic_numbers must be 1-D, got shape {self.atomic_numbers.shape}")
        if self.positions.shape != (n, 3):
            raise ValueError(f"positions must have shape ({n}, 3), got {self.positions.shape}")
        if self.cell.shape != (3, 3):
            raise ValueError(f"cell must have shape (3, 3), got {self.cell.shape}")
        if self.pbc.shape != (3,):
            raise ValueError(f"pbc must have shape (3,), got {self.pbc.shape}")
        if self.forces is not None and self.forces.shape != (n, 3):
            raise ValueError(f"forces must have shape ({n}, 3), got {self.forces.shape}")
        if self.stress is not None and np.shape(self.stress) != (3, 3):
            raise ValueError(f"stress must have shape (3, 3), got {np.shape(self.stress)}")
        for name in ("fixed", "tags"):
            value = getattr(self, name)
            if value is not None and value.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {value.shape}")
        if n and (self.atomic_numbers.min() < 1 or self.atomic_numbers.max() > MAX_ATOMIC_NUMBER):
            raise ValueError(f"atomic numbers must lie in 1..{MAX_ATOMIC_NUMBER}")
        if len(self.source_id.encode("utf-8")) > 0xFFFF:
            raise ValueError("source_id longer than 65535 bytes")

    # --- conversion to and from ASE ----------------------------------------------------------
    @classmethod
    def from_atoms(cls, atoms: Atoms, source_id: str = "") -> StructureRecord:
        """Take positions, cell, pbc, FixAtoms and tags from `atoms`, labels from `atoms.calc`
        (energy, forces, and stress in ASE's Voigt order or as 3 x 3)."""
        results = atoms.calc.results if atoms.calc is not None else {}
        energy = results.get("energy")
        forces = results.get("forces")
        stress = results.get("stress")
        if stress is not None:
            stress = np.asarray(stress, dtype=np.float64)
            stress = voigt_6_to_full_3x3_stress(stress) if stress.shape == (6,) else stress
        fixed = None
        if atoms.constraints:
            fixed = np.zeros(len(atoms), dtype=bool)
            for constraint in atoms.constraints:
                if isinstance(constraint, FixAtoms):
                    fixed[constraint.index] = True
        tags = atoms.get_tags() if atoms.has("tags") else None
        return cls(
            atomic_numbers=atoms.get_atomic_numbers().astype(np.int64),
            positions=np.asarray(atoms.get_positions(), dtype=np.float64),
            cell=np.asarray(atoms.cell.array, dtype=np.float64),
            pbc=np.asarray(atoms.pbc, dtype=bool),
            energy=None if energy is None else float(energy),
            forces=None if forces is None else np.asarray(forces, dtype=np.float64),
            fixed=fixed,
            tags=tags,
            source_id=source_id,
            stress=stress,
        )

    def to_atoms(self) -> Atoms:
        """An ase.Atoms; labels, where present, in `atoms.calc.results` ("energy", "forces",
        "stress" in ASE's Voigt order xx, yy, zz, yz, xz, xy)."""
        atoms = Atoms(
            numbers=np.asarray(self.atomic_numbers, dtype=np.int64),
            positions=np.array(self.positions, dtype=np.float64),
            cell=np.array(self.cell, dtype=np.float64),
            pbc=np.array(self.pbc, dtype=bool),
        )
        if self.tags is not None:
            atoms.set_tags(np.asarray(self.tags, dtype=np.int64))
        if self.fixed is not None and self.fixed.any():
            atoms.set_constraint(FixAtoms(indices=np.flatnonzero(self.fixed)))
        labels = {}
        if self.energy is not None:
            labels["energy"] = self.energy
        if self.forces is not None:
            labels["forces"] = np.array(self.forces, dtype=np.float64)
        if self.stress is not None:
            labels["stress"] = full_3x3_to_voigt_6_stress(np.array(self.stress, dtype=np.float64))
        if labels:
            atoms.calc = SinglePointCalculator(atoms, **labels)
        if self.source_id:
            atoms.info["source_id"] = self.source_id
        return atoms

    # --- binary encoding ---------------------------------------------------------------------
    def encode(self) -> bytes:
        n = self.natoms
        flags = 0
        flags |= _HAS_ENERGY if self.energy is not None else 0
        flags |= _HAS_FORCES if self.forces is not None else 0
        flags |= _HAS_FIXED if self.fixed is not None else 0
        flags |= _HAS_TAGS if self.tags is not None else 0
        flags |= _HAS_STRESS if self.stress is not None else 0
        for axis in range(3):
            flags |= int(bool(self.pbc[axis])) << (_PBC_SHIFT + axis)
        sid = self.source_id.encode("utf-8")
        energy = float("nan") if self.energy is None else float(self.energy)
        parts = [
            _HEADER.pack(ENCODING_VERSION, flags, len(sid), n, energy),
            sid,
            b"\0" * (_pad8(len(sid)) - len(sid)),
        ]
        parts.append(np.ascontiguousarray(self.cell, dtype="<f8").tobytes())
        parts.append(np.ascontiguousarray(self.positions, dtype="<f8").tobytes())
        if self.forces is not None:
            parts.append(np.ascontiguousarray(self.forces, dtype="<f8").tobytes())
        parts.append(np.asarray(self.atomic_numbers, dtype=np.uint8).tobytes())
        if self.fixed is not None:
            parts.append(np.asarray(self.fixed, dtype=np.uint8).tobytes())
        if self.tags is not None:
            parts.append(np.asarray(self.tags, dtype=np.int8).tobytes())
        if self.stress is not None:
            length = sum(len(part) for part in parts)
            parts.append(b"\0" * (_pad8(length) - length))
            parts.append(np.ascontiguousarray(self.stress, dtype="<f8").tobytes())
        return b"".join(parts)

    @classmethod
    def decode(cls, buffer: bytes) -> StructureRecord:
        """Inverse of `encode`; arrays are read-only views into `buffer` (copy before writing)."""
        version, flags, sid_len, n, energy = _HEADER.unpack_from(buffer, 0)
        if version != ENCODING_VERSION:
            raise ValueError(
                f"record encoding version {version} is not supported (expected {ENCODING_VERSION})"
            )
        offset = _HEADER.size
        source_id = bytes(buffer[offset : offset + sid_len]).decode("utf-8")
        offset += _pad8(sid_len)

        def take(dtype: str, count: int) -> np.ndarray:
            nonlocal offset
            array = np.frombuffer(buffer, dtype=dtype, count=count, offset=offset)
            offset += array.nbytes
            return array

        cell = take("<f8", 9).reshape(3, 3)
        positions = take("<f8", 3 * n).reshape(n, 3)
        forces = take("<f8", 3 * n).reshape(n, 3) if flags & _HAS_FORCES else None
        numbers = take("u1", n)
        fixed = take("u1", n).view(bool) if flags & _HAS_FIXED else None
        tags = take("i1", n) if flags & _HAS_TAGS else None
        offset = _pad8(offset)
        stress = take("<f8", 9).reshape(3, 3) if flags & _HAS_STRESS else None
        pbc = np.array([bool(flags >> (_PBC_SHIFT + axis) & 1) for axis in range(3)])
        return cls(
            atomic_numbers=numbers,
            positions=positions,
            cell=cell,
            pbc=pbc,
            energy=float(energy) if flags & _HAS_ENERGY else None,
            forces=forces,
            fixed=fixed,
            tags=tags,
            source_id=source_id,
            stress=stress,
        )
