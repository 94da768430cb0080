"""Zero-shot evaluation: every pre-training head on the downstream test split, before fine-tuning.

A pre-training head predicts energies on its own subset's reference (DFT code, functional,
total or adsorption energies), so raw energy errors on another dataset mostly measure that
reference offset. As deepmd-kit's `dp change-bias` does (DPA-2), only the energy reference is
refit on the downstream TRAINING split, then the head is scored on the TEST split:

    residual_i = E_i - E_pred_i                              (train structures with an energy)
    b_Z = a + d_Z                                            (a per-atom shift, element deviations)
    (a, d) = argmin sum_i (residual_i - n_i a - sum_Z c_iZ d_Z)^2 + lam sum_Z d_Z^2
    E_shifted_j = E_pred_j + sum_Z c_jZ b_Z                  (test structures)

with c_iZ the number of atoms of element Z in structure i and n_i its atom count. The strength
lam (atoms^2) is chosen from a grid by the exact leave-one-out error of this ridge fit on the
training structures themselves (mean absolute, per atom; `lamm.data.element_ridge`). lam = 0 is
plain least squares (minimum norm), which is chosen, or changes little, where the training split
pins every element down (lamm-universal-mini's omat24 head, validation energy MAE in meV/atom: Ta
335.5 either way; InP 219.0 against 221.8; the demo's hme21, 192 alloy cells, 144.0 against
144.4). Where it does not, least squares fits the head's own errors into the shifts: on 19 of
those hme21 cells (19-20 elements, rank 17-18) the training residual falls from 240 to 1-3
meV/atom and validation is at 469-843, worse than no shift (369); the ridge pulls the deviations
toward the common per-atom shift, which those cells do pin down: 180, 281 and 471 for three draws
of the 19. Elements absent from the training split get b_Z = 0: their pre-training reference
stands. Forces do not depend on a per-element constant, so force MAE and cosine are those of the
raw head.

The table starts with a baseline row (checkpoint `baseline`, head `composition`): zero energy and
zero forces through the same refit at lam = 0, i.e. the per-element linear energy model fitted by
least squares on the training split (as `lamm.data.referencing` fits a scratch run's references)
and the force MAE of predicting no force. Not the ridge: absolute per-atom energies differ by eV
between elements, and on few structures leave-one-out can favor pulling them together (5
structures of NaCl and C/H/O molecules: strength 10 chosen, test 2553 meV/atom against 325 for
least squares); a head's residuals against new labels are expected to spread far less. A head is
useful zero-shot only where it beats that row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lamm.analysis.evaluation import Predictions, compute_metrics, predict_split, zero_predictions
from lamm.data.element_ridge import loo_strength, ridge_per_element
from lamm.data.store import StructureStore
from lamm.models.potential import Potential


def fit_energy_shift(
    composition: np.ndarray, residual: np.ndarray, strength: float | None = None
) -> np.ndarray:
    """Per-element shift b [119] (eV) of the module docstring: a per-atom shift plus per-element
    deviations under a ridge of `strength` (atoms^2; None: chosen by `shift_strength`).

    composition: [B, 119] atom counts; residual: [B] eV (true - predicted), NaN rows ignored.
    """
    counts, target, present = _labeled_system(composition, residual)
    if strength is None:
        strength = loo_strength(counts, target)
    shift = np.zeros(np.shape(composition)[1], dtype=np.float64)
    shift[present] = ridge_per_element(counts, target, strength)[0]
    return shift


def shift_strength(composition: np.ndarray, residual: np.ndarray) -> float:
    """The ridge strength (atoms^2) `fit_energy_shift` chooses (`lamm.data.element_ridge`)."""
    return loo_strength(*_labeled_system(composition, residual)[:2])


def _labeled_system(
    composition: np.ndarray, residual: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(counts [n, p] of the labeled structures over the p elements they hold, residual [n],
    present [119] mask of those elements)."""
    composition = np.asarray(composition, dtype=np.float64)
    residual = np.asarray(residual, dtype=np.float64)
    if composition.ndim != 2 or residual.shape != (composition.shape[0],):
        raise ValueError(
            f"composition [B, Z] and residual [B] expected, got {composition.shape} and "
            f"{residual.shape}"
        )
    labeled = np.isfinite(residual)
    if not labeled.any():
        raise ValueError("no structure with an energy label to fit the energy shift on")
    present = composition[labeled].sum(axis=0) > 0  # fit only the columns of elements that occur
    return composition[labeled][:, present], residual[labeled], present


def apply_energy_shift(predictions: Predictions, shift: np.ndarray) -> Predictions:
    """Predictions with E_pred + composition @ shift."""
    return predictions.with_energy_pred(predictions.energy_pred + predictions.composition @ shift)


def _row(
    checkpoint: str,
    head: str,
    train: Predictions,
    test: Predictions,
    strength: float | None = None,
) -> dict[str, Any]:
    raw = compute_metrics(test)
    row: dict[str, Any] = {
        "checkpoint": checkpoint,
        "head": head,
        "n_structures": raw["n_structures"],
    }
    if "energy_mae_mev_per_atom" in raw:
        shift = fit_energy_shift(train.composition, train.energy - train.energy_pred, strength)
        refit = compute_metrics(apply_energy_shift(test, shift))
        row["energy_mae_mev_per_atom_raw"] = raw["energy_mae_mev_per_atom"]
        row["energy_mae_mev_per_atom"] = refit["energy_mae_mev_per_atom"]
        row["n_fit_structures"] = int(np.isfinite(train.energy).sum())
    row["forces_mae_mev_per_a"] = raw.get("forces_mae_mev_per_a", float("nan"))
    row["force_cosine"] = raw.get("force_cosine", float("nan"))
    return row


def baseline_row(
    store: StructureStore, *, fit_split: str = "train", eval_split: str = "test"
) -> dict[str, Any]:
    """The `baseline`/`composition` row of the module docstring."""
    return _row(
        "baseline",
        "composition",
        zero_predictions(store, fit_split),
        zero_predictions(store, eval_split),
        strength=0.0,  # absolute energies, which differ by eV between elements: least squares
    )


def zero_shot_rows(
    potential: Potential,
    store: StructureStore,
    *,
    checkpoint: str,
    heads: Sequence[str] | None = None,
    fit_split: str = "train",
    eval_split: str = "test",
    batch_size: int = 16,
) -> list[dict[str, Any]]:
    """One row per head: raw and bias-refit energy MAE on `eval_split`, force MAE and cosine."""
    heads = list(potential.heads if heads is None else heads)
    fitted = predict_split(potential, store, fit_split, heads, batch_size=batch_size)
    scored = predict_split(potential, store, eval_split, heads, batch_size=batch_size)
    return [_row(checkpoint, head, fitted[head], scored[head]) for head in heads]
