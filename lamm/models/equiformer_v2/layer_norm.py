"""Equivariant layer normalization of `[N, (lmax + 1)^2, C]` features (EquiformerV2 section 4).

Norms are taken over the m components of each degree (rotation invariant), averaged with
"balanced" weights 1 / (2l + 1) so every degree counts alike however many components it has,
then averaged over channels. Two variants from the paper's code:

- `scalar_layer_norm=True` ("layer_norm_sh", the OC20 31M configuration): an ordinary
  LayerNorm over the l = 0 channels, and one shared RMS for all degrees l > 0.
- `scalar_layer_norm=False` ("rms_norm_sh", fairchem's default): the l = 0 channels are
  centered, then one balanced RMS over all degrees scales everything.

Both have a learned scale per (degree, channel) and a bias on l = 0 only (a bias on l > 0
would break equivariance).
"""

from __future__ import annotations

import torch
from torch import nn

from lamm.models.equiformer_v2.so3 import degree_of_coefficients


class EquivariantLayerNorm(nn.Module):
    def __init__(
        self, lmax: int, channels: int, scalar_layer_norm: bool = True, eps: float = 1e-5
    ) -> None:
        super().__init__()
        if scalar_layer_norm and lmax < 1:
            raise ValueError(
                "scalar_layer_norm needs lmax >= 1 (it normalizes l = 0 and l > 0 separately)"
            )
        self.lmax = lmax
        self.eps = eps
        self.scalar_layer_norm = scalar_layer_norm
        degree = degree_of_coefficients(lmax)
        first = 1 if scalar_layer_norm else 0  # lowest degree in the shared RMS
        balance = torch.where(
            degree >= first,
            1.0 / (2 * degree + 1).to(torch.float64),
            torch.zeros((), dtype=torch.float64),
        )
        balance = balance / (lmax + 1 - first)  # [F], sums to 1 over the degrees in the RMS
        self.register_buffer("balance", balance, persistent=False)
        self.register_buffer("degree", degree, persistent=False)
        self.scale = nn.Parameter(torch.ones(lmax + 1, channels))  # per degree and channel
        self.bias = nn.Parameter(torch.zeros(channels))  # l = 0 only

    def reset_parameters(self) -> None:
        nn.init.ones_(self.scale)
        nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scalars = x[:, :1, :]  # [N, 1, C]
        scalars = scalars - scalars.mean(dim=2, keepdim=True)
        centered = torch.cat([scalars, x[:, 1:, :]], dim=1)  # [N, F, C]
        balance = self.balance.to(x.dtype)
        mean_square = torch.einsum("nfc,f->n", centered * centered, balance) / x.shape[2]  # [N]
        inv_rms = (mean_square + self.eps).rsqrt().view(-1, 1, 1)  # [N, 1, 1]
        out = centered * inv_rms * self.scale[self.degree]  # [N, F, C]
        if self.scalar_layer_norm:
            scalar_var = scalars.pow(2).mean(dim=2, keepdim=True)  # [N, 1, 1]
            out_scalars = scalars * (scalar_var + self.eps).rsqrt() * self.scale[0]  # [N, 1, C]
            out = torch.cat([out_scalars, out[:, 1:, :]], dim=1)
        bias = torch.zeros_like(out[:1])  # [1, F, C]
        bias[:, 0] = self.bias
        return out + bias
