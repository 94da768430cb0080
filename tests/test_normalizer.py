"""Normalizer: exact formulas of SPEC section 3 on a hand-computed case, and round trips."""

import pytest
import torch

from lamm.models.normalizer import Normalizer

STATS = [
    {
        "element_references": {"1": -13.6, "8": -2000.0},
        "energy_mean": 0.5,
        "energy_std": 2.0,
        "force_rms": 0.25,
    },
    {"element_references": {"29": -10.0}, "energy_mean": -1.0, "energy_std": 4.0, "force_rms": 2.0},
]


def water_and_copper():
    atomic_numbers = torch.tensor([8, 1, 1, 29, 29])
    batch = torch.tensor([0, 0, 0, 1, 1])
    return atomic_numbers, batch


def test_hand_computed_energy_normalization():
    normalizer = Normalizer.from_statistics(STATS)
    z, batch = water_and_copper()
    energy = torch.tensor([-2026.2, -21.0], dtype=torch.float64)
    normalized = normalizer.normalize_energy(energy, z, batch, torch.tensor([0, 1]))
    # water, head 0: (-2026.2 - (-2000 - 2*13.6) - 0.5) / 2 = (1.0 - 0.5) / 2
    # copper, head 1: (-21 - (-20) - (-1)) / 4 = 0
    assert normalized.tolist() == pytest.approx([0.25, 0.0], abs=1e-12)


def test_denormalize_inverts_normalize_for_each_own_head():
    normalizer = Normalizer.from_statistics(STATS)
    z, batch = water_and_copper()
    energy = torch.tensor([-2030.0, -17.5], dtype=torch.float64)
    dataset_index = torch.tensor([0, 1])
    normalized = normalizer.normalize_energy(energy, z, batch, dataset_index)
    every_head = normalized.view(-1, 1).expand(-1, 2)  # [B, D]
    back = normalizer.denormalize_energy(every_head, z, batch)
    assert back.gather(1, dataset_index.view(-1, 1)).squeeze(1).tolist() == pytest.approx(
        energy.tolist(), abs=1e-9
    )


def test_reference_energy_of_every_head():
    normalizer = Normalizer.from_statistics(STATS)
    z, batch = water_and_copper()
    reference = normalizer.reference_energy(z, batch, 2)
    assert torch.allclose(
        reference, torch.tensor([[-2027.2, 0.0], [0.0, -20.0]], dtype=torch.float64)
    )


def test_forces_round_trip():
    normalizer = Normalizer.from_statistics(STATS)
    forces = torch.tensor([[1.0, 0.0, -0.5], [0.25, 0.25, 0.0]])
    normalized = normalizer.normalize_forces(forces, torch.tensor([0, 1]))
    assert normalized.tolist() == [[4.0, 0.0, -2.0], [0.125, 0.125, 0.0]]
    back = normalizer.denormalize_forces(normalized.unsqueeze(-1).expand(-1, -1, 2))
    assert back[0, :, 0].tolist() == forces[0].tolist()
    assert back[1, :, 1].tolist() == forces[1].tolist()


def test_untrained_normalizer_is_the_identity_and_rides_in_the_state_dict():
    normalizer = Normalizer(3)
    z, batch = water_and_copper()
    prediction = torch.randn(2, 3)
    assert torch.equal(normalizer.denormalize_energy(prediction, z, batch), prediction.double())
    loaded = Normalizer(2)
    loaded.load_state_dict(Normalizer.from_statistics(STATS).state_dict())
    assert loaded.energy_std.tolist() == [2.0, 4.0]


def test_bad_statistics():
    with pytest.raises(ValueError, match="must be positive"):
        Normalizer.from_statistics([{"energy_std": 0.0}])
    with pytest.raises(ValueError, match="at least 1"):
        Normalizer(0)
