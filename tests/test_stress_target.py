"""Stress as a first-class target (issue 27): its own normalization scale (and old checkpoints
that predate it), the default weight from the store, the validation and evaluation stress MAE in
GPa on hand-computed cases; and the smaller user-facing pieces: progress only on a terminal,
--device, the unconverged-relaxation warning, summarize's default thresholds and budgets."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch

from lamm import keys as K
from lamm.analysis.evaluation import GPA_PER_EV_PER_A3, stress_metrics
from lamm.data.record import StructureRecord
from lamm.data.referencing import compute_statistics
from lamm.data.store import StructureStore, StructureStoreWriter
from lamm.models.normalizer import Normalizer
from lamm.training.run_setup import DEFAULT_LAMBDA_STRESS, with_stress_weight
from lamm.training.validation import _stress_sums


def record(stress: np.ndarray | None, energy: float = -3.0) -> StructureRecord:
    return StructureRecord(
        atomic_numbers=np.array([29, 29]),
        positions=np.array([[0.0, 0.0, 0.0], [1.8, 1.8, 0.0]]),
        cell=np.eye(3) * 3.6,
        pbc=np.ones(3, dtype=bool),
        energy=energy,
        forces=np.array([[0.1, 0.0, 0.0], [-0.1, 0.0, 0.0]]),
        stress=stress,
    )


def store_with(path, stresses) -> StructureStore:
    with StructureStoreWriter(path, subset="cu", source="test") as writer:
        for i, stress in enumerate(stresses):
            writer.add(record(stress, energy=-3.0 - 0.1 * i), "train")
    return StructureStore(path)


def test_stress_scale_is_the_median_rms_and_robust_to_an_eos_tail(tmp_path):
    diagonal = [np.eye(3) * s for s in (0.01, 0.02, 0.03, 5.0)]  # one cell at 800 GPa
    store = store_with(tmp_path / "s.lmdb", [*diagonal, None])
    stats = compute_statistics(store)
    rms = [np.sqrt(np.mean(s**2)) for s in diagonal]  # s * sqrt(3) / 3
    assert stats["stress_scale"] == pytest.approx(np.median(rms))
    assert stats["provenance"]["samples_with_stress"] == 4 and store.has_stress
    plain = store_with(tmp_path / "p.lmdb", [None, None])
    assert not plain.has_stress
    assert compute_statistics(plain)["stress_scale"] == compute_statistics(plain)["force_rms"]


def test_normalizer_stress_scale_and_checkpoints_without_it():
    normalizer = Normalizer.from_statistics(
        [{"energy_std": 2.0, "force_rms": 0.5, "stress_scale": 0.01}]
    )
    stress = torch.full((1, 3, 3), 0.02, dtype=torch.float64)
    normalized = normalizer.normalize_stress(stress, torch.tensor([0]))
    assert torch.allclose(normalized, torch.full_like(stress, 2.0))
    assert torch.allclose(normalizer.denormalize_stress(normalized.unsqueeze(-1))[..., 0], stress)
    old = {k: v for k, v in normalizer.state_dict().items() if k != "stress_scale"}
    restored = Normalizer(1)
    restored.load_state_dict(old)  # an old checkpoint: its stress was scaled by the force RMS
    assert restored.stress_scale.item() == 0.5


def test_stress_weight_defaults_from_the_store(tmp_path):
    with_labels = store_with(tmp_path / "a.lmdb", [np.eye(3) * 0.01])
    without = store_with(tmp_path / "b.lmdb", [None])
    config = {"loss": {"lambda_energy": 1.0, "lambda_stress": None}}
    resolved, has = with_stress_weight(config, [with_labels])
    assert has and resolved["loss"]["lambda_stress"] == DEFAULT_LAMBDA_STRESS
    assert with_stress_weight(config, [without])[0]["loss"]["lambda_stress"] == 0.0
    explicit = {"loss": {"lambda_stress": 0.0}}
    assert with_stress_weight(explicit, [with_labels]) == ({"loss": {"lambda_stress": 0.0}}, True)


def test_validation_and_evaluation_stress_errors_by_hand():
    normalizer = Normalizer.from_statistics([{"stress_scale": 0.5}])
    label = torch.zeros(2, 3, 3, dtype=torch.float64)
    label[0] = torch.eye(3) * 0.01
    pred = label.clone()
    pred[0, 0, 1] = pred[0, 1, 0] = 0.009  # two components off by 0.009 eV/A^3
    pred[1] = 1.0  # unlabeled structure: not counted
    batch = {
        K.DATASET_INDEX: torch.tensor([0, 0]),
        K.STRESS: label,
        K.STRESS_MASK: torch.tensor([True, False]),
    }
    labeled, mean_abs, frobenius = _stress_sums(
        batch, {K.PRED_STRESS: pred.unsqueeze(-1)}, normalizer
    )
    assert labeled.tolist() == [True, False]
    assert mean_abs[0].item() == pytest.approx(2 * 0.009 / 9)
    assert frobenius[0].item() == pytest.approx(np.sqrt(2) * 0.009 / 0.5)
    metrics = stress_metrics(label.numpy(), pred.numpy())
    # the unlabeled row is no label (NaN), here it is labeled zeros: both rows count
    errors = GPA_PER_EV_PER_A3 * np.abs(pred.numpy() - label.numpy())
    assert metrics["stress_mae_gpa"] == pytest.approx(errors.mean())
    assert metrics["pressure_mae_gpa"] == pytest.approx(GPA_PER_EV_PER_A3 * 3.0 / 3 / 2)
    zero = GPA_PER_EV_PER_A3 * np.abs(label.numpy()).mean()
    assert metrics["stress_mae_gpa_zero_baseline"] == pytest.approx(zero)
    nan_label = label.numpy().copy()
    nan_label[1] = np.nan
    assert stress_metrics(nan_label, pred.numpy())["n_stress_labels"] == 1
    assert stress_metrics(None, None) == {}


def test_progress_only_on_a_terminal(monkeypatch):
    from lamm.log import progress_enabled

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("LAMM_PROGRESS", raising=False)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert not progress_enabled()  # a redirected log gets no bars
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert progress_enabled()
    monkeypatch.setenv("LAMM_PROGRESS", "0")
    assert not progress_enabled()
    monkeypatch.setenv("LAMM_PROGRESS", "1")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    assert progress_enabled()


def test_device_resolution_names_the_fix():
    from lamm.device import describe_device, resolve_device

    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="pass --device auto or cpu"):
            resolve_device("cuda")
    assert describe_device("cpu").startswith("cpu (")


def test_unconverged_relaxation_warns(caplog):
    from ase.build import bulk
    from ase.calculators.emt import EMT

    from lamm.analysis.dynamics import relax

    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
    atoms.rattle(0.2, seed=0)
    atoms.calc = EMT()
    with caplog.at_level("WARNING", logger="lamm.analysis.dynamics"):
        result = relax(atoms, fmax=1e-4, max_steps=2)
    assert not result["relax_converged"] and result["relax_steps"] == 2
    assert any("did not converge" in r.getMessage() for r in caplog.records)


def fake_run(path, checkpoint, seed, total_steps, energies, forces):
    """A finished `lamm finetune` folder with the given validation curves (steps 0, 10, 20...)."""
    path.mkdir(parents=True)
    (path / "summary.json").write_text(
        json.dumps(
            {
                "checkpoint": checkpoint,
                "seed": seed,
                "total_steps": total_steps,
                "steps": total_steps,
            }
        )
    )
    (path / "test_metrics.json").write_text(json.dumps({"energy_mae_mev_per_atom": 1.0}))
    rows = ["step,epoch,metric,value"]
    for i, (e, f) in enumerate(zip(energies, forces, strict=True)):
        rows += [
            f"{10 * i},0,val/x/energy_mae_mev_per_atom,{e}",
            f"{10 * i},0,val/x/forces_mae_mev_per_a,{f}",
        ]
    (path / "validation.csv").write_text("\n".join(rows) + "\n")
    (path / "metrics.csv").write_text("step,epoch,loss,loss/energy,loss/forces\n")
    return path


def test_summarize_defaults_thresholds_and_tells_budgets_apart(tmp_path):
    from lamm.analysis.finetune import finetune_table, load_run, table3_summary

    runs = [
        fake_run(tmp_path / "scratch", "scratch", 0, 100, [50, 30, 20], [90, 60, 40]),
        fake_run(tmp_path / "short", "lamm-mini", 0, 100, [40, 20, 15], [70, 40, 30]),
        fake_run(tmp_path / "long", "lamm-mini", 0, 300, [40, 18, 10], [70, 35, 20]),
    ]
    rows = finetune_table([load_run(r) for r in runs])
    # default thresholds: where scratch ends (its best validation MAE)
    assert {row["energy_threshold"] for row in rows} == {20} and rows[0]["forces_threshold"] == 40
    by_run = {row["run_dir"]: row for row in rows}
    short = by_run[str(tmp_path / "short")]
    assert short["steps"] == 100 and short["steps_to_energy_threshold"] == 10
    assert short["energy_speedup"] == 2.0  # scratch reached 20 at step 20, this run at 10
    assert by_run[str(tmp_path / "long")]["energy_speedup"] is None  # no scratch at 300 steps
    summary = table3_summary(rows)
    assert [(r["checkpoint"], r["steps"]) for r in summary] == [
        ("scratch", 100),
        ("lamm-mini", 100),
        ("lamm-mini", 300),
    ]
