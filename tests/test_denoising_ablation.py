"""Denoising ablation: the comparison metric by hand, the driver on a tiny store, the summary."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from lamm.analysis.denoising import crossing_epoch, learning_curve, summarize, table_rows
from lamm.cli import main
from lamm.data.noise import denoise
from lamm.training.denoising_ablation import (
    ablation_config,
    check_denoising_store,
    run_denoising_ablation,
)
from lamm.training.denoising_metric import centered_error, own_label_error, remove_mean
from tests.helpers.training_data import tiny_trainer_config, write_training_stores
from tests.model_support import single_thread  # noqa: F401  (autouse fixture)
from tests.store_factory import write_store


def _two_structures():
    atom_batch = torch.tensor([0, 0, 0, 1, 1])
    noise = torch.tensor(np.random.default_rng(3).normal(0, 0.04, (5, 3)))
    return atom_batch, noise


def test_remove_mean_by_hand():
    atom_batch = torch.tensor([0, 0, 1, 1, 1])
    vectors = torch.tensor(
        [[1.0, 0, 0], [3.0, 2, 0], [0, 0, 3.0], [0, 0, 0], [0, 3.0, 0]], dtype=torch.float64
    )
    expected = torch.tensor(
        [[-1.0, -1, 0], [1.0, 1, 0], [0, -1, 2.0], [0, -1, -1], [0, 2, -1]], dtype=torch.float64
    )
    assert torch.allclose(remove_mean(vectors, atom_batch, 2), expected)


def test_prediction_equal_to_the_noise_has_zero_error_in_both_modes():
    atom_batch, noise = _two_structures()
    relative_label = -remove_mean(noise, atom_batch, 2)
    for label in (-noise, relative_label):  # baseline, relative
        assert torch.allclose(
            own_label_error(label, label, atom_batch, 2), torch.zeros(2, dtype=torch.float64)
        )
        assert torch.allclose(
            centered_error(label, label, atom_batch, 2), torch.zeros(2, dtype=torch.float64)
        )
    # a perfect relative model scored against baseline labels: own-label error = |mean| per atom,
    # the floor no translation-invariant model avoids; the centered error sees no error at all
    means = torch.stack([noise[:3].mean(0), noise[3:].mean(0)]).norm(dim=1)
    assert torch.allclose(own_label_error(relative_label, -noise, atom_batch, 2), means)
    assert torch.allclose(
        centered_error(relative_label, -noise, atom_batch, 2), torch.zeros(2, dtype=torch.float64)
    )


def test_centered_error_by_hand_and_mode_independent():
    atom_batch = torch.tensor([0, 0])
    label = torch.tensor([[0.0, 0, 0], [0.0, 0, 0]], dtype=torch.float64)
    prediction = torch.tensor([[1.0, 0, 0], [0.0, 0, 0]], dtype=torch.float64)
    # own label: per-atom norms 1 and 0 -> 0.5; centered: (0.5, 0, 0) and (-0.5, 0, 0) -> 0.5 each
    assert own_label_error(prediction, label, atom_batch, 1).item() == pytest.approx(0.5)
    assert centered_error(prediction, label, atom_batch, 1).item() == pytest.approx(0.5)
    # a pure translation of the prediction costs nothing in the centered error
    assert centered_error(prediction + 7.0, label, atom_batch, 1).item() == pytest.approx(0.5)
    # the same noise draw in both modes gives one centered error for any prediction
    positions = np.random.default_rng(0).normal(size=(6, 3))
    _, baseline = denoise(positions, 0.04, "baseline", np.random.default_rng(5))
    _, relative = denoise(positions, 0.04, "relative", np.random.default_rng(5))
    batch6 = torch.zeros(6, dtype=torch.long)
    guess = torch.tensor(np.random.default_rng(1).normal(0, 0.04, (6, 3)))
    a = centered_error(guess, torch.tensor(baseline), batch6, 1)
    b = centered_error(guess, torch.tensor(relative), batch6, 1)
    assert torch.allclose(a, b)
    assert not torch.allclose(
        own_label_error(guess, torch.tensor(baseline), batch6, 1),
        own_label_error(guess, torch.tensor(relative), batch6, 1),
    )


def test_crossing_epoch_interpolates_and_reports_never():
    assert crossing_epoch([0, 1, 2], [0.06, 0.04, 0.02], 0.03) == pytest.approx(1.5)
    assert crossing_epoch([0, 1, 2], [0.02, 0.01, 0.01], 0.03) == 0.0
    assert crossing_epoch([0, 1, 2], [0.06, 0.05, 0.04], 0.03) is None


def _curve(own, centered):
    return [
        {"step": 10 * k, "epoch": float(k), "val_error_a": o, "val_error_centered_a": c}
        for k, (o, c) in enumerate(zip(own, centered, strict=True))
    ]


def test_summary_ratio_and_common_threshold():
    curves = {  # the baseline's own-label error sits above its centered error (the label mean)
        "baseline": _curve([0.061, 0.051, 0.041, 0.031], [0.06, 0.05, 0.04, 0.03]),
        "relative": _curve([0.06, 0.04, 0.03, 0.02], [0.06, 0.04, 0.03, 0.02]),
    }
    summary = summarize(curves, threshold_a=0.03)
    assert summary["main_metric"] == "val_error_a"
    main_metric = summary["val_error_a"]
    assert main_metric["threshold"]["epochs"] == {
        "baseline": None,
        "relative": 2.0,
    }  # 0.031 never reaches 0.03
    assert main_metric["threshold"]["ratio"] is None
    assert main_metric["common_threshold"]["value_a"] == pytest.approx(0.031)  # the baseline's best
    # relative crosses 0.031 between epoch 1 (0.04) and 2 (0.03): 1 + 0.009 / 0.01
    assert main_metric["common_threshold"]["epochs"]["relative"] == pytest.approx(1.9)
    assert main_metric["common_threshold"]["ratio"] == pytest.approx(3.0 / 1.9)
    assert main_metric["relative_ends_below_baseline"] is True
    assert main_metric["final_difference_a"] == pytest.approx(0.011)
    centered = summary["val_error_centered_a"]
    assert centered["threshold"]["epochs"] == {"baseline": 3.0, "relative": 2.0}
    assert centered["threshold"]["ratio"] == pytest.approx(1.5)
    rows = table_rows(curves)
    assert [r["mode"] for r in rows] == ["baseline"] * 4 + ["relative"] * 4
    with pytest.raises(ValueError, match="relative"):
        summarize({"baseline": curves["baseline"]}, 0.03)


def test_ablation_config_overrides_only_what_the_ablation_changes():
    base = tiny_trainer_config()
    config = ablation_config(
        base,
        "baseline",
        subset="pubchem3d",
        epochs=2.0,
        batch_per_rank=3,
        val_every_steps=4,
        val_max_samples=5,
    )
    assert (
        config["data"]["subsets"] == ["pubchem3d"] and config["data"]["denoise_mode"] == "baseline"
    )
    assert (
        config["seed"] == base["seed"]
        and config["model"]
        == ablation_config(
            base,
            "relative",
            subset="pubchem3d",
            epochs=2.0,
            batch_per_rank=3,
            val_every_steps=4,
            val_max_samples=5,
        )["model"]
    )
    with pytest.raises(ValueError, match="unknown denoising mode"):
        ablation_config(
            base,
            "absolute",
            subset="pubchem3d",
            epochs=1.0,
            batch_per_rank=1,
            val_every_steps=1,
            val_max_samples=1,
        )


def test_unknown_subset_and_empty_or_labeled_store_are_refused(tmp_path):
    data = write_training_stores(tmp_path / "data")
    with pytest.raises(ValueError, match="unknown subset 'pubchem'.*pubchem3d"):
        check_denoising_store(data, "pubchem")
    with pytest.raises(ValueError, match="task is 's2ef'"):
        check_denoising_store(data, "oc20_s2ef")
    write_store(tmp_path / "data" / "empty.lmdb", [], subset="empty", task="denoising")
    with pytest.raises(ValueError, match="empty.lmdb: the train split is empty"):
        check_denoising_store(data, "empty")


def test_driver_on_a_tiny_store_writes_both_curves_and_the_summary(tmp_path):
    data = write_training_stores(tmp_path / "data")
    base = tiny_trainer_config(data={"num_workers": 0})
    settings = dict(
        subset="pubchem3d", epochs=2.0, batch_per_rank=2, val_every_steps=2, val_max_samples=10
    )
    summaries = run_denoising_ablation(base, data, tmp_path / "ablation", **settings)
    assert set(summaries) == {"baseline", "relative"}
    curves = {
        mode: learning_curve(tmp_path / "ablation" / mode / "validation.csv", "pubchem3d")
        for mode in summaries
    }
    for mode, rows in curves.items():
        assert rows[0]["step"] == 0 and rows[-1]["step"] == summaries[mode]["steps"] > 0
        assert all(math.isfinite(r["val_error_a"]) and r["val_error_a"] > 0 for r in rows)
    # same seed, same model and noise draw: at step 0 both runs score the same centered error,
    # and the baseline's own-label error is higher by its labels' unpredictable mean
    assert curves["baseline"][0]["val_error_centered_a"] == pytest.approx(
        curves["relative"][0]["val_error_centered_a"], rel=1e-5
    )
    assert curves["relative"][0]["val_error_a"] == pytest.approx(
        curves["relative"][0]["val_error_centered_a"], rel=0.05
    )
    assert curves["baseline"][0]["val_error_a"] > curves["baseline"][0]["val_error_centered_a"]

    table, figure, summary = tmp_path / "t.csv", tmp_path / "f.png", tmp_path / "s.json"
    code = main(
        [
            "ablation",
            "denoising-summary",
            "--run",
            f"baseline={tmp_path / 'ablation' / 'baseline'}",
            "--run",
            f"relative={tmp_path / 'ablation' / 'relative'}",
            "--table",
            str(table),
            "--figure",
            str(figure),
            "--summary",
            str(summary),
            "--threshold",
            "0.03",
        ]
    )
    assert code == 0 and figure.stat().st_size > 10_000
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {"mode", "step", "epoch", "val_error_a", "val_error_centered_a"} <= set(rows[0])
    assert {r["mode"] for r in rows} == {"baseline", "relative"}
    assert (
        json.loads(summary.read_text())["val_error_a"]["modes"]["relative"]["final_step"]
        == summaries["relative"]["steps"]
    )


def test_learning_curve_without_denoising_metrics_names_the_file(tmp_path):
    path = tmp_path / "validation.csv"
    path.write_text("step,epoch,metric,value\n0,0.0,val/loss,1.0\n")
    with pytest.raises(
        ValueError, match="validation.csv: no complete denoising validation for subset 'pubchem3d'"
    ):
        learning_curve(path, "pubchem3d")
