"""The report's headline: the paper's claims checked against this run's own numbers.

Each finding states the claim, the size of the effect here against the paper's own number
(e.g. "1.06x vs the paper's 1.80x"), the spread over seeds or repeats it has to stand out of,
and a verdict, so a reader sees the outcome without reading the tables:

- "supported": the effect points the paper's way and lies outside the spread (fine-tuning: the
  pre-trained model's worst seed beats scratch's best seed), or, for throughput, the rule of
  `throughput_finding`;
- "not shown": the effect is inside the spread, or the spread is unknown (one seed, one run);
- "contradicted": the opposite effect, outside the spread;
- "not run": the result file is missing (or lacks the runs the claim compares);
- "not testable here": the claim needs hardware this run did not have (several GPUs, nodes).

Read from the result files the stages write:

- load balancing (Fig. 6): `tables/throughput.csv`, samples/s of the lamm sampler against random
  at the same per-rank batch, and of lamm's larger capped batch against random at the reference
  batch (the same memory per rank);
- denoising (Fig. 7): `tables/denoising_summary.json`, final validation error of relative against
  baseline labels on the main metric (each run against its own labels, as in the paper), the
  epochs-to-threshold ratio, and the like-with-like centered error beside it;
- fine-tuning (Table 3) and sample efficiency: `lamm.analysis.findings_finetune`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from lamm.analysis.findings_finetune import finetune_findings
from lamm.analysis.verdicts import (
    CONTRADICTED,
    NOT_SHOWN,
    NOT_TESTABLE,
    SUPPORTED,
    Finding,
    fmt_ratio,
    not_run,
)

__all__ = ["Finding", "denoising_finding", "findings", "scale_finding", "throughput_finding"]

# The paper's own numbers (Oyama et al. 2025; SPEC section 8)
PAPER_THROUGHPUT = 1.80  # Fig. 6: "at most 1.80x", LaMM-S, equal batch, 1 node (4 V100)
PAPER_THROUGHPUT_AT_SCALE = {
    "PaiNN": 2.44,
    "EquiformerV2": 3.38,
}  # 16 GPUs, larger batches the balance allows
PAPER_DENOISING = 2.00  # Fig. 7: epochs to 0.03 A, baseline / relative (1.36 vs 0.68)


def throughput_finding(path: Path) -> Finding:
    """lamm faster than random: every (dataset, batch) comparison of samples/s.

    Supported when lamm is faster in every comparison, or when it is faster in most and none of
    the others is slower beyond the spread between repeats (lamm's best repeat below random's
    worst): a shared machine moves a 2-3 s case by tens of percent, and a pooled 0.97x whose
    repeats overlap random's is no evidence against the claim. Such a case is named. Otherwise
    contradicted when a case is slower beyond a measured spread, else not shown.
    """
    claim = "The LaMM sampler trains faster (samples/s) than random batching (Fig. 6)."
    if not path.is_file():
        return not_run(claim, f"missing: {path.name}", path.name)
    table = pd.read_csv(path)
    capped = (
        table["max_atoms_per_rank"].notna()
        if "max_atoms_per_rank" in table
        else pd.Series(False, index=table.index)
    )
    lamm = table[(table["sampler"] == "lamm")]
    randoms = {
        (r["dataset"], int(r["batch_per_rank"])): r
        for _, r in table[table["sampler"] == "random"].iterrows()
    }
    parts, faster, slower_or_unknown, clearly_slower, outside = [], [], [], [], []
    equal, at_memory, repeats = [], [], []
    for _, row in lamm.iterrows():
        speedup = row.get("speedup_vs_random")
        if speedup is None or not math.isfinite(float(speedup)):
            continue
        speedup = float(speedup)
        # a capped run is compared with random at the reference batch (the same memory per rank)
        cap = (
            f" capped at {int(row['max_atoms_per_rank'])} atoms/rank"
            if capped.loc[row.name]
            else ""
        )
        reference = " at the same memory" if cap else ""
        (at_memory if cap else equal).append(speedup)
        part = (
            f"{row['dataset']} B'={int(row['batch_per_rank'])}{cap}: lamm "
            f"{row['samples_per_s']:.1f} vs random{reference} "
            f"{row['samples_per_s'] / speedup:.1f} samples/s ({fmt_ratio(speedup)})"
        )
        baseline = None if cap else randoms.get((row["dataset"], int(row["batch_per_rank"])))
        spread = _repeat_spread(row, baseline)
        if spread is not None:
            repeats.append(int(row["repeats"]))
            outside.append(
                row["samples_per_s_min"] > baseline["samples_per_s_max"]
                or row["samples_per_s_max"] < baseline["samples_per_s_min"]
            )
        beyond = spread is not None and row["samples_per_s_max"] < baseline["samples_per_s_min"]
        if speedup <= 1.0 and not cap:
            if spread is not None and not beyond:
                part += f" (within the spread between repeats: {spread})"
            part += _why_not_faster(row)
        parts.append(part)
        faster.append(speedup > 1.0)
        # today's rule: with one repeat a slower case counts as slower (no spread to excuse it)
        slower_or_unknown.append(
            speedup <= 1.0 and (spread is None or beyond) if not cap else speedup <= 1.0
        )
        clearly_slower.append(beyond)
    if not faster:
        return not_run(claim, "no lamm run with a random run to compare against", path.name)
    measured = "; ".join(parts) + f". Faster in {sum(faster)} of {len(faster)} comparisons"
    if not all(faster):
        measured += (
            ", slower beyond the spread between repeats (or with one repeat) in "
            f"{sum(slower_or_unknown)}"
        )
    measured += "."
    size, spread_text = _throughput_size_and_spread(equal, at_memory, outside, repeats)
    if all(faster) or (not any(slower_or_unknown) and sum(faster) > len(faster) / 2):
        verdict = SUPPORTED
    else:
        verdict = CONTRADICTED if any(clearly_slower) else NOT_SHOWN
    return Finding(claim, size, spread_text, verdict, measured, path.name)


def _throughput_size_and_spread(
    equal: list[float], at_memory: list[float], outside: list[bool], repeats: list[int]
) -> tuple[str, str]:
    """The effect size against the paper's, and the spread between repeats, as the report
    states them."""
    size = f"equal batch: {_range(equal)} vs the paper's up to {PAPER_THROUGHPUT:.2f}x"
    if at_memory:
        size += (
            f"; larger batch at the same memory: {_range(at_memory)} (the paper: "
            f"{PAPER_THROUGHPUT_AT_SCALE['PaiNN']:.2f}x on 16 GPUs)"
        )
    if outside:
        counts = (
            f"{min(repeats)}" if min(repeats) == max(repeats) else f"{min(repeats)}-{max(repeats)}"
        )
        spread_text = (
            f"{counts} repeats per case; lamm's and random's repeats do not overlap in "
            f"{sum(outside)} of {len(outside)} equal-batch comparisons"
        )
    else:
        spread_text = "1 repeat per case: spread unknown"
    return size, spread_text


def _range(values: list[float]) -> str:
    if not values:
        return "n/a"
    low, high = min(values), max(values)
    return fmt_ratio(low) if math.isclose(low, high) else f"{low:.2f}-{high:.2f}x"


def _repeat_spread(row: pd.Series, baseline: pd.Series | None) -> str | None:
    """'lamm a-b, random c-d samples/s' over the repeats, or None with fewer than 2 repeats."""
    columns = ("samples_per_s_min", "samples_per_s_max", "repeats")
    if (
        baseline is None
        or any(c not in row or pd.isna(row[c]) or pd.isna(baseline[c]) for c in columns)
        or row["repeats"] < 2
    ):
        return None
    return (
        f"lamm {row['samples_per_s_min']:.1f}-{row['samples_per_s_max']:.1f}, "
        f"random {baseline['samples_per_s_min']:.1f}-{baseline['samples_per_s_max']:.1f} samples/s"
    )


def _why_not_faster(row: pd.Series) -> str:
    """The two measured parts of a step time at equal batch: the balance (efficiency, mean rank
    compute / slowest rank's) and the cost of the work itself (compute per edge, on the same
    structures), each against random."""
    reasons = []
    gain = row.get("efficiency_speedup_vs_random")
    if gain is not None and math.isfinite(float(gain)):
        reasons.append(
            f"balance {row['efficiency']:.2f} vs {row['efficiency'] / float(gain):.2f} efficiency"
        )
    dearer = row.get("compute_per_edge_vs_random")
    if dearer is not None and math.isfinite(float(dearer)):
        reasons.append(
            f"compute per edge {fmt_ratio(float(dearer))} random's on the same structures"
        )
    return f" [{'; '.join(reasons)}]" if reasons else ""


def scale_finding(path: Path) -> Finding:
    """The paper's multi-GPU numbers need GPUs and several nodes: testable only when the
    throughput table has CUDA rows at 16 ranks or more (a `device` and a `world_size` column)."""
    claim = (
        f"With balancing, larger batches fit: {PAPER_THROUGHPUT_AT_SCALE['PaiNN']:.2f}x "
        "(PaiNN) and "
        f"{PAPER_THROUGHPUT_AT_SCALE['EquiformerV2']:.2f}x (EquiformerV2) throughput on 16 "
        "GPUs (Fig. 6, section 4.2)."
    )
    table = pd.read_csv(path) if path.is_file() else pd.DataFrame()
    gpu = (
        table[table["device"].astype(str).str.startswith("cuda")]
        if "device" in table
        else table.iloc[0:0]
    )
    if "world_size" in gpu and (gpu["world_size"] >= 16).any():
        return Finding(
            claim,
            "see the throughput rows at 16 GPUs",
            "see throughput.csv",
            NOT_SHOWN,
            "GPU rows at 16+ ranks exist but no rule reduces them to this claim yet",
            path.name,
        )
    if not path.is_file():
        return Finding(
            claim,
            "n/a",
            "n/a",
            NOT_TESTABLE,
            f"{path.name} missing; the claim needs 16 GPUs on 4 nodes",
            path.name,
        )
    ran_on = (
        "no GPU rows"
        if gpu.empty
        else f"GPU rows at most {int(gpu['world_size'].max())} ranks"
        if "world_size" in gpu
        else "GPU rows"
    )
    return Finding(
        claim,
        "n/a",
        "n/a",
        NOT_TESTABLE,
        f"this run measured {ran_on} (throughput.csv); the claim needs 16 GPUs on 4 nodes",
        path.name,
    )


def denoising_finding(path: Path) -> Finding:
    """Relative labels reach the threshold in fewer epochs; against the paper's 2.00x.

    One run per mode has no spread: the verdict is "not shown" whichever way the runs end
    (`repeats` in the summary, when the ablation gains them, is not read yet)."""
    claim = (
        "Relative (LaMM) noise labels reach a validation error sooner than baseline "
        f"labels (Fig. 7; paper: {PAPER_DENOISING:.2f}x sooner to 0.03 A)."
    )
    if not path.is_file():
        return not_run(claim, f"missing: {path.name}", path.name)
    summary: dict[str, Any] = json.loads(path.read_text())
    main = summary[summary["main_metric"]]
    final = {mode: main["modes"][mode]["final_error_a"] for mode in ("baseline", "relative")}
    common, paper = main["common_threshold"], main["threshold"]
    measured = (
        "final validation error (each run against its own labels): relative "
        f"{final['relative']:.4f} A vs "
        f"baseline {final['baseline']:.4f} A; epochs to {common['value_a']:.4f} A (the "
        "lowest both reach): "
        f"{fmt_ratio(common['ratio'])} fewer with relative labels; to the paper's "
        f"{paper['value_a']:.3g} A: "
        f"{fmt_ratio(paper['ratio'])}."
    )
    centered = summary.get("val_error_centered_a")
    if centered:
        c_final = {
            mode: centered["modes"][mode]["final_error_a"] for mode in ("baseline", "relative")
        }
        measured += (
            " Like with like (mean displacement removed from both): relative "
            f"{c_final['relative']:.4f} A vs "
            f"baseline {c_final['baseline']:.4f} A; the gap above is the baseline labels' "
            "unpredictable mean."
        )
    # the paper's threshold when both runs reach it, else the lowest error both reach
    ratio, value = (
        (paper["ratio"], paper["value_a"])
        if paper["ratio"] is not None
        else (common["ratio"], common["value_a"])
    )
    size = (
        f"{fmt_ratio(ratio)} fewer epochs to {value:.3g} A vs the paper's "
        f"{PAPER_DENOISING:.2f}x to 0.03 A"
    )
    return Finding(claim, size, "1 run per mode: spread unknown", NOT_SHOWN, measured, path.name)


def findings(results: str | os.PathLike, downstream: str | None = None) -> list[Finding]:
    """The headline findings of a results directory, in the paper's order; `downstream` names
    the first downstream set in the fine-tuning claims (its tables keep the unsuffixed names)."""
    tables = Path(results) / "tables"
    return [
        throughput_finding(tables / "throughput.csv"),
        scale_finding(tables / "throughput.csv"),
        denoising_finding(tables / "denoising_summary.json"),
        *finetune_findings(tables, downstream=downstream),
    ]
