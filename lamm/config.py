"""Loading and validating YAML configs against JSON schemas, with messages that name the key.

`validate_config` reports every problem at once as `key data.scale: 'huge' is not one of ...`
or `unknown key data.sclae (did you mean data.scale?)`, and fills in schema defaults.
"""

from __future__ import annotations

import copy
import difflib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import yaml


class ConfigError(ValueError):
    """A config that does not match its schema; the message lists every problem."""


def load_yaml(path: str | os.PathLike) -> Any:
    """Parse a YAML file, naming the file in any error."""
    path = Path(path)
    try:
        with open(path) as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"config file {path} is not valid YAML: {err}") from None


def _dotted(path: Any) -> str:
    return ".".join(str(part) for part in path) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    where = list(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - set(allowed))
        lines = []
        for key in unknown:
            hint = difflib.get_close_matches(key, allowed, n=1)
            suggestion = f" (did you mean {_dotted([*where, hint[0]])}?)" if hint else ""
            lines.append(
                f"unknown key {_dotted([*where, key])}{suggestion}; allowed: {', '.join(allowed)}"
            )
        return "\n".join(lines)
    if error.validator == "required":
        return f"key {_dotted(where)}: {error.message}"
    return f"key {_dotted(where)}: {error.message}"


def _fill_defaults(instance: Any, schema: Mapping[str, Any]) -> None:
    """Fill `default`s; a missing section (an object with properties) is created and filled."""
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if key not in instance and "default" in sub:
            instance[key] = copy.deepcopy(sub["default"])
        elif key not in instance and sub.get("type") == "object" and "properties" in sub:
            instance[key] = {}
        if key in instance:
            _fill_defaults(instance[key], sub)


def validate_config(
    config: Mapping[str, Any],
    schema: Mapping[str, Any] | str | os.PathLike,
    *,
    name: str = "config",
) -> dict[str, Any]:
    """Return a copy of `config` with defaults filled in; raise ConfigError listing all problems."""
    if not isinstance(schema, Mapping):
        schema = load_yaml(schema)
    if not isinstance(config, Mapping):
        raise ConfigError(
            f"{name} must be a mapping of keys to values, got {type(config).__name__}"
        )
    instance = copy.deepcopy(dict(config))
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(
        validator.iter_errors(instance), key=lambda e: (list(map(str, e.absolute_path)), e.message)
    )
    if errors:
        problems = "\n".join(f"  - {_describe(e)}" for e in errors)
        raise ConfigError(f"invalid {name}:\n{problems}")
    _fill_defaults(instance, schema)
    return instance
