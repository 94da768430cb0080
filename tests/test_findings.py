"""The report's headline findings: verdicts computed from the result files, missing ones named."""

import json

import pandas as pd
import pytest

from lamm.analysis.denoising import summarize
from lamm.analysis.findings import denoising_finding, findings, finetune_finding, throughput_finding
from lamm.analysis.report import write_report


def _throughput(path, lamm_speedups):
    rows = []
    for batch, speedup in lamm_speedups.items():
        rows.append({"sampler": "random", "dataset": "joint", "batch_per_rank": batch, "samples_per_s": 40.0,
                     "max_atoms_per_rank": None, "speedup_vs_random": 1.0})
        rows.append({"sampler": "lamm", "dataset": "joint", "batch_per_rank": batch, "samples_per_s": 40.0 * speedup,
                     "max_atoms_per_rank": None, "speedup_vs_random": speedup})
    # the capped run: B'=8 under a cap, against random at B'=4 (speedup given by the bench)
    rows.append({"sampler": "lamm", "dataset": "joint", "batch_per_rank": 8, "samples_per_s": 50.0,
                 "max_atoms_per_rank": 300, "speedup_vs_random": 1.25})
    pd.DataFrame(rows).to_csv(path, index=False)


def test_throughput_verdict_needs_lamm_faster_in_every_comparison(tmp_path):
    path = tmp_path / "throughput.csv"
    _throughput(path, {2: 1.10, 4: 1.20})
    finding = throughput_finding(path)
    assert finding.holds is True
    assert "joint B'=2: lamm 44.0 vs random 40.0 samples/s (1.10x)" in finding.measured
    assert "B'=8 capped at 300 atoms/rank: lamm 50.0 vs random at the same memory 40.0 samples/s (1.25x)" in finding.measured
    assert "Faster in 3 of 3 comparisons" in finding.measured
    _throughput(path, {2: 0.95, 4: 1.20})
    finding = throughput_finding(path)
    assert finding.holds is False and "Faster in 2 of 3 comparisons" in finding.measured
    # a slower case names its two parts when the table has them: balance and cost per edge
    table = pd.read_csv(path)
    slower = (table["sampler"] == "lamm") & (table["batch_per_rank"] == 2)
    table["efficiency"] = 0.8
    table.loc[slower, ["efficiency", "efficiency_speedup_vs_random", "compute_per_edge_vs_random"]] = [0.9, 1.125, 1.2]
    table.to_csv(path, index=False)
    finding = throughput_finding(path)
    assert "(0.95x) [balance 0.90 vs 0.80 efficiency; compute per edge 1.20x random's on the same structures]" in finding.measured
    assert finding.measured.count("[balance") == 1  # the faster cases carry no explanation


def test_throughput_slower_case_within_the_repeat_spread_is_named_not_counted_against(tmp_path):
    path = tmp_path / "throughput.csv"
    _throughput(path, {2: 0.97, 4: 1.20})
    table = pd.read_csv(path)
    table["repeats"] = 2
    table["samples_per_s_min"] = table["samples_per_s"] - 5.0
    table["samples_per_s_max"] = table["samples_per_s"] + 5.0
    table.to_csv(path, index=False)
    finding = throughput_finding(path)
    assert finding.holds is True
    assert "joint B'=2: lamm 38.8 vs random 40.0 samples/s (0.97x) (within the spread between repeats: lamm 33.8-43.8, random 35.0-45.0 samples/s)" in finding.measured
    assert "Faster in 2 of 3 comparisons, slower beyond the spread between repeats (or with one repeat) in 0." in finding.measured
    # lamm's best repeat below random's worst: slower, the claim fails
    table["samples_per_s_min"] = table["samples_per_s"] - 0.5
    table["samples_per_s_max"] = table["samples_per_s"] + 0.5
    table.to_csv(path, index=False)
    finding = throughput_finding(path)
    assert finding.holds is False and "within the spread" not in finding.measured and "in 1." in finding.measured
    # faster in only half of the comparisons is not enough, spread or not
    _throughput(path, {2: 0.97, 4: 0.98})
    table = pd.read_csv(path).assign(repeats=2, samples_per_s_min=0.0, samples_per_s_max=100.0)
    table.to_csv(path, index=False)
    assert throughput_finding(path).holds is False


def _curve(own, centered):
    return [{"step": 10 * k, "epoch": float(k), "val_error_a": o, "val_error_centered_a": c} for k, (o, c) in enumerate(zip(own, centered))]


def test_denoising_verdict_reads_the_main_metric_and_shows_the_centered_one(tmp_path):
    curves = {
        "baseline": _curve([0.061, 0.051, 0.041, 0.031], [0.06, 0.05, 0.04, 0.03]),
        "relative": _curve([0.06, 0.04, 0.03, 0.02], [0.06, 0.05, 0.04, 0.03]),
    }
    path = tmp_path / "denoising_summary.json"
    path.write_text(json.dumps(summarize(curves, threshold_a=0.03)))
    finding = denoising_finding(path)
    assert finding.holds is True
    assert "relative 0.0200 A vs baseline 0.0310 A" in finding.measured
    assert "1.58x fewer" in finding.measured  # 3.0 / 1.9 epochs to 0.031 A
    assert "to the paper's 0.03 A: n/a" in finding.measured  # the baseline never reaches it
    assert "relative 0.0300 A vs baseline 0.0300 A" in finding.measured  # centered: level
    # the other way round the claim is reported as failing, not hidden
    path.write_text(json.dumps(summarize({"baseline": curves["relative"], "relative": curves["baseline"]}, threshold_a=0.03)))
    assert denoising_finding(path).holds is False


def test_finetune_verdict_compares_the_best_checkpoint_with_scratch(tmp_path):
    path = tmp_path / "table3_finetune.csv"
    table = pd.DataFrame({"checkpoint": ["scratch", "1", "2"], "energy_mae_mev_per_atom": [857.0, 700.0, 648.0],
                          "forces_mae_mev_per_a": [716.0, 720.0, 701.0]})
    table.to_csv(path, index=False)
    finding = finetune_finding(path)
    assert finding.holds is True and "checkpoint 2" in finding.measured and "648.0 meV/atom" in finding.measured
    table.loc[2, "forces_mae_mev_per_a"] = 730.0  # still the best by the sum of ratios, now worse than scratch on forces
    table.to_csv(path, index=False)
    assert finetune_finding(path).holds is False
    pd.DataFrame({"checkpoint": ["scratch"], "energy_mae_mev_per_atom": [1.0], "forces_mae_mev_per_a": [1.0]}).to_csv(path, index=False)
    assert finetune_finding(path).holds is None


@pytest.mark.parametrize("name", ["throughput.csv", "denoising_summary.json", "table3_finetune.csv"])
def test_missing_results_give_no_verdict_and_say_so(tmp_path, name):
    (tmp_path / "tables").mkdir()
    items = {item.source: item for item in findings(tmp_path)}
    assert items[name].holds is None and items[name].measured == f"missing: {name}"


def test_report_leads_with_the_findings(tmp_path):
    results = tmp_path / "results"
    (results / "tables").mkdir(parents=True)
    _throughput(results / "tables" / "throughput.csv", {4: 0.9})
    write_report(results, results / "report.html")
    page = (results / "report.html").read_text()
    assert page.index("Key results") < page.index("Datasets (Table 2")
    assert '<td class="fails">not supported</td>' in page and '<td class="missing">no result</td>' in page
