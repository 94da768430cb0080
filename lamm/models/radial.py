"""Radial parts of message passing: a distance expansion and a smooth cutoff envelope.

Both take distances in Angstrom and are passed into an encoder, so a model can swap either
without touching the encoder. The pair below is the FAIR-Chem PaiNN default (its gemnet
`RadialBasis` with `rbf: gaussian` and `envelope: polynomial, exponent 5`): Gaussians on the
distance scaled to [0, 1] by the cutoff, times the polynomial envelope of DimeNet.
"""

from __future__ import annotations

import torch
from torch import nn


class GaussianBasis(nn.Module):
    """`num_rbf` Gaussians with centres evenly spaced on [0, cutoff] and width = the spacing.

    exp(-(d/cutoff - mu_k)^2 / (2 sigma^2)), mu_k = k / (num_rbf - 1), sigma = 1 / (num_rbf - 1).
    Not smooth at the cutoff by itself: multiply by an envelope.
    """

    def __init__(self, num_rbf: int = 128, cutoff: float = 6.0) -> None:
        super().__init__()
        if num_rbf < 2:
            raise ValueError(f"num_rbf must be at least 2, got {num_rbf}")
        if cutoff <= 0:
            raise ValueError(f"cutoff must be positive, got {cutoff}")
        self.num_rbf = int(num_rbf)
        self.cutoff = float(cutoff)
        centers = torch.linspace(0.0, 1.0, num_rbf, dtype=torch.float32)
        self.register_buffer("centers", centers)
        self.coefficient = -0.5 * (num_rbf - 1) ** 2  # -1 / (2 sigma^2) in scaled units

    def forward(self, distances: torch.Tensor) -> torch.Tensor:
        """[M] Angstrom -> [M, num_rbf]."""
        scaled = distances / self.cutoff  # [M]
        return torch.exp(
            self.coefficient * (scaled.unsqueeze(-1) - self.centers) ** 2
        )  # [M, num_rbf]


class PolynomialEnvelope(nn.Module):
    """u(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2) for x = d/cutoff < 1, else 0.

    u(0) = 1 and u, u', u'' vanish at the cutoff (Gasteiger et al. 2020, DimeNet), so energies
    and forces stay continuous when a neighbor crosses the cutoff.
    """

    def __init__(self, cutoff: float = 6.0, exponent: int = 5) -> None:
        super().__init__()
        if cutoff <= 0:
            raise ValueError(f"cutoff must be positive, got {cutoff}")
        if exponent < 1:
            raise ValueError(f"exponent must be at least 1, got {exponent}")
        self.cutoff = float(cutoff)
        self.exponent = int(exponent)
        p = float(exponent)
        self.a = -(p + 1.0) * (p + 2.0) / 2.0
        self.b = p * (p + 2.0)
        self.c = -p * (p + 1.0) / 2.0

    def forward(self, distances: torch.Tensor) -> torch.Tensor:
        """[M] Angstrom -> [M] in [0, 1]."""
        x = distances / self.cutoff  # [M]
        x_p = x**self.exponent
        value = 1.0 + x_p * (self.a + x * (self.b + self.c * x))  # Horner form of the polynomial
        return torch.where(x < 1.0, value, torch.zeros_like(value))
