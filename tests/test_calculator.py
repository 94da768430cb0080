"""LaMMCalculator: eV out of ASE, checkpoint round trip (contract format), EMA weights, heads."""

import numpy as np
import pytest
import torch
from model_support import (
    STATS,
    TINY_CONFIG,
    TINY_EQUIFORMER_CONFIG,
    batch_of,
    ethanol,
    rocksalt,
    tiny_potential,
)  # noqa: F401

from lamm import keys as K
from lamm.calculator import LaMMCalculator
from lamm.models.checkpoint import checkpoint_dict, load_checkpoint, save_checkpoint


def saved(tmp_path, force_mode="direct", ema_seed=None):
    potential = tiny_potential(force_mode, stats=True).float()
    ema = None
    if ema_seed is not None:
        ema_potential = tiny_potential(force_mode, seed=ema_seed, stats=True).float()
        ema = ema_potential.state_dict()
    path = tmp_path / "model.pt"
    save_checkpoint(
        path, checkpoint_dict(potential, {**TINY_CONFIG, "force_mode": force_mode}, ema_state=ema)
    )
    return path, potential


def reference_ev(potential, atoms, head):
    """eV and eV/A computed by hand from the normalized forward output."""
    batch = batch_of(atoms, dataset_index=head)
    batch.pos, batch.cell, batch.cell_offsets = (
        batch.pos.float(),
        batch.cell.float(),
        batch.cell_offsets.float(),
    )
    potential.eval()
    out = potential(batch)
    stats = STATS[head]
    references = sum(float(stats["element_references"].get(str(z), 0.0)) for z in atoms.numbers)
    energy = (
        out[K.PRED_ENERGY][0, head].item() * stats["energy_std"] + stats["energy_mean"] + references
    )
    return energy, out[K.PRED_FORCES][:, :, head].detach().double().numpy() * stats["force_rms"]


@pytest.mark.parametrize("force_mode", ["direct", "gradient"])
def test_checkpoint_round_trip_gives_ev_through_ase(tmp_path, force_mode):
    path, potential = saved(tmp_path, force_mode)
    atoms = ethanol()
    atoms.calc = LaMMCalculator(path)
    energy, forces = reference_ev(potential, atoms, head=0)
    assert atoms.get_potential_energy() == pytest.approx(energy, rel=1e-6)
    np.testing.assert_allclose(atoms.get_forces(), forces, rtol=1e-5, atol=1e-6)
    assert atoms.calc.head == "a"


def test_head_selection_and_periodic_atoms(tmp_path):
    path, potential = saved(tmp_path)
    atoms = rocksalt()
    atoms.calc = LaMMCalculator(path, head="b")
    energy, forces = reference_ev(potential, atoms, head=1)
    assert atoms.get_potential_energy() == pytest.approx(energy, rel=1e-6)
    np.testing.assert_allclose(atoms.get_forces(), forces, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="unknown head 'c'"):
        LaMMCalculator(path, head="c")


def test_ema_weights_are_used_when_present(tmp_path):
    path, _ = saved(tmp_path, ema_seed=9)
    ema_potential = tiny_potential("direct", seed=9, stats=True).float()
    atoms = ethanol()
    atoms.calc = LaMMCalculator(path)
    assert atoms.get_potential_energy() == pytest.approx(
        reference_ev(ema_potential, atoms, head=0)[0], rel=1e-6
    )


def test_gradient_mode_calculator_forces_are_minus_the_energy_gradient(tmp_path):
    path, _ = saved(tmp_path, "gradient")
    atoms = rocksalt()
    atoms.calc = LaMMCalculator(path, head="b")
    forces = atoms.get_forces()
    step = 1e-3  # float32 model: a larger step, a looser tolerance
    energies = []
    for sign in (1, -1):
        moved = atoms.copy()
        moved.positions[2, 1] += sign * step
        moved.calc = atoms.calc
        energies.append(moved.get_potential_energy())
    assert forces[2, 1] == pytest.approx(
        -(energies[0] - energies[1]) / (2 * step), rel=2e-2, abs=2e-3
    )


def test_untrained_calculator():
    calc = LaMMCalculator.untrained(
        "painn",
        heads=["x", "y"],
        seed=0,
        force_mode="gradient",
        model_config={"painn": {"hidden_channels": 8, "num_layers": 1, "num_rbf": 4}},
    )
    atoms = ethanol()
    atoms.calc = calc
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    assert np.isfinite(energy) and forces.shape == (9, 3) and np.isfinite(forces).all()
    again = LaMMCalculator.untrained(
        "painn",
        heads=["x", "y"],
        seed=0,
        force_mode="gradient",
        model_config={"painn": {"hidden_channels": 8, "num_layers": 1, "num_rbf": 4}},
    )
    assert again.get_potential_energy(ethanol()) == energy
    small = {key: value for key, value in TINY_EQUIFORMER_CONFIG.items() if key != "encoder"}
    equiformer = LaMMCalculator.untrained("equiformer_v2", heads=["x"], seed=0, model_config=small)
    atoms.calc = equiformer
    assert np.isfinite(atoms.get_potential_energy()) and np.isfinite(atoms.get_forces()).all()
    with pytest.raises(ValueError, match="encoder must be one of"):
        LaMMCalculator.untrained("schnet", heads=["x"])


def test_bad_checkpoints_name_the_file(tmp_path):
    wrong = tmp_path / "wrong.pt"
    torch.save({"format": "something-else"}, wrong)
    with pytest.raises(ValueError, match="wrong.pt.*not a lamm checkpoint"):
        LaMMCalculator(wrong)
    pickled = tmp_path / "pickled.pt"
    torch.save(
        {"format": "lamm-checkpoint", "version": 1, "model": tiny_potential()}, pickled
    )  # a whole module
    with pytest.raises(ValueError, match="pickled.pt"):
        LaMMCalculator(pickled)
    path, _ = saved(tmp_path)
    checkpoint = load_checkpoint(path)
    checkpoint["model"].pop("encoder.embedding.weight")
    save_checkpoint(tmp_path / "partial.pt", checkpoint)
    with pytest.raises(ValueError, match="partial.pt.*weights do not match"):
        LaMMCalculator(tmp_path / "partial.pt")
