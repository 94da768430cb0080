"""The potential: encoder + heads + normalizer, from a graph batch to energies, forces and stress.

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

PRED_STRESS [B, 3, 3, D] (only with `compute_stress=True`; `lamm.models.stress`): the strain
derivative of each structure's own head, in normalized units (energy_std_d / stress_scale_d) *
(1/V) dE_norm_d/d(strain), i.e. stress / stress_scale_d, so `Normalizer.denormalize_stress` gives
eV/Angstrom^3 (ASE's sign); other channels NaN, as for gradient forces. Both force modes: the
stress is always the derivative of the energy head. In gradient mode forces and stress come
from one backward pass and describe one energy surface; in direct mode the forces come from the
force head and are not the derivative of that energy, so forces and stress disagree with each
other to the extent the two heads do (use gradient mode for relaxations and NPT).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Union

import torch
from torch import nn

from lamm import keys as K
from lamm.models.heads import DirectForceHead, EnergyGradients, EnergyHead
from lamm.models.normalizer import Normalizer
from lamm.models.stress import strained_edge_vectors, stress_from_strain_gradient

if TYPE_CHECKING:
    from torch_geometric.data import Data

# A collated `AtomicGraph` batch, or any mapping with the same `lamm.keys` fields (the
# benchmark worker passes a dict, so it need not import torch_geometric).
GraphBatch = Union["Data", Mapping[str, torch.Tensor]]

FORCE_MODES = ("direct", "gradient")


def edge_vectors(
    positions: torch.Tensor,
    cell: torch.Tensor,
    cell_offsets: torch.Tensor,
    edge_index: torch.Tensor,
    batch: torch.Tensor,
) -> torch.Tensor:
    """r_ij = pos[j] - pos[i] + cell_offsets @ cell[batch[i]]  (lamm.keys), [M, 3] Angstrom."""
    source, target = edge_index[0], edge_index[1]
    # index_select rather than x[index]: a cheaper backward (see lamm.models.painn)
    cells = cell.index_select(0, batch.index_select(0, target))  # [M, 3, 3]
    # elementwise, not einsum: autocast would run a matmul in bf16 and round the image shifts
    shifts = (cell_offsets.to(cells.dtype).unsqueeze(2) * cells).sum(dim=1)  # [M, 3]
    return (
        positions.index_select(0, source)
        - positions.index_select(0, target)
        + shifts.to(positions.dtype)
    )


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
            raise ValueError(
                "gradient force mode computes -dE/dx; pass force_head=None (it would be unused)"
            )
        if max_neighbors is not None and max_neighbors < 1:
            raise ValueError(f"max_neighbors must be positive or None, got {max_neighbors}")
        self.encoder = encoder
        self.energy_head = energy_head
        self.force_head = force_head
        self.normalizer = normalizer
        self.energy_gradients = EnergyGradients()  # gradient forces and the stress
        self.heads = heads
        self.force_mode = force_mode
        self.max_neighbors = max_neighbors  # graphs for this model are built with these settings

    @property
    def cutoff(self) -> float:
        return float(self.encoder.cutoff)

    def forward(self, batch: GraphBatch, compute_stress: bool = False) -> dict[str, torch.Tensor]:
        """Normalized PRED_ENERGY [B, D], PRED_FORCES [N, 3, D], NODE_FEATURES [N, F], and with
        `compute_stress` PRED_STRESS [B, 3, 3, D] (needs the batch's PBC)."""
        gradient = self.force_mode == "gradient"
        positions = batch[K.POSITIONS]
        if gradient and not positions.requires_grad:
            positions = positions.detach().requires_grad_(True)
        num_graphs = int(batch[K.NATOMS].shape[0])
        atom_batch = (
            batch[K.BATCH] if K.BATCH in batch else torch.zeros_like(batch[K.ATOMIC_NUMBERS])
        )
        # Gradient forces and stress need autograd even when the caller evaluates under no_grad.
        with torch.enable_grad() if gradient or compute_stress else contextlib.nullcontext():
            vectors = edge_vectors(
                positions, batch[K.CELL], batch[K.CELL_OFFSETS], batch[K.EDGE_INDEX], atom_batch
            )
            strain = None
            if compute_stress:
                strain = torch.zeros(
                    num_graphs, 3, 3, dtype=vectors.dtype, device=vectors.device, requires_grad=True
                )
                vectors = strained_edge_vectors(
                    vectors, strain, atom_batch.index_select(0, batch[K.EDGE_INDEX][1])
                )
            features = self.encoder(batch[K.ATOMIC_NUMBERS], batch[K.EDGE_INDEX], vectors)
            energy = self.energy_head(features[K.NODE_FEATURES], atom_batch, num_graphs)  # [B, D]
            inputs = ([positions] if gradient else []) + ([strain] if strain is not None else [])
            if inputs:
                own_energy = energy.gather(1, batch[K.DATASET_INDEX].view(-1, 1)).squeeze(1)  # [B]
                gradients = self.energy_gradients(own_energy, inputs)
            if self.force_head is not None:
                forces = self.force_head(
                    features[K.NODE_FEATURES], features[K.NODE_VECTORS]
                )  # [N, 3, D]
            else:
                forces = self._own_head_forces(-gradients[0], batch[K.DATASET_INDEX], atom_batch)
        out = {
            K.PRED_ENERGY: energy,
            K.PRED_FORCES: forces,
            K.NODE_FEATURES: features[K.NODE_FEATURES],
        }
        if strain is not None:
            out[K.PRED_STRESS] = self._own_head_stress(
                gradients[-1], batch[K.CELL], batch[K.PBC], batch[K.DATASET_INDEX]
            )
        return out

    def atom_representations(self, batch: GraphBatch) -> torch.Tensor:
        """[N, F] the encoder's rotation-invariant per-atom features (PaiNN s_i, LaMM Fig. 8);
        the heads are not run."""
        atom_batch = (
            batch[K.BATCH] if K.BATCH in batch else torch.zeros_like(batch[K.ATOMIC_NUMBERS])
        )
        vectors = edge_vectors(
            batch[K.POSITIONS],
            batch[K.CELL],
            batch[K.CELL_OFFSETS],
            batch[K.EDGE_INDEX],
            atom_batch,
        )
        return self.encoder(batch[K.ATOMIC_NUMBERS], batch[K.EDGE_INDEX], vectors)[K.NODE_FEATURES]

    def _own_channel(self, values: torch.Tensor, head: torch.Tensor) -> torch.Tensor:
        """values [K, ...] of each row's own head `head` [K] -> [K, ..., D], NaN in the other
        channels."""
        own = (
            nn.functional.one_hot(head, len(self.heads))
            .bool()
            .view(head.shape[0], *([1] * (values.dim() - 1)), -1)
        )
        not_computed = torch.full((), float("nan"), dtype=values.dtype, device=values.device)
        return torch.where(own, values.unsqueeze(-1), not_computed)

    def _own_head_forces(
        self, minus_gradient: torch.Tensor, dataset_index: torch.Tensor, atom_batch: torch.Tensor
    ) -> torch.Tensor:
        """-dE_norm/dx [N, 3] -> normalized forces [N, 3, D] (see the module docstring)."""
        atom_head = dataset_index[atom_batch]  # [N]
        scale = (self.normalizer.energy_std / self.normalizer.force_rms)[atom_head]  # [N] float64
        return self._own_channel(
            minus_gradient * scale.to(minus_gradient.dtype).unsqueeze(1), atom_head
        )  # [N, 3, D]

    def _own_head_stress(
        self,
        strain_gradient: torch.Tensor,
        cell: torch.Tensor,
        pbc: torch.Tensor,
        dataset_index: torch.Tensor,
    ) -> torch.Tensor:
        """dE_norm/d(strain) [B, 3, 3] -> normalized stress [B, 3, 3, D] (see the module
        docstring)."""
        scale = (self.normalizer.energy_std / self.normalizer.stress_scale)[
            dataset_index
        ]  # [B] float64
        stress = stress_from_strain_gradient(strain_gradient, cell, pbc)  # [B, 3, 3]
        return self._own_channel(
            stress * scale.to(stress.dtype).view(-1, 1, 1), dataset_index
        )  # [B, 3, 3, D]

    def predict(self, batch: GraphBatch, compute_stress: bool = False) -> dict[str, torch.Tensor]:
        """forward, in eV (PRED_ENERGY [B, D] float64), eV/Angstrom (PRED_FORCES [N, 3, D]) and,
        with `compute_stress`, eV/Angstrom^3 (PRED_STRESS [B, 3, 3, D], ASE's sign convention)."""
        out = self(batch, compute_stress=compute_stress)
        atom_batch = (
            batch[K.BATCH] if K.BATCH in batch else torch.zeros_like(batch[K.ATOMIC_NUMBERS])
        )
        energy = self.normalizer.denormalize_energy(
            out[K.PRED_ENERGY], batch[K.ATOMIC_NUMBERS], atom_batch
        )
        forces = self.normalizer.denormalize_forces(out[K.PRED_FORCES])
        prediction = {
            K.PRED_ENERGY: energy,
            K.PRED_FORCES: forces,
            K.NODE_FEATURES: out[K.NODE_FEATURES],
        }
        if compute_stress:
            prediction[K.PRED_STRESS] = self.normalizer.denormalize_stress(out[K.PRED_STRESS])
        return prediction
