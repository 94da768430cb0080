"""Adsorbates for the catalyst-like subsets and the gas-phase references of adsorption energies.

Each adsorbate is built in a local frame with its binding atom at the origin and the rest
pointing up (+z); geometries are textbook bond lengths and angles. Before use, each one is
relaxed in the gas phase with the slabs' labeler (EMT, or a universal potential for the
universal labels; cached per process), so a
relaxation starts from an adsorbate at its own equilibrium and the initial forces come
from the adsorbate-surface interaction, as in OC20's initial structures.

Adsorption energies follow OC20's convention (Chanussot et al. 2021):
    E_ads = E(slab + adsorbate) - E(clean slab) - sum_X n_X eps_X
with eps_H = E(H2)/2, eps_O = E(H2O) - E(H2), eps_N = E(N2)/2, eps_C = E(CO) - eps_O,
all gas molecules relaxed with the same labeler.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from ase import Atoms

from lamm.data.demo.universal import relax_with

_TETRA = np.array(
    [[0.0, 0.943, 0.333], [0.816, -0.471, 0.333], [-0.816, -0.471, 0.333]]
)  # unit vectors, up-pointing

# name -> list of (symbol, x, y, z) in Angstrom; binding atom first, at the origin.
ADSORBATE_GEOMETRIES: dict[str, list[tuple[str, float, float, float]]] = {
    "H": [("H", 0, 0, 0)],
    "O": [("O", 0, 0, 0)],
    "C": [("C", 0, 0, 0)],
    "N": [("N", 0, 0, 0)],
    "OH": [("O", 0, 0, 0), ("H", 0, 0, 0.97)],
    "H2O": [("O", 0, 0, 0), ("H", 0.76, 0, 0.59), ("H", -0.76, 0, 0.59)],
    "OOH": [("O", 0, 0, 0), ("O", 0.5, 0, 1.33), ("H", 1.43, 0, 1.2)],
    "O2": [("O", 0, 0, 0), ("O", 0, 0, 1.21)],
    "CO": [("C", 0, 0, 0), ("O", 0, 0, 1.15)],
    "CO2": [("C", 0, 0, 0), ("O", 1.16, 0, 0.1), ("O", -1.16, 0, 0.1)],
    "CH": [("C", 0, 0, 0), ("H", 0, 0, 1.09)],
    "CH2": [("C", 0, 0, 0), ("H", 0.89, 0, 0.63), ("H", -0.89, 0, 0.63)],
    "CH3": [("C", 0, 0, 0)] + [("H", *(1.09 * v)) for v in _TETRA],
    "CHO": [("C", 0, 0, 0), ("O", 1.04, 0, 0.6), ("H", -0.94, 0, 0.55)],
    "COH": [("C", 0, 0, 0), ("O", 0, 0, 1.33), ("H", 0.92, 0, 1.64)],
    "CH2OH": [
        ("C", 0, 0, 0),
        ("H", 0.9, 0.5, -0.3),
        ("H", -0.9, 0.5, -0.3),
        ("O", 0, -0.7, 1.25),
        ("H", 0, -0.2, 2.05),
    ],
    "OCH3": [("O", 0, 0, 0), ("C", 0, 0, 1.42)]
    + [("H", *(np.array([0, 0, 1.42]) + 1.09 * v)) for v in _TETRA],
    "NH": [("N", 0, 0, 0), ("H", 0, 0, 1.02)],
    "NH2": [("N", 0, 0, 0), ("H", 0.82, 0, 0.6), ("H", -0.82, 0, 0.6)],
    "NH3": [("N", 0, 0, 0)] + [("H", *(1.01 * v)) for v in _TETRA],
    "NO": [("N", 0, 0, 0), ("O", 0, 0, 1.16)],
    "N2": [("N", 0, 0, 0), ("N", 0, 0, 1.10)],
    "CN": [("C", 0, 0, 0), ("N", 0, 0, 1.17)],
}

# OC20-like adsorbates (C/H/N/O, 1-6 atoms) and OC22-like ones (oxygen chemistry, OER/ORR).
OC20_ADSORBATES = (
    "H",
    "O",
    "C",
    "N",
    "OH",
    "H2O",
    "CO",
    "CH",
    "CH2",
    "CH3",
    "CHO",
    "COH",
    "CH2OH",
    "OCH3",
    "NH",
    "NH2",
    "NH3",
    "NO",
    "N2",
    "CN",
)
OC22_ADSORBATES = ("O", "H", "OH", "OOH", "O2", "H2O", "CO", "CO2", "C", "N")

_GAS_GEOMETRIES = {**ADSORBATE_GEOMETRIES, "H2": [("H", 0, 0, 0), ("H", 0, 0, 0.74)]}
GAS_CELL = 12.0  # Angstrom: beyond EMT's cutoff (< 6 A) and the universal potentials' (5-6 A)


def _atoms(spec: list[tuple[str, float, float, float]]) -> Atoms:
    return Atoms([s for s, *_ in spec], positions=[xyz for _, *xyz in spec])


@lru_cache(maxsize=None)
def _relaxed_gas(name: str, labeler: str | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """(numbers, positions, energy) of a molecule relaxed alone in a box with EMT (`labeler`
    None) or a universal potential (pure: cached). The universal potentials get a periodic box,
    the cell they were trained on."""
    atoms = _atoms(_GAS_GEOMETRIES[name])
    offset = atoms.positions[0].copy()
    atoms.set_cell([GAS_CELL] * 3)
    atoms.center()
    atoms.pbc = labeler is not None
    frames, _ = relax_with(atoms, labeler, fmax=0.01, max_steps=500 if labeler is None else 100)
    positions = atoms.positions - atoms.positions[0] + offset
    return atoms.numbers.copy(), positions, frames[-1].energy


def relaxed_adsorbate(name: str, labeler: str | None = None) -> Atoms:
    """The adsorbate after gas-phase relaxation (EMT or `labeler`), binding atom at the origin,
    pointing up."""
    numbers, positions, _ = _relaxed_gas(name, labeler)
    atoms = Atoms(numbers, positions=positions - positions[0])
    if len(atoms) > 1:
        # Re-orient: the rest of the molecule above the binding atom (relaxation may rotate it).
        direction = atoms.positions[1:].mean(axis=0)
        if np.linalg.norm(direction) > 0.1:  # linear molecules lying flat (CO2) keep their pose
            atoms.rotate(direction, (0, 0, 1), center=(0, 0, 0))
    return atoms


def gas_energy(name: str, labeler: str | None = None) -> float:
    """Energy (eV, EMT or `labeler`) of an adsorbate molecule relaxed in the gas phase."""
    return _relaxed_gas(name, labeler)[2]


def oc20_gas_references(labeler: str | None = None) -> dict[str, float]:
    """eps_X (eV) per element for adsorption energies, from relaxed H2, H2O, N2 and CO."""
    e = {name: _relaxed_gas(name, labeler)[2] for name in ("H2", "H2O", "N2", "CO")}
    eps_h = e["H2"] / 2
    eps_o = e["H2O"] - e["H2"]
    return {"H": eps_h, "O": eps_o, "N": e["N2"] / 2, "C": e["CO"] - eps_o}


def reference_energy(symbols: list[str], references: dict[str, float]) -> float:
    """sum_X n_X eps_X over the adsorbate's atoms."""
    return float(sum(references[s] for s in symbols))
