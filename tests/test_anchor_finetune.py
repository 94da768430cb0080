"""An anchor fine-tuned with its own trainer (CHGNet's) on a `lamm transfer` run's records: the
row, the budget in whole epochs, and that training happened (two seeds shuffle the same records
differently, so only a trained model scores them differently). Errors before any work."""

from __future__ import annotations

import math

import pytest

from lamm.analysis.anchor_finetune import check_finetunable, finetune_anchor_row
from lamm.analysis.transfer import prepare_store
from lamm.cli import main
from tests.test_anchors import offset_file


def test_chgnet_fine_tunes_on_the_runs_records_for_whole_epochs(tmp_path):
    pytest.importorskip("chgnet")
    offset_file(tmp_path / "cuni.extxyz")
    store = prepare_store(tmp_path / "cuni.extxyz", "cuni", tmp_path / "s.lmdb", group_key=None)
    train = len(store.indices("train"))
    rows = [
        finetune_anchor_row(
            "chgnet-0.3.0",
            store.path,
            fraction=1.0,
            seed=seed,
            steps=2,
            batch_size=4,
            work_dir=tmp_path / "work",
        )
        for seed in (0, 1)
    ]
    per_epoch = math.ceil(train / 4)
    for seed, row in enumerate(rows):
        assert row["method"] == "chgnet-0.3.0 (fine-tuned)" and row["seed"] == seed
        assert row["train_structures"] == train
        assert row["steps"] == math.ceil(2 / per_epoch) * per_epoch >= 2
        assert math.isfinite(row["energy_mae_mev_per_atom"])
        assert math.isfinite(row["forces_mae_mev_per_a"])
    assert rows[0]["forces_mae_mev_per_a"] != rows[1]["forces_mae_mev_per_a"]
    assert not list((tmp_path / "work").iterdir())  # the trainer's checkpoints removed


def test_only_anchors_with_a_trainer_here_and_a_step_budget_are_accepted(tmp_path, capsys):
    with pytest.raises(ValueError, match="sevennet-0.*chgnet-0.3.0, chgnet-r2scan"):
        check_finetunable(["sevennet-0"])
    argv = ["transfer", "--dataset", str(tmp_path / "none.extxyz"), "--name", "x", "--model"]
    argv += ["lamm-mini", "--config", "config/finetune/transfer.yaml", "--out", str(tmp_path)]
    assert main(argv + ["--finetune-anchors", "chgnet-0.3.0"]) == 1
    assert "--finetune-anchors needs --total-steps" in capsys.readouterr().err
    assert main(argv + ["--finetune-anchors", "sevennet-0", "--total-steps", "10"]) == 1
    assert "cannot fine-tune sevennet-0" in capsys.readouterr().err
