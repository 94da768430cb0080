"""The universal potentials a user would otherwise pick, scored on a store next to our models.

SevenNet-0 and CHGNet (`lamm.data.demo.universal`, `pip install .[labelers]`) predict every
structure of a split through their own ASE calculators. Their energies are on the Materials
Project's PBE/PBE+U reference, not on the user's DFT settings, so, as for our pre-trained heads
zero-shot (`lamm.analysis.zero_shot`), a per-element energy shift is fitted on the TRAINING
split (at most `fit_max` structures, a seeded subsample, to bound the cost) and the test split
is scored after it. Forces do not depend on a per-element constant and are scored raw.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lamm.analysis.evaluation import Predictions, compute_metrics, zero_predictions
from lamm.analysis.zero_shot import apply_energy_shift, fit_energy_shift
from lamm.data.store import StructureStore
from lamm.log import progress

_FIT_STREAM = 0xA7C5  # separates the fit subsample from other draws seeded with the same seed


def anchor_names() -> tuple[str, ...]:
    from lamm.data.demo.universal import LABELERS

    return tuple(LABELERS)


def select(predictions: Predictions, rows: np.ndarray) -> Predictions:
    """The structures `rows` (positions in `predictions`, sorted) with their atoms."""
    rows = np.sort(np.asarray(rows, dtype=np.int64))
    atoms = np.isin(predictions.atom_structure, rows)
    remap = np.full(len(predictions.natoms), -1, dtype=np.int64)
    remap[rows] = np.arange(len(rows))
    return Predictions(
        head=predictions.head,
        sample_index=predictions.sample_index[rows],
        natoms=predictions.natoms[rows],
        composition=predictions.composition[rows],
        energy=predictions.energy[rows],
        energy_pred=predictions.energy_pred[rows],
        forces=predictions.forces[atoms],
        forces_pred=predictions.forces_pred[atoms],
        atom_structure=remap[predictions.atom_structure[atoms]],
        atomic_numbers=None
        if predictions.atomic_numbers is None
        else predictions.atomic_numbers[atoms],
    )


def anchor_predictions(
    name: str,
    store: StructureStore,
    split: str,
    *,
    limit: int | None = None,
    seed: int = 0,
    exclude: np.ndarray | None = None,
    calc: Any = None,
) -> Predictions:
    """`name`'s energies (eV) and forces (eV/A) on `split` but the records `exclude` (a seeded
    subsample of `limit`); `calc`: an ASE calculator to use instead of the released model (a
    fine-tuned one)."""
    from lamm.data.demo.universal import calculator

    labels = zero_predictions(store, split, head=name)
    if exclude is not None and len(exclude):
        labels = select(labels, np.flatnonzero(~np.isin(labels.sample_index, exclude)))
    if limit is not None and limit < len(labels.natoms):
        rng = np.random.default_rng([seed, _FIT_STREAM])
        labels = select(labels, rng.choice(len(labels.natoms), size=limit, replace=False))
    calc = calculator(name) if calc is None else calc
    energies, forces = [], []
    for index in progress(labels.sample_index, desc=f"{name} on {split}", unit="structure"):
        atoms = store.get_atoms(int(index))
        atoms.calc = calc
        energies.append(float(atoms.get_potential_energy()))
        forces.append(np.array(atoms.get_forces(), dtype=np.float64))
    return Predictions(
        **{
            **labels.__dict__,
            "energy_pred": np.array(energies, dtype=np.float64),
            "forces_pred": np.concatenate(forces) if forces else labels.forces_pred,
        }
    )


def anchor_row(
    name: str,
    store: StructureStore,
    *,
    fit_split: str = "train",
    eval_split: str = "test",
    fit_max: int | None = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Zero-shot metrics of anchor `name` on `eval_split`, energies shifted per element by a
    least-squares fit on `fit_split` (raw energy MAE beside). Without labeled structures in
    `fit_split` there is nothing to fit on: the energy MAE is the raw one, `energy_shift` says
    so."""
    test = anchor_predictions(name, store, eval_split)
    raw = compute_metrics(test)
    row: dict[str, Any] = {"model": name, "n_structures": raw["n_structures"]}
    # a fine-tuning run's carved test records are still in the store's own training split
    evaluated = np.asarray(store.indices(eval_split), dtype=np.int64)
    fit_labeled = bool(np.isin(store.indices(fit_split), evaluated, invert=True).any())
    if "energy_mae_mev_per_atom" in raw and not fit_labeled:
        row["energy_mae_mev_per_atom"] = raw["energy_mae_mev_per_atom"]
        row["energy_shift"] = f"none: no {fit_split} split to fit it on (raw energies)"
    elif "energy_mae_mev_per_atom" in raw:
        fit = anchor_predictions(
            name, store, fit_split, limit=fit_max, seed=seed, exclude=evaluated
        )
        shift = fit_energy_shift(fit.composition, fit.energy - fit.energy_pred)
        row["energy_mae_mev_per_atom"] = compute_metrics(apply_energy_shift(test, shift))[
            "energy_mae_mev_per_atom"
        ]
        row["energy_mae_mev_per_atom_raw"] = raw["energy_mae_mev_per_atom"]
        row["n_fit_structures"] = int(np.isfinite(fit.energy).sum())
        row["energy_shift"] = f"per element, fitted on the {fit_split} split"
    row["forces_mae_mev_per_a"] = raw.get("forces_mae_mev_per_a", float("nan"))
    return row
