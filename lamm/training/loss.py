"""The universal masked loss of LaMM (eq. 5, SPEC section 4).

    L = lamE / sum_i mE_i * sum_i mE_i |E^_i - (E_i)[d_i]|
      + lamF / sum_i mF_i * sum_i (mF_i / N_i) * sum_j || F^_i(j) - F_i(j)[d_i] ||_2
      + lamS / sum_i mS_i * sum_i mS_i || S^_i - S_i[d_i] ||_F          (optional, lamS = 0 by
      default)

Each structure i is compared only on the channel of its own dataset d_i, so no gradient
reaches the output channels of other datasets. Energy: MAE; forces: per-atom L2 norm averaged
within a structure, then over structures (JMP's structure-size-balanced L2MAE); stress (an
addition to eq. 5, for datasets with stress labels): the Frobenius norm of the 3 x 3 error per
structure (rotation invariant, like the force L2 norm), averaged over structures. A term whose
mask sum is zero is exactly zero (and sends zero gradient), never NaN. Inputs are in the
normalized units the potential's `forward` predicts (normalize the labels with the same
`Normalizer`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch


class LossTerms(NamedTuple):
    """The weighted total and the unweighted masked means (for logging); stress is 0 without one."""

    total: torch.Tensor
    energy: torch.Tensor
    forces: torch.Tensor
    stress: torch.Tensor


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # where(), not values * mask: a NaN or inf in an unlabeled entry must not leak through 0 * NaN
    kept = torch.where(mask, values, torch.zeros((), dtype=values.dtype, device=values.device))
    return kept.sum() / mask.sum().clamp(min=1).to(values.dtype)


def universal_loss_terms(
    pred_energy: torch.Tensor,
    pred_forces: torch.Tensor,
    target_energy: torch.Tensor,
    target_forces: torch.Tensor,
    dataset_index: torch.Tensor,
    energy_mask: torch.Tensor,
    force_mask: torch.Tensor,
    atom_batch: torch.Tensor,
    lambda_energy: float = 1.0,
    lambda_forces: float = 1.0,
    *,
    pred_stress: torch.Tensor | None = None,
    target_stress: torch.Tensor | None = None,
    stress_mask: torch.Tensor | None = None,
    lambda_stress: float = 0.0,
) -> LossTerms:
    """Eq. 5 with its terms. Shapes: pred_energy [B, D], pred_forces [N, 3, D],
    target_energy [B], target_forces [N, 3], dataset_index / energy_mask / force_mask [B],
    atom_batch [N] (structure of each atom); the optional stress term: pred_stress [B, 3, 3, D],
    target_stress [B, 3, 3], stress_mask [B] (all three, or none)."""
    num_graphs, num_atoms = pred_energy.shape[0], pred_forces.shape[0]
    if pred_energy.dim() != 2 or pred_forces.dim() != 3 or pred_forces.shape[1] != 3:
        raise ValueError(
            "pred_energy must be [B, D] and pred_forces [N, 3, D], got "
            f"{tuple(pred_energy.shape)}, {tuple(pred_forces.shape)}"
        )
    if pred_forces.shape[2] != pred_energy.shape[1]:
        raise ValueError(
            f"energy has {pred_energy.shape[1]} head channels but forces {pred_forces.shape[2]}"
        )
    for name, tensor, size in (
        ("target_energy", target_energy, num_graphs),
        ("dataset_index", dataset_index, num_graphs),
        ("energy_mask", energy_mask, num_graphs),
        ("force_mask", force_mask, num_graphs),
        ("target_forces", target_forces, num_atoms),
        ("atom_batch", atom_batch, num_atoms),
    ):
        if tensor.shape[0] != size:
            raise ValueError(f"{name} has {tensor.shape[0]} entries, expected {size}")

    own_energy = pred_energy.gather(1, dataset_index.view(-1, 1)).squeeze(1)  # [B]
    dtype = torch.promote_types(own_energy.dtype, target_energy.dtype)
    energy_error = (target_energy.to(dtype) - own_energy.to(dtype)).abs()  # [B]
    energy_term = _masked_mean(energy_error, energy_mask.bool())

    atom_head = dataset_index[atom_batch]  # [N]
    own_forces = pred_forces.gather(2, atom_head.view(-1, 1, 1).expand(-1, 3, 1)).squeeze(
        2
    )  # [N, 3]
    # vector_norm has a zero (not NaN) gradient where prediction equals label
    atom_error = torch.linalg.vector_norm(
        target_forces.to(own_forces.dtype) - own_forces, dim=1
    )  # [N]
    structure_error = torch.zeros(num_graphs, dtype=atom_error.dtype, device=atom_error.device)
    structure_error.index_add_(0, atom_batch, atom_error)  # [B], sum over atoms
    atoms_per_structure = (
        torch.bincount(atom_batch, minlength=num_graphs).clamp(min=1).to(atom_error.dtype)
    )  # [B]
    force_term = _masked_mean(structure_error / atoms_per_structure, force_mask.bool())

    stress_args = (pred_stress, target_stress, stress_mask)
    if all(x is None for x in stress_args):
        stress_term = torch.zeros((), dtype=energy_term.dtype, device=energy_term.device)
    elif any(x is None for x in stress_args):
        raise ValueError(
            "the stress term needs pred_stress, target_stress and stress_mask together"
        )
    else:
        stress_term = _stress_term(pred_stress, target_stress, stress_mask, dataset_index)

    total = lambda_energy * energy_term + lambda_forces * force_term + lambda_stress * stress_term
    return LossTerms(total=total, energy=energy_term, forces=force_term, stress=stress_term)


def _stress_term(
    pred_stress: torch.Tensor,
    target_stress: torch.Tensor,
    stress_mask: torch.Tensor,
    dataset_index: torch.Tensor,
) -> torch.Tensor:
    num_graphs = dataset_index.shape[0]
    if pred_stress.shape[:3] != (num_graphs, 3, 3) or pred_stress.dim() != 4:
        raise ValueError(
            f"pred_stress must be [{num_graphs}, 3, 3, D], got {tuple(pred_stress.shape)}"
        )
    if target_stress.shape != (num_graphs, 3, 3) or stress_mask.shape != (num_graphs,):
        raise ValueError(
            f"target_stress must be [{num_graphs}, 3, 3] and stress_mask [{num_graphs}], "
            f"got {tuple(target_stress.shape)}, {tuple(stress_mask.shape)}"
        )
    own_stress = pred_stress.gather(3, dataset_index.view(-1, 1, 1, 1).expand(-1, 3, 3, 1)).squeeze(
        3
    )  # [B, 3, 3]
    # Unlabeled structures are zeroed before the norm: their prediction may be NaN (a periodic
    # cell without volume), and the norm's backward would turn 0 * NaN into a NaN gradient.
    # vector_norm has a zero (not NaN) gradient where prediction equals label.
    difference = torch.where(
        stress_mask.bool().view(-1, 1, 1), target_stress.to(own_stress.dtype) - own_stress, 0.0
    )  # [B, 3, 3]
    error = torch.linalg.vector_norm(difference, dim=(1, 2))  # [B]
    return _masked_mean(error, stress_mask.bool())


def universal_loss(
    pred_energy: torch.Tensor,
    pred_forces: torch.Tensor,
    target_energy: torch.Tensor,
    target_forces: torch.Tensor,
    dataset_index: torch.Tensor,
    energy_mask: torch.Tensor,
    force_mask: torch.Tensor,
    atom_batch: torch.Tensor,
    lambda_energy: float = 1.0,
    lambda_forces: float = 1.0,
    *,
    pred_stress: torch.Tensor | None = None,
    target_stress: torch.Tensor | None = None,
    stress_mask: torch.Tensor | None = None,
    lambda_stress: float = 0.0,
) -> torch.Tensor:
    """The scalar loss of eq. 5 (see `universal_loss_terms` for the arguments and the terms)."""
    return universal_loss_terms(
        pred_energy,
        pred_forces,
        target_energy,
        target_forces,
        dataset_index,
        energy_mask,
        force_mask,
        atom_batch,
        lambda_energy,
        lambda_forces,
        pred_stress=pred_stress,
        target_stress=target_stress,
        stress_mask=stress_mask,
        lambda_stress=lambda_stress,
    ).total
