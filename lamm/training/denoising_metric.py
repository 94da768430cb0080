"""The denoising validation error, measured so that baseline and relative labels compare.

A denoising label is minus the applied displacement, -dx_i (baseline) or -(dx_i - mean_j dx_j)
(relative, LaMM). The two label sets differ only by the per-structure mean (the displacement of
the centroid, the unweighted "center of mass" dx_bar of LaMM section 3.3), and the two noisy
inputs differ only by the rigid translation -dx_bar, which no model of relative positions sees:
with the same noise draw, both modes show the model the same structure.

Two errors per structure, both the structure-balanced L2MAE of the loss (mean over its atoms of
the Euclidean norm of the per-atom error, Angstrom):

- `own_label_error`: the prediction against the run's own label, what the trainer optimizes
  and what a training framework reports as validation error (what LaMM's Fig. 7 plots, and
  the ablation's main metric `val_error_a`). For baseline labels it contains the label's mean, which
  is a property of the random draw and not of the input: its expected per-atom norm is about sqrt(8
  / (pi N)) sigma (~0.01 A for N = 43 atoms, sigma = 0.04 A), an error floor no model can go below.
- `centered_error`: the mean removed from the prediction and from the label before comparing,
  || (p_i - p_bar) - (y_i - y_bar) ||. Both modes are then measured against the same target (the
  centered true noise) on the same inputs, and only what a translation-invariant model can
  predict counts: it compares how well each run learned the structure-dependent part. For a
  relative run it differs from the own-label error only through the mean of the prediction.

The ablation reports the own-label error as its main curve (the paper's metric) and keeps the
centered error beside it (like with like).

What to expect: for Gaussian noise the mean dx_bar is independent of the deviations dx_i - dx_bar,
so a baseline label is the relative label plus an independent, zero-mean, input-independent
term. Both objectives have the same minimizer; the baseline only adds gradient noise (about 1/N
of the label variance). A gain in the centered error can therefore only come through
optimization speed, while the own-label error of the baseline sits higher by roughly
sqrt(e^2 + 3 sigma^2 / N) - e at a centered error e (~0.001 A at e = 0.04 A, N = 43).
"""

from __future__ import annotations

import torch


def remove_mean(vectors: torch.Tensor, atom_batch: torch.Tensor, num_graphs: int) -> torch.Tensor:
    """[N, 3] vectors minus the mean of their structure (atom_batch [N] = structure index)."""
    counts = torch.zeros(num_graphs, dtype=vectors.dtype, device=vectors.device)
    counts.index_add_(0, atom_batch, torch.ones_like(atom_batch, dtype=vectors.dtype))  # [B]
    sums = torch.zeros(num_graphs, 3, dtype=vectors.dtype, device=vectors.device).index_add_(
        0, atom_batch, vectors
    )  # [B, 3]
    means = sums / counts.clamp(min=1).unsqueeze(1)  # [B, 3]
    return vectors - means.index_select(0, atom_batch)


def structure_l2_error(
    error: torch.Tensor, atom_batch: torch.Tensor, num_graphs: int
) -> torch.Tensor:
    """[B] mean over each structure's atoms of the per-atom norm of error [N, 3]."""
    per_atom = error.norm(dim=1)  # [N]
    sums = torch.zeros(num_graphs, dtype=per_atom.dtype, device=per_atom.device).index_add_(
        0, atom_batch, per_atom
    )
    counts = torch.zeros(num_graphs, dtype=per_atom.dtype, device=per_atom.device)
    counts.index_add_(0, atom_batch, torch.ones_like(per_atom))
    return sums / counts.clamp(min=1)


def own_label_error(
    prediction: torch.Tensor, label: torch.Tensor, atom_batch: torch.Tensor, num_graphs: int
) -> torch.Tensor:
    """[B] structure-balanced L2 error of the predicted against the run's own label, Angstrom."""
    return structure_l2_error(prediction - label, atom_batch, num_graphs)


def centered_error(
    prediction: torch.Tensor, label: torch.Tensor, atom_batch: torch.Tensor, num_graphs: int
) -> torch.Tensor:
    """[B] the same error with each structure's mean removed from prediction and label first."""
    difference = remove_mean(prediction, atom_batch, num_graphs) - remove_mean(
        label, atom_batch, num_graphs
    )  # [N, 3]
    return structure_l2_error(difference, atom_batch, num_graphs)
