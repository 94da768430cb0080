"""The verdict rule of the report's findings, in one place.

A finding (`Finding`) states a claim of the paper, the size of the effect here against the
paper's number, the spread it has to stand out of, and one of five verdicts. A `Comparison` holds
one metric of a treatment against a reference over seeds or repeats (`Side`: their range, how
many ran, how many diverged). The rule (`judge`, `verdict`):

- "supported": the effect points the claimed way and lies outside the spread: the treatment's
  worst seed beats the reference's best (their min-max ranges do not overlap), with at least
  `MIN_N` seeds or repeats on each side (two seeds separate cleanly by chance 1 time in 6,
  three 1 time in 20);
- "contradicted": the same, the other way, with no diverged run;
- "not shown": the ranges overlap, or a side has fewer than `MIN_N` ("not shown (n too small)").

A diverged run (NaN: no number) counts on its side as a failure, the worst value there is (+inf
when lower is better): the claim is supported only if the rule still holds with it, else it
reads "not shown (a diverged run)" (never "contradicted": a divergence is reported as such), and
the spread names it. Ranges are taken with numpy over the filled values, never with Python's
max/min, whose result with a NaN depends on where the NaN sits.
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

MIN_N = 3  # seeds or repeats per side for a verdict other than "not shown"

# outcomes of one comparison
BETTER, WORSE, INSIDE, TOO_FEW = "better", "worse", "inside", "too few"
TOO_SMALL = "n too small"
INSIDE_SPREAD = "inside the spread"
DIVERGED = "a diverged run"


@dataclass(frozen=True)
class Finding:
    """One claim of the paper and what this run says about it.

    `size`: direction and size here against the paper's number; `spread`: over seeds or
    repeats (or why it is unknown); `verdict`: one of VERDICTS, `why` its reason when "not
    shown" (e.g. "n too small"); `measured`: the numbers behind it; `topic`: a short name."""

    claim: str
    size: str
    spread: str
    verdict: str
    measured: str
    source: str
    why: str = ""
    topic: str = ""

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"unknown verdict {self.verdict!r}: one of {VERDICTS}")

    @property
    def verdict_text(self) -> str:
        """e.g. 'not shown (n too small)'."""
        return f"{self.verdict} ({self.why})" if self.why else self.verdict


def not_run(claim: str, why: str, source: str, topic: str = "") -> Finding:
    return Finding(claim, "n/a", "n/a", NOT_RUN, why, source, topic=topic)


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.2f}x"


def fmt_value(value: float) -> str:
    """3 significant digits, plain (no exponent below 1e6); inf reads 'never' (a threshold not
    reached), NaN 'diverged' (a run without a number)."""
    if math.isnan(value):
        return "diverged"
    if math.isinf(value):
        return "never"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


@dataclass(frozen=True)
class Side:
    """One side of a comparison: the range (`low`, `high`) of the runs that have a number, how
    many ran (`n`, diverged included), how many diverged, and the mean of the others."""

    name: str
    low: float
    high: float
    n: int
    diverged: int = 0
    mean: float = math.nan

    @classmethod
    def of(cls, name: str, values: Sequence[float]) -> Side:
        """From one value per seed; NaN marks a diverged run (inf is a value: 'never reached')."""
        array = np.asarray(values, dtype=np.float64)
        kept = array[~np.isnan(array)]
        if kept.size == 0:
            return cls(name, math.nan, math.nan, int(array.size), int(array.size))
        return cls(
            name,
            float(kept.min()),
            float(kept.max()),
            int(array.size),
            int(array.size - kept.size),
            float(kept.mean()),
        )

    def bounds(self, higher_is_better: bool = False) -> tuple[float, float]:
        """The range the rule reads: a diverged run counts as the worst value there is."""
        if not self.diverged:
            return self.low, self.high
        worst = -math.inf if higher_is_better else math.inf
        if self.diverged == self.n:
            return worst, worst
        return (worst, self.high) if higher_is_better else (self.low, worst)

    def span(self) -> str:
        """'610-640', '610' when all equal, with the diverged runs named."""
        text = ""
        if self.n > self.diverged:
            low, high = fmt_value(self.low), fmt_value(self.high)
            text = low if low == high else f"{low}-{high}"
        if self.diverged:
            text += f"{' + ' if text else ''}{self.diverged} diverged"
        return text or "none"


def judge(reference: Side, treatment: Side, higher_is_better: bool = False) -> str:
    """BETTER / WORSE when the treatment's whole range lies beyond / short of the reference's
    in the claimed direction, INSIDE when they overlap, TOO_FEW with fewer than MIN_N on a side."""
    if min(reference.n, treatment.n) < MIN_N:
        return TOO_FEW
    (r_low, r_high), (t_low, t_high) = (
        reference.bounds(higher_is_better),
        treatment.bounds(higher_is_better),
    )
    if higher_is_better:
        better, worse = t_low > r_high, t_high < r_low
    else:
        better, worse = t_high < r_low, t_low > r_high
    return BETTER if better else WORSE if worse else INSIDE


@dataclass(frozen=True)
class Comparison:
    """One metric of a treatment against a reference over seeds or repeats.

    Lower is better unless `higher_is_better` (samples/s). Build it from per-seed values with
    `Comparison.of`, or from ranges (`Side`) when only min, max and a count are stored."""

    metric: str  # e.g. "energy MAE"
    unit: str  # e.g. "meV/atom"
    reference: Side
    treatment: Side
    higher_is_better: bool = False

    @classmethod
    def of(
        cls,
        metric: str,
        unit: str,
        reference: Sequence[float],
        treatment: Sequence[float],
        reference_name: str = "scratch",
        treatment_name: str = "pre-trained",
        higher_is_better: bool = False,
    ) -> Comparison:
        return cls(
            metric,
            unit,
            Side.of(reference_name, reference),
            Side.of(treatment_name, treatment),
            higher_is_better,
        )

    @property
    def n(self) -> int:
        """Runs on the side with fewer."""
        return min(self.reference.n, self.treatment.n)

    @property
    def diverged(self) -> int:
        return self.reference.diverged + self.treatment.diverged

    @property
    def outcome(self) -> str:
        return judge(self.reference, self.treatment, self.higher_is_better)

    @property
    def ratio(self) -> float:
        """How many times better the treatment's mean is (> 1: better): reference / treatment
        when lower is better, treatment / reference otherwise. inf when only the reference never
        got there, NaN when neither did or a side has no number."""
        better, worse = (self.treatment.mean, self.reference.mean)
        if not self.higher_is_better:
            better, worse = worse, better
        if math.isnan(better) or math.isnan(worse) or (math.isinf(better) and math.isinf(worse)):
            return math.nan
        if math.isinf(better) or worse == 0:
            return math.inf
        return better / worse

    def size(self, paper: float | None, lower: str = "lower", higher: str = "higher") -> str:
        """e.g. 'energy MAE 1.06x lower than scratch vs the paper's 1.12x'."""
        ratio, name = self.ratio, self.reference.name
        if (
            math.isnan(ratio)
            and math.isinf(self.reference.mean)
            and math.isinf(self.treatment.mean)
        ):
            text = f"{self.metric}: neither reached it"
        elif math.isnan(ratio):
            text = f"{self.metric}: every run of a side diverged"
        elif math.isinf(ratio):
            text = f"{self.metric}: {name} never reached it, {self.treatment.name} did"
        elif ratio >= 1:
            text = f"{self.metric} {ratio:.2f}x {lower} than {name}"
        else:
            text = f"{self.metric} {1 / ratio:.2f}x {higher} than {name}"
        if paper is None:
            return text  # the caller says once that the paper has no number
        if math.isfinite(ratio):
            return f"{text} vs the paper's {paper:.2f}x"
        return f"{text} (the paper: {paper:.2f}x {lower})"

    def range_text(self) -> str:
        """e.g. 'energy MAE: scratch 820-880, epoch 2 610-700 meV/atom (apart)'."""
        where = {
            BETTER: "apart",
            WORSE: "apart, the other way",
            INSIDE: "overlap",
            TOO_FEW: TOO_SMALL,
        }[self.outcome]
        reference, treatment = self.reference.span(), self.treatment.span()
        if reference == treatment == "never":  # no number to give a unit to
            return (
                f"{self.metric}: reached by neither {self.reference.name} nor {self.treatment.name}"
            )
        return (
            f"{self.metric}: {self.reference.name} {reference}, {self.treatment.name} "
            f"{treatment} {self.unit} ({where})"
        )


def verdict(comparisons: Sequence[Comparison]) -> tuple[str, str]:
    """(verdict, why) of a claim over its comparisons, all of which must hold:
    CONTRADICTED when one is worse outside the spread with no diverged run; else NOT_SHOWN "n too
    small" when one has fewer than MIN_N runs on a side; SUPPORTED when every one is better
    outside the spread (diverged runs counted as failures); else NOT_SHOWN, "a diverged run" when
    one decided it, else "inside the spread"."""
    outcomes = [c.outcome for c in comparisons]
    if not outcomes:
        return NOT_SHOWN, "nothing to compare"
    if any(c.outcome == WORSE and not c.diverged for c in comparisons):
        return CONTRADICTED, ""
    if TOO_FEW in outcomes:
        return NOT_SHOWN, TOO_SMALL
    if all(o == BETTER for o in outcomes):
        return SUPPORTED, ""
    decided_by_divergence = any(
        c.diverged and (c.outcome == WORSE or _without_diverged(c) == BETTER) for c in comparisons
    )
    return NOT_SHOWN, DIVERGED if decided_by_divergence else INSIDE_SPREAD


def _without_diverged(comparison: Comparison) -> str:
    """The outcome had the diverged runs been left out: only to name the reason."""
    sides = [
        Side(side.name, side.low, side.high, side.n, 0, side.mean)
        if side.n > side.diverged
        else side
        for side in (comparison.reference, comparison.treatment)
    ]
    return judge(*sides, comparison.higher_is_better)


def runs_text(n: int, kind: str = "seed") -> str:
    return f"{n} {kind}{'s' if n != 1 else ''}"


def seed_spread(comparisons: Sequence[Comparison], kind: str = "seed") -> str:
    """'3 seeds; <metric ranges>', or '2 seeds: n too small (needs 3 per side); <ranges>'."""
    n = min(c.n for c in comparisons)
    head = runs_text(n, kind)
    if n < MIN_N:
        head += f": {TOO_SMALL} (needs {MIN_N} per side)"
    if n < 2 and not any(c.diverged for c in comparisons):
        return head
    return f"{head}; " + "; ".join(c.range_text() for c in comparisons)
