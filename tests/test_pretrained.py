"""Shipped models load by name wherever a checkpoint is taken (lamm.models.pretrained)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk

from lamm.calculator import LaMMCalculator
from lamm.models.build import build_potential
from lamm.models.checkpoint import checkpoint_dict, load_checkpoint, save_checkpoint
from lamm.models.pretrained import MODELS_DIR_ENV, is_model_name, resolve_checkpoint, shipped_models

MODEL = {
    "encoder": "painn",
    "cutoff": 4.0,
    "force_mode": "direct",
    "painn": {"hidden_channels": 16, "num_layers": 2, "num_rbf": 8},
    "heads": {"hidden_channels": 8},
}


@pytest.fixture
def models(tmp_path, monkeypatch):
    """A models folder with one shipped model, `tiny-test`, and one folder without a model.pt."""
    potential = build_potential(MODEL, ["oc20_s2ef"], seed=0)
    save_checkpoint(tmp_path / "tiny-test" / "model.pt", checkpoint_dict(potential, MODEL))
    (tmp_path / "tiny-test" / "README.md").write_text("# tiny-test\n")
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    return tmp_path


def test_a_name_resolves_to_the_shipped_file_and_a_path_stays_a_path(models):
    assert shipped_models() == {"tiny-test": models / "tiny-test" / "model.pt"}
    assert resolve_checkpoint("tiny-test") == models / "tiny-test" / "model.pt"
    assert (
        resolve_checkpoint(models / "tiny-test" / "model.pt") == models / "tiny-test" / "model.pt"
    )
    assert (
        is_model_name("lamm-mini")
        and not is_model_name("runs/epoch_2.pt")
        and not is_model_name("epoch_2.pt")
    )
    with pytest.raises(
        ValueError, match=r"no shipped model named 'lamm-nope' \(shipped models: tiny-test"
    ):
        resolve_checkpoint("lamm-nope")
    with pytest.raises(FileNotFoundError, match="missing/epoch_2.pt does not exist"):
        resolve_checkpoint("missing/epoch_2.pt")


def test_checkpoint_loading_and_the_calculator_take_the_name(models):
    assert load_checkpoint("tiny-test")["heads"] == ["oc20_s2ef"]
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.calc = LaMMCalculator("tiny-test")
    by_path = bulk("Cu", "fcc", a=3.6, cubic=True)
    by_path.calc = LaMMCalculator(str(models / "tiny-test" / "model.pt"))
    assert atoms.get_potential_energy() == by_path.get_potential_energy()
    assert np.isfinite(atoms.get_forces()).all()


def test_finetune_takes_a_model_name_and_labels_the_run_with_it(models, tmp_path, capsys):
    import json

    from lamm.cli import main
    from lamm.data.store import StructureStoreWriter
    from tests.store_factory import emt_record, slab

    store = tmp_path / "cu.lmdb"
    with StructureStoreWriter(
        store, subset="cu_slabs", source="test", extra_info={"task": "s2ef"}
    ) as writer:
        for i in range(8):
            writer.add(emt_record(slab(2, i)), ("train", "train", "val", "test")[i % 4])
    # an unknown name fails before anything is loaded, naming what is shipped
    assert main(["finetune", "--checkpoint", "lamm-nope", "--store", str(store)]) == 1
    assert (
        "no shipped model named 'lamm-nope' (shipped models: tiny-test" in capsys.readouterr().err
    )
    out = tmp_path / "run"
    assert (
        main(
            [
                "finetune",
                "--checkpoint",
                "tiny-test",
                "--store",
                str(store),
                "--total-steps",
                "2",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["checkpoint"] == "tiny-test"  # the run names the model it started from
    assert summary["checkpoint_path"] == str(models / "tiny-test" / "model.pt")
