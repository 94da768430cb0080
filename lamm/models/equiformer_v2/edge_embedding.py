"""Invariant edge features and the edge-degree embedding that initializes the l > 0 node
features."""

from __future__ import annotations

import torch
from torch import nn

from lamm.models.equiformer_v2.radial import RadialMLP
from lamm.models.equiformer_v2.segment import segment_sum


class AtomEdgeScalars(nn.Module):
    """[distance basis, embedding(Z_source), embedding(Z_target)]: EquiformerV2's atom-edge
    embedding.

    Each user (the edge-degree embedding, every attention block) owns its element embeddings,
    as in the paper's configuration (`share_atom_edge_embedding: False`).
    """

    def __init__(self, num_elements: int, channels: int) -> None:
        super().__init__()
        self.source = nn.Embedding(num_elements, channels)
        self.target = nn.Embedding(num_elements, channels)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        # tiny, so the distance basis dominates at initialization (as fairchem)
        for embedding in (self.source, self.target):
            nn.init.uniform_(embedding.weight, -0.001, 0.001, generator=generator)

    def forward(
        self, distance_basis: torch.Tensor, atomic_numbers: torch.Tensor, edge_index: torch.Tensor
    ) -> torch.Tensor:
        """`[M, n_basis]` -> `[M, n_basis + 2 channels]`."""
        source = self.source(atomic_numbers[edge_index[0]]).to(
            distance_basis.dtype
        )  # [M, channels]
        target = self.target(atomic_numbers[edge_index[1]]).to(distance_basis.dtype)
        return torch.cat([distance_basis, source, target], dim=1)


class EdgeDegreeEmbedding(nn.Module):
    """Sum over neighbors of a radial function placed on the m = 0 edge-frame coefficients.

    Each edge contributes, per channel, (lmax + 1) learned radial values as the m = 0
    coefficients in its frame, i.e. a function symmetric about the edge; rotated back to the
    global frame that is sum_l w_l(r) Y_l0-shaped along the edge direction. The sum is
    divided by `avg_degree` (a fixed normalization, as fairchem) and scaled by the envelope.
    """

    def __init__(
        self,
        lmax: int,
        channels: int,
        num_elements: int,
        num_basis: int,
        edge_channels: int,
        avg_degree: float,
    ) -> None:
        super().__init__()
        self.lmax = lmax
        self.channels = channels
        self.avg_degree = avg_degree
        self.edge_scalars = AtomEdgeScalars(num_elements, edge_channels)
        self.radial = RadialMLP(
            [num_basis + 2 * edge_channels, edge_channels, edge_channels, (lmax + 1) * channels]
        )

    def forward(
        self,
        distance_basis: torch.Tensor,
        envelope: torch.Tensor,
        atomic_numbers: torch.Tensor,
        edge_index: torch.Tensor,
        rotate_back_m0: torch.Tensor,
    ) -> torch.Tensor:
        """`rotate_back_m0` `[M, (lmax + 1)^2, lmax + 1]`: the inverse Wigner-D columns of the m = 0
        rows.

        Returns `[N, (lmax + 1)^2, channels]`.
        """
        scalars = self.edge_scalars(
            distance_basis, atomic_numbers, edge_index
        )  # [M, n_basis + 2 E]
        m0 = self.radial(scalars).view(-1, self.lmax + 1, self.channels)  # [M, lmax + 1, C]
        m0 = m0 * envelope.view(-1, 1, 1)
        messages = torch.bmm(rotate_back_m0, m0)  # [M, F, C]
        return segment_sum(messages, edge_index[1], atomic_numbers.shape[0]) / self.avg_degree
