"""`lamm finetune --store` on a user's store: the store's subset names the head, missing splits
fail at once with one line, and --carve-test/--carve-val take seeded, disjoint records from
train."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.calculators.emt import EMT

from lamm.cli import main
from lamm.data.record import StructureRecord
from lamm.data.store import StructureStore, StructureStoreWriter
from lamm.models.build import build_potential
from lamm.models.checkpoint import checkpoint_dict, load_checkpoint, save_checkpoint
from lamm.training.finetune import train_records
from lamm.training.finetune_splits import carve_records, plan_splits
from tests.helpers.training_data import SUBSETS
from tests.store_factory import MOLECULES, emt_record, rattled_molecule
from tests.test_finetune import MODEL
from tests.test_finetune import config as tiny_config

ROOT = Path(__file__).resolve().parents[1]


def user_store(path, splits, subset="my_molecules"):
    """Rattled EMT molecules; `splits` gives each record's split."""
    with StructureStoreWriter(
        path, subset=subset, source="user:extxyz", extra_info={"task": "s2ef"}
    ) as writer:
        for i, split in enumerate(splits):
            writer.add(emt_record(rattled_molecule(MOLECULES[i % 5], i)), split)
    return StructureStore(path)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model = build_potential(MODEL, SUBSETS, seed=7)
    return save_checkpoint(
        tmp_path_factory.mktemp("pretrain") / "epoch_1.pt", checkpoint_dict(model, MODEL)
    )


@pytest.fixture(scope="module")
def config_file(tmp_path_factory):
    """The tiny fine-tuning config of test_finetune, for subset hme21 (not the user store's)."""
    path = tmp_path_factory.mktemp("config") / "tiny.yaml"
    path.write_text(yaml.safe_dump(tiny_config(train={"epochs": 1.0, "val_every_steps": 2})))
    return path


def test_missing_test_split_fails_fast_with_one_line_naming_the_fix(tmp_path, checkpoint):
    store = user_store(tmp_path / "my.lmdb", ["train"] * 8 + ["val"] * 2)
    start = time.perf_counter()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "lamm",
            "finetune",
            "--checkpoint",
            str(checkpoint),
            "--store",
            str(store.path),
            "--out",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    elapsed = time.perf_counter() - start
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert (
        lines[0].startswith("lamm finetune: error: ")
        and "my.lmdb has no test split (0 of 10 structures)" in lines[0]
    )
    assert (
        "--test-input" in lines[0]
        and "test_fraction" in lines[0]
        and "--carve-test 0.1" in lines[0]
    )
    assert elapsed < 10, (
        elapsed
    )  # checked before torch is imported (about 1 s here); no model, no ranks
    assert not (tmp_path / "run").exists()


def test_missing_val_split_and_bad_inputs_are_one_line_errors(tmp_path, checkpoint, capsys):
    store = user_store(tmp_path / "my.lmdb", ["train"] * 6 + ["test"] * 2)
    assert (
        main(
            [
                "finetune",
                "--checkpoint",
                str(checkpoint),
                "--store",
                str(store.path),
                "--carve-test",
                "0.2",
            ]
        )
        == 1
    )
    assert (
        "my.lmdb has no val split (0 of 8 structures)" in capsys.readouterr().err
    )  # the store has test: no carve
    xyz = tmp_path / "frames.lmdb"
    xyz.write_text("2\nenergy=1.0\nH 0 0 0\nH 0 0 0.74\n")
    assert main(["finetune", "--checkpoint", str(checkpoint), "--store", str(xyz)]) == 1
    err = capsys.readouterr().err.strip()
    assert (
        err.startswith("lamm finetune: error: ")
        and "not a readable structure store" in err
        and len(err.splitlines()) == 1
    )
    assert (
        main(
            [
                "finetune",
                "--checkpoint",
                str(store.path),
                "--store",
                str(store.path),
                "--carve-val",
                "0.2",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.strip()
    assert "not a readable lamm checkpoint (UnpicklingError)" in err and len(err.splitlines()) == 1


def test_carved_records_are_seeded_disjoint_and_nested(tmp_path):
    store = user_store(tmp_path / "my.lmdb", ["train"] * 40)
    splits = plan_splits(store, seed=0, carve_test=0.1, carve_val=0.2)
    assert splits.carved == {"test": 4, "val": 8} and len(splits.train) == 28
    assert not set(splits.test) & set(splits.val) and not (
        set(splits.test) | set(splits.val)
    ) & set(splits.train)
    assert sorted(np.concatenate([splits.train, splits.val, splits.test]).tolist()) == list(
        range(40)
    )
    again = plan_splits(store, seed=0, carve_test=0.1, carve_val=0.2)
    assert np.array_equal(again.test, splits.test) and np.array_equal(again.val, splits.val)
    assert not np.array_equal(
        plan_splits(store, seed=1, carve_test=0.1, carve_val=0.2).test, splits.test
    )
    # a record is carved by its own key: removing other records does not change which of the rest
    # are chosen
    assert set(carve_records(splits.test, 0.5, 0, 0x7E57)) <= set(splits.test)
    # the train fraction is nested over the remaining records, never touching the carved ones
    small = train_records(store, 0.25, 0, pool=splits.train)
    large = train_records(store, 0.5, 0, pool=splits.train)
    assert set(small) <= set(large) <= set(splits.train.tolist()) and len(small) == 7
    assert (
        splits.info()["test_split"] == "carved from train"
        and splits.info()["val_split"] == "carved from train"
    )
    with pytest.raises(ValueError, match="no train split"):
        plan_splits(user_store(tmp_path / "t.lmdb", ["test"] * 3), seed=0)


def test_carve_test_runs_end_to_end_on_the_store_subset(tmp_path, checkpoint, config_file, capsys):
    # the config fine-tunes on hme21; the store holds my_molecules: the head is named after the
    # store
    store = user_store(tmp_path / "my.lmdb", ["train"] * 10 + ["val"] * 2)
    out = tmp_path / "run"
    argv = [
        "finetune",
        "--config",
        str(config_file),
        "--checkpoint",
        str(checkpoint),
        "--store",
        str(store.path),
        "--carve-test",
        "0.2",
        "--max-steps",
        "3",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    expected = plan_splits(store, seed=0, carve_test=0.2)
    assert summary["test_split"] == "carved from train" and summary["test_structures"] == 2 == len(
        expected.test
    )
    assert (
        summary["train_structures"] == 8
        and summary["val_split"] == "store"
        and summary["steps"] == 3
    )
    test = json.loads((out / "test_metrics.json").read_text())
    assert (
        test["structures"] == 2
        and test["test_split"] == "carved from train"
        and np.isfinite(test["forces_mae_mev_per_a"])
    )
    assert load_checkpoint(out / "checkpoints" / "last.pt")["heads"] == ["my_molecules"]
    assert yaml.safe_load((out / "config.yaml").read_text())["data"]["subset"] == "my_molecules"
    # the carved records are recorded, and `lamm evaluate --split test` scores exactly them
    recorded = json.loads((out / "splits.json").read_text())
    assert recorded["carved"] == {"test": 2} and recorded["test"] == expected.test.tolist()
    assert summary["device"].startswith(("cpu", "cuda")) and summary["lambda_stress"] == 0.0
    argv = ["evaluate", str(out / "checkpoints" / "last.pt"), "--store", str(store.path)]
    assert main([*argv, "--split", "test", "--out", str(tmp_path / "eval")]) == 0
    metrics = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert metrics["n_structures"] == 2 and metrics["split"] == "test"
    scored = np.load(tmp_path / "eval" / "predictions.npz")["sample_index"]
    np.testing.assert_array_equal(scored, expected.test)
    # --data keeps the config's subset: a store of another subset there is an error
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "hme21.lmdb").write_bytes(store.path.read_bytes())
    assert (
        main(
            [
                "finetune",
                "--config",
                str(config_file),
                "--checkpoint",
                str(checkpoint),
                "--data",
                str(tmp_path / "dir"),
                "--carve-test",
                "0.2",
                "--out",
                str(tmp_path / "other"),
            ]
        )
        == 1
    )
    assert (
        "holds subset 'my_molecules', the config fine-tunes on 'hme21'" in capsys.readouterr().err
    )


def test_default_config_uses_the_checkpoint_model(tmp_path, checkpoint, capsys):
    # no --config: the transfer recipe's training settings, the checkpoint's (tiny) model, the
    # pre-training head best on validation copied
    store = user_store(tmp_path / "my.lmdb", ["train"] * 10)
    out = tmp_path / "run"
    argv = [
        "finetune",
        "--checkpoint",
        str(checkpoint),
        "--store",
        str(store.path),
        "--carve-test",
        "0.1",
        "--carve-val",
        "0.1",
        "--max-steps",
        "1",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (
        summary["test_split"] == summary["val_split"] == "carved from train"
        and summary["train_structures"] == 8
    )
    assert (
        load_checkpoint(out / "checkpoints" / "last.pt")["model_config"]["painn"]["hidden_channels"]
        == MODEL["painn"]["hidden_channels"]
    )
    assert summary["init_head"] in SUBSETS and summary["lambda_stress"] == 0.0  # no stress labels
    run_config = yaml.safe_load((out / "config.yaml").read_text())
    transfer = yaml.safe_load((ROOT / "config" / "finetune" / "transfer.yaml").read_text())
    assert transfer["optimizer"].items() <= run_config["optimizer"].items()  # defaults added


def stressed_copper_store(path, count=10):
    """EMT copper cells under random strains, with their stress labels (eV/A^3)."""
    rng = np.random.default_rng(3)
    with StructureStoreWriter(
        path, subset="my_copper", source="user:extxyz", extra_info={"task": "s2ef"}
    ) as writer:
        for _ in range(count):
            atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
            atoms.set_cell(atoms.cell.array @ (np.eye(3) + rng.normal(0, 0.02, (3, 3))), True)
            atoms.rattle(0.05, seed=int(rng.integers(1000)))
            atoms.calc = EMT()
            record = StructureRecord.from_atoms(atoms)
            labels = {
                "energy": atoms.get_potential_energy(),
                "forces": atoms.get_forces(),
                "stress": atoms.get_stress(voigt=False),
            }
            writer.add(StructureRecord(**{**record.__dict__, **labels}), "train")
    return StructureStore(path)


def test_by_hand_stress_is_trained_where_labeled_and_init_head_none_is_a_fresh_head(
    tmp_path, checkpoint, capsys
):
    store = stressed_copper_store(tmp_path / "copper.lmdb")
    argv = ["finetune", "--checkpoint", str(checkpoint), "--store", str(store.path)]
    argv += ["--carve-test", "0.1", "--carve-val", "0.1", "--max-steps", "1"]
    assert main(argv + ["--init-head", "none", "--out", str(tmp_path / "fresh")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["init_head"] is None and summary["lambda_stress"] == 1.0
    # a config keeps its own weight: the transfer recipe's 0 (its model is the checkpoint's)
    recipe = yaml.safe_load((ROOT / "config" / "finetune" / "transfer.yaml").read_text())
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump({**recipe, "model": None}))
    assert main(argv + ["--config", str(config), "--out", str(tmp_path / "recipe")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["init_head"] in SUBSETS and summary["lambda_stress"] == 0.0
