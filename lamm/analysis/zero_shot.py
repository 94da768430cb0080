"""Zero-shot evaluation: every pre-training head on the downstream test split, before fine-tuning.

A pre-training head predicts energies on its own subset's reference (DFT code, functional,
total or adsorption energies), so raw energy errors on another dataset mostly measure that
reference offset. As deepmd-kit's `dp change-bias` does (DPA-2), only the energy reference is
refit on the downstream TRAINING split, then the head is scored on the TEST split:

    residual_i = E_i - E_pred_i                              (train structures with an energy)
    b = argmin_b sum_i (residual_i - sum_Z c_iZ b_Z)^2       (least squares, no intercept)
    E_shifted_j = E_pred_j + sum_Z c_jZ b_Z                  (test structures)

with c_iZ the number of atoms of element Z in structure i. `numpy.linalg.lstsq` gives the
minimum-norm solution, so elements absent from the training split get b_Z = 0 and collinear
compositions share the shift (as `lamm.data.referencing` fits references). Forces do not depend
on a per-element constant, so force MAE and cosine are those of the raw head.

The table starts with a baseline row (checkpoint `baseline`, head `composition`): zero energy and
zero forces through the same refit, i.e. the per-element linear energy model fitted on the
training split and the force MAE of predicting no force. A head is useful zero-shot only where it
beats that row.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lamm.analysis.evaluation import Predictions, compute_metrics, predict_split, zero_predictions
from lamm.data.store import StructureStore
from lamm.models.potential import Potential


def fit_energy_shift(composition: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """Per-element shift b [119] (eV) minimizing ||residual - composition @ b||; see the module
    docstring.

    composition: [B, 119] atom counts; residual: [B] eV (true - predicted), NaN rows ignored.
    """
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
    shift = np.zeros(composition.shape[1], dtype=np.float64)
    solution, *_ = np.linalg.lstsq(composition[labeled][:, present], residual[labeled], rcond=None)
    shift[present] = solution
    return shift


def apply_energy_shift(predictions: Predictions, shift: np.ndarray) -> Predictions:
    """Predictions with E_pred + composition @ shift."""
    return predictions.with_energy_pred(predictions.energy_pred + predictions.composition @ shift)


def _row(checkpoint: str, head: str, train: Predictions, test: Predictions) -> dict[str, Any]:
    raw = compute_metrics(test)
    row: dict[str, Any] = {
        "checkpoint": checkpoint,
        "head": head,
        "n_structures": raw["n_structures"],
    }
    if "energy_mae_mev_per_atom" in raw:
        shift = fit_energy_shift(train.composition, train.energy - train.energy_pred)
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
