"""The equivariant linear layer: one channel-mixing matrix per degree, a bias on l = 0 only."""

from __future__ import annotations

import math

import torch
from torch import nn

from lamm.models.equiformer_v2.so3 import degree_of_coefficients


class SO3Linear(nn.Module):
    """y[:, (l, m), :] = W_l x[:, (l, m), :] (+ b for l = 0): commutes with every Wigner-D.

    Acts on `[N, (lmax + 1)^2, C_in]` in the l-primary layout (fairchem's SO3_LinearV2).
    """

    def __init__(self, in_channels: int, out_channels: int, lmax: int) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.weight = nn.Parameter(torch.empty(lmax + 1, out_channels, in_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("degree", degree_of_coefficients(lmax), persistent=False)  # [F]
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        bound = 1.0 / math.sqrt(self.in_channels)
        nn.init.uniform_(self.weight, -bound, bound, generator=generator)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight[self.degree]  # [F, C_out, C_in]
        out = torch.einsum("nfi,foi->nfo", x, weight)  # [N, F, C_out]
        bias = torch.zeros_like(out[:1])  # [1, F, C_out]
        bias[:, 0] = self.bias
        return out + bias
