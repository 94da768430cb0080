"""EquiformerV2 encoder: exact parts exact, the sphere-grid part converging, cutoff smoothness,
size.

Every equivariance statement is checked in float64 so rounding cannot hide an error. The only
approximate part of the model is the S2 activation (a pointwise nonlinearity on a sphere grid,
projected back): with a fine grid the whole encoder must be equivariant to ~1e-10, and at
coarser grids the error must fall as the resolution rises.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import add_adsorbate, fcc111, molecule
from e3nn import o3

from lamm import keys as K
from lamm.data.graph import collate, structure_to_graph
from lamm.data.record import StructureRecord
from lamm.models.equiformer_v2 import EquiformerV2Encoder
from lamm.models.equiformer_v2.activation import GridSiLU, SeparableS2Activation
from lamm.models.equiformer_v2.grid import SphereGrid
from lamm.models.equiformer_v2.layer_norm import EquivariantLayerNorm
from lamm.models.equiformer_v2.linear import SO3Linear
from lamm.models.equiformer_v2.segment import segment_softmax
from lamm.models.equiformer_v2.so2_conv import SO2Convolution
from lamm.models.equiformer_v2.so3 import (
    WignerD,
    edge_coefficient_indices,
    edge_frame_rotation,
    harmonics,
    l1_to_cartesian,
)

F64 = torch.float64
CUTOFF = 4.0
# small enough for the test budget, with mmax < lmax so the |m| truncation is exercised
SMALL = dict(
    cutoff=CUTOFF, lmax=3, mmax=2, num_layers=2, sphere_channels=8, attn_hidden_channels=8,
    num_heads=2, attn_alpha_channels=4, attn_value_channels=4, ffn_hidden_channels=8,
    num_distance_basis=16, edge_channels=8,
)  # fmt: skip
FINE = dict(
    grid_resolution=96, edge_grid_resolution=48
)  # quadrature error at float64 noise for SMALL


def rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def about_y(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]], dtype=F64)


def rotated(atoms: Atoms, r: np.ndarray) -> Atoms:
    out = atoms.copy()
    out.positions = atoms.positions @ r.T
    out.set_cell(atoms.cell.array @ r.T)
    return out


def inputs(
    structures: list[Atoms], dtype: torch.dtype = F64
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Encoder inputs through the training path: structure_to_graph, collate, keys' r_ij."""
    graphs = [
        structure_to_graph(StructureRecord.from_atoms(a), cutoff=CUTOFF, dtype=dtype)
        for a in structures
    ]
    batch = collate(graphs)
    j, i = batch[K.EDGE_INDEX]
    shifts = torch.einsum("mk,mkl->ml", batch[K.CELL_OFFSETS], batch[K.CELL][batch[K.BATCH][i]])
    return (
        batch[K.ATOMIC_NUMBERS],
        batch[K.EDGE_INDEX],
        batch[K.POSITIONS][j] - batch[K.POSITIONS][i] + shifts,
    )


def encode(
    model: EquiformerV2Encoder, structures: list[Atoms], dtype: torch.dtype = F64
) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        out = model(*inputs(structures, dtype))
    return out[K.NODE_FEATURES], out[K.NODE_VECTORS]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max())


def ethanol() -> Atoms:
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=1)
    return atoms


def slab() -> Atoms:
    atoms = fcc111("Cu", size=(2, 2, 2), vacuum=5.0)
    add_adsorbate(atoms, molecule("CO"), 1.9, "ontop")
    atoms.rattle(0.05, seed=2)
    return atoms


def rotation_errors(
    model: EquiformerV2Encoder, atoms: Atoms, seed: int, dtype: torch.dtype = F64
) -> tuple[float, float]:
    r = rotation(seed)
    scalars, vectors = encode(model, [atoms], dtype)
    scalars_r, vectors_r = encode(model, [rotated(atoms, r)], dtype)
    expected = torch.einsum("ij,njc->nic", torch.tensor(r, dtype=dtype), vectors)
    return rel(scalars_r, scalars), rel(vectors_r, expected)


@pytest.fixture(scope="module")
def fine_model() -> EquiformerV2Encoder:
    return EquiformerV2Encoder(**SMALL, **FINE).to(F64)


# --- the sphere machinery on its own ----------------------------------------------------------
def test_wigner_d_is_exact_and_a_representation():
    wigner = WignerD(4)
    r1 = torch.tensor(np.stack([rotation(s) for s in range(20)]))
    r2 = torch.tensor(np.stack([rotation(100 + s) for s in range(20)]))
    v = torch.nn.functional.normalize(
        torch.randn(20, 3, dtype=F64, generator=torch.Generator().manual_seed(0)), dim=1
    )
    d1, d2 = wigner(r1), wigner(r2)
    # Y(R v) = D(R) Y(v), D orthogonal, D(R1 R2) = D(R1) D(R2)
    assert torch.allclose(
        harmonics(4, torch.einsum("mij,mj->mi", r1, v)),
        torch.einsum("mpq,mq->mp", d1, harmonics(4, v)),
        atol=1e-13,
    )
    assert torch.allclose(
        d1 @ d1.transpose(1, 2), torch.eye(25, dtype=F64).expand(20, 25, 25), atol=1e-13
    )
    assert torch.allclose(wigner(r1 @ r2), d1 @ d2, atol=1e-13)
    # e3nn's angle-based D_from_matrix agrees only to ~3e-6 even in float64; ours is the exact one
    # above
    irreps = o3.Irreps("+".join(f"1x{degree}e" for degree in range(5)))
    assert torch.allclose(d1, irreps.D_from_matrix(r1), atol=1e-4)


def test_edge_frames_put_every_edge_on_the_pole_without_randomness():
    axes = torch.tensor(
        [[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], dtype=F64
    )
    u = torch.cat(
        [
            axes,
            torch.nn.functional.normalize(
                torch.randn(50, 3, dtype=F64, generator=torch.Generator().manual_seed(1)), dim=1
            ),
        ]
    )
    u.requires_grad_(True)
    frames = edge_frame_rotation(u)
    pole = torch.tensor([0.0, 1.0, 0.0], dtype=F64)
    assert torch.allclose(torch.einsum("mij,mj->mi", frames, u), pole.expand_as(u), atol=1e-14)
    assert torch.allclose(
        frames @ frames.transpose(1, 2), torch.eye(3, dtype=F64).expand(len(u), 3, 3), atol=1e-14
    )
    assert torch.allclose(torch.linalg.det(frames), torch.ones(len(u), dtype=F64), atol=1e-14)
    assert torch.equal(edge_frame_rotation(u), frames)  # deterministic: no random roll
    # a vector's l = 1 coefficients rotated into its own edge frame keep only m = 0 (the pole)
    d = WignerD(3)(frames)
    coefficients = torch.einsum("mpq,mq->mp", d, harmonics(3, u))  # [M, 16]
    only_m0 = torch.zeros(16, dtype=F64)
    only_m0[[0, 2, 6, 12]] = harmonics(3, pole)[[0, 2, 6, 12]]
    assert torch.allclose(coefficients, only_m0.expand_as(coefficients), atol=1e-13)
    # finite gradients for edges along every axis (where Euler angles are singular)
    d.square().mul(torch.arange(256, dtype=F64).view(16, 16)).sum().backward()
    assert torch.isfinite(u.grad).all()


def test_l1_coefficients_convert_to_cartesian():
    p = l1_to_cartesian()
    r = torch.tensor(rotation(3))
    v = torch.tensor([0.3, -1.2, 0.7], dtype=F64)
    y1 = harmonics(1, v / v.norm())[1:4] * v.norm() / math.sqrt(3.0)  # l = 1 coefficients of v
    assert torch.allclose(p.T @ y1, v, atol=1e-15)
    d1 = WignerD(1)(r[None])[0, 1:4, 1:4]
    assert torch.allclose(p.T @ (d1 @ y1), r @ v, atol=1e-14)


def test_so2_convolution_commutes_with_rotations_about_the_edge():
    torch.manual_seed(0)
    lmax, mmax = 3, 2
    conv = SO2Convolution(lmax, mmax, 3, 4, radial_channels=[5, 6, 6], extra_m0_channels=2).to(F64)
    rows = edge_coefficient_indices(lmax, mmax)
    x = torch.randn(7, len(rows), 3, dtype=F64)
    edge = torch.randn(7, 5, dtype=F64)
    y, extra = conv(x, edge)
    for angle in (0.3, 1.9, -2.5):
        roll = WignerD(lmax)(about_y(angle)[None])[0][rows][
            :, rows
        ]  # acts within the kept |m| <= mmax
        y_rolled, extra_rolled = conv(torch.einsum("pq,mqc->mpc", roll, x), edge)
        assert torch.allclose(y_rolled, torch.einsum("pq,mqc->mpc", roll, y), atol=1e-13)
        assert torch.allclose(extra_rolled, extra, atol=1e-13)  # m = 0 outputs are invariant


@pytest.mark.parametrize("scalar_layer_norm", [True, False])
def test_layer_norm_and_linear_commute_with_wigner_d(scalar_layer_norm):
    torch.manual_seed(0)
    lmax = 3
    norm = EquivariantLayerNorm(lmax, 6, scalar_layer_norm).to(F64)
    with torch.no_grad():
        norm.scale.uniform_(0.5, 1.5)
        norm.bias.uniform_(-1, 1)
    linear = SO3Linear(6, 5, lmax).to(F64)
    x = torch.randn(4, 16, 6, dtype=F64)
    d = WignerD(lmax)(torch.tensor(rotation(4))[None])[0]
    for layer in (norm, linear):
        assert torch.allclose(
            layer(torch.einsum("pq,nqc->npc", d, x)),
            torch.einsum("pq,nqc->npc", d, layer(x)),
            atol=1e-13,
        )
    balanced = EquivariantLayerNorm(lmax, 6, scalar_layer_norm).to(F64)(x)
    if scalar_layer_norm:  # l = 0 is an ordinary LayerNorm over channels
        assert torch.allclose(
            balanced[:, 0], torch.nn.functional.layer_norm(x[:, 0], (6,)), atol=1e-12
        )


def test_s2_activation_exact_for_grid_symmetries_and_converging_otherwise():
    lmax, rows = 3, list(range(16))
    # coefficients of size 0.5: the function on the sphere has RMS 2, as after a layer norm; the
    # error's decay rate depends on this amplitude (SiLU's complex poles limit the smoothness)
    x = 0.5 * torch.randn(5, 16, 4, dtype=F64, generator=torch.Generator().manual_seed(2))
    gates = torch.randn(5, 4, dtype=F64, generator=torch.Generator().manual_seed(3))
    wigner = WignerD(lmax)

    def error(resolution: int, r: torch.Tensor) -> float:
        act = SeparableS2Activation(SphereGrid(lmax, rows, resolution))
        d = wigner(r[None])[0]
        return rel(
            act(gates, torch.einsum("pq,nqc->npc", d, x)),
            torch.einsum("pq,nqc->npc", d, act(gates, x)),
        )

    # a turn about the pole by one longitude step maps the grid onto itself: exact
    assert error(12, about_y(2 * math.pi / 12)) < 1e-13
    generic = torch.tensor(rotation(5))
    errors = [error(res, generic) for res in (8, 16, 32, 64, 96)]
    print(
        "S2 activation equivariance error vs grid resolution 8/16/32/64/96:",
        ", ".join(f"{e:.1e}" for e in errors),
    )
    assert all(b < a / 5 for a, b in zip(errors, errors[1:], strict=False))
    assert errors[-1] < 1e-10


def test_segment_softmax_matches_dense_reference():
    gen = torch.Generator().manual_seed(0)
    index = torch.tensor([0, 2, 2, 0, 3, 2, 0, 3], dtype=torch.long)  # segment 1 is empty
    logits = torch.randn(8, 3, dtype=F64, generator=gen) * 5
    logits[1] += 1000.0  # huge logits must neither overflow nor swamp the others' precision
    weights = torch.rand(8, dtype=F64, generator=gen)
    weights[4] = 0.0
    for w in (None, weights):
        out = segment_softmax(logits, index, 5, w)
        for s in range(5):
            members = index == s
            if not members.any():
                continue
            dense = torch.softmax(logits[members], dim=0)  # [k, 3]
            if w is not None:
                dense = dense * w[members, None] / (dense * w[members, None]).sum(0)
            assert torch.allclose(out[members], dense, atol=1e-15, rtol=1e-12)
        assert torch.isfinite(out).all()
    assert torch.all(segment_softmax(logits, index, 5, weights)[4] == 0)  # weight 0, no share
    assert torch.all(segment_softmax(logits, index, 5, torch.zeros(8, dtype=F64)) == 0)  # no NaN


# --- the encoder ------------------------------------------------------------------------------
@pytest.mark.parametrize("structure", [ethanol, slab], ids=["molecule", "periodic-slab"])
def test_encoder_is_equivariant_in_float64(fine_model, structure):
    atoms = structure()
    for seed in (0, 1):
        scalar_error, vector_error = rotation_errors(fine_model, atoms, seed)
        print(
            f"{structure.__name__} rotation {seed}: scalar {scalar_error:.1e}, vector "
            f"{vector_error:.1e}"
        )
        assert scalar_error < 1e-12 and vector_error < 1e-10
    scalars, vectors = encode(fine_model, [atoms])
    assert scalars.abs().max() > 0.1 and vectors.abs().max() > 0.01  # nothing vanished
    moved = atoms.copy()
    moved.positions += np.array([0.7, -2.1, 3.3])  # translation (wrapped or not, same edges)
    scalars_t, vectors_t = encode(fine_model, [moved])
    assert rel(scalars_t, scalars) < 1e-12 and rel(vectors_t, vectors) < 1e-12
    order = np.random.default_rng(7).permutation(len(atoms))
    scalars_p, vectors_p = encode(fine_model, [atoms[order]])
    assert rel(scalars_p, scalars[order]) < 1e-12 and rel(vectors_p, vectors[order]) < 1e-12


def test_encoder_equivariance_in_float32_and_at_the_default_grid(fine_model):
    model32 = EquiformerV2Encoder(**SMALL, **FINE)  # float32 parameters, same seed
    for atoms in (ethanol(), slab()):
        scalar_error, vector_error = rotation_errors(model32, atoms, 0, torch.float32)
        print(f"float32, fine grid: scalar {scalar_error:.1e}, vector {vector_error:.1e}")
        assert scalar_error < 1e-5 and vector_error < 1e-4
    # the residual of the paper's 18 x 18 grid, documented in docs/models.md: it must shrink with
    # resolution
    errors = []
    for resolution in (12, 18, 36):
        model = EquiformerV2Encoder(
            **SMALL, grid_resolution=resolution, edge_grid_resolution=resolution
        ).to(F64)
        errors.append(rotation_errors(model, slab(), 0))
    print("grid 12/18/36 (scalar, vector):", ", ".join(f"({s:.1e}, {v:.1e})" for s, v in errors))
    assert errors[0][1] > errors[1][1] > errors[2][1] and errors[2][1] < 1e-5


def test_a_batch_encodes_like_its_structures(fine_model):
    a, b = ethanol(), slab()
    scalars, vectors = encode(fine_model, [a, b])
    scalars_a, vectors_a = encode(fine_model, [a])
    scalars_b, vectors_b = encode(fine_model, [b])
    assert torch.allclose(scalars, torch.cat([scalars_a, scalars_b]), atol=1e-12)
    assert torch.allclose(vectors, torch.cat([vectors_a, vectors_b]), atol=1e-12)
    isolated, isolated_vectors = encode(
        fine_model, [Atoms("Cu", positions=[[0, 0, 0]])]
    )  # no edges at all
    # a lone atom's features are constant on the sphere: no l >= 1 part (up to rounding)
    assert torch.isfinite(isolated).all() and isolated_vectors.abs().max() < 1e-13


def test_features_are_smooth_as_an_atom_crosses_the_cutoff(fine_model):
    """A readout of scalars and vectors is continuous with a continuous slope where an edge
    crosses the cutoff: for a neighbor among others, and for a lone neighbor (the pair falls
    apart into two isolated atoms, where the envelope makes the change O(eps^3))."""
    probe = torch.randn(
        3, 3, fine_model.vector_dim, dtype=F64, generator=torch.Generator().manual_seed(0)
    )

    def readout(atoms: Atoms) -> float:
        scalars, vectors = encode(fine_model, [atoms])
        return float(scalars[:, :3].sum() + (vectors * probe[: len(atoms)]).sum())

    def cluster(d: float) -> Atoms:  # C moves along x through O's cutoff; C-H and O-H stay inside
        return Atoms("OHC", positions=[[0, 0, 0], [2.5, 1.0, 0.1], [d, 0.3, -0.2]])

    def dimer(d: float) -> Atoms:
        return Atoms("OC", positions=[[0, 0, 0], [d, 0.3, -0.2]])

    crossing = math.sqrt(CUTOFF**2 - 0.3**2 - 0.2**2)  # d where O-C equals the cutoff
    for build in (cluster, dimer):
        jumps, slopes = [], []
        for eps in (1e-3, 1e-5):
            f = [readout(build(crossing + k * eps)) for k in (-2, -1, 1, 2)]
            jumps.append(abs(f[1] - f[2]))
            slopes.append(((f[1] - f[0]) / eps, (f[3] - f[2]) / eps))  # inside, outside
        print(
            f"{build.__name__}: jump across +-1e-3 {jumps[0]:.1e}, +-1e-5 {jumps[1]:.1e}; "
            f"slopes in/out {slopes[1][0]:.4f}/{slopes[1][1]:.4f}"
        )
        assert (
            jumps[1] < 0.02 * jumps[0] + 1e-12
        )  # falls with eps like a continuous function (a step would not)
        assert abs(slopes[1][0] - slopes[1][1]) < 1e-2 * abs(slopes[1][0]) + 1e-6
    assert jumps[0] < 1e-5  # the lone pair: O(eps^3)


def test_gradients_are_finite_for_edges_along_the_axes():
    model = EquiformerV2Encoder(**SMALL).to(F64)
    atoms = Atoms(
        "Po", cell=np.eye(3) * 3.0, pbc=True
    )  # simple cubic: neighbors exactly along +-x, +-y, +-z
    atomic_numbers, edge_index, vectors = inputs([atoms.repeat((2, 1, 1))])
    vectors.requires_grad_(True)
    out = model(atomic_numbers, edge_index, vectors)
    (out[K.NODE_FEATURES].sum() + out[K.NODE_VECTORS].sum()).backward()
    assert torch.isfinite(vectors.grad).all() and vectors.grad.abs().max() > 0


def test_weights_come_from_the_seed_alone():
    state = torch.random.get_rng_state()
    a, b = EquiformerV2Encoder(**SMALL, seed=3), EquiformerV2Encoder(**SMALL, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    assert all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )
    c = EquiformerV2Encoder(**SMALL, seed=4)
    assert not torch.equal(
        a.blocks[0].attention.conv_1.fc_m0.weight, c.blocks[0].attention.conv_1.fc_m0.weight
    )
    # attention dropout: seeded, only in training
    drop = EquiformerV2Encoder(**SMALL, alpha_drop=0.5).to(F64)
    x = inputs([ethanol()])
    drop.train()
    first, second = drop(*x)[K.NODE_FEATURES], drop(*x)[K.NODE_FEATURES]
    assert not torch.allclose(first, second)
    again = EquiformerV2Encoder(**SMALL, alpha_drop=0.5).to(F64).train()
    assert torch.equal(again(*x)[K.NODE_FEATURES], first)
    drop.eval()
    assert torch.equal(drop(*x)[K.NODE_FEATURES], drop(*x)[K.NODE_FEATURES])


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(lmax=0, mmax=0), "lmax must be >= 1"),
        (dict(mmax=4), "mmax must lie in 0..lmax"),
        (dict(grid_resolution=6), "grid_resolution must be >= 2 * lmax + 1"),
        (dict(num_heads=0), "num_heads must be >= 1"),
        (dict(cutoff=-1.0), "cutoff must be positive"),
        (dict(alpha_drop=1.0), "alpha_drop must lie in [0, 1)"),
        (dict(lmax="3"), "lmax must be int"),
        (dict(grid_mlp=1), "grid_mlp must be bool"),
    ],
)
def test_invalid_arguments_raise(bad, message):
    with pytest.raises(
        ValueError,
        match=message.replace("[", r"\[")
        .replace("(", r"\(")
        .replace(")", r"\)")
        .replace("*", r"\*")
        .replace("+", r"\+"),
    ):
        EquiformerV2Encoder(**{**SMALL, **bad})


def test_atomic_numbers_beyond_the_embedding_raise():
    model = EquiformerV2Encoder(**{**SMALL, "max_atomic_number": 10})
    with pytest.raises(ValueError, match="atomic numbers must lie in 1..10"):
        model(*inputs([molecule("NaCl")], torch.float32))


def test_lamm_l_parameter_count():
    """LaMM-L encoder = the EquiformerV2 (31M) backbone. fairchem's 31M total also holds its
    output blocks: an energy FFN (lmax 4 grid MLP, 1 output) and a force attention block (an
    attention layer with a 1-channel projection). Counted here from our modules of the same
    shape."""
    encoder = EquiformerV2Encoder()  # the defaults are the LaMM-L (31M) setting
    n_encoder = sum(p.numel() for p in encoder.parameters())
    ffn, attention = encoder.blocks[0].feed_forward, encoder.blocks[0].attention
    c, lmax = encoder.scalar_dim, encoder.lmax
    n_energy = (
        sum(p.numel() for p in ffn.parameters())
        - sum(p.numel() for p in ffn.linear_2.parameters())
        + (lmax + 1) * ffn.linear_1.out_channels
        + 1
    )
    n_force = (
        sum(p.numel() for p in attention.parameters())
        - sum(p.numel() for p in attention.proj.parameters())
        + (lmax + 1) * 128
        + 1
    )
    n_elements_90 = n_encoder - (118 - 89) * c * (
        1 + 2 * (1 + len(encoder.blocks))
    )  # fairchem embeds 90 elements
    print(f"LaMM-L encoder: {n_encoder:,} parameters ({n_elements_90:,} with 90 elements as "
              "fairchem); "
          f"fairchem-style heads: energy FFN {n_energy:,} + force attention {n_force:,}; "
          f"total {n_elements_90 + n_energy + n_force:,} (EquiformerV2 31M); "
          "LaMM-L 33.8M")  # fmt: skip
    assert n_encoder == 27_851_520
    assert 30.5e6 < n_elements_90 + n_energy + n_force < 31.5e6


def test_chunked_grid_silu_has_exact_first_and_second_derivatives(monkeypatch):
    monkeypatch.setattr(GridSiLU, "CHUNK_VALUES", 40)  # several chunks even for this tiny input
    grid = SphereGrid(2, list(range(9)), 5)
    to_grid, from_grid = grid.to_grid_matrix, grid.from_grid_matrix[1:]
    x = torch.randn(
        6, 9, 2, dtype=F64, generator=torch.Generator().manual_seed(0), requires_grad=True
    )
    reference = torch.einsum(
        "kp,bpc->bkc", from_grid, torch.nn.functional.silu(torch.einsum("pk,bkc->bpc", to_grid, x))
    )
    assert torch.allclose(GridSiLU.apply(x, to_grid, from_grid), reference, atol=1e-15)
    assert torch.autograd.gradcheck(lambda t: GridSiLU.apply(t, to_grid, from_grid), (x,))
    assert torch.autograd.gradgradcheck(lambda t: GridSiLU.apply(t, to_grid, from_grid), (x,))


def test_activation_checkpointing_changes_memory_not_results():
    plain = EquiformerV2Encoder(**SMALL).to(F64)
    saving = EquiformerV2Encoder(**SMALL, activation_checkpointing=True).to(F64)
    atomic_numbers, edge_index, vectors = inputs([slab()])
    grads = []
    for model in (plain, saving):
        v = vectors.clone().requires_grad_(True)
        out = model(atomic_numbers, edge_index, v)
        energy = out[K.NODE_FEATURES][:, :2].square().sum() + out[K.NODE_VECTORS].sum()
        (grad,) = torch.autograd.grad(
            energy, v, create_graph=True
        )  # as gradient forces in training
        (grad_of_grad,) = torch.autograd.grad(
            grad.square().sum(), model.blocks[0].attention.alpha_dot
        )
        grads.append((out[K.NODE_VECTORS], grad, grad_of_grad))
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, atol=1e-12)
    with pytest.raises(
        ValueError, match="activation_checkpointing cannot be combined with alpha_drop"
    ):
        EquiformerV2Encoder(**SMALL, activation_checkpointing=True, alpha_drop=0.1)
