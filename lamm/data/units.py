"""Units at the edge: a user's file in kcal/mol and Bohr becomes eV, Angstrom and eV/Angstrom.

The factors are ASE's (CODATA 2014), so a round trip through ASE's own units is exact:
`ENERGY_UNITS["kcal/mol"] == ase.units.kcal / ase.units.mol`. Forces in a file are energy per
length in the file's units, so they scale by energy factor / length factor; stress by energy
factor / length factor^3.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from ase import units

from lamm.data.record import StructureRecord

# eV per unit
ENERGY_UNITS: dict[str, float] = {
    "ev": 1.0,
    "mev": 1e-3,
    "kcal/mol": units.kcal / units.mol,
    "kj/mol": units.kJ / units.mol,
    "hartree": units.Hartree,
    "rydberg": units.Rydberg,
}
# Angstrom per unit
LENGTH_UNITS: dict[str, float] = {"angstrom": 1.0, "bohr": units.Bohr}


def _factor(table: dict[str, float], name: str, what: str) -> float:
    key = name.strip().lower()
    if key not in table:
        raise ValueError(f"unknown {what} unit {name!r}; expected one of {', '.join(table)}")
    return table[key]


@dataclass(frozen=True)
class Units:
    """The units of an input file, and the factors that take its values to eV / Angstrom."""

    energy: str = "eV"
    length: str = "angstrom"

    def __post_init__(self) -> None:
        _factor(ENERGY_UNITS, self.energy, "energy")  # raise early on a typo
        _factor(LENGTH_UNITS, self.length, "length")

    @property
    def energy_factor(self) -> float:
        """eV per file energy unit."""
        return _factor(ENERGY_UNITS, self.energy, "energy")

    @property
    def length_factor(self) -> float:
        """Angstrom per file length unit."""
        return _factor(LENGTH_UNITS, self.length, "length")

    @property
    def forces_factor(self) -> float:
        """(eV/Angstrom) per (file energy unit / file length unit)."""
        return self.energy_factor / self.length_factor

    @property
    def is_native(self) -> bool:
        return self.energy_factor == 1.0 and self.length_factor == 1.0

    def apply(self, record: StructureRecord) -> StructureRecord:
        """`record` (in these units) in eV, Angstrom, eV/Angstrom and eV/Angstrom^3."""
        if self.is_native:
            return record
        length, energy = self.length_factor, self.energy_factor
        return dataclasses.replace(
            record,
            positions=np.asarray(record.positions, dtype=np.float64) * length,
            cell=np.asarray(record.cell, dtype=np.float64) * length,
            energy=None if record.energy is None else float(record.energy) * energy,
            forces=None
            if record.forces is None
            else np.asarray(record.forces, dtype=np.float64) * self.forces_factor,
            stress=None
            if record.stress is None
            else np.asarray(record.stress, dtype=np.float64) * (energy / length**3),
        )

    def as_dict(self) -> dict[str, str]:
        return {"energy": self.energy, "length": self.length}
