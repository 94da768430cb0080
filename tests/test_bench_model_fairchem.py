"""`lamm bench model` with fairchem-core 1.x's EquiformerV2 beside LaMM-L.

The end-to-end test needs the side venv (`make fairchem-env`, or LAMM_FAIRCHEM_PYTHON naming a
python with fairchem-core 1.x and our torch_scatter shim) and is skipped, saying so, without it.
The config mapping and the preset are checked without fairchem."""

import json
import os
from pathlib import Path

import pandas as pd
import pytest
import yaml

from lamm.bench.model import PRESETS, Case, cu111_co_records, encoder_arguments, run_model_benchmark
from lamm.bench.peers.fairchem_equiformer import backbone_arguments
from lamm.cli import main
from lamm.models.build import resolve_model_config

ROOT = Path(__file__).resolve().parents[1]
TINY = {
    "encoder": "equiformer_v2",
    "cutoff": 4.0,
    "max_neighbors": 12,
    "equiformer_v2": {
        "lmax": 2,
        "mmax": 1,
        "num_layers": 1,
        "sphere_channels": 8,
        "attn_hidden_channels": 8,
        "num_heads": 2,
        "attn_alpha_channels": 4,
        "attn_value_channels": 2,
        "ffn_hidden_channels": 8,
        "edge_channels": 8,
        "grid_resolution": 8,
        "edge_grid_resolution": 8,
    },
}


def fairchem_python() -> str:
    """The side venv's python, or skip with the reason and the command that builds it."""
    python = os.environ.get("LAMM_FAIRCHEM_PYTHON") or str(
        ROOT / ".venv-fairchem" / "bin" / "python"
    )
    if not Path(python).is_file():
        pytest.skip(
            f"no fairchem side venv at {python}: `make fairchem-env` builds it (or set "
            "LAMM_FAIRCHEM_PYTHON)"
        )
    # a venv that exists but cannot import fairchem fails the test below (its rows say why): not a
    # skip
    return python


def test_lamm_l_preset_is_the_lamm_l_config():
    config = yaml.safe_load((ROOT / "config" / "pretrain" / "lamm-l.yaml").read_text())["model"]
    assert resolve_model_config(PRESETS["lamm-l"]) == resolve_model_config(config)


def test_lamm_l_maps_to_fairchems_31m_settings():
    config = resolve_model_config(PRESETS["lamm-l"])
    arguments = backbone_arguments(encoder_arguments(config), 12.0, 20, direct_forces=True)
    expected = {
        "lmax_list": [4],
        "mmax_list": [2],
        "num_layers": 8,
        "sphere_channels": 128,
        "attn_hidden_channels": 64,
        "num_heads": 8,
        "attn_alpha_channels": 64,
        "attn_value_channels": 16,
        "ffn_hidden_channels": 128,
        "edge_channels": 128,
        "use_grid_mlp": True,
        "norm_type": "layer_norm_sh",
        "grid_resolution": 18,
        "max_radius": 12.0,
        "max_neighbors": 20,
        "num_distance_basis": 600,
        "alpha_drop": 0.0,
        "drop_path_rate": 0.0,
        "activation_checkpoint": True,
        "otf_graph": False,
        "use_pbc": True,
        "regress_forces": False,
        "max_num_elements": 119,
    }
    assert {k: arguments[k] for k in expected} == expected
    assert (
        backbone_arguments(encoder_arguments(config), 12.0, 20, direct_forces=False)[
            "regress_forces"
        ]
        is True
    )


def test_our_defaults_size_the_peer_where_the_config_is_silent():
    # TINY names neither grid_mlp nor the layer norm: our defaults (grid MLP, layer_norm_sh) must
    # reach fairchem, whose own defaults are the opposite
    arguments = backbone_arguments(
        encoder_arguments(resolve_model_config(TINY)), 4.0, 12, direct_forces=True
    )
    assert arguments["use_grid_mlp"] is True and arguments["norm_type"] == "layer_norm_sh"
    assert arguments["alpha_drop"] == 0.0 and arguments["activation_checkpoint"] is False
    assert arguments["max_num_elements"] == 119 and arguments["avg_degree"] == pytest.approx(
        23.395238876342773
    )


def test_settings_fairchem_cannot_express_are_refused():
    two_grids = resolve_model_config(
        {**TINY, "equiformer_v2": {**TINY["equiformer_v2"], "edge_grid_resolution": 10}}
    )
    with pytest.raises(ValueError, match="edge_grid_resolution differs"):
        backbone_arguments(encoder_arguments(two_grids), 4.0, 12, direct_forces=True)
    basis = resolve_model_config(
        {**TINY, "equiformer_v2": {**TINY["equiformer_v2"], "num_distance_basis": 512}}
    )
    with pytest.raises(ValueError, match="num_distance_basis is 512"):
        backbone_arguments(encoder_arguments(basis), 4.0, 12, direct_forces=True)
    # and the benchmark refuses a fairchem case for a PaiNN model before running anything
    with pytest.raises(
        ValueError, match="fairchem comparison exists for encoder equiformer_v2 only"
    ):
        run_model_benchmark(
            PRESETS["demo"],
            cu111_co_records(1),
            [Case("fairchem", "direct", "train", "float32")],
            fairchem_python="python",
        )


def test_fairchem_rows_beside_ours(tmp_path, capsys):
    python = fairchem_python()
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump({"model": TINY}))
    out = tmp_path / "throughput.csv"
    status = main(
        [
            "bench",
            "model",
            "--model-config",
            str(config),
            "--batch-size",
            "1",
            "--modes",
            "direct,gradient",
            "--phases",
            "train,infer",
            "--warmup",
            "0",
            "--repeats",
            "1",
            "--threads",
            "1",
            "--out",
            str(out),
            "--fairchem-python",
            python,
        ]
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    table = pd.read_csv(out)
    assert status == 0, table["status"].tolist()
    assert list(table["impl"]) == ["lamm", "fairchem"] * 4  # ours then theirs, per mode and phase
    assert set(zip(table["force_mode"], table["phase"], strict=True)) == {
        (m, p) for m in ("direct", "gradient") for p in ("train", "infer")
    }
    assert (
        (table["status"] == "ok").all()
        and (table["atoms"] == 74).all()
        and table["edges"].nunique() == 1
    )
    theirs = table[table["impl"] == "fairchem"]
    assert theirs["impl_version"].astype(str).str.startswith("1.").all()
    assert (
        (theirs["atoms_per_s"] > 0).all()
        and (theirs["peak_memory_gb"] > 0.05).all()
        and (theirs["params"] > 0).all()
    )
    assert set(summary["lamm_over_fairchem_throughput"]) == {
        f"{m}/{p}/float32" for m in ("direct", "gradient") for p in ("train", "infer")
    }
    assert all(ratio > 0 for ratio in summary["lamm_over_fairchem_peak_memory"].values())
