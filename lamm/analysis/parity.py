"""Parity plot of one head's predictions: energies relative to a composition baseline, and forces.

Absolute energies per atom of structures of different compositions differ by the elements'
atomic energies (eV per atom, much more than any model error), so a plot of E/N lines up by
composition and hides the errors. The energy panel plots instead

    (E - sum_Z n_Z e_Z) / N     reference against predicted,

with the per-element references e_Z fitted once by least squares of the reference energies on
composition (`lamm.data.referencing.fit_element_references`, over every labeled structure
plotted) and subtracted from both axes: the baseline moves every point of a structure along the
diagonal, so the distance from the diagonal is the per-atom error, as in the metrics. An energy
that is linear in composition becomes 0 exactly.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from lamm.analysis.evaluation import Predictions, compute_metrics
from lamm.data.referencing import fit_element_references

SPLIT_COLORS = {"train": "#949494", "val": "#de8f05", "test": "#0173b2"}


def composition_references(predictions: Mapping[str, Predictions]) -> np.ndarray | None:
    """e_Z [119] (eV) fitted on the labeled structures of all `predictions`; None without labels."""
    composition = np.concatenate([p.composition for p in predictions.values()])  # [B, 119]
    energy = np.concatenate([p.energy for p in predictions.values()])  # [B]
    labeled = np.isfinite(energy)
    if not labeled.any():
        return None
    return fit_element_references(composition[labeled], energy[labeled])["references"]


def relative_energies(
    predictions: Predictions, references: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(reference, predicted) [b] eV/atom minus the composition baseline, labeled structures
    only."""
    labeled = np.isfinite(predictions.energy)
    baseline = predictions.composition[labeled] @ references  # [b] eV
    natoms = predictions.natoms[labeled]
    return (predictions.energy[labeled] - baseline) / natoms, (
        predictions.energy_pred[labeled] - baseline
    ) / natoms


def _diagonal(axis, values: list[np.ndarray]) -> None:
    joined = np.concatenate(values)
    low, high = float(joined.min()), float(joined.max())
    pad = 0.05 * (high - low or 1.0)
    axis.plot([low - pad, high + pad], [low - pad, high + pad], color="0.5", lw=1, ls="--")
    axis.set_xlim(low - pad, high + pad)
    axis.set_ylim(low - pad, high + pad)
    axis.set_aspect("equal")


def parity_plot(
    predictions: Mapping[str, Predictions], path: str | os.PathLike, title: str = ""
) -> Path:
    """Relative energy per atom and force components, predicted against reference, one colour per
    split."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lamm.analysis.figures import save_figure

    references = composition_references(predictions)
    figure, axes = plt.subplots(1, 2, figsize=(8.4, 4.0))
    notes: dict[int, list[str]] = {0: [], 1: []}
    drawn: dict[int, list[np.ndarray]] = {0: [], 1: []}
    for split, p in predictions.items():
        metrics = compute_metrics(p)
        has_forces = np.isfinite(p.forces).all(axis=1)
        panels = [(p.forces[has_forces].ravel(), p.forces_pred[has_forces].ravel())]
        if references is not None:
            panels.insert(0, relative_energies(p, references))
        else:
            panels.insert(0, (np.zeros(0), np.zeros(0)))
        for index, (true, pred) in enumerate(panels):
            if len(true):
                axes[index].scatter(
                    true,
                    pred,
                    s=8,
                    alpha=0.6,
                    color=SPLIT_COLORS.get(split, "#0173b2"),
                    edgecolors="none",
                    label=f"{split} ({len(true)})",
                )
                drawn[index] += [true, pred]
        if "energy_mae_mev_per_atom" in metrics:
            notes[0].append(f"{split} MAE {metrics['energy_mae_mev_per_atom']:.1f} meV/atom")
        if "forces_mae_mev_per_a" in metrics:
            notes[1].append(
                f"{split} MAE {metrics['forces_mae_mev_per_a']:.1f} meV/Å, "
                f"angle {metrics.get('force_angle_mean_deg', float('nan')):.0f}°"
            )
    labels = ["(E − Σ n_Z e_Z) / N (eV/atom)", "force component (eV/Å)"]
    for index, axis in enumerate(axes):
        if drawn[index]:
            _diagonal(axis, drawn[index])
            if len(predictions) > 1:
                axis.legend(fontsize=8, loc="upper left")
        else:
            axis.text(
                0.5,
                0.5,
                "no labels",
                ha="center",
                va="center",
                transform=axis.transAxes,
                fontsize=10,
            )
        axis.set_xlabel(f"reference {labels[index]}", fontsize=9)
        axis.set_ylabel(f"predicted {labels[index]}", fontsize=9)
        axis.set_title("\n".join(notes[index]), fontsize=8)
        axis.tick_params(labelsize=9)
    if title:
        figure.suptitle(f"{title}; energies minus a per-element fit e_Z", fontsize=10)
    figure.tight_layout()
    return save_figure(figure, path)
