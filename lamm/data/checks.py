"""Checks every converted record passes; a failing record is skipped and counted by its reason.

`check_record` returns None for a good record, else one of the reason names below (the first
that applies, in this order), which `lamm data convert` reports in its summary.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lamm.data.graph import neighbor_list
from lamm.data.record import MAX_ATOMIC_NUMBER, StructureRecord

INCONSISTENT_ARRAYS = "inconsistent_arrays"  # positions, fixed, tags or stress of the wrong shape
NO_ATOMS = "no_atoms"
UNKNOWN_ELEMENT = "unknown_element"  # atomic number outside 1..118 (e.g. an `X` or `*` atom)
NON_FINITE_COORDINATES = "non_finite_coordinates"  # NaN/inf in positions or cell
FORCES_SHAPE = "forces_shape"  # forces not [natoms, 3]
NON_FINITE_LABELS = "non_finite_labels"  # NaN/inf energy, forces or stress
MISSING_ENERGY = "missing_energy"  # the source labels energies, this record has none
MISSING_FORCES = "missing_forces"
TOO_MANY_ATOMS = "too_many_atoms"  # more than max_atoms (LaMM drops ODAC23 samples over 300)
INVALID_CELL = "invalid_cell"  # a periodic axis with a zero or linearly dependent cell vector
ATOMS_TOO_CLOSE = "atoms_too_close"  # two atoms (or periodic images) closer than min_distance

# Closer than this (Angstrom) is not a physical structure: the shortest bond, H2, is 0.74 A, and
# the nuclei of a DFT calculation that close mean a broken geometry or duplicated atoms.
DEFAULT_MIN_DISTANCE = 0.5


def min_distance_violated(record: StructureRecord, min_distance: float) -> bool:
    """Whether any pair of atoms, periodic images included, is closer than `min_distance`."""
    if record.natoms < 2 and not record.pbc.any():
        return False
    edges, _ = neighbor_list(record.positions, record.cell, record.pbc, min_distance)
    return edges.shape[1] > 0


def check_record(
    record: StructureRecord,
    *,
    labels: Sequence[str],
    max_atoms: int | None = None,
    min_distance: float = DEFAULT_MIN_DISTANCE,
) -> str | None:
    """None if `record` may be stored, else the reason to skip it."""
    numbers = np.asarray(record.atomic_numbers)
    n = numbers.shape[0] if numbers.ndim == 1 else -1
    if (
        n < 0
        or np.shape(record.positions) != (n, 3)
        or np.shape(record.cell) != (3, 3)
        or np.shape(record.pbc) != (3,)
    ):
        return INCONSISTENT_ARRAYS
    if n == 0:
        return NO_ATOMS
    if numbers.min() < 1 or numbers.max() > MAX_ATOMIC_NUMBER:
        return UNKNOWN_ELEMENT
    if not (np.isfinite(record.positions).all() and np.isfinite(record.cell).all()):
        return NON_FINITE_COORDINATES
    if record.forces is not None and np.shape(record.forces) != (n, 3):
        return FORCES_SHAPE
    if record.energy is not None and not np.isfinite(record.energy):
        return NON_FINITE_LABELS
    if record.forces is not None and not np.isfinite(record.forces).all():
        return NON_FINITE_LABELS
    if record.stress is not None and np.shape(record.stress) != (3, 3):
        return INCONSISTENT_ARRAYS
    if record.stress is not None and not np.isfinite(record.stress).all():
        return NON_FINITE_LABELS
    if "energy" in labels and record.energy is None:
        return MISSING_ENERGY
    if "forces" in labels and record.forces is None:
        return MISSING_FORCES
    for extra in (record.fixed, record.tags):
        if extra is not None and np.shape(extra) != (n,):
            return INCONSISTENT_ARRAYS
    if record.tags is not None and (np.min(record.tags) < -128 or np.max(record.tags) > 127):
        return INCONSISTENT_ARRAYS  # stored as int8
    if max_atoms is not None and n > max_atoms:
        return TOO_MANY_ATOMS
    try:
        too_close = min_distance_violated(record, min_distance)
    except ValueError:  # raised by the cell check before vesin sees a degenerate cell
        return INVALID_CELL
    if too_close:
        return ATOMS_TOO_CLOSE
    return None
