"""The report's headline: the paper's claims checked against this run's own numbers.

Each finding states the claim, the size of the effect here against the paper's own number
(e.g. "1.06x vs the paper's 1.80x"), the spread over seeds or repeats it has to stand out of,
and a verdict, so a reader sees the outcome without reading the tables. Every verdict follows
the one rule of `lamm.analysis.verdicts`:

- "supported": the effect points the paper's way and lies outside the spread (the treatment's
  worst seed or repeat beats the reference's best), with at least 3 seeds or repeats per side;
- "not shown": inside the spread, or too few seeds or repeats ("not shown (n too small)"), or a
  diverged run that, counted as a failure, breaks the rule;
- "contradicted": the opposite effect, outside the spread (3 per side as well);
- "not run": the result file is missing (or lacks the runs the claim compares);
- "not testable here": the claim needs hardware this run did not have (several GPUs, nodes).

Read from the result files the stages write:

- load balancing (Fig. 6): `tables/throughput.csv`, samples/s of the lamm sampler against random
  at the same per-rank batch, each case over its repeats; and, as its own claim, lamm's larger
  capped batch against random at that batch (the balance alone) when the benchmark ran it, else
  against random at the batch of the same memory (batch and balance together);
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
    BETTER,
    INSIDE,
    MIN_N,
    NOT_SHOWN,
    NOT_TESTABLE,
    TOO_FEW,
    TOO_SMALL,
    WORSE,
    Comparison,
    Finding,
    Side,
    fmt_ratio,
    not_run,
    verdict,
)

__all__ = [
    "Finding",
    "denoising_finding",
    "findings",
    "larger_batch_finding",
    "scale_finding",
    "throughput_finding",
]

# The paper's own numbers (Oyama et al. 2025; SPEC section 8)
PAPER_THROUGHPUT = 1.80  # Fig. 6: "at most 1.80x", LaMM-S, equal batch, 1 node (4 V100)
PAPER_THROUGHPUT_AT_SCALE = {
    "PaiNN": 2.44,
    "EquiformerV2": 3.38,
}  # 16 GPUs, larger batches the balance allows
PAPER_DENOISING = 2.00  # Fig. 7: epochs to 0.03 A, baseline / relative (1.36 vs 0.68)


def _read_throughput(path: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(the table, its uncapped rows, lamm's capped rows)."""
    table = pd.read_csv(path)
    if "max_atoms_per_rank" not in table:
        table["max_atoms_per_rank"] = math.nan
    capped = table["max_atoms_per_rank"].notna()
    return table, table[~capped], table[capped & (table["sampler"] == "lamm")]


def _side(name: str, row: pd.Series) -> Side:
    """samples/s over the repeats of one case: min-max and their count (1 for an old table)."""
    rate = float(row["samples_per_s"])
    repeats = row.get("repeats")
    n = 1 if repeats is None or pd.isna(repeats) else int(repeats)
    low, high = row.get("samples_per_s_min"), row.get("samples_per_s_max")
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        low = high = rate
    return Side(name, float(low), float(high), n, 0, rate)


def _case(row: pd.Series, baseline: pd.Series, label: str) -> Comparison:
    return Comparison(label, "samples/s", _side("random", baseline), _side("lamm", row), True)


def _case_text(comparison: Comparison, against: str = "random") -> str:
    """e.g. "joint B'=2: lamm 44.0 vs random 40.0 samples/s (1.10x; repeats 43.0-45.0 vs
    39.0-41.0, apart)"."""
    lamm, random = comparison.treatment, comparison.reference
    where = {BETTER: "apart", WORSE: "apart, slower", INSIDE: "overlap", TOO_FEW: TOO_SMALL}
    return (
        f"{comparison.metric}: lamm {lamm.mean:.1f} vs {against} {random.mean:.1f} samples/s "
        f"({fmt_ratio(comparison.ratio)}; repeats {lamm.low:.1f}-{lamm.high:.1f} vs "
        f"{random.low:.1f}-{random.high:.1f}, {where[comparison.outcome]})"
    )


def _repeats_text(comparisons: list[Comparison], what: str) -> str:
    """'3 repeats per case; apart in 2 of 3 equal-batch comparisons', or n too small."""
    counts = [c.n for c in comparisons]
    low, high = min(counts), max(counts)
    head = f"{low}" if low == high else f"{low}-{high}"
    head += f" repeat{'s' if high != 1 else ''} per case"
    if low < MIN_N:
        return f"{head}: {TOO_SMALL} (needs {MIN_N} per side)"
    apart = sum(c.outcome in (BETTER, WORSE) for c in comparisons)
    return f"{head}; apart in {apart} of {len(comparisons)} {what}"


def throughput_finding(path: Path) -> Finding:
    """lamm faster than random at the same per-rank batch: every (dataset, batch) case.

    The rule of `lamm.analysis.verdicts` per case (lamm's repeats all faster than random's, 3
    repeats at least) and overall (supported only when every case is; contradicted when one is
    slower beyond the spread). A case at or below 1x names the two measured parts of its step
    time (balance, cost per edge)."""
    claim = (
        "The LaMM sampler trains faster (samples/s) than random batching at the same batch "
        "(Fig. 6)."
    )
    topic = "Fig. 6 throughput, equal batch"
    if not path.is_file():
        return not_run(claim, f"missing: {path.name}", path.name, topic)
    _, uncapped, _ = _read_throughput(path)
    randoms = {
        (r["dataset"], int(r["batch_per_rank"])): r
        for _, r in uncapped[uncapped["sampler"] == "random"].iterrows()
    }
    comparisons, parts = [], []
    for _, row in uncapped[uncapped["sampler"] == "lamm"].iterrows():
        baseline = randoms.get((row["dataset"], int(row["batch_per_rank"])))
        if baseline is None:
            continue
        comparison = _case(row, baseline, f"{row['dataset']} B'={int(row['batch_per_rank'])}")
        comparisons.append(comparison)
        slower = comparison.ratio <= 1.0
        parts.append(_case_text(comparison) + (_why_not_faster(row) if slower else ""))
    if not comparisons:
        return not_run(claim, "no lamm run with a random run to compare against", path.name, topic)
    ratios = [c.ratio for c in comparisons]
    faster = sum(r > 1.0 for r in ratios)
    measured = "; ".join(parts) + f". Faster in {faster} of {len(ratios)} comparisons."
    size = f"{_range(ratios)} vs the paper's up to {PAPER_THROUGHPUT:.2f}x"
    decided, why = verdict(comparisons)
    spread = _repeats_text(comparisons, "equal-batch comparisons")
    return Finding(claim, size, spread, decided, measured, path.name, why, topic)


def _reference_batch(row: pd.Series, randoms: dict[int, pd.Series]) -> int | None:
    """The batch whose memory the capped run's cap matches: the table's `reference_batch_per_rank`,
    else (older tables) random's largest batch below the capped one."""
    given = row.get("reference_batch_per_rank")
    if given is not None and not pd.isna(given):
        return int(given)
    below = [b for b in randoms if b < int(row["batch_per_rank"])]
    return max(below) if below else None


def larger_batch_finding(path: Path) -> Finding:
    """lamm at a larger batch under random's memory per rank at a smaller batch, judged against
    random at the same larger batch when the table has it (the balance at that batch; random
    there needs more memory, which a CPU has), else against random at the smaller batch, the
    same memory: batch and balance together, said so."""
    claim = (
        "With balancing, a larger per-rank batch fits under random's memory per rank and trains "
        f"faster (Fig. 6, section 4.2; the paper: {PAPER_THROUGHPUT_AT_SCALE['PaiNN']:.2f}x PaiNN "
        f"on "
        "16 GPUs)."
    )
    topic = "Fig. 6 throughput, larger batch"
    if not path.is_file():
        return not_run(claim, f"missing: {path.name}", path.name, topic)
    _, uncapped, capped = _read_throughput(path)
    comparisons, parts, kinds = [], [], set()
    for _, row in capped.iterrows():
        randoms = {
            int(r["batch_per_rank"]): r
            for _, r in uncapped[
                (uncapped["sampler"] == "random") & (uncapped["dataset"] == row["dataset"])
            ].iterrows()
        }
        batch, reference = int(row["batch_per_rank"]), _reference_batch(row, randoms)
        label = f"{row['dataset']} B'={batch} capped at {int(row['max_atoms_per_rank'])} atoms/rank"
        if batch in randoms:
            comparison = _case(row, randoms[batch], label)
            kinds.add(f"balance alone: against random at the same batch B'={batch}")
            text = _case_text(comparison, f"random at B'={batch}")
            if reference in randoms:
                memory = _case(row, randoms[reference], "")
                text += (
                    f"; against random at B'={reference} (same memory): {fmt_ratio(memory.ratio)}"
                )
        elif reference in randoms:
            comparison = _case(row, randoms[reference], label)
            kinds.add(
                f"batch and balance together: against random at B'={reference}, the same memory"
            )
            text = _case_text(comparison, f"random at B'={reference}")
        else:
            continue
        comparisons.append(comparison)
        parts.append(text)
    if not comparisons:
        return not_run(
            claim, "no capped lamm run with a random run to compare against", path.name, topic
        )
    size = f"{_range([c.ratio for c in comparisons])} ({'; '.join(sorted(kinds))})"
    decided, why = verdict(comparisons)
    spread = _repeats_text(comparisons, "larger-batch comparisons")
    return Finding(claim, size, spread, decided, "; ".join(parts) + ".", path.name, why, topic)


def _range(values: list[float]) -> str:
    if not values:
        return "n/a"
    low, high = min(values), max(values)
    return fmt_ratio(low) if math.isclose(low, high) else f"{low:.2f}-{high:.2f}x"


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
    topic = "Fig. 6 throughput on 16 GPUs"
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
            topic=topic,
        )
    if not path.is_file():
        return Finding(
            claim,
            "n/a",
            "n/a",
            NOT_TESTABLE,
            f"{path.name} missing; the claim needs 16 GPUs on 4 nodes",
            path.name,
            topic=topic,
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
        topic=topic,
    )


def denoising_finding(path: Path) -> Finding:
    """Relative labels reach the threshold in fewer epochs; against the paper's 2.00x.

    One run per mode: "not shown (n too small)" whichever way the runs end (`repeats` in the
    summary, when the ablation gains them, is not read yet)."""
    claim = (
        "Relative (LaMM) noise labels reach a validation error sooner than baseline labels "
        f"(Fig. 7; paper: {PAPER_DENOISING:.2f}x sooner to 0.03 A)."
    )
    topic = "Fig. 7 denoising"
    if not path.is_file():
        return not_run(claim, f"missing: {path.name}", path.name, topic)
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
    spread = f"1 run per mode: {TOO_SMALL} (needs {MIN_N} per side)"
    return Finding(claim, size, spread, NOT_SHOWN, measured, path.name, TOO_SMALL, topic)


def findings(results: str | os.PathLike, downstream: str | None = None) -> list[Finding]:
    """The headline findings of a results directory, in the paper's order; `downstream` names
    the first downstream set in the fine-tuning claims (its tables keep the unsuffixed names)."""
    tables = Path(results) / "tables"
    return [
        throughput_finding(tables / "throughput.csv"),
        larger_batch_finding(tables / "throughput.csv"),
        scale_finding(tables / "throughput.csv"),
        denoising_finding(tables / "denoising_summary.json"),
        *finetune_findings(tables, downstream=downstream),
    ]
