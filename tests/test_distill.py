"""Distillation (lamm distill): committee selection on hand-built forces, stopping, an exact
resume of a round, the student as an ordinary checkpoint, the CLI's summary and errors."""

import csv
import hashlib
import json
import math

import numpy as np
import pytest
import torch
import yaml
from ase.build import bulk, molecule

from lamm.calculator import LaMMCalculator
from lamm.cli import main
from lamm.data.record import StructureRecord
from lamm.data.store import StructureStore, StructureStoreWriter
from lamm.distill.config import load_distill_config
from lamm.distill.loop import round_dir, stop_reason
from lamm.distill.select import (
    committee_deviation,
    deviation_statistics,
    evenly_spaced,
    pair_deviation,
    select_configurations,
)
from lamm.models.build import build_potential
from lamm.models.checkpoint import checkpoint_dict, load_checkpoint, save_checkpoint
from tests.store_factory import emt_record

TIMING = (
    "explore_atoms_per_s",
    "explore_seconds",
    "train_seconds",
    "student_atoms_per_s",
    "round_seconds",
)


# --- selection: pure functions on hand-built force arrays ----------------------------------------
def test_committee_deviation_is_the_max_over_atoms_of_the_force_std():
    forces = np.zeros((3, 2, 3))
    forces[:, 0, 0] = [1.0, 2.0, 3.0]  # atom 0: std along x = sqrt(2/3)
    forces[:, 1, 1] = [0.0, 0.0, 3.0]  # atom 1: std along y = sqrt(2)
    assert committee_deviation(forces) == pytest.approx(math.sqrt(2.0))
    assert committee_deviation(np.repeat(forces[:1], 3, axis=0)) == 0.0  # agreement
    forces[1, 0, 2] = np.nan
    assert math.isnan(committee_deviation(forces))
    with pytest.raises(ValueError, match="K >= 2"):
        committee_deviation(forces[:1])


def test_pair_deviation_is_the_largest_force_error():
    student = np.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]])
    assert pair_deviation(student, np.zeros((2, 3))) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="shape"):
        pair_deviation(student, np.zeros((3, 3)))


def test_selection_picks_highest_disagreement_inside_the_window_with_a_cap():
    deviations = [0.01, 0.3, np.nan, 0.2, 7.0, 0.3, 0.1]
    selection = select_configurations(deviations, lo=0.05, hi=5.0, cap=3)
    assert selection.selected.tolist() == [1, 5, 3]  # 0.3, 0.3 (tie: earlier first), 0.2
    assert (selection.accurate, selection.candidates, selection.failed) == (1, 4, 2)
    assert select_configurations(deviations, lo=0.05, hi=5.0, cap=10).selected.tolist() == [
        1,
        5,
        3,
        6,
    ]
    assert select_configurations(deviations, lo=0.05, hi=5.0, cap=0).selected.tolist() == []
    # the window's ends are inclusive; above hi (an exploded configuration) is never picked
    assert select_configurations([0.05, 5.0, 5.01], lo=0.05, hi=5.0, cap=5).selected.tolist() == [
        1,
        0,
    ]
    with pytest.raises(ValueError, match="lo <= hi"):
        select_configurations(deviations, lo=1.0, hi=0.5, cap=3)
    stats = deviation_statistics(deviations)
    assert stats["dev_max"] == 7.0 and stats["dev_min"] == 0.01
    assert evenly_spaced(10, 3).tolist() == [0, 4, 9] and evenly_spaced(2, 5).tolist() == [0, 1]


def test_stop_when_the_target_is_reached_or_no_improvement():
    assert stop_reason([500.0], target=None, patience=1, min_improvement=0.02) is None
    assert stop_reason([500.0, 400.0], target=None, patience=1, min_improvement=0.02) is None
    assert (
        stop_reason([500.0, 495.0], target=None, patience=1, min_improvement=0.02)
        == "no improvement in 1 round(s)"
    )
    assert stop_reason([500.0, 600.0, 450.0], target=None, patience=2, min_improvement=0.02) is None
    assert (
        stop_reason([500.0, 600.0, 550.0], target=None, patience=2, min_improvement=0.02)
        is not None
    )
    assert (
        stop_reason([500.0, 90.0], target=100.0, patience=5, min_improvement=0.0)
        == "target reached"
    )


# --- a tiny distillation, run through the CLI
# ------------------------------------------------------
CONFIG = {
    "name": "unit",
    "seed": 0,
    "device": "cpu",
    "threads": 1,
    "student": {
        "model": {
            "encoder": "painn",
            "cutoff": 3.0,
            "force_mode": "gradient",
            "painn": {"hidden_channels": 8, "num_layers": 1, "num_rbf": 8},
            "heads": {"hidden_channels": 8},
        },
        "committee": 2,
        "statistics_samples": 100,
        "optimizer": {"lr": 5.0e-3, "warmup_steps": 2, "ema_decay": 0.8},
        "train": {"total_steps": 6, "val_every_steps": 100, "val_max_samples": 20},
    },
    "seeds": {"split": "train", "max_structures": 2},
    "explore": {
        "temperatures_k": [300.0, 600.0],
        "steps": 10,
        "timestep_fs": 1.0,
        "sample_every": 5,
    },
    "validation": {"steps": 10, "sample_every": 10},
    "select": {"lo_ev_per_a": 0.0, "hi_ev_per_a": 50.0, "max_per_round": 3},
    "speed": {"steps": 3, "warmup": 1, "repeats": 1, "min_atoms": 8},
    "nve": {"steps": 10, "timestep_fs": 0.5},
}


@pytest.fixture(scope="module", autouse=True)
def _module_tracking(tmp_path_factory):
    """The module's runs (set up before conftest's per-test store exists) go to a store of their
    own, not results/."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(
            "MLFLOW_TRACKING_URI",
            f"sqlite:///{tmp_path_factory.mktemp('mlflow_distill') / 'mlflow.db'}",
        )
        patch.setenv("LAMM_PROGRESS", "0")
        patch.delenv("LAMM_RUN_TAGS", raising=False)
        yield


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A direct-force teacher (gentle forces: force_rms 0.1 eV/A), a store of a periodic cell
    and a molecule with EMT labels, and the config file."""
    root = tmp_path_factory.mktemp("distill_inputs")
    model = {
        "encoder": "painn",
        "cutoff": 4.0,
        "force_mode": "direct",
        "painn": {"hidden_channels": 16, "num_layers": 2, "num_rbf": 8},
        "heads": {"hidden_channels": 8},
    }
    potential = build_potential(model, ["hme21"], seed=11)
    potential.normalizer.set_head(
        0,
        {
            "element_references": {"1": -1.0, "8": -2.0, "29": -3.0},
            "energy_mean": 0.0,
            "energy_std": 0.5,
            "force_rms": 0.1,
        },
    )
    teacher = save_checkpoint(root / "teacher.pt", checkpoint_dict(potential, model))
    cell = bulk("Cu", "fcc", a=3.6, cubic=True)
    cell.positions += np.random.default_rng(0).normal(0, 0.05, cell.positions.shape)
    store = root / "seeds.lmdb"
    with StructureStoreWriter(
        store, subset="hme21", source="test", extra_info={"task": "s2ef"}
    ) as writer:
        for atoms in (cell, molecule("H2O")):
            writer.add(emt_record(atoms), "train")
        writer.add(emt_record(cell), "test")
    config = root / "distill.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    return {"teacher": teacher, "store": store, "config": config}


def _distill(inputs, out, *extra):
    argv = [
        "distill",
        "--teacher",
        str(inputs["teacher"]),
        "--student-config",
        str(inputs["config"]),
        "--seed-structures",
        str(inputs["store"]),
        "--out",
        str(out),
        *extra,
    ]
    return main(argv)


def _files(folder):
    return {
        p.relative_to(folder): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _rounds(path):
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def resumed(inputs, tmp_path_factory):
    """Run A: one round, then rerun with --rounds 2 (round 0 snapshotted in between). Run B: two
    rounds at once."""
    out = tmp_path_factory.mktemp("distill_a")
    capture = {}
    assert _distill(inputs, out, "--rounds", "1", "--skip-final") == 0
    capture["round0"] = _files(round_dir(out, 0))
    assert _distill(inputs, out, "--rounds", "2") == 0
    other = tmp_path_factory.mktemp("distill_b")
    assert _distill(inputs, other, "--rounds", "2", "--skip-final") == 0
    return {"a": out, "b": other, **capture}


def test_a_round_resumes_exactly(resumed):
    a, b = resumed["a"], resumed["b"]
    assert _files(round_dir(a, 0)) == resumed["round0"]  # round 0 untouched: reused, not redone
    rows = _rounds(a / "rounds.csv")
    assert [row["round"] for row in rows] == ["0", "1"] and all(
        row["status"] == "trained" for row in rows
    )
    assert rows == _rounds(b / "rounds.csv")  # the same counts, deviations and errors
    for r in (0, 1):
        mine, theirs = (
            load_checkpoint(round_dir(a, r) / "student.pt"),
            load_checkpoint(round_dir(b, r) / "student.pt"),
        )
        assert mine["model"].keys() == theirs["model"].keys()
        for key in mine["model"]:
            assert torch.equal(mine["model"][key], theirs["model"][key]), (r, key)
    # round 1 selected from the committee's deviations (lo = 0: the cap decides)
    selection = json.loads((round_dir(a, 1) / "select.json").read_text())
    deviations = np.array([np.nan if d is None else d for d in selection["deviations_ev_per_a"]])
    assert len(selection["selected"]) == 3
    assert (
        min(deviations[selection["selected"]]) >= np.sort(deviations[np.isfinite(deviations)])[-3]
    )


def test_the_student_is_an_ordinary_checkpoint(resumed, inputs):
    path = resumed["a"] / "student.pt"
    payload = load_checkpoint(path)
    assert (
        "training" not in payload
        and payload["model_config"]["force_mode"] == "gradient"
        and payload["heads"] == ["hme21"]
    )
    atoms = StructureStore(inputs["store"]).get_atoms(0)
    atoms.calc = LaMMCalculator(path)
    assert np.isfinite(atoms.get_potential_energy()) and np.isfinite(atoms.get_forces()).all()
    assert atoms.get_forces().shape == (len(atoms), 3)


def test_final_checks_and_the_json_summary(resumed, inputs, capsys):
    a = resumed["a"]
    final = json.loads((a / "final.json").read_text())
    for key in (
        "speedup",
        "teacher_atoms_per_s",
        "student_atoms_per_s",
        "student_vs_teacher_forces_mae_mev_per_a",
        "teacher_vs_labels_forces_mae_mev_per_a",
        "error_ratio",
        "drift_over_epot_std",
        "seed_cell_speedup",
    ):
        assert np.isfinite(final[key]), key
    assert final["speed_natoms"] == [
        8,
        3,
    ]  # the 4-atom cell repeated to >= 8 atoms, the molecule as it is
    for name in ("parity.png", "rounds.png", "speed.png", "rounds.csv", "student.pt"):
        assert (a / name).is_file(), name
    capsys.readouterr()
    assert _distill(inputs, a, "--rounds", "2", "--skip-final") == 0  # everything reused
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rounds_done"] == 2 and summary["student"] == str(a / "student.pt")
    assert summary["labels_total"] == 6 and np.isfinite(summary["student_forces_mae_mev_per_a"])


def test_a_different_config_in_the_same_folder_is_refused(resumed, inputs, tmp_path, capsys):
    config = tmp_path / "other.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "seed": 5}))
    code = _distill({**inputs, "config": config}, resumed["a"], "--rounds", "2")
    assert code == 1 and "another config" in capsys.readouterr().err


def test_bad_teacher_and_config_are_one_line_errors(inputs, tmp_path, capsys):
    assert _distill({**inputs, "teacher": tmp_path / "missing.pt"}, tmp_path / "out") == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("lamm distill: error: teacher checkpoint")
        and "does not exist" in err
        and err.count("\n") == 1
    )
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    assert _distill({**inputs, "teacher": junk}, tmp_path / "out") == 1
    assert "not a readable lamm checkpoint" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**CONFIG, "explore": {"temprature_k": [300]}}))
    assert _distill({**inputs, "config": bad}, tmp_path / "out") == 1
    assert "temprature_k" in capsys.readouterr().err
    assert load_distill_config(inputs["config"])["student"]["committee"] == 2


def test_molecules_and_cells_are_explored(resumed):
    store = StructureStore(round_dir(resumed["a"], 0) / "explored.lmdb")
    kinds = {bool(store.get_record(i).pbc.any()) for i in range(len(store))}
    assert kinds == {True, False} and store.energy_kind == "none"
    assert isinstance(store.get_record(0), StructureRecord)


def test_an_exploding_trajectory_stops_and_is_counted():
    from ase.calculators.calculator import Calculator, all_changes

    from lamm.distill.explore import ExploreSettings, explore

    class Exploding(Calculator):
        implemented_properties = ("energy", "forces")

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            Calculator.calculate(self, atoms, properties, system_changes)
            forces = np.zeros((len(self.atoms), 3))
            forces[0, 0] = (
                100.0 if self.atoms.positions[0, 0] > 0.3 else 1.0
            )  # blows up once atom 0 moves right
            self.results = {"energy": 0.0, "forces": forces}

    atoms = molecule("H2O")
    atoms.positions[0, 0] = 0.0
    settings = ExploreSettings(
        temperatures_k=(300.0,), steps=200, sample_every=2, max_force_ev_per_a=50.0
    )
    out = explore([atoms], Exploding(), settings, seed=0, stream=1)
    assert out.trajectories == 1 and out.aborted == {"force above max_force_ev_per_a": 1}
    assert out.records[-1].source_id.endswith("/aborted") and len(out.records) >= 2
    again = explore([atoms], Exploding(), settings, seed=0, stream=1)
    assert [r.source_id for r in again.records] == [r.source_id for r in out.records]  # seeded


def test_a_committee_of_one_is_the_student_against_the_teacher(resumed, inputs):
    from lamm.distill.config import load_distill_config
    from lamm.distill.label import read_records
    from lamm.distill.loop import Distillation, Teacher
    from lamm.distill.predict import predict
    from lamm.distill.seeds import load_seed_structures
    from lamm.models.checkpoint import load_potential

    config = load_distill_config(inputs["config"])
    config["student"]["committee"] = 1
    run = Distillation(
        config, Teacher(inputs["teacher"]), load_seed_structures(inputs["store"]), resumed["a"]
    )
    records = read_records(round_dir(resumed["a"], 1) / "explored.lmdb")
    student = predict(
        load_potential(round_dir(resumed["a"], 0) / "member_0" / "checkpoints" / "last.pt"), records
    ).forces
    teacher = predict(load_potential(inputs["teacher"]), records).forces
    expected = [np.linalg.norm(s - t, axis=1).max() for s, t in zip(student, teacher, strict=True)]
    np.testing.assert_allclose(run.deviations(1, records), expected, rtol=1e-6)


def test_speed_calculators_take_turns_block_by_block():
    """compare_speed interleaves blocks of `steps` MD steps (every calculator sees the host's
    load of the same moment), per structure, and reports each one's fastest block."""
    from ase.calculators.lj import LennardJones

    from lamm.distill.speed import compare_speed

    calls = []

    class Recording(LennardJones):
        def __init__(self, name):
            super().__init__(sigma=2.3, epsilon=0.01, rc=5.0)
            self.label_ = name

        def calculate(self, *args, **kwargs):
            calls.append(self.label_)
            super().calculate(*args, **kwargs)

    cells = [bulk("Cu", "fcc", a=3.6, cubic=True), molecule("H2O")]
    out = compare_speed(
        cells, {"t": Recording("t"), "s": Recording("s")}, steps=3, warmup=1, repeats=2
    )
    # per structure: setup + warm-up of each, then rounds of 3 steps (one force call a step) in turn
    per_structure = ["t", "t", "s", "s"] + ["t"] * 3 + ["s"] * 3 + ["t"] * 3 + ["s"] * 3
    assert calls == per_structure * 2
    assert out["speed_natoms"] == [4, 3] and len(out["t_atoms_per_s_runs"]) == 2
    for name in ("t", "s"):
        assert out[f"{name}_atoms_per_s"] >= max(out[f"{name}_atoms_per_s_runs"]) * (
            1 - 1e-9
        )  # fastest blocks
        assert (
            type(out[f"{name}_atoms_per_s"]) is float and out[f"{name}_atoms_per_cpu_s"] > 0
        )  # JSON-ready
