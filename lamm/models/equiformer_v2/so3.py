"""Coefficient layouts, edge frames and Wigner-D matrices for features on the sphere.

Node features are real spherical-harmonic coefficients in e3nn's layout: degree l owns the
2l + 1 entries l^2 .. l^2 + 2l (order m = -l..l), `[N, (lmax + 1)^2, C]`, with e3nn's
"component" normalization (each harmonic has mean square 1 over the sphere) and the y axis as
the pole (the m = 0 harmonic of every degree is symmetric about y).

eSCN (Passaro & Zitnick 2023) rotates each edge's features into a frame where the edge points
along the pole. There a rotation about the edge acts on the pair (+m, -m) of every degree as a
2-D rotation by m * angle, so an SO(3)-equivariant edge convolution reduces to SO(2) operations
per m, and orders |m| > mmax may be dropped. Those edge-frame features use the "m-primary"
layout of `edge_coefficients`: m = 0 for l = 0..lmax, then for m = 1..mmax the +m entries
(l = m..lmax) followed by the -m entries.

The Wigner-D matrix of a rotation R is computed without Euler angles as the projection
D_pq(R) = <Y_p(R v), Y_q(v)> over the sphere, evaluated with a product quadrature that is exact
for polynomials of degree 2 lmax. It is therefore exact (to rounding), a polynomial in R (no
gimbal singularity, finite gradients everywhere), and consistent with e3nn's harmonics by
construction: Y(R v) = D(R) Y(v).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from e3nn import o3
from torch import nn


def num_coefficients(lmax: int) -> int:
    return (lmax + 1) ** 2


def degree_of_coefficients(lmax: int) -> torch.Tensor:
    """The degree l of each l-primary coefficient, `[(lmax + 1)^2]` int64."""
    return torch.tensor(
        [ell for ell in range(lmax + 1) for _ in range(2 * ell + 1)], dtype=torch.long
    )


def edge_coefficients(lmax: int, mmax: int) -> list[tuple[int, int]]:
    """(l, m) of the edge-frame coefficients in m-primary order (see the module docstring)."""
    order = [(ell, 0) for ell in range(lmax + 1)]
    for m in range(1, mmax + 1):
        order += [(ell, m) for ell in range(m, lmax + 1)]
        order += [(ell, -m) for ell in range(m, lmax + 1)]
    return order


def edge_coefficient_indices(lmax: int, mmax: int) -> list[int]:
    """Positions of `edge_coefficients` in the l-primary layout (index l^2 + l + m)."""
    return [ell * ell + ell + m for ell, m in edge_coefficients(lmax, mmax)]


def harmonics(lmax: int, unit_vectors: torch.Tensor) -> torch.Tensor:
    """Real spherical harmonics of degrees 0..lmax at unit vectors: `[..., (lmax + 1)^2]`."""
    return o3.spherical_harmonics(
        list(range(lmax + 1)), unit_vectors, normalize=False, normalization="component"
    )


def sphere_quadrature(n_latitudes: int, n_longitudes: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre latitudes (in the pole coordinate y) times uniform longitudes.

    Returns unit points `[n_lat * n_lon, 3]` and weights summing to 1 (a mean over the sphere),
    exact for polynomials of degree <= 2 n_lat - 1 in y and trigonometric degree < n_lon in
    the longitude.
    """
    y, w = np.polynomial.legendre.leggauss(n_latitudes)  # nodes in [-1, 1], weights sum to 2
    phi = 2.0 * np.pi * np.arange(n_longitudes) / n_longitudes
    rho = np.sqrt(1.0 - y**2)
    points = np.stack(
        [
            (rho[:, None] * np.sin(phi)[None, :]).ravel(),
            np.repeat(y, n_longitudes),
            (rho[:, None] * np.cos(phi)[None, :]).ravel(),
        ],
        axis=1,
    )
    weights = np.repeat(w / 2.0, n_longitudes) / n_longitudes
    return points, weights


def l1_to_cartesian() -> torch.Tensor:
    """`P` `[3, 3]` float64 with Y_1(u) = sqrt(3) P u, so Cartesian (x, y, z) = P^T (l = 1
    coefficients).

    Read from e3nn itself rather than assumed: older e3nn releases ordered the l = 1
    harmonics (y, z, x); e3nn 0.5+ orders them (x, y, z), where P is the identity.
    """
    eye = torch.eye(3, dtype=torch.float64)
    p = harmonics(1, eye)[:, 1:4].T / math.sqrt(3.0)  # column k = Y_1(e_k) / sqrt(3)
    if not torch.allclose(p @ p.T, eye, atol=1e-12):
        raise RuntimeError(f"e3nn's l = 1 harmonics are not an orthogonal map of (x, y, z): {p}")
    return p


def edge_frame_rotation(unit_vectors: torch.Tensor) -> torch.Tensor:
    """Rotations R `[M, 3, 3]` with R u = e_y (the pole) for unit edge directions u `[M, 3]`.

    The shortest rotation taking u to s e_y (s = sign(u_y), +1 at 0), followed for s = -1 by
    the half turn about z that maps -e_y to e_y. Rodrigues' formula with denominator
    1 + |u_y| >= 1, so no edge direction gives a singular value or gradient. The roll about
    the edge this picks is deterministic (no random frame); the model's output does not
    depend on it beyond the sphere-grid quadrature error of the S2 activation.
    """
    uy = unit_vectors[:, 1]
    sign = torch.where(uy >= 0, 1.0, -1.0).to(unit_vectors.dtype)  # [M]
    # v = u x (s e_y) = s (-u_z, 0, u_x)
    vx, vz = -sign * unit_vectors[:, 2], sign * unit_vectors[:, 0]
    zero = torch.zeros_like(vx)
    k = torch.stack(  # cross-product matrix [v]_x of v = (vx, 0, vz)
        [
            torch.stack([zero, -vz, zero], -1),
            torch.stack([vz, zero, -vx], -1),
            torch.stack([zero, vx, zero], -1),
        ],
        -2,
    )  # [M, 3, 3]
    eye = torch.eye(3, dtype=unit_vectors.dtype, device=unit_vectors.device)
    minimal = eye + k + (k @ k) / (1.0 + uy.abs()).view(-1, 1, 1)  # [M, 3, 3], u -> s e_y
    flip = torch.stack(
        [sign, sign, torch.ones_like(sign)], -1
    )  # diag(s, s, 1): -e_y -> e_y when s = -1
    return flip.unsqueeze(-1) * minimal


class WignerD(nn.Module):
    """Wigner-D matrices of degrees 0..lmax (block diagonal) from 3x3 rotation matrices."""

    def __init__(self, lmax: int) -> None:
        super().__init__()
        self.lmax = lmax
        # degree 2 lmax needs lmax + 1 Gauss-Legendre latitudes and 2 lmax + 1 longitudes
        points, weights = sphere_quadrature(lmax + 1, 2 * lmax + 1)
        points_t = torch.tensor(points, dtype=torch.float64)
        weighted = (
            harmonics(lmax, points_t) * torch.tensor(weights, dtype=torch.float64)[:, None]
        )  # [K, F]
        degree = degree_of_coefficients(lmax)
        # constants rebuilt from lmax (not saved); float64 so that a float64 model is exact
        self.register_buffer("points", points_t, persistent=False)  # [K, 3]
        self.register_buffer("weighted_harmonics", weighted, persistent=False)  # [K, F]
        self.register_buffer(
            "same_degree", (degree[:, None] == degree[None, :]).to(torch.float64), persistent=False
        )

    def forward(self, rotations: torch.Tensor, rows: list[int] | None = None) -> torch.Tensor:
        """D(R) `[M, len(rows), (lmax + 1)^2]` for R `[M, 3, 3]`; `rows` selects output rows."""
        dtype = rotations.dtype
        rotated = torch.einsum("mij,kj->mki", rotations, self.points.to(dtype))  # [M, K, 3]
        y_rotated = harmonics(self.lmax, rotated)  # [M, K, F]
        mask = self.same_degree.to(dtype)  # [F, F]
        if rows is not None:
            y_rotated = y_rotated[:, :, rows]  # [M, K, R]
            mask = mask[rows]  # [R, F]
        d = torch.einsum("mkp,kq->mpq", y_rotated, self.weighted_harmonics.to(dtype))  # [M, R, F]
        # blocks of different degree vanish exactly in theory; zero the rounding noise
        return d * mask


class EdgeRotation(nn.Module):
    """Per-edge Wigner-D matrices into the edge frame (|m| <= mmax rows) and back.

    `forward(edge_vectors)` returns `to_edge` `[M, K, F]` (node layout -> m-primary edge layout)
    and `from_edge` `[M, F, K]`. Going back, degrees l > mmax are scaled by
    sqrt((2l + 1) / (2 mmax + 1)): the kept components of such a degree carry only that share
    of its norm (fairchem's rotate_inv rescaling; a per-degree factor, so equivariant).
    """

    def __init__(self, lmax: int, mmax: int) -> None:
        super().__init__()
        self.wigner = WignerD(lmax)
        self.rows = edge_coefficient_indices(lmax, mmax)
        degree = degree_of_coefficients(lmax).to(torch.float64)
        rescale = torch.where(
            degree > mmax, torch.sqrt((2 * degree + 1) / (2 * mmax + 1)), torch.ones_like(degree)
        )
        self.register_buffer("rescale", rescale.view(-1, 1), persistent=False)  # [F, 1]

    def forward(self, edge_vectors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        unit = edge_vectors / edge_vectors.norm(dim=1, keepdim=True)  # [M, 3]
        to_edge = self.wigner(edge_frame_rotation(unit), self.rows)  # [M, K, F]
        from_edge = to_edge.transpose(1, 2) * self.rescale.to(edge_vectors.dtype)  # [M, F, K]
        return to_edge, from_edge
