"""Projections between spherical-harmonic coefficients and function values on a sphere grid.

EquiformerV2's S2 activation evaluates a feature's function f(u) = sum_k c_k Y_k(u) at grid
points, applies a pointwise nonlinearity there, and projects back onto the harmonics. The grid
is a product of Gauss-Legendre latitudes and uniform longitudes about the pole (fairchem uses
e3nn's equiangular SOFT grid; Gauss-Legendre is exact to a higher degree for the same count).

Projection back is exact for band-limited grid functions: a coefficient of degree <= lmax is
recovered exactly when the grid integrates Y_k Y_k' exactly (n_lat >= lmax + 1, n_lon >=
2 lmax + 1). The nonlinearity makes the grid function not band-limited, so the projection
carries a quadrature (aliasing) error, the only part of the model that is not exactly
equivariant; it falls exponentially with the resolution (measured in the tests and in
docs/models.md).
"""

from __future__ import annotations

import torch
from torch import nn

from lamm.models.equiformer_v2.so3 import harmonics, sphere_quadrature


class SphereGrid(nn.Module):
    """`to_grid` and `from_grid` for a chosen subset of coefficients of degree <= lmax.

    `coefficient_indices` lists the l-primary positions (l^2 + l + m) of the coefficients in the
    order the features store them: all of them for node features, the m-primary |m| <= mmax
    subset for edge-frame features.
    """

    def __init__(self, lmax: int, coefficient_indices: list[int], resolution: int) -> None:
        super().__init__()
        if resolution < 2 * lmax + 1:
            raise ValueError(
                f"grid resolution {resolution} is below 2 * lmax + 1 = {2 * lmax + 1}: not "
                "even a band-limited function round-trips"
            )
        self.lmax = lmax
        self.resolution = resolution
        points, weights = sphere_quadrature(resolution, resolution)
        values = harmonics(lmax, torch.tensor(points, dtype=torch.float64))[
            :, coefficient_indices
        ]  # [P, K]
        weights_t = torch.tensor(weights, dtype=torch.float64)
        # constants rebuilt from the arguments (not saved); float64 so that a float64 model is exact
        self.register_buffer("to_grid_matrix", values, persistent=False)  # [P, K]
        self.register_buffer(
            "from_grid_matrix", (values * weights_t[:, None]).T.contiguous(), persistent=False
        )  # [K, P]

    @property
    def num_points(self) -> int:
        return self.to_grid_matrix.shape[0]

    def to_grid(self, coefficients: torch.Tensor) -> torch.Tensor:
        """`[B, K, C]` coefficients -> `[B, P, C]` function values at the grid points."""
        # einsum, not matmul: matmul broadcasts the matrix over B, and its backward is ~6x slower
        return torch.einsum("pk,bkc->bpc", self.to_grid_matrix.to(coefficients.dtype), coefficients)

    def from_grid(self, values: torch.Tensor, first: int = 0) -> torch.Tensor:
        """`[B, P, C]` grid values -> `[B, K - first, C]` coefficients `first..K-1` (quadrature
        projection)."""
        return torch.einsum("kp,bpc->bkc", self.from_grid_matrix[first:].to(values.dtype), values)
