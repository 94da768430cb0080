"""The EquiformerV2 encoder (Liao et al. 2024), the base model of LaMM-L.

LaMM-L setting (the OC20 S2EF-All+MD "EquiformerV2 (31M)" configuration,
fairchem `configs/s2ef/all/equiformer_v2/equiformer_v2_N@8_L@4_M@2_31M.yml`), as the model config
passes it to this constructor (the cutoff and max_neighbors sit at the top of the model config):

    model:
      encoder: equiformer_v2
      cutoff: 12.0                       # 31M: max_radius 12
      max_neighbors: 20                  # 31M: max_neighbors 20
      equiformer_v2:
        lmax: 4
        mmax: 2
        num_layers: 8
        sphere_channels: 128
        attn_hidden_channels: 64
        num_heads: 8
        attn_alpha_channels: 64
        attn_value_channels: 16
        ffn_hidden_channels: 128
        grid_mlp: true                   # 31M: use_grid_mlp
        scalar_layer_norm: true          # 31M: norm_type layer_norm_sh
        num_distance_basis: 600          # fairchem's GaussianSmearing(0, cutoff, 600, 2.0)
        edge_channels: 128
        grid_resolution: 18              # FFN sphere grid, 18 x 18; sets the equivariance error
        edge_grid_resolution: 18         # the attention's edge-frame grid
        max_atomic_number: 118           # 31M: 90 elements
        alpha_drop: 0.0                  # 31M trains with 0.1 (and drop path 0.1, not offered here)
        activation_checkpointing: false  # true: ~1/3 more time, about half the memory

These are the constructor defaults (except `cutoff`, default 12.0 as in the 31M model but
passed from the model config). Size: 27,851,520 parameters (27,780,992 with fairchem's 90
elements); fairchem's output blocks (energy FFN 148,353 + force attention 3,136,769) make the
31.07M of "EquiformerV2 (31M)". The paper's LaMM-L has 33.8M with its multi-dataset heads.

Equivariance: exact (to float64 rounding) except the S2 activation's sphere-grid quadrature.
Rotation error (max |difference| / max |value|), LaMM-L size at initialization, float64, cutoff
6, ethanol and a Cu(111)+CO slab: grid_resolution 18: node_features 3e-4, node_vectors 0.7-1.4e-2;
32: 1e-5 / 3-7e-4; 48: 5e-7 / 1-3e-5; 64 (edge grid 64): 3e-8 / 0.6-3e-6; 96 (edge 48):
2e-10 / 2e-8. float32 gives the same at 18-32; its own floor is ~1e-6 / 1e-5.

Differences from fairchem's EquiformerV2, each deliberate:
- a polynomial envelope weights the attention softmax and scales all messages (smooth cutoff);
- edge frames are deterministic (no random roll), Wigner-D matrices come from an exact
  quadrature projection instead of Euler angles;
- the S2 grid is Gauss-Legendre x uniform (not e3nn's SOFT grid) and does not apply fairchem's
  extra per-degree rescaling inside the grid round trip;
- no drop path (it needs the structure index of each atom, which the encoder interface does not
  carry); attention dropout uses its own seeded generator.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from lamm import keys as K
from lamm.models.equiformer_v2.attention import EquivariantGraphAttention
from lamm.models.equiformer_v2.block import TransformerBlock
from lamm.models.equiformer_v2.edge_embedding import AtomEdgeScalars, EdgeDegreeEmbedding
from lamm.models.equiformer_v2.feed_forward import FeedForward
from lamm.models.equiformer_v2.grid import SphereGrid
from lamm.models.equiformer_v2.layer_norm import EquivariantLayerNorm
from lamm.models.equiformer_v2.linear import SO3Linear
from lamm.models.equiformer_v2.radial import GaussianBasis, PolynomialEnvelope
from lamm.models.equiformer_v2.so2_conv import SO2Convolution
from lamm.models.equiformer_v2.so3 import (
    EdgeRotation,
    edge_coefficient_indices,
    l1_to_cartesian,
    num_coefficients,
)

# Mean number of neighbors in OC20 IS2RE 100k at 5 A (fairchem's constant for the edge-degree
# embedding).
OC20_AVG_DEGREE = 23.395238876342773


class EquiformerV2Encoder(nn.Module):
    """(atomic_numbers [N], edge_index [2, M], edge_vectors [M, 3]) -> node features and vectors."""

    def __init__(
        self,
        *,
        cutoff: float = 12.0,
        max_atomic_number: int = 118,
        lmax: int = 4,
        mmax: int = 2,
        num_layers: int = 8,
        sphere_channels: int = 128,
        attn_hidden_channels: int = 64,
        num_heads: int = 8,
        attn_alpha_channels: int = 64,
        attn_value_channels: int = 16,
        ffn_hidden_channels: int = 128,
        grid_mlp: bool = True,
        scalar_layer_norm: bool = True,
        num_distance_basis: int = 600,
        edge_channels: int = 128,
        grid_resolution: int = 18,
        edge_grid_resolution: int = 18,
        envelope_exponent: int = 5,
        avg_degree: float = OC20_AVG_DEGREE,
        alpha_drop: float = 0.0,
        activation_checkpointing: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        _check_arguments(locals())
        self.cutoff = float(cutoff)
        self.max_atomic_number = max_atomic_number
        self.lmax, self.mmax = lmax, mmax
        self.scalar_dim = self.vector_dim = sphere_channels
        self.activation_checkpointing = activation_checkpointing
        # torch layers draw a default initialization from the global RNG when built; keep that
        # state untouched: the weights come from `seed` alone (reset_parameters below)
        with torch.random.fork_rng(devices=[]):
            num_elements = max_atomic_number + 1  # indexed by Z directly

            self.rotation = EdgeRotation(lmax, mmax)
            node_grid = SphereGrid(lmax, list(range(num_coefficients(lmax))), grid_resolution)
            edge_grid = SphereGrid(lmax, edge_coefficient_indices(lmax, mmax), edge_grid_resolution)
            self.distance_basis = GaussianBasis(cutoff, num_distance_basis)
            self.envelope = PolynomialEnvelope(cutoff, envelope_exponent)
            self.atom_embedding = nn.Embedding(num_elements, sphere_channels)
            self.edge_degree = EdgeDegreeEmbedding(
                lmax, sphere_channels, num_elements, num_distance_basis, edge_channels, avg_degree
            )

            def norm() -> EquivariantLayerNorm:
                return EquivariantLayerNorm(lmax, sphere_channels, scalar_layer_norm)

            self.blocks = nn.ModuleList(
                TransformerBlock(
                    attention=EquivariantGraphAttention(
                        lmax,
                        mmax,
                        sphere_channels,
                        attn_hidden_channels,
                        num_heads,
                        attn_alpha_channels,
                        attn_value_channels,
                        num_elements,
                        num_distance_basis,
                        edge_channels,
                        edge_grid,
                        alpha_drop=alpha_drop,
                        dropout_seed=seed + 1 + layer,
                    ),  # fmt: skip
                    feed_forward=FeedForward(
                        lmax, sphere_channels, ffn_hidden_channels, node_grid, grid_mlp
                    ),
                    norm_attention=norm(),
                    norm_feed_forward=norm(),
                )
                for layer in range(num_layers)
            )
            self.final_norm = norm()
        self.register_buffer("l1_to_cartesian", l1_to_cartesian(), persistent=False)  # [3, 3]
        self.reset_parameters(torch.Generator().manual_seed(seed))

    def reset_parameters(self, generator: torch.Generator) -> None:
        """fairchem's "uniform" initialization, drawn from `generator` only (no global RNG)."""
        for module in self.modules():  # generic layers first, then the modules with their own rules
            if isinstance(module, nn.Linear):
                bound = module.in_features**-0.5
                nn.init.uniform_(module.weight, -bound, bound, generator=generator)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.atom_embedding.weight, generator=generator)
        for module in self.modules():
            if isinstance(module, (SO2Convolution, SO3Linear, AtomEdgeScalars)):
                module.reset_parameters(generator)
            elif isinstance(module, EquivariantLayerNorm):
                module.reset_parameters()
            elif isinstance(module, EquivariantGraphAttention):
                module.reset_alpha_dot(generator)

    def forward(
        self, atomic_numbers: torch.Tensor, edge_index: torch.Tensor, edge_vectors: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Edge e runs from source j = edge_index[0, e] to center i = edge_index[1, e] and
        edge_vectors[e] = r_ij = pos_j - pos_i (+ cell shift), Angstrom, shorter than the cutoff.

        Returns NODE_FEATURES `[N, C]` (the l = 0 channels, invariant) and NODE_VECTORS
        `[N, 3, C]` (the l = 1 channels in Cartesian x, y, z, equivariant).
        """
        if atomic_numbers.numel() and (
            atomic_numbers.min() < 1 or atomic_numbers.max() > self.max_atomic_number
        ):
            raise ValueError(
                f"atomic numbers must lie in 1..{self.max_atomic_number}, got "
                f"{atomic_numbers.min()}..{atomic_numbers.max()}"
            )
        n_atoms = atomic_numbers.shape[0]
        distances = edge_vectors.norm(dim=1)  # [M]
        distance_basis = self.distance_basis(distances)  # [M, n_basis]
        envelope = self.envelope(distances)  # [M]
        to_edge, from_edge = self.rotation(edge_vectors)  # [M, K, F], [M, F, K]

        x = torch.zeros(
            n_atoms,
            num_coefficients(self.lmax),
            self.scalar_dim,
            dtype=edge_vectors.dtype,
            device=edge_vectors.device,
        )
        x[:, 0, :] = self.atom_embedding(atomic_numbers)
        x = x + self.edge_degree(
            distance_basis, envelope, atomic_numbers, edge_index, from_edge[:, :, : self.lmax + 1]
        )
        for block in self.blocks:
            edge_inputs = (distance_basis, envelope, atomic_numbers, edge_index, to_edge, from_edge)
            if self.activation_checkpointing and torch.is_grad_enabled():
                # keep only each block's input; its per-edge intermediates are recomputed in
                # backward
                x = checkpoint(block, x, *edge_inputs, use_reentrant=False)
            else:
                x = block(x, *edge_inputs)
        x = self.final_norm(x)  # [N, F, C]
        vectors = torch.einsum(
            "ak,nac->nkc", self.l1_to_cartesian.to(x.dtype), x[:, 1:4, :]
        )  # [N, 3, C]
        return {K.NODE_FEATURES: x[:, 0, :], K.NODE_VECTORS: vectors}


def _check_arguments(args: dict) -> None:
    """ValueError naming each invalid constructor argument or combination."""
    problems = []
    expected = {"int": (int,), "float": (int, float), "bool": (bool,)}
    for name, parameter in inspect.signature(EquiformerV2Encoder.__init__).parameters.items():
        if name in args and parameter.annotation in expected:
            value = args[name]
            if not isinstance(value, expected[parameter.annotation]) or (
                parameter.annotation != "bool" and isinstance(value, bool)
            ):
                problems.append(f"{name} must be {parameter.annotation}, got {value!r}")
    if problems:  # the checks below compare numbers
        raise ValueError("EquiformerV2Encoder: " + "; ".join(problems))
    if not args["cutoff"] > 0:
        problems.append(f"cutoff must be positive, got {args['cutoff']}")
    if not 1 <= args["max_atomic_number"] <= 118:
        problems.append(f"max_atomic_number must lie in 1..118, got {args['max_atomic_number']}")
    if args["lmax"] < 1:
        problems.append(
            f"lmax must be >= 1 (the l = 1 channels are the vector features), got {args['lmax']}"
        )
    if not 0 <= args["mmax"] <= args["lmax"]:
        problems.append(f"mmax must lie in 0..lmax = {args['lmax']}, got {args['mmax']}")
    positive = (
        "num_layers",
        "sphere_channels",
        "attn_hidden_channels",
        "num_heads",
        "attn_alpha_channels",
        "attn_value_channels",
        "ffn_hidden_channels",
        "edge_channels",
        "envelope_exponent",
    )
    for name in positive:
        if args[name] < 1:
            problems.append(f"{name} must be >= 1, got {args[name]}")
    if args["num_distance_basis"] < 2:
        problems.append(f"num_distance_basis must be >= 2, got {args['num_distance_basis']}")
    for name in ("grid_resolution", "edge_grid_resolution"):
        if args[name] < 2 * args["lmax"] + 1:
            problems.append(
                f"{name} must be >= 2 * lmax + 1 = {2 * args['lmax'] + 1}, got {args[name]}"
            )
    if not args["avg_degree"] > 0:
        problems.append(f"avg_degree must be positive, got {args['avg_degree']}")
    if not 0.0 <= args["alpha_drop"] < 1.0:
        problems.append(f"alpha_drop must lie in [0, 1), got {args['alpha_drop']}")
    if args["activation_checkpointing"] and args["alpha_drop"] > 0:
        # the recomputation would draw new dropout masks from the attention's own generator
        problems.append("activation_checkpointing cannot be combined with alpha_drop > 0")
    if problems:
        raise ValueError("EquiformerV2Encoder: " + "; ".join(problems))
