"""One EquiformerV2 transformer block: pre-norm attention and pre-norm feed-forward, each
residual."""

from __future__ import annotations

import torch
from torch import nn

from lamm.models.equiformer_v2.attention import EquivariantGraphAttention
from lamm.models.equiformer_v2.feed_forward import FeedForward
from lamm.models.equiformer_v2.layer_norm import EquivariantLayerNorm


class TransformerBlock(nn.Module):
    def __init__(
        self,
        attention: EquivariantGraphAttention,
        feed_forward: FeedForward,
        norm_attention: EquivariantLayerNorm,
        norm_feed_forward: EquivariantLayerNorm,
    ) -> None:
        super().__init__()
        self.norm_attention = norm_attention
        self.attention = attention
        self.norm_feed_forward = norm_feed_forward
        self.feed_forward = feed_forward

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
        """`[N, F, C]` -> `[N, F, C]`."""
        x = x + self.attention(
            self.norm_attention(x),
            distance_basis,
            envelope,
            atomic_numbers,
            edge_index,
            to_edge,
            from_edge,
        )
        return x + self.feed_forward(self.norm_feed_forward(x))
