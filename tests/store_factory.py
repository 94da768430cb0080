"""Small real stores for tests: EMT-labeled slabs and molecules, unlabeled conformers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import add_adsorbate, fcc111, molecule
from ase.calculators.emt import EMT

from lamm.data.record import StructureRecord
from lamm.data.store import StructureStore, StructureStoreWriter

MOLECULES = (
    "H2O",
    "CH4",
    "C2H6",
    "CH3CH2OH",
    "C6H6",
    "C4H4O",
    "CH3COOH",
    "C3H8",
    "NH3",
    "CH3CH2NH2",
)


def emt_record(atoms: Atoms, labels: str = "EF") -> StructureRecord:
    atoms = atoms.copy()
    atoms.calc = EMT()
    energy = atoms.get_potential_energy() if "E" in labels else None
    forces = atoms.get_forces() if "F" in labels else None
    record = StructureRecord.from_atoms(atoms)
    return StructureRecord(**{**record.__dict__, "energy": energy, "forces": forces})


def slab(size: int, seed: int) -> Atoms:
    atoms = fcc111("Cu", size=(size, size, 3), vacuum=6.0)
    add_adsorbate(atoms, "O", 1.6, "fcc")
    atoms.positions += np.random.default_rng(seed).normal(0, 0.05, atoms.positions.shape)
    return atoms


def rattled_molecule(name: str, seed: int) -> Atoms:
    atoms = molecule(name)
    atoms.positions += np.random.default_rng(seed).normal(0, 0.03, atoms.positions.shape)
    return atoms


def write_store(
    path: Path, records, *, subset: str, task: str, energy_kind: str = "total", val_every: int = 5
) -> StructureStore:
    with StructureStoreWriter(
        path, subset=subset, source=subset, energy_kind=energy_kind, extra_info={"task": task}
    ) as writer:
        for i, record in enumerate(records):
            writer.add(record, "val" if val_every and i % val_every == val_every - 1 else "train")
    return StructureStore(path)


def demo_like_stores(
    directory: Path, *, slabs: int = 6, molecules: int = 10, conformers: int = 8
) -> list[StructureStore]:
    """Three subsets with different sizes and tasks: periodic S2EF, molecular S2EF, denoising."""
    slab_records = [emt_record(slab(2 + i % 3, i)) for i in range(slabs)]
    mol_records = [
        emt_record(rattled_molecule(MOLECULES[i % len(MOLECULES)], i)) for i in range(molecules)
    ]
    conf_records = [
        StructureRecord.from_atoms(rattled_molecule(MOLECULES[(3 * i) % len(MOLECULES)], 100 + i))
        for i in range(conformers)
    ]
    return [
        write_store(directory / "slabs.lmdb", slab_records, subset="oc20_s2ef", task="s2ef"),
        write_store(directory / "molecules.lmdb", mol_records, subset="transition1x", task="s2ef"),
        write_store(
            directory / "conformers.lmdb", conf_records, subset="pubchem3d", task="denoising"
        ),
    ]
