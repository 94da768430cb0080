"""Potential: gradient forces against finite differences, how PRED_FORCES is filled, the
normalizer round trip, scale fitting, autocast, and bad arguments."""

import numpy as np
import pytest
import torch
from model_support import STATS, batch_of, ethanol, predict, rocksalt, single_thread, tiny_potential  # noqa: F401

from lamm import keys as K
from lamm.models.heads import DirectForceHead, EnergyHead
from lamm.models.normalizer import Normalizer
from lamm.models.potential import Potential


@pytest.mark.parametrize("kind, head", [("molecule", 0), ("periodic", 1)])
def test_gradient_forces_match_finite_differences_in_ev(kind, head):
    # with non-trivial statistics, so the -(std/rms) scaling of gradient mode is checked too
    potential = tiny_potential("gradient", stats=True)
    atoms = ethanol() if kind == "molecule" else rocksalt()
    _, forces = predict(potential, atoms, dataset_index=head)
    step = 1e-4
    for atom, axis in [(0, 0), (1, 2), (len(atoms) - 1, 1)]:
        energies = []
        for sign in (1, -1):
            moved = atoms.copy()
            moved.positions[atom, axis] += sign * step
            energies.append(predict(potential, moved, dataset_index=head)[0][head])
        numeric = -(energies[0] - energies[1]) / (2 * step)
        assert forces[atom, axis, head] == pytest.approx(numeric, rel=1e-6, abs=1e-7)


def test_gradient_mode_fills_only_the_own_head_and_keeps_the_graph_only_in_training():
    potential = tiny_potential("gradient", heads=("a", "b", "c"))
    batch = batch_of(ethanol(), dataset_index=2)
    potential.eval()
    with torch.no_grad():  # gradient forces still work under no_grad
        forces = potential(batch)[K.PRED_FORCES]
    assert torch.isnan(forces[:, :, :2]).all() and torch.isfinite(forces[:, :, 2]).all()
    assert not forces.requires_grad
    potential.train()
    forces = potential(batch)[K.PRED_FORCES]
    assert forces.requires_grad  # create_graph: a force loss can train the weights
    # (a plain sum of forces is zero by translation invariance, so weight the atoms)
    weights = torch.linspace(-1.0, 1.0, forces.shape[0] * 3, dtype=forces.dtype).view(-1, 3)
    (forces[:, :, 2] * weights).sum().backward()
    assert potential.energy_head.mlp[0].weight.grad.abs().sum() > 0


def test_direct_and_gradient_forces_denormalize_alike():
    # gradient-mode forward returns -(std/rms) dE_norm/dx, so predict gives -dE/dx in eV/A
    potential = tiny_potential("gradient", stats=True)
    batch = batch_of(rocksalt(), dataset_index=1)
    normalized = potential(batch)[K.PRED_FORCES][:, :, 1]
    in_ev = potential.predict(batch)[K.PRED_FORCES][:, :, 1]
    torch.testing.assert_close(in_ev, normalized * STATS[1]["force_rms"])
    batch[K.POSITIONS].requires_grad_(True)
    energy = potential(batch)[K.PRED_ENERGY][0, 1] * STATS[1]["energy_std"]
    (gradient,) = torch.autograd.grad(energy, batch[K.POSITIONS])
    torch.testing.assert_close(in_ev.detach(), -gradient)


def test_predict_maps_energy_to_ev_with_references():
    potential = tiny_potential("direct", stats=True)
    atoms = ethanol()  # C2H6O
    batch = batch_of(atoms)
    normalized = potential(batch)[K.PRED_ENERGY][0, 0].item()
    references = 2 * -1030.0 + 6 * -13.6 + -2040.0
    expected = normalized * STATS[0]["energy_std"] + STATS[0]["energy_mean"] + references
    assert potential.predict(batch)[K.PRED_ENERGY].dtype == torch.float64
    assert potential.predict(batch)[K.PRED_ENERGY][0, 0].item() == pytest.approx(
        expected, rel=1e-12
    )


def test_isolated_atoms_have_zero_forces():
    from ase import Atoms

    for mode in ("direct", "gradient"):
        energy, forces = predict(tiny_potential(mode), Atoms("Cu", positions=[[0, 0, 0]]))
        assert np.isfinite(energy[0]) and np.all(forces[:, :, 0] == 0.0)


def test_fit_layer_scales_gives_unit_variance_scalars():
    potential = tiny_potential("direct")
    encoder = potential.encoder
    inputs = []
    for atoms in (ethanol(), rocksalt()):
        batch = batch_of(atoms)
        from lamm.models.potential import edge_vectors

        vectors = edge_vectors(
            batch.pos, batch.cell, batch.cell_offsets, batch.edge_index, batch.batch
        )
        inputs.append((batch.atomic_numbers, batch.edge_index, vectors))
    scales = encoder.fit_layer_scales(inputs)
    assert len(scales) == 2 and all(s > 0 and s != 1.0 for s in scales)
    variances = [
        encoder(*args)[K.NODE_FEATURES].var(dim=0).mean().item() * len(args[0]) for args in inputs
    ]
    assert sum(variances) / sum(len(args[0]) for args in inputs) == pytest.approx(1.0, rel=1e-6)


def test_bf16_autocast_runs_and_stays_close():
    potential = tiny_potential("direct").float()
    batch = batch_of(rocksalt())
    batch.pos, batch.cell, batch.cell_offsets = (
        batch.pos.float(),
        batch.cell.float(),
        batch.cell_offsets.float(),
    )
    reference = potential(batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = potential(batch)
    assert out[K.PRED_ENERGY].dtype == torch.float32  # sums at least in float32
    torch.testing.assert_close(out[K.PRED_ENERGY], reference[K.PRED_ENERGY], rtol=0.05, atol=0.05)
    torch.testing.assert_close(out[K.PRED_FORCES], reference[K.PRED_FORCES], rtol=0.1, atol=0.05)


def test_bad_arguments_raise():
    potential = tiny_potential("direct")
    encoder, energy_head, force_head = (
        potential.encoder,
        potential.energy_head,
        potential.force_head,
    )
    with pytest.raises(ValueError, match="force_mode"):
        Potential(encoder, energy_head, force_head, Normalizer(2), ["a", "b"], force_mode="both")
    with pytest.raises(ValueError, match="unique"):
        Potential(encoder, energy_head, force_head, Normalizer(2), ["a", "a"])
    with pytest.raises(ValueError, match="3 heads"):
        Potential(encoder, energy_head, force_head, Normalizer(3), ["a", "b", "c"])
    with pytest.raises(ValueError, match="force_head=None"):
        Potential(
            encoder, energy_head, force_head, Normalizer(2), ["a", "b"], force_mode="gradient"
        )
    with pytest.raises(ValueError, match="force head"):
        Potential(encoder, EnergyHead(16, 2), None, Normalizer(2), ["a", "b"])
    with pytest.raises(ValueError, match="force head"):
        Potential(encoder, EnergyHead(16, 2), DirectForceHead(16, 16, 3), Normalizer(2), ["a", "b"])
