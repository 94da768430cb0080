"""`lamm transfer`: the block split of a real DFT file, the plan of runs, the seed summary with its
ratios and spreads, the anchors' subsampling, and one end-to-end run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import yaml
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import write

from lamm.analysis.anchors import select
from lamm.analysis.evaluation import zero_predictions
from lamm.analysis.transfer import (
    FROZEN,
    SCRATCH,
    TransferRun,
    finetune_command,
    frozen_config,
    model_name,
    plan_runs,
    prepare_store,
    run_kind,
    scratch_config,
    summarize,
)
from lamm.cli import main

# the s2ef heads: those init_head auto chooses among
HEADS_OF_LAMM_MINI = ("oc20_s2ef", "oc22_s2ef", "odac23_s2ef", "transition1x", "qm7x", "qmugs")


def dft_like_file(path, groups=(("bcc", 12), ("fcc", 8), ("liquid", 6)), seed=0):
    """Frames of Cu in groups (as FitSNAP's config_group), labeled by EMT, stress included."""
    rng = np.random.default_rng(seed)
    frames = []
    for group, count in groups:
        for _ in range(count):
            lattice = "bcc" if group == "bcc" else "fcc"
            atoms = bulk("Cu", lattice, a=2.87 if lattice == "bcc" else 3.61, cubic=True)
            atoms = atoms.repeat(2)
            atoms.rattle(0.3 if group == "liquid" else 0.05, seed=int(rng.integers(1 << 30)))
            atoms.calc = EMT()
            atoms.get_potential_energy()
            atoms.get_stress()
            atoms.info["config_group"] = group
            frames.append(atoms)
    write(path, frames, format="extxyz")
    return frames


def test_store_splits_by_blocks_within_each_group_and_is_reused(tmp_path):
    dataset = tmp_path / "cu.extxyz"
    frames = dft_like_file(dataset)
    store = prepare_store(dataset, "cu", tmp_path / "cu.lmdb", group_key="config_group")
    assert len(store) == len(frames)
    splits = np.array([int(c) for c in store.split])
    groups = [a.info["config_group"] for a in frames]
    for group in set(groups):
        codes = splits[[i for i, g in enumerate(groups) if g == group]]
        # each held-out split is one contiguous block of the group's frames
        for code in set(codes) - {int(np.bincount(codes).argmax())}:
            where = np.flatnonzero(codes == code)
            assert (np.diff(where) == 1).all()
    assert {len(store.indices(s)) for s in ("val", "test")} == {3}  # 10% of 26, rounded
    record = store.get_record(0)
    assert record.stress is not None and record.energy == pytest.approx(
        frames[0].get_potential_energy()
    )
    mtime = store.path.stat().st_mtime_ns
    again = prepare_store(dataset, "cu", tmp_path / "cu.lmdb", group_key="config_group")
    assert again.path.stat().st_mtime_ns == mtime  # same file, key and seed: kept


def test_plan_runs_pairs_scratch_and_model_at_every_fraction_and_seed():
    runs = plan_runs("lamm-mini", [1.0, 0.1], [0, 1, 2])
    assert len(runs) == 2 * 2 * 3 + 3
    assert TransferRun(SCRATCH, 0.1, 2) in runs and TransferRun("lamm-mini", 1.0, 0) in runs
    frozen = [r for r in runs if r.frozen]
    assert {r.fraction for r in frozen} == {1.0} and frozen[0].checkpoint == "lamm-mini"
    assert frozen[0].label == "lamm-mini_frozen-encoder_f1_s0"
    assert len({r.label for r in runs}) == len(runs)
    assert not any(r.frozen for r in plan_runs("m", [1.0], [0], frozen=False))
    assert FROZEN in frozen[0].init


def test_a_checkpoint_is_named_after_its_run_and_file_and_fine_tuned_from_its_path():
    path = "/tmp/results-x/pretrain/mini/checkpoints/epoch_5.pt"
    assert model_name(path) == "mini-epoch_5" and model_name("lamm-mini") == "lamm-mini"
    assert model_name("/elsewhere/best.pt") == "best"
    runs = plan_runs(path, [1.0], [0])
    model, frozen = runs[1], runs[2]
    assert (model.init, model.checkpoint, model.label) == (
        "mini-epoch_5",
        path,
        "mini-epoch_5_f1_s0",
    )
    assert (frozen.init, frozen.checkpoint) == ("mini-epoch_5" + FROZEN, path) and frozen.frozen
    named = plan_runs(path, [1.0], [0], name="universal-v2")
    assert named[1].label == "universal-v2_f1_s0" and named[1].checkpoint == path
    assert runs[0].checkpoint == SCRATCH  # scratch has no source


def rows(method, values, fraction=1.0):
    return [
        {"method": method, "fraction": fraction, "seed": s, "energy_mae_mev_per_atom": e,
         "forces_mae_mev_per_a": f}
        for s, (e, f) in enumerate(values)
    ]  # fmt: skip


def test_summary_means_ranges_ratios_and_apart():
    table = rows(SCRATCH, [(10, 100), (12, 110), (11, 120)]) + rows(
        "m", [(8, 50), (9, 60), (13, 55)]
    )
    summary = {(r["method"], r["fraction"]): r for r in summarize(table)}
    model = summary[("m", 1.0)]
    assert model["forces_mae_mev_per_a_mean"] == pytest.approx(55.0)
    assert model["forces_mae_mev_per_a_ratio"] == pytest.approx(110.0 / 55.0)
    assert model["forces_mae_mev_per_a_apart"] is True  # 60 < 100
    assert model["energy_mae_mev_per_atom_ratio"] == pytest.approx(11.0 / 10.0)
    assert model["energy_mae_mev_per_atom_apart"] is False  # 13 > 10: ranges overlap
    assert "forces_mae_mev_per_a_ratio" not in summary[(SCRATCH, 1.0)]
    # one value (a zero-shot anchor) against three: a ratio, never apart (3 per side needed)
    anchor = {(r["method"]): r for r in summarize(table + rows("anchor", [(5, 30)]))}["anchor"]
    assert anchor["forces_mae_mev_per_a_ratio"] == pytest.approx(110.0 / 30.0)
    assert anchor["forces_mae_mev_per_a_apart"] is False


def test_summary_counts_a_diverged_seed_and_never_calls_it_apart():
    table = rows(SCRATCH, [(10, 100), (12, 110), (11, 120)]) + rows(
        "m", [(8, 50), (float("nan"), float("nan")), (9, 55)]
    )
    model = {(r["method"]): r for r in summarize(table)}["m"]
    assert model["forces_mae_mev_per_a_diverged"] == 1
    assert model["forces_mae_mev_per_a_apart"] is False
    assert math.isfinite(model["forces_mae_mev_per_a_mean"])


def test_select_keeps_structures_with_their_atoms(tmp_path):
    dataset = tmp_path / "cu.extxyz"
    dft_like_file(dataset, groups=(("bcc", 6), ("fcc", 4)))
    store = prepare_store(dataset, "cu", tmp_path / "cu.lmdb", group_key=None)
    labels = zero_predictions(store, "train")
    picked = select(labels, np.array([3, 0]))
    assert list(picked.sample_index) == [labels.sample_index[0], labels.sample_index[3]]
    assert len(picked.forces) == picked.natoms.sum()
    first = labels.forces[labels.atom_structure == 3]
    np.testing.assert_array_equal(picked.forces[picked.atom_structure == 1], first)


def test_scratch_runs_drop_the_pretrained_only_settings_and_frozen_runs_keep_them():
    finetune = {"init_head": "omat24", "layer_decay": 0.8, "train_fraction": 1.0}
    config = {"seed": 0, "train": {"epochs": 3.0}, "finetune": finetune}
    scratch = scratch_config(config)
    assert scratch["finetune"] == {"init_head": None, "layer_decay": None, "train_fraction": 1.0}
    assert scratch["train"] == config["train"]  # the same budget
    assert config["finetune"]["init_head"] == "omat24"  # the model's config is left as it was
    frozen = frozen_config(config)["finetune"]
    assert frozen["freeze_encoder"] is True and frozen["init_head"] == "omat24"
    runs = plan_runs("m.pt", [1.0], [0], name="m")
    assert [run_kind(run) for run in runs] == ["scratch", "model", "frozen"]
    # --init-head: the model's runs, frozen or not, start from that head; scratch has none
    lines = [
        finetune_command(run, config="c.yaml", store="s", out="o", lamm=["lamm"], init_head="h")
        for run in runs
    ]
    assert ["--init-head" in line for line in lines] == [False, True, True]
    assert (
        lines[1][-2:] == ["--init-head", "h"]
        and lines[1][lines[1].index("--checkpoint") + 1] == "m.pt"
    )


@pytest.mark.slow
def test_transfer_end_to_end_writes_runs_and_summary(tmp_path, capsys):
    dataset = tmp_path / "cu.extxyz"
    dft_like_file(dataset)
    out = tmp_path / "out"
    # the config's init_head (auto): the model's runs copy a pre-training head; scratch, which
    # has none to copy, runs with the same config otherwise
    assert yaml.safe_load(open("config/finetune/transfer.yaml"))["finetune"]["init_head"] == "auto"
    status = main(
        ["transfer", "--dataset", str(dataset), "--name", "cu", "--model", "lamm-mini",
         "--config", "config/finetune/transfer.yaml", "--out", str(out), "--group-key",
         "config_group", "--seeds", "0", "--fractions", "1.0", "--no-frozen", "--anchors",
         "--total-steps", "3", "--jobs", "1"]
    )  # fmt: skip
    assert status == 0
    result = json.loads((out / "summary.json").read_text())
    methods = {row["method"] for row in result["summary"]}
    assert methods == {SCRATCH, "lamm-mini", "composition fit"}
    assert result["missing_runs"] == []
    assert (out / "runs" / "scratch_f1_s0" / "test_metrics.json").is_file()
    model_run = json.loads((out / "runs" / "lamm-mini_f1_s0" / "summary.json").read_text())
    scratch_run = json.loads((out / "runs" / "scratch_f1_s0" / "summary.json").read_text())
    assert model_run["init_head"] in HEADS_OF_LAMM_MINI and scratch_run["init_head"] is None
    written = yaml.safe_load((out / "config_scratch.yaml").read_text())
    assert written["finetune"]["init_head"] is None
    # a rerun skips the finished runs and takes an anchor's row from OUT/anchors/ (scoring a
    # universal potential again would take minutes)
    finished = (out / "runs" / "scratch_f1_s0" / "test_metrics.json").stat().st_mtime_ns
    cached = {"method": "sevennet-0 (zero-shot)", "fraction": 1.0, "seed": 0, "run": "sevennet-0",
              "energy_mae_mev_per_atom": 42.0, "forces_mae_mev_per_a": 420.0}  # fmt: skip
    (out / "anchors").mkdir()
    (out / "anchors" / "sevennet-0_fit200.json").write_text(json.dumps(cached))
    status = main(
        ["transfer", "--dataset", str(dataset), "--name", "cu", "--model", "lamm-mini",
         "--config", "config/finetune/transfer.yaml", "--out", str(out), "--group-key",
         "config_group", "--seeds", "0", "--fractions", "1.0", "--no-frozen", "--anchors",
         "sevennet-0", "--total-steps", "3", "--jobs", "1"]
    )  # fmt: skip
    assert status == 0
    assert (out / "runs" / "scratch_f1_s0" / "test_metrics.json").stat().st_mtime_ns == finished
    summary = {
        row["method"]: row for row in json.loads((out / "summary.json").read_text())["summary"]
    }
    assert summary["sevennet-0 (zero-shot)"]["forces_mae_mev_per_a_mean"] == 420.0


def test_markdown_table_states_means_ranges_and_ratios():
    from lamm.analysis.transfer import COMPOSITION, markdown_table

    table = rows(SCRATCH, [(10, 100), (12, 110), (11, 120)]) + rows(
        "m", [(8, 50), (9, 60), (13, 55)]
    )
    table.append(
        {"method": "a (fine-tuned)", "fraction": 1.0, "seed": 0, "energy_mae_mev_per_atom": 5.0,
         "forces_mae_mev_per_a": 200.0}
    )  # fmt: skip
    table.append(
        {"method": COMPOSITION, "fraction": 1.0, "seed": 0, "energy_mae_mev_per_atom": 700.0,
         "forces_mae_mev_per_a": 300.0}
    )  # fmt: skip
    text = markdown_table(summarize(table))
    lines = text.splitlines()
    assert lines[0].startswith("| method | train | seeds | energy meV/atom")
    assert lines[2] == "| scratch | 100% | 3 | 11.0 (10.0-12.0) | - | 110.0 (100.0-120.0) | - |"
    assert lines[3] == "| m | 100% | 3 | 10.0 (8.0-13.0) | 1.10x | 55.0 (50.0-60.0) | 2.00x apart |"
    assert lines[4].startswith("| composition fit | 100% | 1 | 700.0 | 0.02x |")
    # an anchor fine-tuned by its own trainer comes last, after the models and the baselines
    assert lines[5] == "| a (fine-tuned) | 100% | 1 | 5.0 | 2.20x | 200.0 | 0.55x |"
