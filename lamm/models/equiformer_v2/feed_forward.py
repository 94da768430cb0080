"""The feed-forward block of EquiformerV2: SO3Linear -> activation on the sphere -> SO3Linear."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from lamm.models.equiformer_v2.activation import SeparableS2Activation
from lamm.models.equiformer_v2.grid import SphereGrid
from lamm.models.equiformer_v2.linear import SO3Linear


class FeedForward(nn.Module):
    """Two variants of the middle step, both with a separate exact path for l = 0:

    - `grid_mlp=True` (the OC20 31M configuration, `use_grid_mlp`): the hidden features'
      functions on the sphere grid go through a pointwise 3-layer MLP across channels
      (Linear-SiLU-Linear-SiLU-Linear, no biases) and are projected back; l = 0 comes from
      SiLU(Linear(input l = 0)).
    - `grid_mlp=False`: the separable S2 activation (SiLU per channel on the grid), gated for
      l = 0 by Linear(input l = 0).
    """

    def __init__(
        self,
        lmax: int,
        channels: int,
        hidden_channels: int,
        grid: SphereGrid,
        grid_mlp: bool = True,
    ) -> None:
        super().__init__()
        self.grid = grid
        self.grid_mlp = grid_mlp
        self.linear_1 = SO3Linear(channels, hidden_channels, lmax)
        self.scalar_linear = nn.Linear(channels, hidden_channels)
        if grid_mlp:
            self.point_mlp = nn.Sequential(
                nn.Linear(hidden_channels, hidden_channels, bias=False),
                nn.SiLU(),
                nn.Linear(hidden_channels, hidden_channels, bias=False),
                nn.SiLU(),
                nn.Linear(hidden_channels, hidden_channels, bias=False),
            )
        else:
            self.activation = SeparableS2Activation(grid)
        self.linear_2 = SO3Linear(hidden_channels, channels, lmax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[N, F, C]` -> `[N, F, C]`."""
        scalars = self.scalar_linear(x[:, 0, :])  # [N, H]
        hidden = self.linear_1(x)  # [N, F, H]
        if self.grid_mlp:
            # grid values recomputed in backward rather than stored (see SeparableS2Activation)
            if torch.is_grad_enabled():
                tensors = checkpoint(self._grid_mlp, hidden, use_reentrant=False)  # [N, F - 1, H]
            else:
                tensors = self._grid_mlp(hidden)
            hidden = torch.cat([nn.functional.silu(scalars).unsqueeze(1), tensors], dim=1)
        else:
            hidden = self.activation(scalars, hidden)
        return self.linear_2(hidden)

    def _grid_mlp(self, hidden: torch.Tensor) -> torch.Tensor:
        on_grid = self.point_mlp(self.grid.to_grid(hidden))  # [N, P, H]
        return self.grid.from_grid(
            on_grid, first=1
        )  # [N, F - 1, H], l = 0 comes from the scalar path
