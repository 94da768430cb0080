"""Nonlinearities: the separable S2 activation and the smooth leaky ReLU of the attention logits."""

from __future__ import annotations

import torch
from torch import nn

from lamm.models.equiformer_v2.grid import SphereGrid


class SeparableS2Activation(nn.Module):
    """EquiformerV2's separable S2 activation (section 4.2 of the paper).

    Degrees l > 0: SiLU applied pointwise to the feature's function on the sphere grid, projected
    back (equivariant up to the grid's quadrature error). Degree 0: SiLU of separate invariant
    gating scalars, replacing the grid's l = 0 output, so the scalar path is exact.
    Features are `[B, K, C]` with the l = 0 coefficient first (true for both layouts we use).

    The grid values are P/K times larger than the coefficients (~17x for lmax 4 on an 18 x 18
    grid) and there is one function per edge and channel, so `grid_silu` works in chunks of
    rows and recomputes them in backward instead of storing them.
    """

    def __init__(self, grid: SphereGrid) -> None:
        super().__init__()
        self.grid = grid

    def forward(self, gating_scalars: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """`gating_scalars` `[B, C]`, `features` `[B, K, C]` -> `[B, K, C]`."""
        dtype = features.dtype
        to_grid = self.grid.to_grid_matrix.to(dtype)  # [P, K]
        from_grid = self.grid.from_grid_matrix[1:].to(dtype)  # [K - 1, P], l = 0 is replaced below
        tensors = GridSiLU.apply(features, to_grid, from_grid)  # [B, K - 1, C]
        scalars = nn.functional.silu(gating_scalars).unsqueeze(1)  # [B, 1, C]
        return torch.cat([scalars, tensors], dim=1)


class GridSiLU(torch.autograd.Function):
    """from_grid @ silu(to_grid @ x) for x `[B, K, C]`, in chunks of B, grid values never stored.

    Chunks of about 2^20 grid values stay in cache (2-3x faster than one pass on a CPU) and
    the backward recomputes them chunk by chunk. The backward is written in differentiable
    operations, so double backward (gradient forces in training) works.
    """

    CHUNK_VALUES = 1 << 20

    @staticmethod
    def forward(
        ctx, x: torch.Tensor, to_grid: torch.Tensor, from_grid: torch.Tensor
    ) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, to_grid, from_grid)
        out = [
            torch.einsum(
                "kp,bpc->bkc",
                from_grid,
                nn.functional.silu(torch.einsum("pk,bkc->bpc", to_grid, chunk)),
            )
            for chunk in x.split(GridSiLU._chunk(x, to_grid))
        ]
        return torch.cat(out) if out else x.new_zeros((0, from_grid.shape[0], x.shape[2]))

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:  # type: ignore[override]
        x, to_grid, from_grid = ctx.saved_tensors
        size = GridSiLU._chunk(x, to_grid)
        grads = []
        for chunk, grad_chunk in zip(x.split(size), grad_out.split(size), strict=True):
            values = torch.einsum("pk,bkc->bpc", to_grid, chunk)  # [b, P, C]
            sigmoid = torch.sigmoid(values)
            slope = sigmoid * (1.0 + values * (1.0 - sigmoid))  # d silu / d value
            grad_values = torch.einsum("kp,bkc->bpc", from_grid, grad_chunk) * slope  # [b, P, C]
            grads.append(torch.einsum("pk,bpc->bkc", to_grid, grad_values))  # [b, K, C]
        return (torch.cat(grads) if grads else torch.zeros_like(x)), None, None

    @staticmethod
    def _chunk(x: torch.Tensor, to_grid: torch.Tensor) -> int:
        return max(1, GridSiLU.CHUNK_VALUES // (to_grid.shape[0] * max(1, x.shape[2])))


class SmoothLeakyReLU(nn.Module):
    """(1 + a)/2 x + (1 - a)/2 x (2 sigmoid(x) - 1): a leaky ReLU with a smooth kink (slope a =
    0.2)."""

    def __init__(self, negative_slope: float = 0.2) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.negative_slope
        return 0.5 * (1 + a) * x + 0.5 * (1 - a) * x * (2 * torch.sigmoid(x) - 1)
