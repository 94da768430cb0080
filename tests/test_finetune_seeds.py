"""Table 3 and sample efficiency over seeds: the seed of each run, per-seed rows against the same
seed's scratch, the summaries, `lamm summarize`, and the workflow's seeded run folders."""

import json
import math
import os
import re
import subprocess
import sys

import pandas as pd
import pytest
import yaml

from lamm.analysis.finetune import (
    finetune_table,
    load_run,
    sample_efficiency_summary,
    sample_efficiency_table,
    table3_summary,
)
from lamm.cli import main
from tests.conftest import ROOT
from tests.helpers.finetune_results import run_folder, seeded_sweep

FALLING = [
    (90, 900),
    (50, 400),
    (30, 250),
    (26, 210),
    (24, 205),
]  # reaches 25 meV/atom at 40, 210 meV/A at 30
FAST = [(80, 800), (24, 300), (20, 200), (22, 190), (21, 185)]  # 10 and 20


def test_the_seed_comes_from_the_run_then_the_folder_name(tmp_path):
    assert (
        load_run(run_folder(tmp_path / "a", "scratch", FALLING, seed=7)).seed == 7
    )  # the config.yaml the run wrote
    assert (
        load_run(run_folder(tmp_path / "epoch_2_seed3", "2", FALLING, seed=None)).seed == 3
    )  # the workflow's folder
    assert (
        load_run(run_folder(tmp_path / "scratch", "scratch", FALLING, seed=None)).seed is None
    )  # never guessed


def test_table3_rows_per_seed_against_that_seeds_scratch(tmp_path):
    runs = [
        load_run(run_folder(tmp_path / "scratch", "scratch", FALLING, seed=0)),
        load_run(run_folder(tmp_path / "epoch_2", "2", FAST, seed=0)),
        load_run(
            run_folder(tmp_path / "scratch_seed1", "scratch", FAST, seed=1)
        ),  # seed 1's scratch is fast too
        load_run(run_folder(tmp_path / "epoch_2_seed1", "2", FAST, seed=1)),
    ]
    rows = finetune_table(runs[::-1], energy_threshold=25, forces_threshold=210)
    assert [(r["seed"], r["checkpoint"]) for r in rows] == [
        (0, "scratch"),
        (0, "2"),
        (1, "scratch"),
        (1, "2"),
    ]
    assert (
        rows[1]["energy_speedup"] == 4.0 and rows[1]["forces_speedup"] == 1.5
    )  # 40/10, 30/20 against seed 0's scratch
    assert (
        rows[3]["energy_speedup"] == 1.0 and rows[3]["forces_speedup"] == 1.0
    )  # against seed 1's own
    without = finetune_table(runs[:2] + runs[3:], 25, 210)  # seed 1 has no scratch run
    assert [(r["seed"], r["checkpoint"], r["energy_speedup"]) for r in without] == [
        (0, "scratch", 1.0),
        (0, "2", 4.0),
        (1, "2", None),
    ]
    with pytest.raises(
        ValueError,
        match="seed 0: several runs of the same \\(checkpoint, pre-training seed, steps\\)",
    ):
        finetune_table(
            runs + [load_run(run_folder(tmp_path / "again", "2", FAST, seed=0))], 25, 210
        )


def test_table3_summary_over_seeds(tmp_path):
    folders = seeded_sweep(
        tmp_path,
        {
            "scratch": [(800, 700), (900, 720), (1000, 740)],
            "2": [(600, 690), (620, 700), (640, 710)],
        },
    )
    rows = finetune_table(
        [load_run(f) for f in folders], energy_threshold=2000, forces_threshold=2200
    )
    summary = {row["checkpoint"]: row for row in table3_summary(rows)}
    scratch, pretrained = summary["scratch"], summary["2"]
    assert (
        list(summary) == ["scratch", "2"]
        and scratch["seeds"] == 3
        and scratch["energy_threshold"] == 2000
    )
    assert (
        scratch["test_energy_mae_mev_per_atom_mean"] == 900
        and scratch["test_energy_mae_mev_per_atom_std"] == 100
    )
    assert (
        scratch["test_energy_mae_mev_per_atom_min"],
        scratch["test_energy_mae_mev_per_atom_max"],
    ) == (800, 1000)
    assert pretrained["test_energy_mae_mev_per_atom_ratio_vs_scratch"] == pytest.approx(900 / 620)
    assert pretrained["test_forces_mae_mev_per_a_ratio_vs_scratch"] == pytest.approx(720 / 700)
    assert scratch["test_energy_mae_mev_per_atom_ratio_vs_scratch"] == 1.0
    # validation curves fall from 4x to 1x the test error at steps 0..40: scratch 800 reaches 2000
    # at step 20 (2000), 900 and 1000 at 30; pre-trained 600 at 10 (1950), 620 and 640 at 20
    assert scratch["steps_to_energy_threshold_reached"] == 3 and scratch[
        "steps_to_energy_threshold_mean"
    ] == pytest.approx(80 / 3)
    assert pretrained["steps_to_energy_threshold_mean"] == pytest.approx(50 / 3)
    assert pretrained["steps_to_energy_threshold_ratio_vs_scratch"] == pytest.approx(1.6)
    one = table3_summary(rows[:2])  # one seed: no spread, not a zero one
    assert math.isnan(one[0]["test_energy_mae_mev_per_atom_std"]) and one[0]["seeds"] == 1


def test_sample_efficiency_rows_and_summary_over_seeds(tmp_path):
    runs = [
        load_run(
            run_folder(
                tmp_path / f"{c}_{f}_{s}",
                c,
                FALLING,
                seed=s,
                fraction=f,
                structures=int(64 * f),
                test=t,
            )
        )
        for (c, f), values in {
            ("scratch", 0.25): [(20, 200), (30, 220)],
            ("2", 0.25): [(10, 100), (14, 120)],
            ("scratch", 1.0): [(8, 80), (9, 90)],
        }.items()
        for s, t in enumerate(values)
    ]
    rows = sample_efficiency_table(runs[::-1])
    assert [(r["checkpoint"], r["train_fraction"], r["seed"]) for r in rows] == [
        ("scratch", 0.25, 0),
        ("scratch", 0.25, 1),
        ("scratch", 1.0, 0),
        ("scratch", 1.0, 1),
        ("2", 0.25, 0),
        ("2", 0.25, 1),
    ]
    with pytest.raises(ValueError, match="several runs for the same"):
        sample_efficiency_table(runs + runs[:1])
    summary = {(r["checkpoint"], r["train_fraction"]): r for r in sample_efficiency_summary(rows)}
    assert (
        summary[("2", 0.25)]["seeds"] == 2
        and summary[("2", 0.25)]["test_forces_mae_mev_per_a_mean"] == 110
    )
    assert summary[("2", 0.25)]["test_energy_mae_mev_per_atom_ratio_vs_scratch"] == pytest.approx(
        25 / 12
    )
    assert ("2", 1.0) not in summary and summary[("scratch", 1.0)][
        "test_energy_mae_mev_per_atom_std"
    ] == pytest.approx(math.sqrt(0.5))


def test_budgets_are_chosen_on_validation_and_pretraining_runs_pool(tmp_path):
    """Scratch and epoch 36 at budgets 40 and 80, 3 seeds; epoch 36 from two pre-training runs.
    At 80 steps the final validation errors are lower for both starts, so 80 is chosen, and the
    test errors read are those of 80, though 40 has the better test errors (never looked at)."""
    import torch

    from lamm.analysis.findings_finetune import select_budget, table3_finding

    checkpoint = tmp_path / "pretrain_seed5.pt"
    torch.save({"training": {"config": {"seed": 5}}}, checkpoint)
    runs = []
    for seed in range(3):
        for steps, last, test in ((40, 30.0, 1.0), (80, 20.0, 50.0)):
            curve = [(90, 900)] * 4 + [(last, 10 * last)]
            runs.append(
                load_run(
                    run_folder(
                        tmp_path / f"scratch_{steps}_{seed}",
                        "scratch",
                        curve,
                        seed=seed,
                        steps=steps,
                        test=(test + 20 + seed, 100.0),
                    )
                )
            )
            for pretrain, extra in (
                (0, {"pretrain_seed": 0}),
                (5, {"checkpoint_path": str(checkpoint)}),
            ):
                runs.append(
                    load_run(
                        run_folder(
                            tmp_path / f"e36_{steps}_{seed}_{pretrain}",
                            "36",
                            [(v[0] - 5, v[1]) for v in curve],
                            seed=seed,
                            steps=steps,
                            test=(test + seed + pretrain / 10, 100.0),
                            extra=extra,
                        )
                    )
                )
    rows = finetune_table(runs, 25, 210)
    assert {r["pretrain_seed"] for r in rows if r["checkpoint"] == "36"} == {0, 5}
    assert {
        r["final_val_energy_mae_mev_per_atom"] for r in rows if r["checkpoint"] == "scratch"
    } == {30.0, 20.0}
    summary = {(r["checkpoint"], r["steps"]): r for r in table3_summary(rows)}
    assert summary[("36", 80)]["seeds"] == 6 and summary[("36", 80)]["pretrain_runs"] == 2
    assert summary[("scratch", 80)]["pretrain_runs"] == 0
    assert summary[("36", 80)]["final_val_energy_mae_mev_per_atom_mean"] == 15.0
    path = tmp_path / "table3_finetune.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    table = pd.read_csv(path, dtype={"checkpoint": str})
    assert select_budget(table, "scratch", "energy_mae_mev_per_atom") == 80
    assert select_budget(table, "36", "energy_mae_mev_per_atom") == 80
    finding = table3_finding(path, metrics=("energy_mae_mev_per_atom",))
    # test at 80 steps: scratch 70-72, epoch 36 50-52.5 (6 runs): apart
    assert finding.verdict == "supported"
    assert finding.spread == (
        "3 seeds; energy MAE: scratch 70-72, epoch 36 50-52.5 meV/atom (apart); 2 pre-training runs"
    )
    assert (
        "Budget chosen on the validation split (lowest mean final validation error): scratch 80 "
        "steps, epoch 36 80 steps." in finding.measured
    )


def test_summarize_writes_the_table_with_seeds_and_its_summary(tmp_path, capsys):
    folders = seeded_sweep(
        tmp_path / "runs", {"scratch": [(800, 700), (900, 720)], "0.5": [(700, 710), (720, 705)]}
    )
    table = tmp_path / "tables" / "table3_finetune_my_set.csv"
    args = [
        "summarize",
        "finetune",
        *map(str, folders),
        "--energy-threshold",
        "2000",
        "--forces-threshold",
        "2200",
        "--table",
        str(table),
        "--figure",
        str(tmp_path / "fig9.png"),
    ]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["summary"] == str(
        tmp_path / "tables" / "table3_summary_my_set.csv"
    )  # beside the table, the set's suffix
    written = pd.read_csv(table, dtype={"checkpoint": str})
    assert list(written.columns[:4]) == [
        "checkpoint",
        "seed",
        "pretrain_seed",
        "energy_mae_mev_per_atom",
    ]
    assert sorted(zip(written["checkpoint"], written["seed"], strict=True)) == [
        ("0.5", 0),
        ("0.5", 1),
        ("scratch", 0),
        ("scratch", 1),
    ]
    summary = pd.read_csv(printed["summary"], dtype={"checkpoint": str})
    assert list(summary["checkpoint"]) == ["scratch", "0.5"] and list(summary["seeds"]) == [2, 2]
    assert (tmp_path / "fig9.png").stat().st_size > 0


# --- the workflow: seeded run folders ----------------------------------------------------------


def _finetune_jobs(tmp_path, finetune=None, env=None, shells_out=None, extra=None):
    """{--out folder: --seed} of every planned `lamm finetune`, and the Table 3 shell command."""
    command = [sys.executable, "-m", "snakemake", "-n", "-p", "--forceall"]
    if finetune is not None:
        config = tmp_path / "seeds.yaml"
        config.write_text(yaml.safe_dump({"finetune": finetune, **(extra or {})}))
        command += ["--configfile", str(config)]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env=None if env is None else {**os.environ, **env},
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    shells = re.findall(r"^Shell command: (.*)$", result.stdout, re.M)
    if shells_out is not None:
        shells_out.extend(shells)
    jobs = {
        re.search(r"--out (\S+)", s)[1]: int(re.search(r"--seed (\d+)", s)[1])
        for s in shells
        if " finetune --config " in s
    }
    [table] = [s for s in shells if " summarize finetune " in s]
    return jobs, table


def test_default_config_plans_todays_run_folders_with_the_workflow_seed(tmp_path):
    jobs, table = _finetune_jobs(tmp_path)
    labels = [
        "scratch",
        "epoch_0",
        "epoch_0.5",
        "epoch_2",
        "lamm-mini",
        "scratch_frac0.25",
        "epoch_2_frac0.25",
        "epoch_2_gradient",
    ]
    assert jobs == {f"results/finetune/demo/{label}": 0 for label in labels}
    assert (
        "--table results/tables/table3_finetune.csv --summary results/tables/table3_summary.csv"
        in table
    )


def test_further_seeds_run_every_table3_and_efficiency_run_in_suffixed_folders(tmp_path):
    """Also a second pre-training run (finetune.pretrain_replicates): its last checkpoint joins
    Table 3 with every seed."""
    second = yaml.safe_load((ROOT / "config" / "pretrain" / "demo.yaml").read_text())
    (tmp_path / "demo_seed1.yaml").write_text(yaml.safe_dump({**second, "seed": 1}))
    pretrain = [
        {"name": "demo", "config": "config/pretrain/demo.yaml"},
        {"name": "demo_seed1", "config": str(tmp_path / "demo_seed1.yaml")},
    ]
    jobs, table = _finetune_jobs(
        tmp_path,
        {"seeds": [0, 2], "models": [], "pretrain_replicates": ["demo_seed1"]},
        extra={"pretrain": {"runs": pretrain}},
    )
    replicate = "epoch_2_pretrain-demo_seed1"
    base = ["scratch", "epoch_0", "epoch_0.5", "epoch_2", "scratch_frac0.25", "epoch_2_frac0.25"]
    expected = {
        f"results/finetune/demo/{label}": 0 for label in [*base, replicate, "epoch_2_gradient"]
    }
    expected |= {
        f"results/finetune/demo/{label}_seed2": 2 for label in [*base, replicate]
    }  # the MD model: one seed
    assert jobs == expected
    runs = table.split(" summarize finetune ")[1].split(" --energy-threshold")[0].split()
    assert runs == [
        f"results/finetune/demo/{label}{suffix}"
        for suffix in ("", "_seed2")
        for label in ["scratch", "epoch_0", "epoch_0.5", "epoch_2", replicate]
    ]


def test_a_shipped_model_joins_the_sweep_in_a_folder_named_after_it(tmp_path):
    models = tmp_path / "models"
    (models / "my-model").mkdir(parents=True)
    (models / "my-model" / "model.pt").write_bytes(b"")  # the plan only needs the file to exist
    shells = []
    jobs, table = _finetune_jobs(
        tmp_path,
        {"models": ["my-model"], "seeds": [0, 1]},
        env={"LAMM_MODELS_DIR": str(models)},
        shells_out=shells,
    )
    assert (
        jobs["results/finetune/demo/my-model"] == 0
        and jobs["results/finetune/demo/my-model_seed1"] == 1
    )
    [command] = [s for s in shells if "--out results/finetune/demo/my-model " in s]
    assert f"--checkpoint {models / 'my-model' / 'model.pt'}" in command
    runs = table.split(" summarize finetune ")[1].split(" --energy-threshold")[0].split()
    assert runs[:5] == [
        f"results/finetune/demo/{label}"
        for label in ["scratch", "epoch_0", "epoch_0.5", "epoch_2", "my-model"]
    ]


def test_an_unknown_shipped_model_fails_the_plan_naming_it(tmp_path):
    config = tmp_path / "models.yaml"
    config.write_text(yaml.safe_dump({"finetune": {"models": ["no-such-model"]}}))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--configfile", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "LAMM_MODELS_DIR": str(tmp_path)},
    )
    assert result.returncode != 0
    assert (
        "finetune.models: no checkpoint file and no shipped model named 'no-such-model'"
        in result.stdout + result.stderr
    )
