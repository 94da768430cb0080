"""Small building blocks shared by the PaiNN encoder and the heads.

Vector features are laid out [N, 3, F]: Cartesian xyz on dim 1, channels last, so a linear
layer over channels (`nn.Linear` on the last dim, no bias) commutes with rotations.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

# sqrt(|v|^2 + eps): |v| itself has an undefined (NaN) gradient at v = 0, and vector features
# are exactly zero before the first message and on isolated atoms.
NORM_EPSILON = 1e-8


def vector_norm(vectors: torch.Tensor) -> torch.Tensor:
    """[N, 3, F] -> [N, F], rotation invariant, with a finite gradient at zero."""
    return torch.sqrt(torch.sum(vectors**2, dim=1) + NORM_EPSILON)


class ScaledSiLU(nn.Module):
    """SiLU / 0.6, which keeps unit-variance inputs at roughly unit variance (GemNet, FAIR-Chem)."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = 1.0 / 0.6

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x) * self.scale


class GatedEquivariantBlock(nn.Module):
    """Schuett et al. 2021, Fig. 3: vectors are gated by scalars computed from (s, |W1 v|).

    s_out = act(a), v_out = g * (W2 v) with [a, g] = MLP([s, |W1 v|]). Rotations act on v only
    through the channel-mixing W1, W2, so v_out is equivariant and s_out invariant.
    """

    def __init__(
        self, scalar_in: int, vector_in: int, out_channels: int, scalar_activation: bool = True
    ) -> None:
        super().__init__()
        if min(scalar_in, vector_in, out_channels) < 1:
            raise ValueError(
                f"channel counts must be positive, got {scalar_in}, {vector_in}, {out_channels}"
            )
        self.out_channels = out_channels
        self.vector_mix = nn.Linear(vector_in, vector_in, bias=False)
        self.vector_out = nn.Linear(vector_in, out_channels, bias=False)
        self.gate_net = nn.Sequential(
            nn.Linear(scalar_in + vector_in, scalar_in),
            ScaledSiLU(),
            nn.Linear(scalar_in, 2 * out_channels),
        )
        self.scalar_activation = ScaledSiLU() if scalar_activation else nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.vector_mix.weight)
        nn.init.xavier_uniform_(self.vector_out.weight)
        for layer in (self.gate_net[0], self.gate_net[2]):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(
        self, scalars: torch.Tensor, vectors: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """scalars [N, S], vectors [N, 3, V] -> ([N, out], [N, 3, out])."""
        norms = vector_norm(self.vector_mix(vectors))  # [N, V]
        hidden = self.gate_net(torch.cat([scalars, norms.to(scalars.dtype)], dim=-1))  # [N, 2 out]
        scalar_out, gate = torch.split(hidden, self.out_channels, dim=-1)
        vector_out = gate.unsqueeze(1) * self.vector_out(vectors)  # [N, 3, out]
        return self.scalar_activation(scalar_out), vector_out
