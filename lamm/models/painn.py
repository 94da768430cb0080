"""PaiNN encoder (Schuett et al. 2021), in the FAIR-Chem variant that LaMM-S uses.

Differences of the FAIR-Chem variant (fairchem 1.x `models/painn/painn.py`) from the paper:
- a LayerNorm on the scalars before each message's MLP, and SiLU scaled by 1/0.6;
- residual scaling: s <- (s + ds) / sqrt(2) after the message, the update's scalar term is
  divided by sqrt(2), vector messages by sqrt(3) (the v_j gate) and sqrt(F);
- a per-layer scale factor on the scalars after each update (`layer_scales`), which FAIR-Chem
  fits on data before training (`fit_layer_scales`; 1.0 until fitted);
- Gaussian radial basis on d / cutoff times a polynomial envelope (`lamm.models.radial`).

One deliberate difference from FAIR-Chem: the filter layer (radial basis -> 3F) has no bias.
With a bias, a neighbor exactly at the cutoff still sends a message, so the energy jumps when
an atom crosses the cutoff; without it every message vanishes smoothly there (9,216 fewer
parameters at F = 512, 6 layers).

Inputs follow `lamm.keys`: edge_index[0] = neighbor j (source), edge_index[1] = center i
(target), edge vectors r_ij = x_j - x_i (+ periodic shift), Angstrom. Periodic boundaries
enter only through these vectors, which the potential computes from pos, cell and offsets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from lamm import keys as K
from lamm.models.blocks import ScaledSiLU, vector_norm
from lamm.models.painn_message import painn_message
from lamm.models.radial import GaussianBasis, PolynomialEnvelope

MAX_ATOMIC_NUMBER = 118


def _init_linear(layer: nn.Linear) -> None:
    nn.init.xavier_uniform_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class PaiNNMessage(nn.Module):
    """Continuous-filter message from neighbors j to center i (PaiNN eqs. 7-8)."""

    def __init__(self, hidden_channels: int, num_rbf: int, recompute: bool = True) -> None:
        super().__init__()
        self.recompute = recompute
        self.layer_norm = nn.LayerNorm(hidden_channels)
        self.scalar_net = nn.Sequential(
            nn.Linear(hidden_channels, hidden_channels),
            ScaledSiLU(),
            nn.Linear(hidden_channels, 3 * hidden_channels),
        )
        self.filter_net = nn.Linear(num_rbf, 3 * hidden_channels, bias=False)
        # 1/sqrt(3) on the v_j gate, applied per atom before the gather instead of per edge after
        # it.
        channel_scale = torch.ones(3 * hidden_channels, dtype=torch.float32)
        channel_scale[hidden_channels : 2 * hidden_channels] = 1.0 / math.sqrt(3.0)
        self.register_buffer("channel_scale", channel_scale, persistent=False)
        self.inv_sqrt_f = 1.0 / math.sqrt(hidden_channels)
        for layer in (self.scalar_net[0], self.scalar_net[2], self.filter_net):
            _init_linear(layer)

    def forward(
        self,
        scalars: torch.Tensor,
        vectors: torch.Tensor | None,
        rbf: torch.Tensor,
        unit_vectors: torch.Tensor,
        edge_index: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (ds [N, F], dv [N, 3, F]); `vectors` None means all zero (first layer)."""
        per_atom = self.scalar_net(self.layer_norm(scalars))  # [N, 3F]
        per_atom = per_atom * self.channel_scale.to(per_atom.dtype)
        ds, dv = painn_message(
            per_atom, self.filter_net(rbf), vectors, unit_vectors, edge_index, self.recompute
        )
        return (
            ds,
            dv * self.inv_sqrt_f,
        )  # 1/sqrt(F) after the sum: N x 3F products instead of M x 3F


class PaiNNUpdate(nn.Module):
    """Per-atom mixing of scalars and vectors (PaiNN eqs. 9-11)."""

    def __init__(self, hidden_channels: int) -> None:
        super().__init__()
        self.hidden_channels = hidden_channels
        self.vector_mix = nn.Linear(hidden_channels, 2 * hidden_channels, bias=False)
        self.scalar_net = nn.Sequential(
            nn.Linear(2 * hidden_channels, hidden_channels),
            ScaledSiLU(),
            nn.Linear(hidden_channels, 3 * hidden_channels),
        )
        self.inv_sqrt_2 = 1.0 / math.sqrt(2.0)
        self.inv_sqrt_f = 1.0 / math.sqrt(hidden_channels)
        for layer in (self.vector_mix, self.scalar_net[0], self.scalar_net[2]):
            _init_linear(layer)

    def forward(
        self, scalars: torch.Tensor, vectors: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """scalars [N, F], vectors [N, 3, F] -> (ds [N, F], dv [N, 3, F])."""
        u, w = torch.split(self.vector_mix(vectors), self.hidden_channels, dim=-1)  # 2 x [N, 3, F]
        dot = torch.sum(u * w, dim=1) * self.inv_sqrt_f  # [N, F], invariant
        mixed = self.scalar_net(
            torch.cat([scalars, vector_norm(w).to(scalars.dtype)], dim=-1)
        )  # [N, 3F]
        a_ss, a_sv, a_vv = torch.split(mixed, self.hidden_channels, dim=-1)
        ds = (a_ss + a_sv * dot) * self.inv_sqrt_2  # [N, F]
        dv = a_vv.unsqueeze(1) * u  # [N, 3, F]
        return ds, dv


class PaiNN(nn.Module):
    """Encoder: (atomic_numbers [N], edge_index [2, M], edge_vectors [M, 3]) -> features.

    Returns {NODE_FEATURES: s [N, F] invariant, NODE_VECTORS: v [N, 3, F] equivariant}.
    `recompute_messages` trades time for memory (see `lamm.models.painn_message`); the
    results are the same either way.
    """

    def __init__(
        self,
        radial_basis: GaussianBasis,
        envelope: PolynomialEnvelope,
        hidden_channels: int = 512,
        num_layers: int = 6,
        max_atomic_number: int = MAX_ATOMIC_NUMBER,
        recompute_messages: bool = True,
    ) -> None:
        super().__init__()
        if hidden_channels < 1 or num_layers < 1:
            raise ValueError(
                f"hidden_channels and num_layers must be positive, got {hidden_channels}, "
                f"{num_layers}"
            )
        if abs(radial_basis.cutoff - envelope.cutoff) > 1e-9:
            raise ValueError(
                f"radial basis cutoff {radial_basis.cutoff} != envelope cutoff {envelope.cutoff}"
            )
        self.radial_basis = radial_basis
        self.envelope = envelope
        self.cutoff = float(envelope.cutoff)
        self.hidden_channels = hidden_channels
        self.num_layers = num_layers
        self.scalar_dim = hidden_channels
        self.vector_dim = hidden_channels
        self.embedding = nn.Embedding(
            max_atomic_number + 1, hidden_channels
        )  # row = Z; row 0 unused
        nn.init.uniform_(self.embedding.weight, -math.sqrt(3.0), math.sqrt(3.0))  # unit variance
        self.messages = nn.ModuleList(
            PaiNNMessage(hidden_channels, radial_basis.num_rbf, recompute_messages)
            for _ in range(num_layers)
        )
        self.updates = nn.ModuleList(PaiNNUpdate(hidden_channels) for _ in range(num_layers))
        self.register_buffer("layer_scales", torch.ones(num_layers, dtype=torch.float32))
        self.inv_sqrt_2 = 1.0 / math.sqrt(2.0)

    def forward(
        self, atomic_numbers: torch.Tensor, edge_index: torch.Tensor, edge_vectors: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        scalars, vectors = self._encode(atomic_numbers, edge_index, edge_vectors, self.num_layers)
        return {K.NODE_FEATURES: scalars, K.NODE_VECTORS: vectors}

    def _encode(
        self,
        atomic_numbers: torch.Tensor,
        edge_index: torch.Tensor,
        edge_vectors: torch.Tensor,
        num_layers: int,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        # edges have nonzero length: the radius graph never pairs an atom with itself at distance 0
        distances = torch.sqrt(torch.sum(edge_vectors**2, dim=-1))  # [M]
        unit_vectors = edge_vectors / distances.unsqueeze(-1)  # [M, 3]
        rbf = self.radial_basis(distances) * self.envelope(distances).unsqueeze(-1)  # [M, num_rbf]
        scalars = self.embedding(atomic_numbers)  # [N, F]
        vectors: torch.Tensor | None = None
        for layer in range(num_layers):
            ds, dv = self.messages[layer](scalars, vectors, rbf, unit_vectors, edge_index)
            scalars = (scalars + ds) * self.inv_sqrt_2
            vectors = dv if vectors is None else vectors + dv
            ds, dv = self.updates[layer](scalars, vectors)
            scalars = (scalars + ds) * self.layer_scales[layer].to(scalars.dtype)
            vectors = vectors + dv
        assert vectors is not None  # num_layers >= 1
        return scalars, vectors

    @torch.no_grad()
    def fit_layer_scales(
        self, inputs: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    ) -> list[float]:
        """FAIR-Chem's scale fitting: layer by layer, set the scale so the scalars leaving the
        update have unit variance (variance over atoms, averaged over channels) on `inputs`,
        a few batches of (atomic_numbers, edge_index, edge_vectors). Returns the scales."""
        if not inputs:
            raise ValueError("fit_layer_scales needs at least one batch")
        self.layer_scales.fill_(1.0)
        for layer in range(self.num_layers):
            weighted_variance, count = 0.0, 0
            for atomic_numbers, edge_index, edge_vectors in inputs:
                # scale `layer` is still 1 here, so this is the unscaled output of that layer
                scalars, _ = self._encode(atomic_numbers, edge_index, edge_vectors, layer + 1)
                weighted_variance += float(scalars.var(dim=0).mean()) * scalars.shape[0]
                count += scalars.shape[0]
            if count < 2 or not weighted_variance > 0:
                raise ValueError(
                    f"cannot fit layer {layer}: the inputs have no variance over atoms"
                )
            self.layer_scales[layer] = math.sqrt(count / weighted_variance)
        return self.layer_scales.tolist()
