"""Per-element errors of one split's predictions: the rows of `metrics_per_element.csv`.

For element Z (every element present in the split, by atomic number, after a row `all`):
- forces over the atoms of element Z: MAE/RMSE over their Cartesian components (meV/A), cosine
  and angle as in `lamm.analysis.evaluation.force_metrics`;
- energies over the structures that contain Z: MAE/RMSE of the per-atom energy error (meV/atom)
  (a structure counts for each of its elements, so these rows do not add up to the total);
- n_atoms (atoms of Z), n_structures (structures containing Z).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ase.data import chemical_symbols

from lamm.analysis.evaluation import Predictions, energy_metrics, force_metrics

COLUMNS = (
    "split",
    "element",
    "atomic_number",
    "n_atoms",
    "n_structures",
    "n_energy_labels",
    "energy_mae_mev_per_atom",
    "energy_rmse_mev_per_atom",
    "n_force_atoms",
    "forces_mae_mev_per_a",
    "forces_rmse_mev_per_a",
    "n_cosine_atoms",
    "force_cosine",
    "force_angle_mean_deg",
    "force_angle_median_deg",
)


def _row(
    predictions: Predictions,
    split: str,
    element: str,
    z: int,
    structures: np.ndarray,
    atoms: np.ndarray,
) -> dict[str, Any]:
    """One CSV row over the structures (mask [B]) and atoms (mask [N]) given; NaN where no label."""
    values = {
        "split": split,
        "element": element,
        "atomic_number": z,
        "n_atoms": int(atoms.sum()),
        "n_structures": int(structures.sum()),
        **energy_metrics(
            predictions.energy[structures],
            predictions.energy_pred[structures],
            predictions.natoms[structures],
        ),
        **force_metrics(predictions.forces[atoms], predictions.forces_pred[atoms]),
    }
    return {column: values.get(column, float("nan")) for column in COLUMNS}


def element_rows(predictions: Predictions, split: str) -> list[dict[str, Any]]:
    """Rows `all` then one per element present (module docstring)."""
    if predictions.atomic_numbers is None:
        raise ValueError("per-element metrics need the predictions' atomic_numbers")
    everything = np.ones(len(predictions.natoms), dtype=bool)
    rows = [
        _row(
            predictions,
            split,
            "all",
            0,
            everything,
            np.ones(len(predictions.atomic_numbers), dtype=bool),
        )
    ]
    for z in np.flatnonzero(predictions.composition.sum(axis=0) > 0):
        rows.append(
            _row(
                predictions,
                split,
                chemical_symbols[z],
                int(z),
                predictions.composition[:, z] > 0,
                predictions.atomic_numbers == z,
            )
        )
    return rows
