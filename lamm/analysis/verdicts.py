"""Verdicts of the report's findings, and the comparison of an effect with its seed spread.

A finding (`Finding`) states a claim of the paper, the size of the effect here against the
paper's number, the spread it has to stand out of, and one of five verdicts (see
`lamm.analysis.findings`). `Comparison` holds one metric (lower is better: an error, or steps to
a threshold) of a treatment against a reference over seeds, and says whether the effect lies
outside the spread: every treatment seed better than every reference seed, or the reverse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SUPPORTED = "supported"
NOT_SHOWN = "not shown"
CONTRADICTED = "contradicted"
NOT_RUN = "not run"
NOT_TESTABLE = "not testable here"
VERDICTS = (SUPPORTED, NOT_SHOWN, CONTRADICTED, NOT_RUN, NOT_TESTABLE)


@dataclass(frozen=True)
class Finding:
    """One claim of the paper and what this run says about it.

    `size`: direction and size here against the paper's number; `spread`: over seeds or
    repeats (or why it is unknown); `verdict`: one of VERDICTS; `measured`: the numbers behind
    it."""

    claim: str
    size: str
    spread: str
    verdict: str
    measured: str
    source: str

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}: one of {VERDICTS}")


def not_run(claim: str, why: str, source: str) -> Finding:
    return Finding(claim, "n/a", "n/a", NOT_RUN, why, source)


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}x"


def fmt_value(value: float) -> str:
    """3 significant digits, plain (no exponent below 1e6); inf reads 'never' (a threshold not
    reached)."""
    if math.isinf(value):
        return "never"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


@dataclass(frozen=True)
class Comparison:
    """One metric, lower is better, of `treatment` against `reference` over their seeds.

    Values may be inf (a run that never reached a threshold: worse than any step count)."""

    metric: str  # e.g. "energy MAE"
    unit: str  # e.g. "meV/atom"
    reference: tuple[float, ...]
    treatment: tuple[float, ...]
    reference_name: str = "scratch"
    treatment_name: str = "pre-trained"

    @property
    def seeds(self) -> int:
        """Seeds on the side with fewer: the spread is known only when both have two or more."""
        return min(len(self.reference), len(self.treatment))

    @property
    def ratio(self) -> float:
        """Reference mean / treatment mean: > 1 when the treatment is lower (better).
        inf when only the reference never got there, NaN when neither did."""
        reference, treatment = float(np.mean(self.reference)), float(np.mean(self.treatment))
        if math.isinf(reference) and math.isinf(treatment):
            return math.nan
        if math.isinf(reference) or treatment == 0:
            return math.inf
        return reference / treatment

    @property
    def outcome(self) -> str:
        """'better' / 'worse' when every treatment seed is below / above every reference seed,
        'inside' when their ranges overlap, 'unknown' with fewer than 2 seeds on a side."""
        if self.seeds < 2:
            return "unknown"
        if max(self.treatment) < min(self.reference):
            return "better"
        if min(self.treatment) > max(self.reference):
            return "worse"
        return "inside"

    def size(self, paper: float | None, lower: str = "lower", higher: str = "higher") -> str:
        """e.g. 'energy MAE 1.06x lower than scratch vs the paper's 1.12x'."""
        ratio = self.ratio
        if math.isnan(ratio):
            text = f"{self.metric}: neither reached it"
        elif math.isinf(ratio):
            text = (
                f"{self.metric}: {self.reference_name} never reached it, {self.treatment_name} did"
            )
        elif ratio >= 1:
            text = f"{self.metric} {ratio:.2f}x {lower} than {self.reference_name}"
        else:
            text = f"{self.metric} {1 / ratio:.2f}x {higher} than {self.reference_name}"
        if paper is None:
            return text  # the caller says once that the paper has no number
        if math.isfinite(ratio):
            return f"{text} vs the paper's {paper:.2f}x"
        return f"{text} (the paper: {paper:.2f}x {lower})"

    def range_text(self) -> str:
        """e.g. 'energy MAE: scratch 820-880, epoch 2 610-700 meV/atom (apart)'."""

        def span(values: Sequence[float]) -> str:
            low, high = min(values), max(values)
            return fmt_value(low) if low == high else f"{fmt_value(low)}-{fmt_value(high)}"

        where = {
            "better": "apart",
            "worse": "apart, the other way",
            "inside": "overlap",
            "unknown": "spread unknown",
        }[self.outcome]
        return (
            f"{self.metric}: {self.reference_name} {span(self.reference)}, {self.treatment_name} "
            f"{span(self.treatment)} {self.unit} ({where})"
        )


def seed_verdict(comparisons: Sequence[Comparison]) -> str:
    """SUPPORTED when every metric is better outside the spread, CONTRADICTED when one is worse
    outside it, else NOT_SHOWN (inside the spread, or one seed: the spread is unknown)."""
    outcomes = [c.outcome for c in comparisons]
    if not outcomes or "unknown" in outcomes:
        return NOT_SHOWN
    if "worse" in outcomes:
        return CONTRADICTED
    return SUPPORTED if all(o == "better" for o in outcomes) else NOT_SHOWN


def seed_spread(comparisons: Sequence[Comparison]) -> str:
    """'1 seed: spread unknown', or 'n seeds; <metric ranges>'."""
    seeds = min(c.seeds for c in comparisons)
    if seeds < 2:
        return f"{seeds} seed{'s' if seeds != 1 else ''}: spread unknown"
    return f"{seeds} seeds; " + "; ".join(c.range_text() for c in comparisons)
