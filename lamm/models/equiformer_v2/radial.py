"""Distance features: Gaussian basis, a smooth cutoff envelope, and the radial MLP.

EquiformerV2 (as in fairchem) expands distances in Gaussians on [0, cutoff] (600 of them,
width 2x their spacing) and has no envelope: an atom entering the cutoff switches its messages
on abruptly. Here a polynomial envelope (DimeNet's, p = 5: value, slope and curvature vanish at
the cutoff) scales every message and weights the attention softmax, so node features and any
energy read from them are twice continuously differentiable as atoms cross the cutoff.
"""

from __future__ import annotations

import torch
from torch import nn


class GaussianBasis(nn.Module):
    """exp(-(d - mu_k)^2 / (2 (width_factor * spacing)^2)) for mu_k evenly spaced on [0, cutoff]."""

    def __init__(self, cutoff: float, num_basis: int, width_factor: float = 2.0) -> None:
        super().__init__()
        if num_basis < 2:
            raise ValueError(f"the Gaussian basis needs at least 2 functions, got {num_basis}")
        offsets = torch.linspace(0.0, cutoff, num_basis, dtype=torch.float64)
        spacing = cutoff / (num_basis - 1)
        self.coefficient = -0.5 / (width_factor * spacing) ** 2
        self.register_buffer("offsets", offsets, persistent=False)  # [n_basis]

    def forward(self, distances: torch.Tensor) -> torch.Tensor:
        """`[M]` Angstrom -> `[M, n_basis]`."""
        diff = distances[:, None] - self.offsets.to(distances.dtype)[None, :]  # [M, n_basis]
        return torch.exp(self.coefficient * diff * diff)


class PolynomialEnvelope(nn.Module):
    """u(x) = 1 - (p+1)(p+2)/2 x^p + p(p+2) x^(p+1) - p(p+1)/2 x^(p+2) for x = d / cutoff < 1, else
    0."""

    def __init__(self, cutoff: float, exponent: int = 5) -> None:
        super().__init__()
        self.cutoff = cutoff
        self.p = exponent

    def forward(self, distances: torch.Tensor) -> torch.Tensor:
        """`[M]` Angstrom -> `[M]` in [0, 1]."""
        p = self.p
        x = distances / self.cutoff
        xp = x**p
        value = (
            1.0
            - 0.5 * (p + 1) * (p + 2) * xp
            + p * (p + 2) * xp * x
            - 0.5 * p * (p + 1) * xp * x * x
        )
        return torch.where(x < 1.0, value, torch.zeros_like(value))


class RadialMLP(nn.Module):
    """Linear -> LayerNorm -> SiLU for each hidden size, then a final Linear (EquiformerV2's radial
    function)."""

    def __init__(self, channels: list[int]) -> None:
        super().__init__()
        if len(channels) < 2:
            raise ValueError(f"a radial MLP needs input and output sizes, got {channels}")
        layers: list[nn.Module] = []
        for i, (n_in, n_out) in enumerate(zip(channels[:-1], channels[1:], strict=True)):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(channels) - 2:
                layers += [nn.LayerNorm(n_out), nn.SiLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, edge_scalars: torch.Tensor) -> torch.Tensor:
        return self.net(edge_scalars)
