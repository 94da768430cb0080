"""The report's headline findings: verdicts computed from the result files, missing ones named."""

import json

import pandas as pd
import pytest

from lamm.analysis.denoising import summarize
from lamm.analysis.findings import denoising_finding, findings, scale_finding, throughput_finding
from lamm.analysis.report import write_report


def _throughput(path, lamm_speedups):
    rows = []
    for batch, speedup in lamm_speedups.items():
        rows.append(
            {
                "sampler": "random",
                "dataset": "joint",
                "batch_per_rank": batch,
                "samples_per_s": 40.0,
                "max_atoms_per_rank": None,
                "speedup_vs_random": 1.0,
            }
        )
        rows.append(
            {
                "sampler": "lamm",
                "dataset": "joint",
                "batch_per_rank": batch,
                "samples_per_s": 40.0 * speedup,
                "max_atoms_per_rank": None,
                "speedup_vs_random": speedup,
            }
        )
    # the capped run: B'=8 under a cap, against random at B'=4 (speedup given by the bench)
    rows.append(
        {
            "sampler": "lamm",
            "dataset": "joint",
            "batch_per_rank": 8,
            "samples_per_s": 50.0,
            "max_atoms_per_rank": 300,
            "speedup_vs_random": 1.25,
        }
    )
    pd.DataFrame(rows).to_csv(path, index=False)


def test_throughput_verdict_needs_lamm_faster_in_every_comparison(tmp_path):
    path = tmp_path / "throughput.csv"
    _throughput(path, {2: 1.10, 4: 1.20})
    finding = throughput_finding(path)
    assert finding.verdict == "supported"
    assert (
        finding.size
        == "equal batch: 1.10-1.20x vs the paper's up to 1.80x; larger batch at the same "
        "memory: 1.25x (the paper: 2.44x on 16 GPUs)"
    )
    assert finding.spread == "1 repeat per case: spread unknown"
    assert "joint B'=2: lamm 44.0 vs random 40.0 samples/s (1.10x)" in finding.measured
    assert (
        "B'=8 capped at 300 atoms/rank: lamm 50.0 vs random at the same memory 40.0 "
        "samples/s (1.25x)" in finding.measured
    )
    assert "Faster in 3 of 3 comparisons" in finding.measured
    _throughput(path, {2: 0.95, 4: 1.20})
    finding = throughput_finding(path)
    # slower with one repeat: today's rule does not support the claim, and no spread shows it wrong
    assert finding.verdict == "not shown" and "Faster in 2 of 3 comparisons" in finding.measured
    # a slower case names its two parts when the table has them: balance and cost per edge
    table = pd.read_csv(path)
    slower = (table["sampler"] == "lamm") & (table["batch_per_rank"] == 2)
    table["efficiency"] = 0.8
    table.loc[
        slower, ["efficiency", "efficiency_speedup_vs_random", "compute_per_edge_vs_random"]
    ] = [0.9, 1.125, 1.2]
    table.to_csv(path, index=False)
    finding = throughput_finding(path)
    assert (
        "(0.95x) [balance 0.90 vs 0.80 efficiency; compute per edge 1.20x random's on the "
        "same structures]" in finding.measured
    )
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
    assert finding.verdict == "supported"
    assert (
        finding.spread
        == "2 repeats per case; lamm's and random's repeats do not overlap in 0 of 2 "
        "equal-batch comparisons"
    )
    assert (
        "joint B'=2: lamm 38.8 vs random 40.0 samples/s (0.97x) (within the spread between "
        "repeats: lamm 33.8-43.8, random 35.0-45.0 samples/s)" in finding.measured
    )
    assert (
        "Faster in 2 of 3 comparisons, slower beyond the spread between repeats (or with "
        "one repeat) in 0." in finding.measured
    )
    # lamm's best repeat below random's worst: slower, the claim fails
    table["samples_per_s_min"] = table["samples_per_s"] - 0.5
    table["samples_per_s_max"] = table["samples_per_s"] + 0.5
    table.to_csv(path, index=False)
    finding = throughput_finding(path)
    assert (
        finding.verdict == "contradicted"
        and "within the spread" not in finding.measured
        and "in 1." in finding.measured
    )
    # faster in only half of the comparisons is not enough, spread or not
    _throughput(path, {2: 0.97, 4: 0.98})
    table = pd.read_csv(path).assign(repeats=2, samples_per_s_min=0.0, samples_per_s_max=100.0)
    table.to_csv(path, index=False)
    assert throughput_finding(path).verdict == "not shown"


def _curve(own, centered):
    return [
        {"step": 10 * k, "epoch": float(k), "val_error_a": o, "val_error_centered_a": c}
        for k, (o, c) in enumerate(zip(own, centered, strict=True))
    ]


def test_denoising_verdict_reads_the_main_metric_and_shows_the_centered_one(tmp_path):
    curves = {
        "baseline": _curve([0.061, 0.051, 0.041, 0.031], [0.06, 0.05, 0.04, 0.03]),
        "relative": _curve([0.06, 0.04, 0.03, 0.02], [0.06, 0.05, 0.04, 0.03]),
    }
    path = tmp_path / "denoising_summary.json"
    path.write_text(json.dumps(summarize(curves, threshold_a=0.03)))
    finding = denoising_finding(path)
    # one run per mode: no spread, so never "supported", however large the gap
    assert finding.verdict == "not shown" and finding.spread == "1 run per mode: spread unknown"
    assert finding.size == "1.58x fewer epochs to 0.031 A vs the paper's 2.00x to 0.03 A"
    assert "relative 0.0200 A vs baseline 0.0310 A" in finding.measured
    assert "1.58x fewer" in finding.measured  # 3.0 / 1.9 epochs to 0.031 A
    assert "to the paper's 0.03 A: n/a" in finding.measured  # the baseline never reaches it
    assert "relative 0.0300 A vs baseline 0.0300 A" in finding.measured  # centered: level
    # the other way round the claim is reported as failing, not hidden
    path.write_text(
        json.dumps(
            summarize(
                {"baseline": curves["relative"], "relative": curves["baseline"]}, threshold_a=0.03
            )
        )
    )
    finding = denoising_finding(path)
    assert (
        finding.verdict == "not shown"
        and "relative 0.0310 A vs baseline 0.0200 A" in finding.measured
    )


def test_multi_gpu_claims_are_not_testable_on_cpu_ranks(tmp_path):
    path = tmp_path / "throughput.csv"
    _throughput(path, {2: 1.1})
    finding = scale_finding(path)
    assert finding.verdict == "not testable here" and "no GPU rows" in finding.measured
    assert scale_finding(tmp_path / "absent.csv").verdict == "not testable here"


@pytest.mark.parametrize(
    "name",
    ["throughput.csv", "denoising_summary.json", "table3_finetune.csv", "sample_efficiency.csv"],
)
def test_missing_results_read_not_run_and_say_so(tmp_path, name):
    (tmp_path / "tables").mkdir()
    items = [
        item
        for item in findings(tmp_path)
        if item.source == name and item.verdict != "not testable here"
    ]
    assert items and all(
        item.verdict == "not run" and item.measured == f"missing: {name}" for item in items
    )


def test_report_leads_with_the_findings(tmp_path):
    results = tmp_path / "results"
    (results / "tables").mkdir(parents=True)
    _throughput(results / "tables" / "throughput.csv", {4: 0.9})
    write_report(results, results / "report.html")
    page = (results / "report.html").read_text()
    assert page.index("Key results") < page.index("Datasets (Table 2")
    assert '<td class="verdict v-not-shown">not shown</td>' in page  # 0.9x with one repeat
    assert '<td class="verdict v-not-run">not run</td>' in page
    assert '<td class="verdict v-not-testable-here">not testable here</td>' in page
