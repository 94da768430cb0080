"""`lamm bench throughput`: step statistics on hand-made timings, calibration, one tiny real run."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from lamm.bench import throughput_stats as stats
from lamm.bench.throughput import (
    ThroughputCase,
    case_config,
    dataset_subsets,
    splits_for_group_steps,
)
from lamm.cli import main
from lamm.data.balance import plan_lamm
from lamm.data.sampler import DistributedBatchSampler
from tests.helpers.training_data import SUBSETS, tiny_trainer_config, write_training_stores


def timings(rows):
    """rows: (step, rank, data, forward, backward, optimizer, compute, atoms, structures)."""
    return pd.DataFrame(rows, columns=list(stats.TIMING_COLUMNS))


HAND_MADE = timings(
    [
        # step 1: rank 0 computes 1.0 s, rank 1 0.6 s -> idle 0.2 s; wall 0.1+0.5+0.6+0.1 = 1.3 s
        (1, 0, 0.1, 0.5, 0.6, 0.1, 1.0, 40, 2),
        (1, 1, 0.0, 0.3, 0.8, 0.1, 0.6, 20, 2),
        # step 2: equal compute -> idle 0; wall max(0.8, 0.9) = 0.9 s
        (2, 0, 0.0, 0.3, 0.4, 0.1, 0.7, 30, 2),
        (2, 1, 0.1, 0.3, 0.4, 0.1, 0.7, 30, 2),
        # step 3: idle (0.9 - 0.5) / 2 = 0.2 s; wall max(1.0, 1.0) = 1.0 s
        (3, 0, 0.0, 0.4, 0.5, 0.1, 0.9, 50, 3),
        (3, 1, 0.0, 0.2, 0.7, 0.1, 0.5, 10, 1),
    ]
)


def test_step_table_idle_and_step_time_by_hand():
    table = stats.step_table(HAND_MADE)
    np.testing.assert_allclose(table["idle_s"], [0.2, 0.0, 0.2])
    np.testing.assert_allclose(table["step_s"], [1.3, 0.9, 1.0])
    assert table["max_atoms"].tolist() == [40, 30, 50]
    assert table["structures"].tolist() == [4, 4, 4]
    # warm-up drops the first steps
    assert stats.step_table(HAND_MADE, warmup=2)["step"].tolist() == [3]
    with pytest.raises(ValueError, match="no steps left"):
        stats.step_table(HAND_MADE, warmup=3)


def test_summary_statistics_by_hand():
    row = stats.summarize_steps(stats.step_table(HAND_MADE))
    assert row["samples_per_s"] == pytest.approx(12 / 3.2)
    assert row["step_time_mean_s"] == pytest.approx(3.2 / 3)
    assert row["step_time_median_s"] == pytest.approx(1.0)
    assert row["idle_mean_s"] == pytest.approx(0.4 / 3)
    assert row["idle_fraction"] == pytest.approx(0.4 / 2.6)
    assert row["peak_atoms_per_rank"] == 50
    # all ranks' compute: 1.6 + 1.4 + 1.4 s; per edge only when the timings carry edges
    assert row["compute_total_s"] == pytest.approx(4.4) and row["compute_us_per_edge"] is None
    with_edges = HAND_MADE.assign(edges=[1000, 500, 800, 800, 1200, 100])
    assert stats.summarize_steps(stats.step_table(with_edges))[
        "compute_us_per_edge"
    ] == pytest.approx(1e6 * 4.4 / 4400)
    # repeats pool the steps and report the spread of their rates
    other = stats.step_table(HAND_MADE).assign(step_s=lambda t: 2 * t["step_s"])
    pooled = stats.summarize_repeats([stats.step_table(HAND_MADE), other])
    assert pooled["samples_per_s"] == pytest.approx(24 / 9.6)
    assert pooled["samples_per_s_min"] == pytest.approx(12 / 6.4) and pooled[
        "samples_per_s_max"
    ] == pytest.approx(12 / 3.2)


def test_p95_cut_and_moving_average():
    values = np.arange(1, 101, dtype=float)
    kept = stats.cut_at_quantile(values, 0.95)
    assert kept.max() == 95 and len(kept) == 95  # numpy's quantile of 1..100 at 0.95 is 95.05
    np.testing.assert_allclose(stats.moving_average([1, 2, 3, 4, 5, 6, 7], 5), [3, 4, 5])
    assert stats.moving_average([1, 2], 5).size == 0
    with pytest.raises(ValueError):
        stats.cut_at_quantile(values, 0)
    steps, series = stats.rank_series(HAND_MADE, rank=0, warmup=1, window=2)
    assert steps.tolist() == [3] and series.tolist() == pytest.approx(
        [0.8]
    )  # compute of steps 2, 3


def test_calibration_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    rows = []
    for step in range(1, 41):
        for rank in range(2):
            structures = int(rng.integers(1, 6))
            atoms = int(rng.integers(10, 300))
            compute = 0.004 * structures + 0.0015 * atoms
            # every step also costs 0.05 s of data + optimizer beyond the compute
            rows.append((step, rank, 0.02, compute, 0.0, 0.03, compute, atoms, structures))
    table = timings(rows)
    model, overhead, r2 = stats.fit_cost_model([table], warmup=0)
    assert model.per_structure == pytest.approx(0.004, rel=1e-6)
    assert model.per_atom == pytest.approx(0.0015, rel=1e-6)
    assert r2 == pytest.approx(1.0)
    # the slowest rank's wall is max(compute) + 0.05 -> overhead 0.05 s
    assert overhead == pytest.approx(0.05, abs=1e-9)
    expected = stats.step_table(table)["step_s"].mean()
    assert stats.predicted_step_time(table, model, overhead) == pytest.approx(expected)
    # with an edge term: recovered when fitted with edges, missed (R^2 < 1) without
    edges = rng.integers(100, 5000, size=len(table))
    with_edges = table.assign(edges=edges, compute_s=table["compute_s"] + 2e-5 * edges)
    model, _, r2 = stats.fit_cost_model([with_edges], use_edges=True)
    assert (model.per_structure, model.per_atom, model.per_edge) == pytest.approx(
        (0.004, 0.0015, 2e-5), rel=1e-6
    )
    assert r2 == pytest.approx(1.0)
    assert stats.fit_cost_model([with_edges])[2] < 0.99
    with pytest.raises(ValueError, match="edges"):
        stats.fit_cost_model([table], use_edges=True)


def test_group_splits_make_lamm_groups_last_the_requested_steps():
    natoms = np.random.default_rng(1).integers(5, 200, size=400)
    splits = splits_for_group_steps(
        natoms, [400], world_size=2, temperature=None, seed=0, group_steps=5
    )
    assert splits == 40  # 400 samples / (2 ranks * 5 steps)
    plan = plan_lamm(natoms, 2, 4, splits, (0, 0))
    loads = plan.loads(natoms).max(axis=1)  # [steps]
    # inside every group of 5 steps the load never grows (large to small), across groups it does
    groups = loads[: len(loads) // 5 * 5].reshape(-1, 5)
    assert (np.diff(groups[:10], axis=1) <= 0).all()
    assert (groups[1:10, 0] > groups[:9, -1]).any()


@pytest.mark.parametrize("batch_per_rank", [2, 4, 8])
def test_whole_group_windows_hold_the_same_structures_under_every_sampler(batch_per_rank):
    # 3 subsets, temperature-sampled: an epoch of a size that does not divide into groups
    rng = np.random.default_rng(3)
    sizes = [250, 97, 55]
    natoms = rng.integers(3, 280, size=sum(sizes))
    splits = splits_for_group_steps(
        natoms, sizes, world_size=2, temperature=2.0, seed=0, group_steps=5
    )
    epoch = len(
        DistributedBatchSampler(natoms, sizes, world_size=2, temperature=2.0, seed=0).epoch_samples(
            0
        )
    )
    assert epoch % 10 and splits == -(-epoch // 10)
    windows = {}
    for strategy in ("random", "greedy", "lamm"):
        sampler = DistributedBatchSampler(
            natoms,
            sizes,
            world_size=2,
            batch_per_rank=batch_per_rank,
            strategy=strategy,
            temperature=2.0,
            num_splits=splits,
            seed=0,
        )
        plan, samples = sampler.plan(0)
        # warm-up 5 steps, then 15 measured: whole groups of 5 steps
        windows[strategy] = np.sort(
            samples[np.concatenate([np.concatenate(step) for step in plan.steps[5:20]])]
        )
    assert len(windows["lamm"]) == 15 * 2 * batch_per_rank
    np.testing.assert_array_equal(windows["lamm"], windows["random"])
    np.testing.assert_array_equal(windows["greedy"], windows["random"])


def test_unknown_sampler_or_dataset_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="unknown sampler"):
        ThroughputCase("fastest", "joint", 2)
    with pytest.raises(ValueError, match="only the lamm sampler"):
        ThroughputCase("random", "joint", 4, max_atoms_per_rank=100)
    with pytest.raises(ValueError, match="unknown dataset 'oc99'"):
        dataset_subsets("oc99", SUBSETS)
    assert dataset_subsets("joint", SUBSETS) == SUBSETS
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_trainer_config()))
    with pytest.raises(SystemExit, match="unknown dataset 'oc99'"):
        main(
            [
                "bench",
                "throughput",
                "--config",
                str(config),
                "--datasets",
                "oc99",
                "--data",
                str(tmp_path),
            ]
        )
    with pytest.raises(SystemExit, match="unknown sampler"):
        main(
            [
                "bench",
                "throughput",
                "--config",
                str(config),
                "--samplers",
                "random",
                "sorted",
                "--data",
                str(tmp_path),
            ]
        )
    with pytest.raises(SystemExit, match="multiples of --group-steps"):
        main(
            [
                "bench",
                "throughput",
                "--config",
                str(config),
                "--steps",
                "7",
                "--warmup",
                "2",
                "--group-steps",
                "2",
                "--data",
                str(tmp_path),
            ]
        )
    with pytest.raises(ValueError, match="not a trainer timings.csv"):
        pd.DataFrame({"step": [1]}).to_csv(tmp_path / "bad.csv", index=False)
        stats.read_timings(tmp_path / "bad.csv")


def test_case_config_overrides_sampler_and_turns_logging_off():
    from lamm.config import validate_config
    from lamm.training.pretrain import SCHEMA

    base = validate_config(tiny_trainer_config(), SCHEMA)
    config = case_config(
        base,
        ThroughputCase("lamm", "oc20_s2ef", 3, max_atoms_per_rank=90, num_splits=7),
        steps=12,
        seed=5,
    )
    assert config["data"]["subsets"] == ["oc20_s2ef"] and config["seed"] == 5
    assert config["sampler"] == {
        **base["sampler"],
        "strategy": "lamm",
        "batch_per_rank": 3,
        "max_atoms_per_rank": 90,
        "num_splits": 7,
    }
    assert config["train"]["checkpoint_epochs"] == [] and config["train"]["epochs"] >= 12
    assert base["data"]["subsets"] == SUBSETS  # the base is not modified
    validate_config(config, SCHEMA)


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_tiny_two_rank_run_end_to_end(tmp_path, capsys):
    stores = write_training_stores(tmp_path / "stores")
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_trainer_config()))
    out = tmp_path / "throughput.csv"
    main(
        [
            "bench",
            "throughput",
            "--config",
            str(config),
            "--data",
            str(stores),
            "--datasets",
            "joint",
            "--batch-per-rank",
            "2",
            "--capped-batch",
            "3",
            "--cap-reference-batch",
            "2",
            "--steps",
            "4",
            "--warmup",
            "2",
            "--group-steps",
            "2",
            "--scaling-world-sizes",
            "2",
            "4",
            "--work-dir",
            str(tmp_path / "work"),
            "--out",
            str(out),
            "--scaling-out",
            str(tmp_path / "scaling.csv"),
            "--figure",
            str(tmp_path / "fig6.png"),
            "--repeats",
            "2",
            "--budget-minutes",
            "0.0001",  # the first repeat always runs; the second cannot fit
        ]
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    table = pd.read_csv(out)
    assert (table["repeats"] == 1).all() and not (tmp_path / "work" / "rep1").exists()
    assert sorted(table["sampler"].unique()) == ["greedy", "lamm", "random"]
    # three samplers at B'=2, lamm capped at B'=3 and random at B'=3 (the balance at that batch)
    assert len(table) == 5
    at_three = table[table["batch_per_rank"] == 3].set_index("sampler")
    assert at_three.loc["lamm", "reference_batch_per_rank"] == 2
    assert pd.isna(at_three.loc["random", "max_atoms_per_rank"])
    assert at_three.loc["lamm", "speedup_vs_random_same_batch"] == pytest.approx(
        at_three.loc["lamm", "samples_per_s"] / at_three.loc["random", "samples_per_s"]
    )
    assert (table["world_size"] == 2).all() and (table["steps"] == 2).all()
    assert (table["samples_per_s"] > 0).all() and (table["idle_mean_s"] >= 0).all()
    assert (table["step_time_p95_s"] >= table["step_time_median_s"]).all()
    capped = table[table["max_atoms_per_rank"].notna()]
    assert (capped["sampler"] == "lamm").all() and (
        capped["peak_atoms_per_rank"] <= capped["max_atoms_per_rank"]
    ).all()
    # the cap is random's peak at the reference batch over a planned epoch
    assert capped["max_atoms_per_rank"].tolist() == [summary["caps"]["joint"]["cap"]]
    # random's own speedup is 1 by definition
    assert table.loc[table["sampler"] == "random", "speedup_vs_random"].tolist() == pytest.approx(
        [1.0, 1.0]
    )
    scaling = pd.read_csv(tmp_path / "scaling.csv")
    assert set(scaling["world_size"]) == {2, 4}
    measured = scaling[(scaling["world_size"] == 2) & (scaling["strategy"] == "lamm")]
    assert (
        measured["measured_speedup"].notna().all()
        and measured["model_on_measured_steps_speedup"].notna().all()
    )
    assert (tmp_path / "fig6.png").stat().st_size > 0
    assert summary["world_size"] == 2 and set(summary["caps"]) == {"joint"}


def test_case_order_rotates_the_samplers_of_each_comparison_per_repeat():
    from lamm.bench.throughput import case_order

    cases = [
        ThroughputCase(sampler, "joint", batch)
        for batch in (2, 4)
        for sampler in ("random", "greedy", "lamm")
    ] + [ThroughputCase("random", "joint", 8), ThroughputCase("lamm", "joint", 8, 300)]

    def names(repeat):
        return [f"{c.sampler}{c.batch_per_rank}" for c in case_order(cases, repeat)]

    assert names(0) == [
        "random2",
        "greedy2",
        "lamm2",
        "random4",
        "greedy4",
        "lamm4",
        "random8",
        "lamm8",
    ]
    assert names(1) == [
        "greedy4",
        "lamm4",
        "random4",
        "lamm8",
        "random8",
        "greedy2",
        "lamm2",
        "random2",
    ]
    assert names(2) == [
        "random8",
        "lamm8",
        "lamm2",
        "random2",
        "greedy2",
        "lamm4",
        "random4",
        "greedy4",
    ]
    # over 3 repeats each sampler of a 3-sampler comparison runs first, second and third once
    for batch in (2, 4):
        places = {
            sampler: sorted(
                [c.sampler for c in case_order(cases, r) if c.batch_per_rank == batch].index(
                    sampler
                )
                for r in range(3)
            )
            for sampler in ("random", "greedy", "lamm")
        }
        assert all(p == [0, 1, 2] for p in places.values())
    assert sorted(map(str, case_order(cases, 5))) == sorted(map(str, cases))


def test_another_repeat_fits_only_while_the_mean_repeat_fits_the_budget():
    from lamm.bench.throughput import another_repeat_fits

    assert another_repeat_fits(500.0, 0, 60.0)  # the first repeat always runs
    assert another_repeat_fits(40.0, 2, 60.0)  # 40 s for 2: one more takes ~20 s, 60 s in all
    assert not another_repeat_fits(40.0, 1, 60.0)  # one more would end at ~80 s
    assert another_repeat_fits(1e9, 5, None)  # no budget
