"""The potential: encoder + heads + normalizer, from a graph batch to energies and forces.

`forward` returns normalized predictions (what the universal loss compares with normalized
labels); `predict` maps them to eV and eV/Angstrom with the normalizer, so the same module
trains and evaluates. Edge vectors are computed here from pos, cell and cell_offsets, so
gradient forces flow through the periodic images too.

How PRED_FORCES [N, 3, D] is filled:
- direct mode: every head's forces (the force head has D vector outputs);
- gradient mode: one backward pass differentiates each structure's own head (the
  `dataset_index` channel), in normalized units -(energy_std_d / force_rms_d) dE_norm_d/dx so
  that `Normalizer.denormalize_forces` gives -dE_d/dx in eV/Angstrom as in direct mode. The
  other channels are NaN (not computed), so a mistaken read of them cannot pass unnoticed.
  To get head d's forces for a structure, set its `dataset_index` to d (the calculator does).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Union

import torch
from torch import nn

from lamm import keys as K
from lamm.models.heads import DirectForceHead, EnergyHead, GradientForces
from lamm.models.normalizer import Normalizer

if TYPE_CHECKING:
    from torch_geometric.data import Data

# A collated `AtomicGraph` batch, or any mapping with the same `lamm.keys` fields (the
# benchmark worker passes a dict, so it need not import torch_geometric).
GraphBatch = Union["Data", Mapping[str, torch.Tensor]]

FORCE_MODES = ("direct", "gradient")


def edge_vectors(positions: torch.Tensor, cell: torch.Tensor, cell_offsets: torch.Tensor, edge_index: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
    """r_ij = pos[j] - pos[i] + cell_offsets @ cell[batch[i]]  (lamm.keys), [M, 3] Angstrom."""
    source, target = edge_index[0], edge_index[1]
    # index_select rather than x[index]: a cheaper backward (see lamm.models.painn)
    cells = cell.index_select(0, batch.index_select(0, target))  # [M, 3, 3]
    # elementwise, not einsum: autocast would run a matmul in bf16 and round the image shifts
    shifts = (cell_offsets.to(cells.dtype).unsqueeze(2) * cells).sum(dim=1)  # [M, 3]
    return positions.index_select(0, source) - positions.index_select(0, target) + shifts.to(positions.dtype)


class Potential(nn.Module):
    """Encoder (see `lamm.models.painn`), `EnergyHead`, `DirectForceHead` (None in gradient
    mode), a `Normalizer` with one entry per head, and the head names (subset names)."""

    def __init__(
        self,
        encoder: nn.Module,
        energy_head: EnergyHead,
        force_head: DirectForceHead | None,
        normalizer: Normalizer,
        heads: Sequence[str],
        force_mode: str = "direct",
        max_neighbors: int | None = None,
    ) -> None:
        super().__init__()
        heads = list(heads)
        if force_mode not in FORCE_MODES:
            raise ValueError(f"force_mode must be one of {FORCE_MODES}, got {force_mode!r}")
        if not heads or len(set(heads)) != len(heads):
            raise ValueError(f"heads must be non-empty and unique, got {heads}")
        if energy_head.num_heads != len(heads) or normalizer.num_heads != len(heads):
            raise ValueError(
                f"{len(heads)} heads but the energy head has {energy_head.num_heads} outputs "
                f"and the normalizer {normalizer.num_heads} entries"
            )
        if force_mode == "direct" and (force_head is None or force_head.num_heads != len(heads)):
            raise ValueError(f"direct force mode needs a force head with {len(heads)} outputs")
        if force_mode == "gradient" and force_head is not None:
            raise ValueError("gradient force mode computes -dE/dx; pass force_head=None (it would be unused)")
        if max_neighbors is not None and max_neighbors < 1:
            raise ValueError(f"max_neighbors must be positive or None, got {max_neighbors}")
        self.encoder = encoder
        self.energy_head = energy_head
        self.force_head = force_head
        self.normalizer = normalizer
        self.gradient_forces = GradientForces() if force_mode == "gradient" else None
        self.heads = heads
        self.force_mode = force_mode
        self.max_neighbors = max_neighbors  # graphs for this model are built with these settings

    @property
    def cutoff(self) -> float:
        return float(self.encoder.cutoff)

    def forward(self, batch: GraphBatch) -> dict[str, torch.Tensor]:
        """Normalized PRED_ENERGY [B, D], PRED_FORCES [N, 3, D], and NODE_FEATURES [N, F]."""
        gradient = self.force_mode == "gradient"
        positions = batch[K.POSITIONS]
        if gradient and not positions.requires_grad:
            positions = positions.detach().requires_grad_(True)
        num_graphs = int(batch[K.NATOMS].shape[0])
        atom_batch = batch[K.BATCH] if K.BATCH in batch else torch.zeros_like(batch[K.ATOMIC_NUMBERS])
        # Gradient forces need autograd even when the caller evaluates under no_grad.
        with torch.enable_grad() if gradient else contextlib.nullcontext():
            vectors = edge_vectors(positions, batch[K.CELL], batch[K.CELL_OFFSETS], batch[K.EDGE_INDEX], atom_batch)
            features = self.encoder(batch[K.ATOMIC_NUMBERS], batch[K.EDGE_INDEX], vectors)
            energy = self.energy_head(features[K.NODE_FEATURES], atom_batch, num_graphs)  # [B, D]
            if self.force_head is not None:
                forces = self.force_head(features[K.NODE_FEATURES], features[K.NODE_VECTORS])  # [N, 3, D]
            else:
                forces = self._own_head_gradient_forces(energy, positions, batch[K.DATASET_INDEX], atom_batch)
        return {K.PRED_ENERGY: energy, K.PRED_FORCES: forces, K.NODE_FEATURES: features[K.NODE_FEATURES]}

    def atom_representations(self, batch: GraphBatch) -> torch.Tensor:
        """[N, F] the encoder's rotation-invariant per-atom features (PaiNN s_i, LaMM Fig. 8);
        the heads are not run."""
        atom_batch = batch[K.BATCH] if K.BATCH in batch else torch.zeros_like(batch[K.ATOMIC_NUMBERS])
        vectors = edge_vectors(batch[K.POSITIONS], batch[K.CELL], batch[K.CELL_OFFSETS], batch[K.EDGE_INDEX], atom_batch)
        return self.encoder(batch[K.ATOMIC_NUMBERS], batch[K.EDGE_INDEX], vectors)[K.NODE_FEATURES]

    def _own_head_gradient_forces(
        self, energy: torch.Tensor, positions: torch.Tensor, dataset_index: torch.Tensor, atom_batch: torch.Tensor
    ) -> torch.Tensor:
        assert self.gradient_forces is not None
        own_energy = energy.gather(1, dataset_index.view(-1, 1)).squeeze(1)  # [B]
        forces = self.gradient_forces(own_energy, positions)  # [N, 3], -dE_norm/dx
        atom_head = dataset_index[atom_batch]  # [N]
        scale = (self.normalizer.energy_std / self.normalizer.force_rms)[atom_head]  # [N] float64
        forces = forces * scale.to(forces.dtype).unsqueeze(1)  # [N, 3]
        own_channel = nn.functional.one_hot(atom_head, len(self.heads)).bool().unsqueeze(1)  # [N, 1, D]
        not_computed = torch.full((), float("nan"), dtype=forces.dtype, device=forces.device)
        return torch.where(own_channel, forces.unsqueeze(-1), not_computed)  # [N, 3, D]

    def predict(self, batch: GraphBatch) -> dict[str, torch.Tensor]:
        """forward, in eV (PRED_ENERGY [B, D] float64) and eV/Angstrom (PRED_FORCES [N, 3, D])."""
        out = self(batch)
        atom_batch = batch[K.BATCH] if K.BATCH in batch else torch.zeros_like(batch[K.ATOMIC_NUMBERS])
        energy = self.normalizer.denormalize_energy(out[K.PRED_ENERGY], batch[K.ATOMIC_NUMBERS], atom_batch)
        forces = self.normalizer.denormalize_forces(out[K.PRED_FORCES])
        return {K.PRED_ENERGY: energy, K.PRED_FORCES: forces, K.NODE_FEATURES: out[K.NODE_FEATURES]}
