"""Table 3 and sample-efficiency findings: the size against the paper's, the seed spread, and a
verdict that says "supported" only when the effect stands outside the spread."""

import pandas as pd

from lamm.analysis.findings_finetune import sample_efficiency_finding, steps_finding, table3_finding

E, F = "test_energy_mae_mev_per_atom", "test_forces_mae_mev_per_a"


def _table3(path, errors, steps=None, thresholds=(1000.0, 750.0)):
    """errors[checkpoint] = [(energy, forces) per seed]; steps[checkpoint] = [(energy steps, forces
    steps) per seed]."""
    rows = []
    for checkpoint, per_seed in errors.items():
        for seed, (energy, forces) in enumerate(per_seed):
            energy_steps, forces_steps = (steps or {}).get(
                checkpoint, [(100, 100)] * len(per_seed)
            )[seed]
            rows.append(
                {
                    "checkpoint": checkpoint,
                    "seed": seed,
                    "energy_mae_mev_per_atom": None if energy is None else energy + 1,
                    "forces_mae_mev_per_a": None if forces is None else forces + 1,
                    "steps_to_energy_threshold": energy_steps,
                    "steps_to_forces_threshold": forces_steps,
                    "energy_threshold": thresholds[0],
                    "forces_threshold": thresholds[1],
                    E: energy,
                    F: forces,
                }
            )
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_effect_outside_the_seed_spread_is_supported_with_the_exact_ratio_text(tmp_path):
    path = _table3(
        tmp_path / "table3_finetune.csv",
        {
            "scratch": [(857, 716), (830, 731), (880, 705)],
            "0.5": [
                (500, 500),
                (510, 505),
                (520, 510),
            ],  # better than the last checkpoint: not the one compared
            "2": [(627, 600), (640, 590), (610, 601)],
        },
    )
    finding = table3_finding(path)
    assert finding.verdict == "supported"
    # scratch mean 855.67 / 625.67 = 1.37; 717.33 / 597 = 1.20; the paper 23.7 / 21.1 = 1.12, 201 /
    # 176 = 1.14
    assert finding.size == (
        "energy MAE 1.37x lower than scratch vs the paper's 1.12x; "
        "force MAE 1.20x lower than scratch vs the paper's 1.14x"
    )
    assert finding.spread == (
        "3 seeds; energy MAE: scratch 830-880, epoch 2 610-640 meV/atom (apart); "
        "force MAE: scratch 705-731, epoch 2 590-601 meV/A (apart); 1 pre-training run"
    )
    assert (
        "test set MAE, mean over 3 seeds" in finding.measured
        and "epoch 0.5 510 meV/atom" in finding.measured
    )


def test_effect_inside_the_spread_is_not_shown(tmp_path):
    # energy apart, forces overlapping (701-711 vs 705-731): the claim is about both
    path = _table3(
        tmp_path / "table3_finetune.csv",
        {
            "scratch": [(857, 716), (830, 731), (880, 705)],
            "2": [(627, 702), (640, 690), (610, 711)],
        },
    )
    finding = table3_finding(path)
    assert finding.verdict == "not shown"
    assert "force MAE 1.02x lower than scratch vs the paper's 1.14x" in finding.size
    assert "force MAE: scratch 705-731, epoch 2 690-711 meV/A (overlap)" in finding.spread


def test_one_seed_is_never_supported_and_says_the_spread_is_unknown(tmp_path):
    path = _table3(tmp_path / "table3_finetune.csv", {"scratch": [(857, 716)], "2": [(300, 200)]})
    finding = table3_finding(path)
    assert finding.verdict_text == "not shown (n too small)"
    assert finding.spread == "1 seed: n too small (needs 3 per side); 1 pre-training run"
    assert finding.size.startswith("energy MAE 2.86x lower than scratch vs the paper's 1.12x")


def test_two_seeds_apart_are_not_enough_and_a_diverged_seed_is_named(tmp_path):
    path = _table3(
        tmp_path / "table3_finetune.csv",
        {"scratch": [(857, 716), (830, 731)], "2": [(627, 600), (640, 590)]},
    )
    finding = table3_finding(path)
    assert finding.verdict_text == "not shown (n too small)"
    assert finding.spread.startswith("2 seeds: n too small (needs 3 per side); energy MAE:")
    # treatment (11, diverged, 12) against scratch (15, 14, 16): not shown, wherever the NaN is
    for errors in ([(11, 1), (None, 1), (12, 1)], [(None, 1), (11, 1), (12, 1)]):
        path = _table3(
            tmp_path / "table3_finetune.csv",
            {"scratch": [(15, 9), (14, 9), (16, 9)], "2": errors},
        )
        finding = table3_finding(path, metrics=("energy_mae_mev_per_atom",))
        assert finding.verdict_text == "not shown (a diverged run)"
        assert "epoch 2 11-12 + 1 diverged meV/atom (overlap)" in finding.spread


def test_worse_beyond_the_spread_is_contradicted(tmp_path):
    path = _table3(
        tmp_path / "table3_finetune.csv",
        {
            "scratch": [(600, 700), (610, 705), (605, 701)],
            "2": [(700, 690), (720, 702), (710, 695)],
        },
    )
    finding = table3_finding(path)
    assert finding.verdict == "contradicted"
    assert finding.size.startswith("energy MAE 1.17x higher than scratch vs the paper's 1.12x")
    assert "(apart, the other way)" in finding.spread


def test_an_old_table_without_seed_or_test_columns_uses_best_validation(tmp_path):
    path = tmp_path / "table3_finetune.csv"
    pd.DataFrame(
        {
            "checkpoint": ["scratch", "1", "2"],
            "energy_mae_mev_per_atom": [857.0, 700.0, 648.0],
            "forces_mae_mev_per_a": [716.0, 720.0, 701.0],
        }
    ).to_csv(path, index=False)
    finding = table3_finding(path)
    assert finding.verdict_text == "not shown (n too small)"
    assert finding.spread == "1 seed: n too small (needs 3 per side); 1 pre-training run"
    assert "best validation MAE" in finding.measured and "energy MAE 1.32x lower" in finding.size
    pd.DataFrame(
        {"checkpoint": ["scratch"], "energy_mae_mev_per_atom": [1.0], "forces_mae_mev_per_a": [1.0]}
    ).to_csv(path, index=False)
    assert table3_finding(path).verdict == "not run"
    assert table3_finding(tmp_path / "absent.csv").verdict == "not run"


def test_steps_to_thresholds_count_a_threshold_never_reached_as_worse_than_any(tmp_path):
    errors = {"scratch": [(857, 716)] * 3, "2": [(627, 702)] * 3}
    path = _table3(
        tmp_path / "table3_finetune.csv",
        errors,
        steps={
            "scratch": [(400, None), (500, None), (450, None)],
            "2": [(200, 300), (150, 350), (250, 300)],
        },
    )
    finding = steps_finding(path)
    assert finding.verdict == "supported"
    assert finding.size == (
        "steps to 1000 meV/atom 2.25x fewer than scratch vs the paper's 2.51x; "
        "steps to 750 meV/A: scratch never reached it, epoch 2 did (the paper: 1.89x fewer)"
    )
    assert "steps to 750 meV/A: scratch never, epoch 2 300-350 steps (apart)" in finding.spread
    path = _table3(
        tmp_path / "table3_finetune.csv",
        errors,
        steps={"scratch": [(None, None)] * 3, "2": [(None, None)] * 3},
    )
    finding = steps_finding(path)
    assert (
        finding.verdict == "not shown"
        and "steps to 1000 meV/atom: neither reached it" in finding.size
    )


def _efficiency(path, values):
    """values[(checkpoint, fraction)] = [(energy, forces) per seed]."""
    rows = [
        {
            "checkpoint": checkpoint,
            "seed": seed,
            "train_fraction": fraction,
            "train_structures": int(64 * fraction),
            E: energy,
            F: forces,
        }
        for (checkpoint, fraction), per_seed in values.items()
        for seed, (energy, forces) in enumerate(per_seed)
    ]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_sample_efficiency_at_the_smallest_common_fraction(tmp_path):
    path = _efficiency(
        tmp_path / "sample_efficiency.csv",
        {
            ("scratch", 0.1): [(990, 780), (1010, 800), (970, 790)],
            ("scratch", 1.0): [(857, 716), (830, 731), (880, 705)],
            ("2", 0.1): [(760, 600), (800, 610), (745, 590)],
            ("2", 1.0): [(627, 702), (640, 690), (610, 711)],
            ("scratch", 0.01): [(2000, 1500)] * 3,  # scratch alone at 1%: not a comparison
        },
    )
    finding = sample_efficiency_finding(path)
    assert finding.verdict == "supported"
    assert finding.size == (
        "at 10% of the training set (6 structures): test energy MAE 1.29x lower than scratch; "
        "test force MAE 1.32x lower than scratch; the paper gives no number"
    )
    assert finding.spread.startswith(
        "3 seeds; test energy MAE: scratch 970-1010, epoch 2 745-800 meV/atom (apart)"
    )
    assert finding.measured.startswith(
        "10%: scratch 990 meV/atom, 790 meV/A; epoch 2 768 meV/atom, 600 meV/A; 100%:"
    )
    path = _efficiency(
        path, {("scratch", 0.1): [(990, 780), (1010, 800)], ("2", 0.1): [(995, 600), (1000, 610)]}
    )
    assert sample_efficiency_finding(path).verdict_text == "not shown (n too small)"
    path = _efficiency(path, {("scratch", 0.1): [(990, 780)], ("2", 1.0): [(995, 600)]})
    assert sample_efficiency_finding(path).verdict == "not run"


def test_a_shipped_model_in_the_sweep_gets_its_own_finding_and_never_counts_as_the_last_epoch(
    tmp_path,
):
    from lamm.analysis.findings_finetune import finetune_findings

    _table3(
        tmp_path / "table3_finetune.csv",
        {
            "scratch": [(857, 716), (830, 731), (880, 705)],
            "2": [
                (840, 712),
                (850, 700),
                (860, 720),
            ],  # the run's own short pre-training: inside the spread
            "lamm-mini": [(400, 300), (420, 310), (410, 305)],  # a shipped model: apart
        },
    )
    findings = finetune_findings(tmp_path)
    assert (
        len(findings) == 8
    )  # errors, steps, the shipped model's errors, sample efficiency; each energy and forces
    own_energy, own_forces, _, _, shipped_energy, shipped_forces, _, _ = findings
    assert own_energy.verdict == own_forces.verdict == "not shown"
    assert "epoch 2" in own_energy.spread and "lamm-mini" not in own_energy.spread
    assert shipped_energy.claim.startswith(
        "Fine-tuning from the shipped model lamm-mini gives lower energy MAE than"
    )
    assert shipped_energy.verdict == shipped_forces.verdict == "supported"
    # 855.67 / 410 = 2.09; 717.33 / 305 = 2.35
    assert shipped_energy.size == "energy MAE 2.09x lower than scratch vs the paper's 1.12x"
    assert shipped_forces.size == "force MAE 2.35x lower than scratch vs the paper's 1.14x"
    assert shipped_energy.spread == (
        "3 seeds; energy MAE: scratch 830-880, lamm-mini 400-420 meV/atom (apart); "
        "1 pre-training run"
    )
    assert (
        findings[-1].verdict == findings[-2].verdict == "not run"
    )  # no sample_efficiency.csv here


def test_energies_and_forces_get_their_own_verdicts(tmp_path):
    """Forces apart, energies inside the spread (the mini reproduction's shape): the joint claim
    is not shown, the force claim supported, the energy claim not shown, each with its own
    numbers."""
    from lamm.analysis.findings_finetune import ENERGY, FORCES, finetune_findings

    path = _table3(
        tmp_path / "table3_finetune.csv",
        {
            "scratch": [(20.5, 16.5), (19.0, 13.7), (21.5, 15.1)],
            "36": [(19.6, 12.3), (17.7, 11.6), (21.0, 12.0)],
        },
        steps={
            "scratch": [(280, 523), (250, 464), (300, 560)],
            "36": [(256, 264), (240, 240), (270, 280)],
        },
        thresholds=(30.0, 30.0),
    )
    assert table3_finding(path).verdict == "not shown"
    energy, forces = (
        table3_finding(path, metrics=(ENERGY,)),
        table3_finding(path, metrics=(FORCES,)),
    )
    assert energy.verdict == "not shown" and forces.verdict == "supported"
    assert forces.claim.endswith(
        "gives lower force MAE than scratch at the same budget (Table 3: LaMM-S 2 epochs "
        "1.14x lower)."
    )
    # (16.5 + 13.7 + 15.1) / 3 = 15.1; (12.3 + 11.6 + 12.0) / 3 = 11.97; 15.1 / 11.97 = 1.26
    assert forces.size == "force MAE 1.26x lower than scratch vs the paper's 1.14x"
    assert forces.spread == (
        "3 seeds; force MAE: scratch 13.7-16.5, epoch 36 11.6-12.3 meV/A (apart); 1 pre-training "
        "run"
    )
    assert (
        forces.measured == "test set MAE, mean over 3 seeds: scratch 15.1 meV/A; epoch 36 12 meV/A."
    )
    assert "force" not in energy.spread and "12.3" not in energy.measured
    steps = [f for f in finetune_findings(tmp_path) if "fewer steps" in f.claim]
    assert [f.verdict for f in steps] == [
        "not shown",
        "supported",
    ]  # energy steps 250-300 vs 240-270 overlap
    assert steps[1].claim.endswith("(Table 3: 1.89x fewer to 210 meV/A).")
    # (523 + 464 + 560) / 3 = 515.67; (264 + 240 + 280) / 3 = 261.33; 1.97
    assert steps[1].size == "steps to 30 meV/A 1.97x fewer than scratch vs the paper's 1.89x"
