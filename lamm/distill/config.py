"""The distillation config (`lamm/distill/distill.schema.yaml`) and its typed parts."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lamm.config import load_yaml, validate_config
from lamm.distill.explore import ExploreSettings

SCHEMA = Path(__file__).with_name("distill.schema.yaml")


def validate_distill_config(
    raw: Mapping[str, Any], name: str = "distillation config"
) -> dict[str, Any]:
    """Defaults filled; errors name the key. The student's model is resolved (checked) too."""
    from lamm.models.build import model_schema, resolve_model_config

    schema = load_yaml(SCHEMA)
    student = schema["properties"]["student"]["properties"]
    student["model"] = {**model_schema(), "description": student["model"]["description"]}
    config = validate_config(raw, schema, name=name)
    try:
        config["student"]["model"] = resolve_model_config(config["student"]["model"])
    except ValueError as err:
        raise ValueError(f"{name}: student.model: {err}") from None
    window = config["select"]
    if window["lo_ev_per_a"] > window["hi_ev_per_a"]:
        raise ValueError(
            f"{name}: select.lo_ev_per_a {window['lo_ev_per_a']} is above "
            f"select.hi_ev_per_a {window['hi_ev_per_a']}"
        )
    return config


def load_distill_config(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"student config {path} does not exist")
    return validate_distill_config(load_yaml(path), name=f"distillation config {path}")


def explore_settings(config: Mapping[str, Any], *, validation: bool = False) -> ExploreSettings:
    """The exploration MD; with `validation`, the validation set's trajectory length and
    sampling."""
    explore = config["explore"]
    steps, every = (
        (config["validation"]["steps"], config["validation"]["sample_every"])
        if validation
        else (explore["steps"], explore["sample_every"])
    )
    return ExploreSettings(
        temperatures_k=tuple(float(t) for t in explore["temperatures_k"]),
        steps=steps,
        timestep_fs=explore["timestep_fs"],
        friction_per_fs=explore["friction_per_fs"],
        sample_every=every,
        max_force_ev_per_a=explore["max_force_ev_per_a"],
        min_distance_a=explore["min_distance_a"],
    )
