"""The eSCN SO(2) convolution on edge-frame features (Passaro & Zitnick 2023, eq. 9-11).

In the edge frame (edge along the pole) a rotation about the edge by angle g multiplies the
pair (x_{+m}, x_{-m}) of each degree by the 2-D rotation of angle m g. A linear map commutes
with all of those exactly when, for each m, it acts on the pairs like a complex number:

    y_{+m} = W_r x_{+m} - W_i x_{-m},     y_{-m} = W_r x_{-m} + W_i x_{+m},

mixing degrees l >= m and channels freely (W_r, W_i: `[(lmax+1-m) C_in] -> [(lmax+1-m) C_out]`);
m = 0 is an ordinary linear map with a bias. An optional radial MLP of invariant edge features
scales the inputs elementwise per (m, l, channel), the same for +m and -m (fairchem's
SO2_Convolution with `internal_weights=False`). Extra m = 0 outputs (attention logits, gates)
are invariant edge features.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from lamm.models.equiformer_v2.radial import RadialMLP


class SO2Convolution(nn.Module):
    """`[M, K, C_in]` m-primary edge-frame features -> (`[M, K, C_out]`, `[M, extra]`)."""

    def __init__(
        self,
        lmax: int,
        mmax: int,
        in_channels: int,
        out_channels: int,
        radial_channels: list[int] | None = None,
        extra_m0_channels: int = 0,
    ) -> None:
        super().__init__()
        self.lmax, self.mmax = lmax, mmax
        self.in_channels, self.out_channels = in_channels, out_channels
        self.extra_m0_channels = extra_m0_channels
        n0 = lmax + 1
        self.fc_m0 = nn.Linear(n0 * in_channels, n0 * out_channels + extra_m0_channels)
        # one complex-style map per m > 0: columns [:half] are W_r, [half:] are W_i
        self.fc_m = nn.ModuleList(
            nn.Linear((lmax + 1 - m) * in_channels, 2 * (lmax + 1 - m) * out_channels, bias=False)
            for m in range(1, mmax + 1)
        )
        self.radial_sizes = [n0 * in_channels] + [fc.in_features for fc in self.fc_m]
        self.radial = (
            None
            if radial_channels is None
            else RadialMLP([*radial_channels, sum(self.radial_sizes)])
        )

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """U(+-1/sqrt(fan_in)) weights, zero bias; the m > 0 maps scaled by 1/sqrt(2) (they sum two
        terms)."""
        for fc in [self.fc_m0, *self.fc_m]:
            bound = 1.0 / math.sqrt(fc.in_features)
            nn.init.uniform_(fc.weight, -bound, bound, generator=generator)
            if fc.bias is not None:
                nn.init.zeros_(fc.bias)
        with torch.no_grad():
            for fc in self.fc_m:
                fc.weight.mul_(1.0 / math.sqrt(2.0))

    def forward(
        self, x: torch.Tensor, edge_scalars: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n_edges = x.shape[0]
        if (self.radial is None) != (edge_scalars is None):
            raise ValueError(
                "edge_scalars must be given exactly when the convolution has a radial function"
            )
        radial = (
            None
            if self.radial is None
            else torch.split(self.radial(edge_scalars), self.radial_sizes, dim=1)
        )

        # split/unbind rather than slicing: their backward concatenates instead of zero-filling
        n0 = self.lmax + 1
        blocks = torch.split(
            x, [n0] + [2 * (self.lmax + 1 - m) for m in range(1, self.mmax + 1)], dim=1
        )
        x0 = blocks[0].reshape(n_edges, n0 * self.in_channels)  # [M, (lmax+1) C_in]
        if radial is not None:
            x0 = x0 * radial[0]
        extra, y0 = self.fc_m0(x0).split([self.extra_m0_channels, n0 * self.out_channels], dim=1)
        out = [y0.reshape(n_edges, n0, self.out_channels)]
        for m, fc in enumerate(self.fc_m, start=1):
            xm = blocks[m].reshape(n_edges, 2, fc.in_features)  # [M, 2 (+m, -m), (lmax+1-m) C_in]
            if radial is not None:
                xm = xm * radial[m].unsqueeze(1)
            real, imag = fc(xm).chunk(2, dim=2)  # W_r x, W_i x: [M, 2, (lmax+1-m) C_out] each
            real_plus, real_minus = real.unbind(1)
            imag_plus, imag_minus = imag.unbind(1)
            ym = torch.stack(
                [real_plus - imag_minus, real_minus + imag_plus], dim=1
            )  # [M, 2, (lmax+1-m) C_out]
            out.append(ym.view(n_edges, 2 * (self.lmax + 1 - m), self.out_channels))
        return torch.cat(out, dim=1), extra
