"""The one place that turns a model config mapping into modules (explicit `if`s, no registry).

The mapping (the `model:` section of a training config; every key optional except `encoder`):

    encoder: painn                # painn | equiformer_v2
    cutoff: 6.0                   # Angstrom, radius graph and radial envelope
    max_neighbors: 50             # nearest neighbors kept per atom (FAIR-Chem OC20); null = all
    force_mode: direct            # direct (force head) | gradient (-dE/dx by autograd)
    painn:                        # used when encoder: painn
      hidden_channels: 512
      num_layers: 6
      num_rbf: 128                # Gaussians on [0, cutoff]
      envelope_exponent: 5        # polynomial envelope
      max_atomic_number: 118
      recompute_messages: true    # 2x less training memory for ~10-20% more time (CPU)
    equiformer_v2: {...}          # used when encoder: equiformer_v2 (EquiformerV2Encoder's keyword
    arguments)
    heads:
      hidden_channels: null       # hidden width of energy and force heads; null = scalar_dim // 2

Every default is declared once, in the signature of the module that takes it (`PaiNN`,
`GaussianBasis`, `PolynomialEnvelope`, `EnergyHead`, `Potential`, `EquiformerV2Encoder`):
LaMM-S for PaiNN (FAIR-Chem's PaiNN h512, 6 layers). Unknown keys raise ValueError, and
`model_schema()` is the same contract as a JSON schema, so a training config's `model:` section
gets the "did you mean" of every other section when the config is loaded.
"""

from __future__ import annotations

import copy
import difflib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from lamm.models.heads import DirectForceHead, EnergyHead
from lamm.models.normalizer import Normalizer
from lamm.models.painn import PaiNN
from lamm.models.potential import FORCE_MODES, Potential
from lamm.models.radial import GaussianBasis, PolynomialEnvelope

ENCODERS = ("painn", "equiformer_v2")


def _default(function: Any, name: str) -> Any:
    """The default of one parameter of `function` (a class: its constructor)."""
    return inspect.signature(function).parameters[name].default


DEFAULTS: dict[str, Any] = {
    "cutoff": _default(GaussianBasis, "cutoff"),
    "max_neighbors": _default(Potential, "max_neighbors"),
    "force_mode": _default(Potential, "force_mode"),
    "painn": {
        "hidden_channels": _default(PaiNN, "hidden_channels"),
        "num_layers": _default(PaiNN, "num_layers"),
        "num_rbf": _default(GaussianBasis, "num_rbf"),
        "envelope_exponent": _default(PolynomialEnvelope, "exponent"),
        "max_atomic_number": _default(PaiNN, "max_atomic_number"),
        "recompute_messages": _default(PaiNN, "recompute_messages"),
    },
    "equiformer_v2": {},
    "heads": {"hidden_channels": _default(EnergyHead, "hidden_channels")},
}


def _check_keys(section: Mapping[str, Any], allowed: Mapping[str, Any], where: str) -> None:
    unknown = sorted(set(section) - set(allowed))
    if unknown:
        hints = [difflib.get_close_matches(key, list(allowed), n=1) for key in unknown]
        suggestions = "".join(f" (did you mean {hint[0]}?)" for hint in hints if hint)
        raise ValueError(
            f"unknown key(s) in {where}: {', '.join(unknown)}{suggestions} (allowed: "
            f"{', '.join(sorted(allowed))})"
        )


def _positive_int(value: Any, where: str, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{where} must be a positive integer{' or null' if allow_none else ''}, got {value!r}"
        )
    return value


def resolve_model_config(model_config: Mapping[str, Any]) -> dict[str, Any]:
    """Validate a model config and fill in the defaults; the result is what checkpoints store."""
    if not isinstance(model_config, Mapping):
        raise ValueError(f"model config must be a mapping, got {type(model_config).__name__}")
    _check_keys(model_config, {"encoder": None, **DEFAULTS}, "model config")
    encoder = model_config.get("encoder")
    if encoder not in ENCODERS:
        raise ValueError(f"model config: encoder must be one of {ENCODERS}, got {encoder!r}")
    config: dict[str, Any] = {"encoder": encoder}
    for key in ("cutoff", "max_neighbors", "force_mode"):
        config[key] = model_config.get(key, DEFAULTS[key])
    for key in ("painn", "equiformer_v2", "heads"):
        section = model_config.get(key) or {}
        if not isinstance(section, Mapping):
            raise ValueError(f"model config: {key} must be a mapping, got {section!r}")
        if key != "equiformer_v2":  # that encoder's builder checks its own section
            _check_keys(section, DEFAULTS[key], f"model config section {key}")
        config[key] = {**copy.deepcopy(DEFAULTS[key]), **dict(section)}
    if (
        isinstance(config["cutoff"], bool)
        or not isinstance(config["cutoff"], (int, float))
        or not config["cutoff"] > 0
    ):
        raise ValueError(
            f"model config: cutoff must be a positive number (Angstrom), got {config['cutoff']!r}"
        )
    config["cutoff"] = float(config["cutoff"])
    _positive_int(config["max_neighbors"], "model config: max_neighbors", allow_none=True)
    if config["force_mode"] not in FORCE_MODES:
        raise ValueError(
            f"model config: force_mode must be one of {FORCE_MODES}, got {config['force_mode']!r}"
        )
    for key in (
        "hidden_channels",
        "num_layers",
        "num_rbf",
        "envelope_exponent",
        "max_atomic_number",
    ):
        _positive_int(config["painn"][key], f"model config: painn.{key}")
    if not isinstance(config["painn"]["recompute_messages"], bool):
        raise ValueError(
            "model config: painn.recompute_messages must be true or false, got "
            f"{config['painn']['recompute_messages']!r}"
        )
    _positive_int(
        config["heads"]["hidden_channels"], "model config: heads.hidden_channels", allow_none=True
    )
    return config


def equiformer_v2_keys() -> list[str]:
    """The keys of the `equiformer_v2` section: EquiformerV2Encoder's keyword arguments, less
    the cutoff (the model's: graphs are built with it) and the seed (the potential's)."""
    from lamm.models.equiformer_v2 import EquiformerV2Encoder

    parameters = inspect.signature(EquiformerV2Encoder.__init__).parameters
    return sorted(set(parameters) - {"self", "cutoff", "seed"})


def model_schema() -> dict[str, Any]:
    """The model mapping as a JSON schema (keys and types; the defaults stay in the
    signatures), for the training configs' `model:` section."""
    positive = {"type": "integer", "minimum": 1}

    def section(properties: Mapping[str, Any], description: str) -> dict[str, Any]:
        # null or absent: every default (resolve_model_config); not filled in by the schema
        return {
            "type": ["object", "null"],
            "additionalProperties": False,
            "description": description,
            "properties": dict(properties),
        }

    painn = {key: positive for key in DEFAULTS["painn"] if key != "recompute_messages"}
    painn["recompute_messages"] = {"type": "boolean"}
    # equiformer_v2's keys are checked by the builder against EquiformerV2Encoder's signature:
    # importing that module (e3nn) here would slow every config load, the workflow's parse too
    equiformer = {
        "type": ["object", "null"],
        "description": "EquiformerV2Encoder's keyword arguments (checked when it is built)",
    }
    return {
        "type": "object",
        "additionalProperties": False,
        "required": ["encoder"],
        "description": "The model mapping of lamm.models.build.build_potential.",
        "properties": {
            "encoder": {"enum": list(ENCODERS)},
            "cutoff": {"type": "number", "exclusiveMinimum": 0},
            "max_neighbors": {"type": ["integer", "null"], "minimum": 1},
            "force_mode": {"enum": list(FORCE_MODES)},
            "painn": section(painn, "PaiNN's sizes (encoder: painn)"),
            "equiformer_v2": equiformer,
            "heads": section({"hidden_channels": {"type": ["integer", "null"], "minimum": 1}}, ""),
        },
    }


def _equiformer_v2(config: Mapping[str, Any], seed: int) -> nn.Module:
    from lamm.models.equiformer_v2 import EquiformerV2Encoder

    section = dict(config["equiformer_v2"])
    allowed = equiformer_v2_keys()
    _check_keys(section, dict.fromkeys(allowed), "model config section equiformer_v2")
    # The cutoff is the model's (graphs are built with it); the seed is the potential's.
    return EquiformerV2Encoder(cutoff=config["cutoff"], seed=seed, **section)


def build_encoder(config: Mapping[str, Any], seed: int = 0) -> nn.Module:
    """The encoder of a resolved config (see `resolve_model_config`)."""
    if config["encoder"] == "painn":
        painn = config["painn"]
        return PaiNN(
            radial_basis=GaussianBasis(num_rbf=painn["num_rbf"], cutoff=config["cutoff"]),
            envelope=PolynomialEnvelope(
                cutoff=config["cutoff"], exponent=painn["envelope_exponent"]
            ),
            hidden_channels=painn["hidden_channels"],
            num_layers=painn["num_layers"],
            max_atomic_number=painn["max_atomic_number"],
            recompute_messages=painn["recompute_messages"],
        )
    if config["encoder"] == "equiformer_v2":
        return _equiformer_v2(config, seed)
    raise ValueError(f"unknown encoder {config['encoder']!r}")


def build_heads(
    config: Mapping[str, Any], encoder: nn.Module, num_heads: int
) -> tuple[EnergyHead, DirectForceHead | None]:
    """Fresh energy and force heads for `encoder` (fine-tuning re-creates them this way)."""
    hidden = config["heads"]["hidden_channels"]
    energy_head = EnergyHead(encoder.scalar_dim, num_heads, hidden_channels=hidden)
    if config["force_mode"] == "gradient":
        return energy_head, None
    return energy_head, DirectForceHead(
        encoder.scalar_dim, encoder.vector_dim, num_heads, hidden_channels=hidden
    )


def build_potential(
    model_config: Mapping[str, Any], heads: Sequence[str], seed: int = 0
) -> Potential:
    """A freshly initialized `Potential` with one output channel per head name.

    Same seed, same weights. `nn.init` only draws from torch's global generator, so the
    weights are drawn inside `torch.random.fork_rng`, which restores the caller's global state.
    The normalizer is the identity until statistics are loaded (`potential.normalizer.set_head`).
    """
    config = resolve_model_config(model_config)
    heads = list(heads)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = build_encoder(config, seed)
        energy_head, force_head = build_heads(config, encoder, len(heads))
    return Potential(
        encoder=encoder,
        energy_head=energy_head,
        force_head=force_head,
        normalizer=Normalizer(len(heads)),
        heads=heads,
        force_mode=config["force_mode"],
        max_neighbors=config["max_neighbors"],
    )
