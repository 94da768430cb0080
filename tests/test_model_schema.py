"""The model mapping is declared once: its defaults are the builders' signatures, and a training
config's `model:` section gets the same "did you mean" as every other section."""

import inspect

import pytest

from lamm.config import ConfigError, validate_config
from lamm.models.build import DEFAULTS, build_potential, resolve_model_config
from lamm.models.painn import PaiNN
from lamm.training.finetune import finetune_schema
from lamm.training.pretrain import SCHEMA
from tests.helpers.training_data import tiny_trainer_config


def test_painn_defaults_are_the_constructor_defaults():
    parameters = inspect.signature(PaiNN).parameters
    for key in ("hidden_channels", "num_layers", "max_atomic_number", "recompute_messages"):
        assert DEFAULTS["painn"][key] == parameters[key].default
    resolved = resolve_model_config({"encoder": "painn"})
    assert resolved["painn"] == DEFAULTS["painn"] and resolved["cutoff"] == 6.0


@pytest.mark.parametrize(
    "section, key, hint",
    [
        ("painn", "hiden_channels", "model.painn.hidden_channels"),
        ("heads", "hidden_channel", "model.heads.hidden_channels"),
        (None, "cutof", "model.cutoff"),
    ],
)
def test_a_misspelled_model_key_fails_at_load_with_a_suggestion(section, key, hint):
    config = tiny_trainer_config()
    target = config["model"] if section is None else config["model"].setdefault(section, {})
    target[key] = 3
    with pytest.raises(ConfigError, match=f"did you mean {hint}"):
        validate_config(config, SCHEMA)


def test_model_values_are_checked_and_sections_are_not_filled_in():
    config = tiny_trainer_config()
    config["model"]["force_mode"] = "sideways"
    with pytest.raises(ConfigError, match="model.force_mode"):
        validate_config(config, SCHEMA)
    clean = validate_config(tiny_trainer_config(), SCHEMA)
    assert "equiformer_v2" not in clean["model"]  # defaults stay in the signatures


def test_a_fine_tuning_config_may_leave_the_model_to_the_checkpoint():
    schema = finetune_schema()
    assert schema["properties"]["model"]["type"] == ["object", "null"]
    assert "did you mean" in str(
        pytest.raises(
            ConfigError,
            validate_config,
            {"name": "x", "model": {"encoder": "painn", "cutof": 5.0}, "data": {"subset": "a"}},
            schema,
        ).value
    )


def test_equiformer_keys_are_checked_by_the_builder_with_a_suggestion():
    with pytest.raises(ValueError, match="num_layer .did you mean num_layers"):
        build_potential({"encoder": "equiformer_v2", "equiformer_v2": {"num_layer": 2}}, ["a"])
