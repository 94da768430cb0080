"""The report's headline findings: verdicts computed from the result files, missing ones named."""

import json

import pandas as pd
import pytest

from lamm.analysis.denoising import summarize
from lamm.analysis.findings import (
    denoising_finding,
    findings,
    larger_batch_finding,
    scale_finding,
    throughput_finding,
)
from lamm.analysis.report import write_report


def _row(sampler, batch, rate, repeats, half_width, cap=None, reference=None):
    return {
        "sampler": sampler,
        "dataset": "joint",
        "batch_per_rank": batch,
        "samples_per_s": rate,
        "samples_per_s_min": rate - half_width,
        "samples_per_s_max": rate + half_width,
        "repeats": repeats,
        "max_atoms_per_rank": cap,
        "reference_batch_per_rank": reference,
    }


def _throughput(path, lamm_speedups, repeats=1, half_width=0.0, larger=None):
    """random at 40 samples/s per batch, lamm at 40 * speedup; with `larger` = (B', speedup vs
    random at B'=4, random's rate at B' or None) the capped lamm run and random at B' if given."""
    rows = []
    for batch, speedup in lamm_speedups.items():
        rows.append(_row("random", batch, 40.0, repeats, half_width))
        rows.append(_row("lamm", batch, 40.0 * speedup, repeats, half_width))
    if larger is not None:
        batch, speedup, random_rate = larger
        rows.append(_row("lamm", batch, 40.0 * speedup, repeats, half_width, 300, 4))
        if random_rate is not None:
            rows.append(_row("random", batch, random_rate, repeats, half_width))
    pd.DataFrame(rows).to_csv(path, index=False)


def test_throughput_with_one_repeat_is_never_supported(tmp_path):
    path = tmp_path / "throughput.csv"
    _throughput(path, {2: 1.10, 4: 1.20}, larger=(8, 1.25, None))
    finding = throughput_finding(path)
    assert finding.verdict_text == "not shown (n too small)"
    assert finding.size == "1.10-1.20x vs the paper's up to 1.80x"
    assert finding.spread == "1 repeat per case: n too small (needs 3 per side)"
    assert (
        "joint B'=2: lamm 44.0 vs random 40.0 samples/s (1.10x; repeats 44.0-44.0 vs 40.0-40.0, "
        "n too small)" in finding.measured
    )
    assert "Faster in 2 of 2 comparisons" in finding.measured
    larger = larger_batch_finding(path)
    assert larger.verdict_text == "not shown (n too small)"
    assert larger.size == (
        "1.25x (batch and balance together: against random at B'=4, the same memory)"
    )


def test_throughput_supported_only_when_every_case_is_apart_with_three_repeats(tmp_path):
    path = tmp_path / "throughput.csv"
    _throughput(path, {2: 1.10, 4: 1.20}, repeats=3, half_width=1.0)
    finding = throughput_finding(path)
    assert finding.verdict == "supported"
    assert finding.spread == "3 repeats per case; apart in 2 of 2 equal-batch comparisons"
    # 0.97x with repeats overlapping random's: the old rule called this supported
    _throughput(path, {2: 0.97, 4: 1.20}, repeats=3, half_width=5.0)
    finding = throughput_finding(path)
    assert finding.verdict_text == "not shown (inside the spread)"
    assert (
        "joint B'=2: lamm 38.8 vs random 40.0 samples/s (0.97x; repeats 33.8-43.8 vs 35.0-45.0, "
        "overlap)" in finding.measured
    )
    # the same three repeats apart but only two of them: n too small, not supported
    _throughput(path, {2: 1.10, 4: 1.20}, repeats=2, half_width=1.0)
    assert throughput_finding(path).verdict_text == "not shown (n too small)"
    # lamm's best repeat below random's worst: slower, the claim fails
    _throughput(path, {2: 0.90, 4: 1.20}, repeats=3, half_width=0.5)
    finding = throughput_finding(path)
    assert finding.verdict == "contradicted" and "apart, slower)" in finding.measured


def test_a_slower_case_names_its_two_parts(tmp_path):
    path = tmp_path / "throughput.csv"
    _throughput(path, {2: 0.95, 4: 1.20})
    table = pd.read_csv(path)
    slower = (table["sampler"] == "lamm") & (table["batch_per_rank"] == 2)
    table["efficiency"] = 0.8
    table.loc[
        slower, ["efficiency", "efficiency_speedup_vs_random", "compute_per_edge_vs_random"]
    ] = [0.9, 1.125, 1.2]
    table.to_csv(path, index=False)
    finding = throughput_finding(path)
    assert (
        "n too small) [balance 0.90 vs 0.80 efficiency; compute per edge 1.20x random's on the "
        "same structures]" in finding.measured
    )
    assert finding.measured.count("[balance") == 1  # the faster cases carry no explanation


def test_the_larger_batch_is_judged_against_random_at_the_same_batch_when_measured(tmp_path):
    path = tmp_path / "throughput.csv"
    # lamm B'=8 capped at 50 samples/s; random B'=4 at 40 (1.25x), random B'=8 at 48 (1.04x)
    _throughput(path, {4: 1.20}, repeats=3, half_width=0.5, larger=(8, 1.25, 48.0))
    finding = larger_batch_finding(path)
    assert finding.verdict == "supported"
    assert finding.size == "1.04x (balance alone: against random at the same batch B'=8)"
    assert (
        "joint B'=8 capped at 300 atoms/rank: lamm 50.0 vs random at B'=8 48.0 samples/s (1.04x; "
        "repeats 49.5-50.5 vs 47.5-48.5, apart); against random at B'=4 (same memory): 1.25x"
        in finding.measured
    )
    assert finding.spread == "3 repeats per case; apart in 1 of 1 larger-batch comparisons"
    # the larger batch's gain over random at B'=8 inside the spread: not shown, whatever the
    # gain over the smaller batch
    _throughput(path, {4: 1.20}, repeats=3, half_width=2.0, larger=(8, 1.25, 48.0))
    assert larger_batch_finding(path).verdict_text == "not shown (inside the spread)"
    # without random at B'=8: against B'=4, said to be batch and balance together
    _throughput(path, {4: 1.20}, repeats=3, half_width=0.5, larger=(8, 1.25, None))
    finding = larger_batch_finding(path)
    assert finding.verdict == "supported" and "batch and balance together" in finding.size
    # an older table without reference_batch_per_rank: random's largest batch below the capped one
    pd.read_csv(path).drop(columns="reference_batch_per_rank").to_csv(path, index=False)
    assert larger_batch_finding(path).size == finding.size


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
    # one run per mode: n too small, so never "supported", however large the gap
    assert finding.verdict_text == "not shown (n too small)"
    assert finding.spread == "1 run per mode: n too small (needs 3 per side)"
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
    assert '<td class="verdict v-not-shown">not shown (n too small)</td>' in page  # 1 repeat
    assert '<td class="verdict v-not-run">not run</td>' in page
    assert '<td class="verdict v-not-testable-here">not testable here</td>' in page
