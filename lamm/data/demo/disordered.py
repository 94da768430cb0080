"""HME21-like downstream structures: disordered multi-element periodic cells, GFN1-xTB labels.

HME21 (Takamoto et al. 2022) holds high-temperature snapshots of disordered multi-element
systems. Two kinds here, 8-20 atoms each:
- substitutional: a crystal prototype (fcc, bcc, CsCl, rock salt, zinc blende, fluorite) with
  every site given a random element of its sublattice, strained by up to 4% and rattled by
  0.03-0.1 A (a thermal snapshot);
- amorphous: atoms dropped at random into a cell at liquid-like packing (no two closer than
  0.9x their covalent radii sum).
Elements are the demo's pre-training metals (Al Ni Cu Pd Ag Pt Au, the EMT set) and non-metals
(H C N O S Cl, from the molecules), so fine-tuning can build on pre-training, yet the structures
and the labeling method (periodic GFN1-xTB, used by no pre-training subset) are new.
Total energies and forces; SCF failures are counted (metal-rich cells fail most).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, covalent_radii

from lamm.data.demo.labelers import DemoFailure, xtb_energy_forces
from lamm.data.demo.systems import SystemRequest, SystemResult, to_record

METALS = ("Al", "Ni", "Cu", "Pd", "Ag", "Pt", "Au")
NONMETALS = ("H", "C", "N", "O", "S", "Cl")
ANIONS = ("C", "N", "O", "S", "Cl")
# prototype -> ASE bulk() arguments; the first element of `name` marks the metal sublattice,
# any other the anion sublattice
PROTOTYPES = {
    "fcc": dict(name="Cu", crystalstructure="fcc", cubic=True),
    "bcc": dict(name="Fe", crystalstructure="bcc", cubic=True),
    "cscl": dict(name="CsCl", crystalstructure="cesiumchloride"),
    "rocksalt": dict(name="NaCl", crystalstructure="rocksalt", cubic=True),
    "zincblende": dict(name="ZnS", crystalstructure="zincblende", cubic=True),
    "fluorite": dict(name="CaF2", crystalstructure="fluorite", cubic=True),
}
MIN_ATOMS, MAX_ATOMS = 8, 20
XTB_ITERATIONS = 100  # fail fast: a metallic cell that has not converged by then rarely does


def _radius(symbol: str) -> float:
    return float(covalent_radii[atomic_numbers[symbol]])


def substitutional(rng: np.random.Generator) -> tuple[Atoms, str]:
    prototype = str(rng.choice(list(PROTOTYPES)))
    metals = list(rng.choice(METALS, size=int(rng.integers(1, 4)), replace=False))
    anions = list(rng.choice(ANIONS, size=int(rng.integers(1, 3)), replace=False))
    cell = bulk(**PROTOTYPES[prototype], a=1.0)  # unit lattice constant, scaled below
    basis_is_metal = cell.numbers == cell.numbers[0]
    options = [(i, j, k) for i in (1, 2, 3) for j in (1, 2) for k in (1, 2)
               if MIN_ATOMS <= i * j * k * len(cell) <= MAX_ATOMS and i >= j >= k]
    repeat = options[int(rng.integers(len(options)))]
    is_metal = np.tile(basis_is_metal, int(np.prod(repeat)))
    atoms = cell.repeat(repeat)
    symbols = np.where(is_metal, rng.choice(metals, size=len(atoms)), rng.choice(anions, size=len(atoms)))
    atoms.symbols = symbols
    # Scale the unit cell so the shortest bond is the covalent radii sum of the mean site pair.
    mean_bond = np.mean([_radius(s) for s in symbols[is_metal]]) + (
        np.mean([_radius(s) for s in symbols[~is_metal]]) if (~is_metal).any()
        else np.mean([_radius(s) for s in symbols[is_metal]]))
    shortest = np.min(atoms.get_all_distances(mic=True) + np.eye(len(atoms)) * 99)
    atoms.set_cell(atoms.cell.array * mean_bond / shortest, scale_atoms=True)
    strain = np.eye(3) + np.triu(rng.uniform(-0.04, 0.04, size=(3, 3)))
    atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
    atoms.positions += rng.normal(0.0, rng.uniform(0.03, 0.1), size=atoms.positions.shape)
    return atoms, prototype


def amorphous(rng: np.random.Generator) -> tuple[Atoms, str]:
    n = int(rng.integers(MIN_ATOMS, MAX_ATOMS + 1))
    elements = list(rng.choice(METALS, size=int(rng.integers(1, 3)), replace=False)) + list(
        rng.choice(NONMETALS, size=int(rng.integers(1, 3)), replace=False))
    n_metal = int(round(rng.uniform(0.3, 0.8) * n))
    metal_elements = [e for e in elements if e in METALS]
    other_elements = [e for e in elements if e not in METALS]
    symbols = list(rng.choice(metal_elements, size=n_metal)) + list(rng.choice(other_elements, size=n - n_metal))
    radii = np.array([_radius(s) for s in symbols])
    volume = (4 / 3 * np.pi * radii**3).sum() / rng.uniform(0.3, 0.45)  # liquid-like packing
    length = volume ** (1 / 3)
    cell = np.diag([length, length, length])
    positions: list[np.ndarray] = []
    for i in range(n):
        for _ in range(500):
            trial = rng.random(3) * length
            if all(np.linalg.norm((trial - p) - length * np.round((trial - p) / length)) >= 0.9 * (radii[i] + radii[j])
                   for j, p in enumerate(positions)):
                positions.append(trial)
                break
        else:
            raise DemoFailure("could not pack the atoms of an amorphous cell")
    return Atoms(symbols, positions=positions, cell=cell, pbc=True), "amorphous"


def hme21_system(request: SystemRequest, rng: np.random.Generator) -> SystemResult:
    atoms, kind = substitutional(rng) if rng.random() < 0.5 else amorphous(rng)
    energy, forces = xtb_energy_forces(atoms.numbers, atoms.positions, method="GFN1-xTB", cell=atoms.cell.array,
                                       pbc=atoms.pbc, max_iterations=XTB_ITERATIONS)
    source = f"hme21/{request.index:06d}/{kind}/{atoms.get_chemical_formula()}"
    record = to_record(atoms, energy=energy, forces=forces, source_id=source, keep_fixed_and_tags=False)
    return SystemResult(records={"hme21": [record]})
