"""build_potential: the config mapping (LaMM-S and demo as the trainer's YAML would hold them),
its validation, seeding, and the LaMM-S parameter count against the paper's 20.1M."""

import pytest
import torch
import yaml
from model_support import batch_of, ethanol, single_thread  # noqa: F401

from lamm.models.build import build_potential, resolve_model_config

PRETRAIN_HEADS = [
    "oc20_s2ef",
    "oc22_s2ef",
    "odac23_s2ef",
    "transition1x",
    "qm7x",
    "qmugs",
    "pubchem3d",
    "oc20_is2re",
    "oc22_is2re",
    "odac23_is2re",
]

# The `model:` sections of config/pretrain/*.yaml (the lead writes those files).
LAMM_S_YAML = """
model:
  encoder: painn
  cutoff: 6.0
  max_neighbors: 50
  force_mode: direct
  painn:
    hidden_channels: 512
    num_layers: 6
    num_rbf: 128
    envelope_exponent: 5
    max_atomic_number: 118
  heads:
    hidden_channels: 256
"""
DEMO_YAML = """
model:
  encoder: painn
  cutoff: 5.0
  max_neighbors: 30
  force_mode: direct
  painn:
    hidden_channels: 64
    num_layers: 3
    num_rbf: 32
  heads:
    hidden_channels: 32
"""


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_lamm_s_parameter_count_is_close_to_the_paper():
    potential = build_potential(yaml.safe_load(LAMM_S_YAML)["model"], PRETRAIN_HEADS)
    f, r, layers, h, d = 512, 128, 6, 256, 10
    message = (
        2 * f + (f * f + f) + (f * 3 * f + 3 * f) + r * 3 * f
    )  # layer norm, MLP, filter (no bias)
    update = f * 2 * f + (2 * f * f + f) + (f * 3 * f + 3 * f)
    encoder = 119 * f + layers * (message + update)
    energy = f * h + h + h * d + d
    forces = (f * f + f * h + 2 * f * f + f + f * 2 * h + 2 * h) + (
        h * h + h * d + 2 * h * h + h + h * 2 * d + 2 * d
    )
    assert count(potential.encoder) == encoder
    assert count(potential.energy_head) == energy and count(potential.force_head) == forces
    total = count(potential)
    print(
        f"\nLaMM-S parameters: {total:,} (encoder {encoder:,}, energy head {energy:,}, "
        f"force head {forces:,}; "
        f"10 heads); paper: 20.1M; difference {total / 20.1e6 - 1:+.2%}"
    )
    assert abs(total / 20.1e6 - 1) < 0.005


def test_demo_config_builds_and_runs():
    potential = build_potential(yaml.safe_load(DEMO_YAML)["model"], PRETRAIN_HEADS).double()
    out = potential(batch_of(ethanol()))
    assert out["pred_energy"].shape == (1, 10) and out["pred_forces"].shape == (9, 3, 10)
    assert potential.cutoff == 5.0 and potential.max_neighbors == 30
    assert count(potential) < 300_000


def test_defaults_are_lamm_s_and_resolution_is_explicit():
    config = resolve_model_config({"encoder": "painn"})
    assert config == {
        "encoder": "painn",
        "cutoff": 6.0,
        "max_neighbors": None,
        "force_mode": "direct",
        "painn": {
            "hidden_channels": 512,
            "num_layers": 6,
            "num_rbf": 128,
            "envelope_exponent": 5,
            "max_atomic_number": 118,
            "recompute_messages": True,
        },
        "equiformer_v2": {},
        "heads": {"hidden_channels": None},
    }


@pytest.mark.parametrize(
    "config, message",
    [
        ({"encoder": "painn", "cuttoff": 5.0}, "unknown key.*cuttoff"),
        ({"encoder": "painn", "painn": {"hidden": 8}}, "painn: hidden"),
        ({"encoder": "painn", "heads": {"width": 8}}, "heads: width"),
        ({"encoder": "schnet"}, "encoder must be one of"),
        ({"encoder": "painn", "force_mode": "conservative"}, "force_mode"),
        ({"encoder": "painn", "cutoff": -1}, "cutoff"),
        ({"encoder": "painn", "max_neighbors": 0}, "max_neighbors"),
        ({"encoder": "painn", "painn": {"num_layers": 2.5}}, "num_layers"),
        ({"encoder": "painn", "painn": {"hidden_channels": True}}, "hidden_channels"),
        ({"encoder": "painn", "painn": {"recompute_messages": "yes"}}, "recompute_messages"),
        (
            {"encoder": "equiformer_v2", "equiformer_v2": {"lmax_list": [4]}},
            "equiformer_v2: lmax_list",
        ),
        ({"encoder": "equiformer_v2", "equiformer_v2": {"cutoff": 5.0}}, "equiformer_v2: cutoff"),
        ({"encoder": "equiformer_v2", "equiformer_v2": {"lmax": 2, "mmax": 3}}, "mmax"),
    ],
)
def test_bad_configs_raise_with_the_key(config, message):
    with pytest.raises(ValueError, match=message):
        build_potential(config, ["a"])


def test_seed_fixes_the_weights_without_touching_global_rng():
    config = {"encoder": "painn", "painn": {"hidden_channels": 8, "num_layers": 1, "num_rbf": 4}}
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_potential(config, ["x"], seed=5)
    assert torch.rand(1) == before  # the caller's global generator is where it was
    b = build_potential(config, ["x"], seed=5)
    c = build_potential(config, ["x"], seed=6)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.encoder.embedding.weight, c.encoder.embedding.weight)
