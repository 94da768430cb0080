"""Equivariant graph attention built on SO(2) convolutions (EquiformerV2 section 4.1, fig. 1b).

For edge (j -> i): the features of both atoms, rotated into the edge frame (|m| <= mmax), go
through SO(2) convolution 1 (scaled by a radial MLP of [distance basis, element embeddings]),
which also emits invariant m = 0 outputs: per head the alpha features of the attention logit,
and the gates of the separable S2 activation. After the activation, SO(2) convolution 2 makes
the values (num_heads x value_channels). Logits: LayerNorm -> smooth leaky ReLU -> dot with a
learned vector per head (GATv2-style MLP attention); softmax over the edges of each center i.
Weighted values are rotated back, summed per center, and projected by an SO3Linear.

Smooth cutoff (not in the paper): the softmax is weighted by the envelope u(r_ij) and each
message is scaled by it, so an edge entering the cutoff starts with zero share and zero value.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lamm.models.equiformer_v2.activation import SeparableS2Activation, SmoothLeakyReLU
from lamm.models.equiformer_v2.edge_embedding import AtomEdgeScalars
from lamm.models.equiformer_v2.grid import SphereGrid
from lamm.models.equiformer_v2.linear import SO3Linear
from lamm.models.equiformer_v2.segment import segment_softmax, segment_sum
from lamm.models.equiformer_v2.so2_conv import SO2Convolution


class EquivariantGraphAttention(nn.Module):
    def __init__(
        self,
        lmax: int,
        mmax: int,
        channels: int,
        hidden_channels: int,
        num_heads: int,
        alpha_channels: int,
        value_channels: int,
        num_elements: int,
        num_basis: int,
        edge_channels: int,
        edge_grid: SphereGrid,
        alpha_drop: float = 0.0,
        dropout_seed: int = 0,
    ) -> None:
        super().__init__()
        self.num_heads, self.alpha_channels, self.value_channels = (
            num_heads,
            alpha_channels,
            value_channels,
        )
        self.alpha_drop = alpha_drop
        self.dropout_seed = dropout_seed
        self._dropout_generators: dict[torch.device, torch.Generator] = {}
        self.edge_scalars = AtomEdgeScalars(num_elements, edge_channels)
        self.conv_1 = SO2Convolution(
            lmax, mmax, 2 * channels, hidden_channels,
            radial_channels=[num_basis + 2 * edge_channels, edge_channels, edge_channels],
            extra_m0_channels=num_heads * alpha_channels + hidden_channels,
        )  # fmt: skip
        self.activation = SeparableS2Activation(edge_grid)
        self.conv_2 = SO2Convolution(lmax, mmax, hidden_channels, num_heads * value_channels)
        self.alpha_norm = nn.LayerNorm(alpha_channels)
        self.alpha_act = SmoothLeakyReLU(0.2)
        self.alpha_dot = nn.Parameter(torch.empty(num_heads, alpha_channels))
        self.proj = SO3Linear(num_heads * value_channels, channels, lmax)
        self.reset_alpha_dot()

    def reset_alpha_dot(self, generator: torch.Generator | None = None) -> None:
        bound = 1.0 / math.sqrt(self.alpha_channels)
        nn.init.uniform_(self.alpha_dot, -bound, bound, generator=generator)

    def forward(
        self,
        x: torch.Tensor,
        distance_basis: torch.Tensor,
        envelope: torch.Tensor,
        atomic_numbers: torch.Tensor,
        edge_index: torch.Tensor,
        to_edge: torch.Tensor,
        from_edge: torch.Tensor,
    ) -> torch.Tensor:
        """`x` `[N, F, C]` -> `[N, F, C]`; `to_edge` `[M, K, F]`, `from_edge` `[M, F, K]` from
        EdgeRotation."""
        source, target = edge_index
        n_edges = source.shape[0]
        scalars = self.edge_scalars(
            distance_basis, atomic_numbers, edge_index
        )  # [M, n_basis + 2 E]
        message = torch.cat([x[source], x[target]], dim=2)  # [M, F, 2C]
        message = torch.bmm(to_edge, message)  # [M, K, 2C], edge frame

        hidden, extra = self.conv_1(message, scalars)  # [M, K, H], [M, heads * alpha + H]
        alpha_features, gates = extra.split(
            [self.num_heads * self.alpha_channels, hidden.shape[2]], dim=1
        )
        hidden = self.activation(gates, hidden)  # [M, K, H]
        values, _ = self.conv_2(hidden)  # [M, K, heads * V]

        alpha_features = self.alpha_act(
            self.alpha_norm(alpha_features.reshape(n_edges, self.num_heads, self.alpha_channels))
        )
        logits = torch.einsum("mha,ha->mh", alpha_features, self.alpha_dot)  # [M, heads]
        alpha = segment_softmax(logits, target, x.shape[0], weights=envelope)  # [M, heads]
        alpha = self._dropout(alpha) * envelope.view(-1, 1)

        n_coeff = values.shape[1]
        values = values.view(n_edges, n_coeff, self.num_heads, self.value_channels) * alpha.view(
            n_edges, 1, self.num_heads, 1
        )
        values = torch.bmm(
            from_edge, values.view(n_edges, n_coeff, self.num_heads * self.value_channels)
        )  # [M, F, heads * V], global frame
        return self.proj(segment_sum(values, target, x.shape[0]))  # [N, F, C]

    def _dropout(self, alpha: torch.Tensor) -> torch.Tensor:
        """Dropout of attention weights with this module's own seeded generator (no global RNG)."""
        if not self.training or self.alpha_drop == 0.0:
            return alpha
        generator = self._dropout_generators.get(alpha.device)
        if generator is None:
            generator = torch.Generator(device=alpha.device).manual_seed(self.dropout_seed)
            self._dropout_generators[alpha.device] = generator
        keep = (
            torch.rand(alpha.shape, generator=generator, device=alpha.device, dtype=alpha.dtype)
            >= self.alpha_drop
        )
        return alpha * keep / (1.0 - self.alpha_drop)
