"""Output heads on top of an encoder, one channel per dataset head d (SPEC section 7).

LaMM batches the per-subset heads into the last layer: every head shares the hidden layers
and the final linear layer has D = number of subsets outputs ("the final linear layers simply
have |D| times the output channels"). The heads are separate modules, so fine-tuning can drop
or re-initialize them and keep the encoder.

- `EnergyHead`: per-atom MLP -> [N, D], summed per structure -> [B, D].
- `DirectForceHead`: two gated equivariant blocks on (s, v) -> [N, 3, D]; equivariant because
  it only mixes vector channels and gates them with invariants.
- `EnergyGradients`: dE/dx and dE/d(strain) by autograd, for `force_mode="gradient"` (conservative
  forces -dE/dx) and for the stress (`lamm.models.stress`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from lamm.models.blocks import GatedEquivariantBlock, ScaledSiLU


def _sum_dtype(dtype: torch.dtype) -> torch.dtype:
    # Under bf16/fp16 autocast, sum and output in float32 at least: a 300-atom sum in bf16
    # keeps only ~3 significant digits.
    return torch.promote_types(dtype, torch.float32)


class EnergyHead(nn.Module):
    """E[b, d] = sum over atoms n of structure b of MLP_d(s_n) (FAIR-Chem's PaiNN output MLP)."""

    def __init__(
        self, in_channels: int, num_heads: int, hidden_channels: int | None = None
    ) -> None:
        super().__init__()
        hidden_channels = hidden_channels or max(in_channels // 2, 1)
        if min(in_channels, num_heads, hidden_channels) < 1:
            raise ValueError(
                f"channel counts must be positive, got {in_channels}, {num_heads}, "
                f"{hidden_channels}"
            )
        self.num_heads = num_heads
        self.mlp = nn.Sequential(
            nn.Linear(in_channels, hidden_channels),
            ScaledSiLU(),
            nn.Linear(hidden_channels, num_heads),
        )
        for layer in (self.mlp[0], self.mlp[2]):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.zeros_(layer.bias)

    def forward(
        self, node_features: torch.Tensor, batch: torch.Tensor, num_graphs: int
    ) -> torch.Tensor:
        """node_features [N, F], batch [N] structure index -> [B, D]."""
        per_atom = self.mlp(node_features)  # [N, D]
        dtype = _sum_dtype(per_atom.dtype)
        energy = torch.zeros(num_graphs, self.num_heads, dtype=dtype, device=per_atom.device)
        return energy.index_add_(0, batch, per_atom.to(dtype))


class DirectForceHead(nn.Module):
    """F[n, :, d] from the vector features: gated block (F -> hidden), gated block (hidden -> D)."""

    def __init__(
        self, scalar_dim: int, vector_dim: int, num_heads: int, hidden_channels: int | None = None
    ) -> None:
        super().__init__()
        hidden_channels = hidden_channels or max(scalar_dim // 2, 1)
        self.num_heads = num_heads
        self.blocks = nn.ModuleList(
            [
                GatedEquivariantBlock(scalar_dim, vector_dim, hidden_channels),
                GatedEquivariantBlock(
                    hidden_channels, hidden_channels, num_heads, scalar_activation=False
                ),
            ]
        )

    def forward(self, node_features: torch.Tensor, node_vectors: torch.Tensor) -> torch.Tensor:
        """node_features [N, S], node_vectors [N, 3, V] -> [N, 3, D]."""
        scalars, vectors = node_features, node_vectors
        for block in self.blocks:
            scalars, vectors = block(scalars, vectors)
        return vectors.to(_sum_dtype(vectors.dtype))  # [N, 3, D]


class EnergyGradients(nn.Module):
    """dE/d(input) by autograd for several inputs in one backward pass (schnetpack `Forces`,
    nequip `ForceStressOutput`): positions for the forces -dE/dx of `force_mode="gradient"`,
    a strain for the stress (`lamm.models.stress`).

    Differentiates the summed energy of the structures (they are independent, so one backward
    pass gives every atom's and every structure's derivative). The graph of the gradient is
    kept only in training (`create_graph=self.training`), where a loss on forces or stress must
    be differentiated again. An input the energy does not depend on (no edges, frozen) gets zeros.
    """

    def forward(self, energy: torch.Tensor, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """energy [B] (a function of the inputs), inputs with requires_grad -> their gradients."""
        if not all(x.requires_grad for x in inputs):
            raise ValueError("energy gradients need inputs with requires_grad=True")
        if not inputs:
            return []
        if not energy.requires_grad:  # nothing depends on the inputs (e.g. frozen, edgeless)
            return [torch.zeros_like(x) for x in inputs]
        gradients = torch.autograd.grad(
            energy.sum(), list(inputs), create_graph=self.training, allow_unused=True
        )
        return [
            torch.zeros_like(x) if g is None else g for g, x in zip(gradients, inputs, strict=True)
        ]
