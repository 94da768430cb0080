"""Nonlinearities: the separable S2 activation and the smooth leaky ReLU of the attention logits."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from lamm.models.equiformer_v2.grid import SphereGrid


class SeparableS2Activation(nn.Module):
    """EquiformerV2's separable S2 activation (section 4.2 of the paper).

    Degrees l > 0: SiLU applied pointwise to the feature's function on the sphere grid, projected
    back (equivariant up to the grid's quadrature error). Degree 0: SiLU of separate invariant
    gating scalars, replacing the grid's l = 0 output, so the scalar path is exact.
    Features are `[B, K, C]` with the l = 0 coefficient first (true for both layouts we use).

    The grid values (P/K times larger than the coefficients, ~17x for lmax 4) are not kept for
    backward but recomputed (activation checkpointing): they would dominate the memory.
    """

    def __init__(self, grid: SphereGrid) -> None:
        super().__init__()
        self.grid = grid

    def forward(self, gating_scalars: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """`gating_scalars` `[B, C]`, `features` `[B, K, C]` -> `[B, K, C]`."""
        if torch.is_grad_enabled():
            tensors = checkpoint(self._grid_silu, features, use_reentrant=False)  # [B, K - 1, C]
        else:
            tensors = self._grid_silu(features)
        scalars = nn.functional.silu(gating_scalars).unsqueeze(1)  # [B, 1, C]
        return torch.cat([scalars, tensors], dim=1)

    def _grid_silu(self, features: torch.Tensor) -> torch.Tensor:
        on_grid = nn.functional.silu(self.grid.to_grid(features))  # [B, P, C]
        return self.grid.from_grid(on_grid, first=1)  # [B, K - 1, C], l = 0 is replaced


class SmoothLeakyReLU(nn.Module):
    """(1 + a)/2 x + (1 - a)/2 x (2 sigmoid(x) - 1): a leaky ReLU with a smooth kink (slope a = 0.2)."""

    def __init__(self, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.negative_slope
        return 0.5 * (1 + a) * x + 0.5 * (1 - a) * x * (2 * torch.sigmoid(x) - 1)
