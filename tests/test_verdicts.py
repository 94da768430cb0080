"""The one verdict rule (`lamm.analysis.verdicts`) on hand-built cases: supported only with the
effect in the claimed direction, ranges apart, at least 3 per side; a diverged run counted as a
failure wherever it sits."""

import itertools
import math

import pytest

from lamm.analysis.verdicts import (
    BETTER,
    INSIDE,
    TOO_FEW,
    WORSE,
    Comparison,
    Side,
    seed_spread,
    verdict,
)

NAN, INF = math.nan, math.inf


def _verdict(reference, treatment, higher_is_better=False):
    return verdict(
        [Comparison.of("x", "u", reference, treatment, higher_is_better=higher_is_better)]
    )


@pytest.mark.parametrize(
    ("reference", "treatment", "expected"),
    [
        ((15, 14, 16), (11, 12, 13), ("supported", "")),
        ((15, 14, 16), (11, 14, 12), ("not shown", "inside the spread")),  # touching: not apart
        ((15, 14, 16), (11, 15, 12), ("not shown", "inside the spread")),
        ((11, 12, 13), (15, 14, 16), ("contradicted", "")),
        ((15, 14), (11, 12), ("not shown", "n too small")),  # apart, but 2 per side
        ((15, 14, 16), (11, 12), ("not shown", "n too small")),  # 3 against 2
        ((15,), (1,), ("not shown", "n too small")),
        ((12, 13), (15, 14), ("not shown", "n too small")),  # worse, 2 per side: not contradicted
        ((INF, INF, 400), (200, 300, 250), ("supported", "")),  # never reached: worse than any
        ((INF, INF, INF), (INF, INF, INF), ("not shown", "inside the spread")),
    ],
)
def test_the_rule_on_hand_built_cases(reference, treatment, expected):
    assert _verdict(reference, treatment) == expected


def test_a_diverged_treatment_seed_breaks_the_rule_wherever_it_sits():
    # (11, nan, 12) against (15, 14, 16): with the NaN counted as the worst value, not apart
    for order in set(itertools.permutations((11.0, NAN, 12.0))):
        comparison = Comparison.of("x", "u", (15, 14, 16), order)
        assert comparison.outcome == INSIDE
        assert verdict([comparison]) == ("not shown", "a diverged run")
        assert comparison.treatment.span() == "11-12 + 1 diverged"
        assert comparison.ratio == pytest.approx(15 / 11.5)  # the mean of the runs with a number
    for order in set(itertools.permutations((15.0, 14.0, 16.0))):  # the reference's order either
        assert Comparison.of("x", "u", order, (11.0, NAN, 12.0)).outcome == INSIDE


def test_a_diverged_reference_seed_counts_as_its_failure_and_is_named():
    comparison = Comparison.of("x", "u", (15, NAN, 16), (11, 12, 13))
    assert comparison.outcome == BETTER and verdict([comparison]) == ("supported", "")
    assert comparison.range_text() == "x: scratch 15-16 + 1 diverged, pre-trained 11-13 u (apart)"
    # and cannot make a worse treatment look better
    comparison = Comparison.of("x", "u", (15, NAN, 16), (17, 18, 19))
    assert comparison.outcome == INSIDE  # the diverged reference is worse than any value


def test_every_treatment_run_diverged():
    # worse than any value, but a divergence is reported as such, never as a contradiction
    comparison = Comparison.of("x", "u", (15, 14, 16), (NAN, NAN, NAN))
    assert comparison.outcome == WORSE and math.isnan(comparison.ratio)
    assert comparison.treatment.span() == "3 diverged"
    assert verdict([comparison]) == ("not shown", "a diverged run")


def test_higher_is_better_from_ranges_alone():
    """Throughput keeps min, max and a count per case: the rule reads those."""
    random, lamm = Side("random", 39.0, 41.0, 3, mean=40.0), Side("lamm", 43.0, 45.0, 3, mean=44.0)
    comparison = Comparison("B'=2", "samples/s", random, lamm, higher_is_better=True)
    assert comparison.outcome == BETTER and comparison.ratio == pytest.approx(1.1)
    slower = Comparison("B'=2", "samples/s", lamm, random, higher_is_better=True)
    assert slower.outcome == WORSE and verdict([slower]) == ("contradicted", "")
    one_repeat = Side("lamm", 44.0, 44.0, 1, mean=44.0)
    comparison = Comparison("B'=2", "samples/s", random, one_repeat, higher_is_better=True)
    assert comparison.outcome == TOO_FEW


def test_several_comparisons_must_all_hold():
    better = Comparison.of("a", "u", (15, 14, 16), (11, 12, 13))
    inside = Comparison.of("b", "u", (15, 14, 16), (11, 15, 12))
    too_few = Comparison.of("c", "u", (15, 14), (11, 12))
    worse = Comparison.of("d", "u", (11, 12, 13), (15, 14, 16))
    assert verdict([better, better]) == ("supported", "")
    assert verdict([better, inside]) == ("not shown", "inside the spread")
    assert verdict([better, too_few]) == ("not shown", "n too small")
    assert verdict([better, too_few, worse]) == ("contradicted", "")
    assert verdict([]) == ("not shown", "nothing to compare")


def test_the_spread_says_when_n_is_too_small():
    assert seed_spread([Comparison.of("x", "u", (3.0,), (1.0,))]) == (
        "1 seed: n too small (needs 3 per side)"
    )
    assert seed_spread([Comparison.of("x", "u", (3.0, 4.0), (1.0, 2.0))]) == (
        "2 seeds: n too small (needs 3 per side); x: scratch 3-4, pre-trained 1-2 u (n too small)"
    )
    assert seed_spread([Comparison.of("x", "u", (3.0, 4.0, 5.0), (1.0, 2.0, 2.5))]) == (
        "3 seeds; x: scratch 3-5, pre-trained 1-2.5 u (apart)"
    )
