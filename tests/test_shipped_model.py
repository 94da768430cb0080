"""Shipped models (models/<name>/): packaging keeps what inference and fine-tuning need and
states it in the card; every shipped model loads, is at most 20 MB, and its card's metrics on the
`tiny` demo stores match a fresh evaluation on those stores, regenerated here."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from lamm.analysis.report_markdown import check_file
from lamm.calculator import LaMMCalculator
from lamm.data.demo.generate import generate_demo
from lamm.models.build import build_potential
from lamm.models.checkpoint import checkpoint_dict, load_checkpoint, load_potential, save_checkpoint
from lamm.models.model_card import CARD_JSON, package_model, subset_metrics
from lamm.models.pretrained import MODELS_DIR_ENV, models_dir, shipped_models
from tests.conftest import ROOT

MODEL = {
    "encoder": "painn",
    "cutoff": 4.0,
    "force_mode": "direct",
    "painn": {"hidden_channels": 16, "num_layers": 2, "num_rbf": 8},
    "heads": {"hidden_channels": 8},
}
# the cheap tiny subsets (EMT slabs, xTB molecules): seconds to regenerate
FAST_SUBSETS = ["oc20_s2ef", "qm7x"]


@pytest.fixture(scope="module")
def tiny_stores(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-demo")
    generate_demo(out, scale="tiny", seed=0, subsets=FAST_SUBSETS, workers=1)
    return out


def test_packaging_ships_the_ema_weights_and_provenance_and_a_card(
    tmp_path, tiny_stores, monkeypatch
):
    potential = build_potential(MODEL, FAST_SUBSETS, seed=0)
    ema = {k: v + 0.01 if v.is_floating_point() else v for k, v in potential.state_dict().items()}
    training = {
        "step": 7,
        "epochs_done": 1.5,
        "samples_seen": 56,
        "mlflow_run_id": "abc",
        "config": {"name": "t"},
        "optimizer": {"state": {}},
    }
    save_checkpoint(
        tmp_path / "run.pt",
        {**checkpoint_dict(potential, MODEL, ema_state=ema), "training": training},
    )
    # a reproduction's committed tables beside it: the card quotes them in a generated block
    reproduction = tmp_path / "models" / "tiny-test" / "reproduction"
    shutil.copytree(
        ROOT / "models" / "lamm-mini" / "reproduction" / "tables", reproduction / "tables"
    )
    folder = package_model(
        tmp_path / "run.pt",
        "tiny-test",
        tmp_path / "models",
        evaluations={"tiny": tiny_stores},
        data={"source": "demo", "scale": "tiny"},
        notes="## Good for\n\nnothing",
        results="reproduction",
    )
    shipped = load_checkpoint(folder / "model.pt")
    assert "ema" not in shipped and "optimizer" not in shipped["training"]
    assert shipped["training"] == {
        k: training[k] for k in ("step", "epochs_done", "samples_seen", "mlflow_run_id", "config")
    }
    for key, value in shipped["model"].items():  # the EMA weights became the model
        torch.testing.assert_close(value, ema[key])
    card = json.loads((folder / CARD_JSON).read_text())
    assert card["mlflow_run_id"] == "abc" and card["data"] == {"source": "demo", "scale": "tiny"}
    assert set(card["metrics"]["tiny"]) == set(FAST_SUBSETS)
    readme = (folder / "README.md").read_text()
    assert "| oc20_s2ef |" in readme and "## Good for" in readme and "MLflow run `abc`" in readme
    assert card["results"] == "reproduction"
    assert "<!-- lamm-results:source path=reproduction style=full -->" in readme
    assert "| Table 3 error, forces |" in readme and check_file(folder / "README.md") == []
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path / "models"))
    assert LaMMCalculator("tiny-test", head="qm7x") is not None  # loads by name


@pytest.mark.parametrize(
    "name",
    sorted(shipped_models())
    or [pytest.param("none", marks=pytest.mark.skip(reason=f"no shipped model in {models_dir()}"))],
)
def test_a_shipped_model_loads_and_matches_its_card(name, tiny_stores):
    path = shipped_models()[name]
    assert path.stat().st_size <= 20e6
    card = json.loads((path.parent / CARD_JSON).read_text())
    assert card["name"] == name and (path.parent / "README.md").is_file()
    potential = load_potential(path)
    assert list(potential.heads) == card["heads"]
    fresh = subset_metrics(potential, tiny_stores, card["metrics_split"])
    for subset in FAST_SUBSETS:
        expected = card["metrics"]["tiny"][subset]
        for key, value in expected.items():
            assert fresh[subset][key] == pytest.approx(value, rel=1e-4), (subset, key)
