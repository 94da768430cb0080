"""Validation per subset: energy MAE (meV/atom), force MAE (meV/Angstrom), denoising error (A).

Errors are measured in physical units through the model's `predict`, each structure on the
head of its own subset. Ranks evaluate disjoint shards and the sums are all-reduced, so every
rank ends with the same numbers.

- energy MAE per atom: mean over labeled structures of |E_pred - E| / N_atoms
- force MAE: mean over labeled atoms and Cartesian components of |F_pred - F|
- denoising error: mean over structures of the per-atom L2 norm of (predicted - true) noise
  label, averaged within a structure (the structure-balanced L2MAE of the loss, in Angstrom);
  `denoising_error_centered_a` is the same with each structure's mean displacement removed from
  prediction and label, comparable between baseline and relative labels
  (`lamm.training.denoising_metric`)
- stress MAE (GPa, `stress_mae_gpa`): mean over structures with a stress label and the 9
  components of |S_pred - S| (eV/Angstrom^3, times 160.2 GPa per eV/Angstrom^3); only when the
  validation set has stress labels (`compute_stress`), the stress being a strain derivative
- `val/loss`: the universal loss (eq. 5) over the whole validation set, in the normalized units
  training minimizes (so it is comparable across subsets and with the training loss); with
  `lambda_stress` and `compute_stress`, its stress term too
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch_geometric.data import Batch

from lamm import keys as K
from lamm.data.graph import collate
from lamm.training.denoising_metric import centered_error
from lamm.training.distributed import DistributedContext, all_reduce_sum

# per subset: [energy structures, sum |dE|/N, force components, sum |dF|,
#              denoise structures, sum L2/N,
#              normalized: energy structures, sum |dE_norm|, force structures,
#                          sum of per-structure mean L2 of dF_norm,
#              denoising: sum of the centered per-structure L2 error,
#              stress: structures, sum of the mean |dS| component (eV/A^3), sum of ||dS_norm||_F]
_FIELDS = 14
GPA_PER_EV_PER_A3 = 160.21766208  # 1 eV/Angstrom^3 in GPa (ase.units.GPa = 1 / 160.2...)


def _stress_sums(
    batch: Batch, prediction: dict[str, torch.Tensor], normalizer: nn.Module
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per structure [B]: has a stress label and a prediction, mean |dS| (eV/A^3), ||dS_norm||_F."""
    subset = batch[K.DATASET_INDEX]
    labeled = batch[K.STRESS_MASK].bool() if K.STRESS_MASK in batch else None
    if K.PRED_STRESS not in prediction or labeled is None:
        zeros = torch.zeros(len(subset), dtype=torch.float64)
        return zeros.bool(), zeros, zeros
    own = prediction[K.PRED_STRESS].gather(3, subset.view(-1, 1, 1, 1).expand(-1, 3, 3, 1))
    error = own.squeeze(3).double() - batch[K.STRESS].double()  # [B, 3, 3] eV/A^3
    labeled = labeled & torch.isfinite(error).flatten(1).all(dim=1)
    error = torch.where(labeled.view(-1, 1, 1), error, 0.0)
    normalized = normalizer.normalize_stress(error, subset)  # [B, 3, 3]
    return labeled, error.abs().mean(dim=(1, 2)), normalized.flatten(1).norm(dim=1)


def _accumulate(
    sums: torch.Tensor,
    batch: Batch,
    prediction: dict[str, torch.Tensor],
    denoising: Sequence[bool],
    normalizer: nn.Module,
) -> None:
    subset = batch[K.DATASET_INDEX]  # [B]
    atom_subset = subset[batch[K.BATCH]]  # [N]
    natoms = batch[K.NATOMS].double()  # [B]
    energy = prediction[K.PRED_ENERGY].gather(1, subset.view(-1, 1)).squeeze(1)  # [B] eV, own head
    forces = (
        prediction[K.PRED_FORCES].gather(2, atom_subset.view(-1, 1, 1).expand(-1, 3, 1)).squeeze(2)
    )  # [N, 3]
    energy_error = (energy - batch[K.ENERGY].double()).abs() / natoms  # [B] eV/atom
    force_error = forces.double() - batch[K.FORCES].double()  # [N, 3]
    per_atom_l2 = force_error.norm(dim=1)  # [N]
    l2_per_structure = (
        torch.zeros(len(natoms), dtype=torch.float64).index_add_(0, batch[K.BATCH], per_atom_l2)
        / natoms
    )
    centered_per_structure = centered_error(
        forces.double(), batch[K.FORCES].double(), batch[K.BATCH], len(natoms)
    )  # [B]
    is_denoising = torch.tensor(denoising, dtype=torch.bool)[subset]  # [B]
    energy_mask = batch[K.ENERGY_MASK]
    force_mask = batch[K.FORCE_MASK] & ~is_denoising
    denoise_mask = batch[K.FORCE_MASK] & is_denoising
    atom_force_mask = force_mask[batch[K.BATCH]]  # [N]
    # the loss terms in normalized units (both sides normalized with the same statistics)
    z, atom_batch = batch[K.ATOMIC_NUMBERS], batch[K.BATCH]
    energy_norm_error = (
        normalizer.normalize_energy(energy, z, atom_batch, subset)
        - normalizer.normalize_energy(batch[K.ENERGY], z, atom_batch, subset)
    ).abs()  # [B]
    force_norm_l2 = normalizer.normalize_forces(force_error, atom_subset).norm(dim=1)  # [N]
    force_norm_per_structure = (
        torch.zeros(len(natoms), dtype=torch.float64).index_add_(
            0, atom_batch, force_norm_l2.double()
        )
        / natoms
    )
    labeled_forces = batch[K.FORCE_MASK]
    stress_mask, stress_error, stress_norm_error = _stress_sums(batch, prediction, normalizer)
    for d in subset.unique().tolist():
        in_subset = subset == d
        e = energy_mask & in_subset
        f_atoms = atom_force_mask & (atom_subset == d)
        n = denoise_mask & in_subset
        f = labeled_forces & in_subset
        s = stress_mask & in_subset
        sums[d] += torch.tensor(
            [
                e.sum().item(),
                energy_error[e].sum().item(),
                3 * f_atoms.sum().item(),
                force_error[f_atoms].abs().sum().item(),
                n.sum().item(),
                l2_per_structure[n].sum().item(),
                e.sum().item(),
                energy_norm_error[e].sum().item(),
                f.sum().item(),
                force_norm_per_structure[f].sum().item(),
                centered_per_structure[n].sum().item(),
                s.sum().item(),
                stress_error[s].sum().item(),
                stress_norm_error[s].sum().item(),
            ],
            dtype=torch.float64,
        )


def evaluate(
    model: nn.Module,
    dataset: torch.utils.data.Dataset,
    subsets: Sequence[str],
    denoising: Sequence[bool],
    context: DistributedContext,
    *,
    max_per_subset: int,
    batch_size: int = 8,
    gradient_forces: bool = False,
    lambda_energy: float = 1.0,
    lambda_forces: float = 1.0,
    lambda_stress: float = 0.0,
    compute_stress: bool = False,
) -> dict[str, float]:
    """Metrics per subset `val/<subset>/energy_mae_mev_per_atom` etc. (only those the subset has).

    `dataset` is a MultiStoreDataset of the validation split (integer items: fixed noise for
    denoising subsets, so every validation sees the same inputs). `compute_stress`: predict the
    stress too (a strain derivative: pass it only when the set has stress labels).
    """
    offsets = np.concatenate([[0], np.cumsum(dataset.sizes)])
    indices = np.concatenate(
        [
            np.arange(offsets[d], min(offsets[d + 1], offsets[d] + max_per_subset))
            for d in range(len(subsets))
        ]
    )
    shard = indices[context.rank :: context.world_size]
    sums = torch.zeros(len(subsets), _FIELDS, dtype=torch.float64)
    normalizer = copy.deepcopy(model.normalizer).cpu()  # metrics are summed on the CPU
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(shard), batch_size):
            batch = collate([dataset[int(i)] for i in shard[start : start + batch_size]]).to(
                context.device
            )
            with torch.set_grad_enabled(gradient_forces):
                prediction = model.predict(batch, compute_stress=compute_stress)
            _accumulate(
                sums,
                batch.cpu(),
                {k: v.detach().cpu() for k, v in prediction.items()},
                denoising,
                normalizer,
            )
    finally:
        model.train(was_training)
    sums = all_reduce_sum(sums, context)
    totals = sums.sum(dim=0).tolist()
    metrics: dict[str, float] = {
        "val/loss": lambda_energy * totals[7] / max(totals[6], 1.0)
        + lambda_forces * totals[9] / max(totals[8], 1.0)
        + (lambda_stress * totals[13] / max(totals[11], 1.0) if compute_stress else 0.0)
    }
    for d, name in enumerate(subsets):
        n_e, e_sum, n_f, f_sum, n_n, n_sum = sums[d].tolist()[:6]
        if n_e:
            metrics[f"val/{name}/energy_mae_mev_per_atom"] = 1000.0 * e_sum / n_e
        if n_f:
            metrics[f"val/{name}/forces_mae_mev_per_a"] = 1000.0 * f_sum / n_f
        if n_n:
            metrics[f"val/{name}/denoising_error_a"] = n_sum / n_n
            metrics[f"val/{name}/denoising_error_centered_a"] = sums[d, 10].item() / n_n
        if sums[d, 11] > 0:
            metrics[f"val/{name}/stress_mae_gpa"] = (
                GPA_PER_EV_PER_A3 * sums[d, 12].item() / sums[d, 11].item()
            )
    return metrics
