"""Stress as the strain derivative of the energy (nequip `ForceStressOutput`, MACE, schnetpack
`Strain`).

A symmetric strain eps [B, 3, 3] (zeros, requiring grad) deforms every structure b as
x -> x (I + eps_b) for positions and cell rows alike. Edge vectors are linear in both,

    r_ij = pos_j - pos_i + cell_offsets @ cell   ->   r_ij (I + eps_b),

so straining the edge vectors is exactly straining positions and cell, and the encoders (which
see only edge vectors) need no change. Then, in ASE's convention (eV/Angstrom^3; what
`ase.calculators.emt` and finite differences give, see tests/test_stress.py),

    stress_b = (1 / V_b) dE_b/d(eps_b)          V_b = |det cell_b|,  virial = -V stress,

negative when the cell wants to expand (compressed), positive when it wants to shrink.

Structures without any periodic axis have no volume to deform: their stress is zero. A
periodic structure whose cell has no volume (a slab without a c vector) has none either: NaN.
"""

from __future__ import annotations

import torch


def strained_edge_vectors(
    vectors: torch.Tensor, strain: torch.Tensor, edge_batch: torch.Tensor
) -> torch.Tensor:
    """r (I + sym(eps)) for every edge: vectors [M, 3], strain [B, 3, 3], edge_batch [M] -> [M, 3].

    Symmetrized so the derivative (the stress) is symmetric to rounding. An elementwise
    product, not einsum: autocast would run a matmul in bf16 and round every edge vector.
    """
    symmetric = 0.5 * (strain + strain.transpose(1, 2))  # [B, 3, 3]
    per_edge = symmetric.index_select(0, edge_batch)  # [M, 3, 3]
    return vectors + (vectors.unsqueeze(2) * per_edge.to(vectors.dtype)).sum(dim=1)  # [M, 3]


def stress_from_strain_gradient(
    energy_gradient: torch.Tensor, cell: torch.Tensor, pbc: torch.Tensor
) -> torch.Tensor:
    """(1 / V) dE/d(eps) [B, 3, 3] from dE/d(eps) [B, 3, 3], cell [B, 3, 3] and pbc [B, 3].

    Zero for structures with no periodic axis; NaN for periodic ones with a zero-volume cell.
    The division never sees a zero (a NaN there would poison the gradient of a masked loss).
    """
    volume = torch.linalg.det(cell.to(torch.float64)).abs().to(energy_gradient.dtype)  # [B]
    periodic = pbc.bool().any(dim=1)  # [B]
    has_volume = periodic & (volume > 0)
    safe_volume = torch.where(has_volume, volume, torch.ones_like(volume))  # [B]
    stress = energy_gradient / safe_volume.view(-1, 1, 1)  # [B, 3, 3]
    fill = torch.where(
        periodic, torch.full_like(volume, float("nan")), torch.zeros_like(volume)
    )  # [B]
    return torch.where(has_volume.view(-1, 1, 1), stress, fill.view(-1, 1, 1))
