"""The fine-tuning findings (Table 3, sample efficiency) against the paper and the seed spread.

Read from `tables/table3_finetune.csv` and `tables/sample_efficiency.csv` (one row per run and
seed; `lamm summarize`). The comparison is the last pre-training checkpoint against scratch,
as in the paper (LaMM-S after 2 epochs against PaiNN from scratch): not the best of several
checkpoints, which would pick the luckiest. Errors are the test-set MAEs when the table has them
(held out), else the best validation MAEs (the paper's metric). The verdict is the rule of
`lamm.analysis.verdicts` (3 seeds per side at least, ranges apart).

Model selection reads the validation split only. When a start was fine-tuned at several
budgets (Table 3's `steps` column), each start's budget is the one whose mean validation error
of the final models (`final_val_*`, else the best validation MAE of older tables) is lowest, and
the test errors are read once, for that budget (`select_budget`). Runs from several pre-training
runs of one start (Table 3's `pretrain_seed` column) pool on the treatment side, so the spread
covers pre-training as well as fine-tuning.

The report judges energies and forces apart (`finetune_findings`): a joint verdict reads "not
shown" when either half is inside its spread, which hid a force effect well outside it behind an
energy effect inside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pandas as pd

from lamm.analysis.verdicts import (
    Comparison,
    Finding,
    fmt_value,
    not_run,
    runs_text,
    seed_spread,
    verdict,
)

ENERGY, FORCES = "energy_mae_mev_per_atom", "forces_mae_mev_per_a"
UNITS = {ENERGY: "meV/atom", FORCES: "meV/A"}
NAMES = {ENERGY: "energy MAE", FORCES: "force MAE"}
BOTH = (ENERGY, FORCES)

# Table 3 of the paper (HME21, PaiNN / LaMM-S): scratch 23.7 meV/atom, 201 meV/A; LaMM-S after
# 2 epochs 21.1, 176; steps to (25 meV/atom, 210 meV/A) 2.51x and 1.89x fewer.
PAPER_ERROR_RATIO = {ENERGY: 23.7 / 21.1, FORCES: 201 / 176}
PAPER_STEPS_RATIO = {ENERGY: 2.51, FORCES: 1.89}
PAPER_THRESHOLDS = {ENERGY: 25.0, FORCES: 210.0}


def _read(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"checkpoint": str})


def _last_checkpoint(table: pd.DataFrame) -> str | None:
    """The pre-training checkpoint with the most epochs (labels that are not epochs are skipped)."""
    epochs = {}
    for name in table["checkpoint"].unique():
        try:
            epochs[name] = float(name)
        except ValueError:
            continue
    return max(epochs, key=epochs.get) if epochs else None


def _label(checkpoint: str) -> str:
    """scratch, `epoch <e>` of the run's own pre-training, or a shipped model's name."""
    if checkpoint == "scratch":
        return checkpoint
    try:
        float(checkpoint)
    except ValueError:
        return checkpoint  # lamm-mini
    return f"epoch {checkpoint}"


def shipped_models(table: pd.DataFrame) -> list[str]:
    """Starting points of the table that are shipped models (neither scratch nor an epoch)."""
    return [
        name for name in table["checkpoint"].unique() if name != "scratch" and _label(name) == name
    ]


def _error_columns(table: pd.DataFrame) -> tuple[dict[str, str], str]:
    """The test columns when every row has them, else the best validation ones; and their name."""
    test = {metric: f"test_{metric}" for metric in (ENERGY, FORCES)}
    if all(column in table and table[column].notna().any() for column in test.values()):
        return test, "test set"
    return {metric: metric for metric in (ENERGY, FORCES)}, "best validation"


def _values(
    table: pd.DataFrame, checkpoint: str, column: str, missing: float = math.nan
) -> tuple[float, ...]:
    """One value per run; an empty cell becomes `missing` (NaN: the run diverged or has no
    number; inf for a threshold never reached)."""
    return tuple(
        missing if pd.isna(v) else float(v)
        for v in table.loc[table["checkpoint"] == checkpoint, column]
    )


def select_budget(table: pd.DataFrame, checkpoint: str, metric: str) -> int | None:
    """The budget (steps) of `checkpoint`'s runs chosen on validation: the lowest mean over its
    runs of the final models' validation error of `metric` (`final_val_<metric>`; older tables:
    the best validation MAE). None when the table has no `steps` column."""
    if "steps" not in table:
        return None
    rows = table[table["checkpoint"] == checkpoint]
    column = f"final_val_{metric}" if f"final_val_{metric}" in rows else metric
    if column not in rows or rows["steps"].nunique() < 2:
        return None if rows.empty else int(rows["steps"].iloc[0])
    means = rows.groupby("steps")[column].mean()  # NaN (diverged) runs: mean of the others
    # a budget whose every run diverged has no mean and is never chosen
    return int(means.dropna().idxmin()) if means.notna().any() else int(means.index[0])


def _at_budgets(table: pd.DataFrame, starts: Sequence[str], metric: str) -> pd.DataFrame:
    """The rows of `starts`, each at its budget chosen on validation."""
    parts = []
    for start in starts:
        rows = table[table["checkpoint"] == start]
        budget = select_budget(table, start, metric)
        parts.append(rows if budget is None else rows[rows["steps"] == budget])
    return pd.concat(parts, ignore_index=True)


def _budget_text(table: pd.DataFrame, chosen: pd.DataFrame, starts: Sequence[str]) -> str:
    """' Budget chosen on the validation split ...: scratch 1152 steps, epoch 36 2304 steps.'
    when a start ran at several budgets in `table` (`chosen`: its rows at the chosen ones)."""
    if "steps" not in table or table.groupby("checkpoint")["steps"].nunique().max() < 2:
        return ""
    steps = (int(chosen.loc[chosen["checkpoint"] == s, "steps"].iloc[0]) for s in starts)
    text = ", ".join(f"{_label(s)} {n} steps" for s, n in zip(starts, steps, strict=True))
    return f" Budget chosen on the validation split (lowest mean final validation error): {text}."


def _pretraining_text(table: pd.DataFrame, start: str) -> str:
    """How many pre-training runs the treatment's spread covers."""
    if start == "scratch":
        return ""
    rows = table[table["checkpoint"] == start]
    runs = rows["pretrain_seed"].nunique() if "pretrain_seed" in rows else 0
    return f"; {max(runs, 1)} pre-training run{'s' if runs > 1 else ''}"


def _names(metrics: Sequence[str]) -> str:
    """'energy and force MAE', 'force MAE'."""
    return " and ".join(NAMES[m].removesuffix(" MAE") for m in metrics) + " MAE"


def _paper(ratios: dict[str, float], metrics: Sequence[str], suffix: str) -> str:
    """The paper's numbers for `metrics`, e.g. '1.12x / 1.14x lower'."""
    return " / ".join(f"{ratios[m]:.2f}x" for m in metrics) + f" {suffix}"


def _compare(table: pd.DataFrame, path: Path, claim: str) -> tuple[pd.DataFrame, str] | Finding:
    """(table, last checkpoint), or a "not run" finding saying what is missing."""
    if not path.is_file():
        return not_run(claim, f"missing: {path.name}", path.name)
    last = _last_checkpoint(table)
    if "scratch" not in set(table["checkpoint"]) or last is None:
        return not_run(claim, "needs a scratch run and at least one pre-trained run", path.name)
    return table, last


def _topic(what: str, metrics: Sequence[str], model: str | None = None) -> str:
    kind = (
        "energies"
        if tuple(metrics) == (ENERGY,)
        else "forces"
        if tuple(metrics) == (FORCES,)
        else "energies and forces"
    )
    return f"{what}, {kind}" + (f" ({model})" if model else "")


def table3_finding(
    path: Path, on: str = "", model: str | None = None, metrics: Sequence[str] = BOTH
) -> Finding:
    """Test (or best validation) MAE of `metrics` (energy, forces or both) against scratch: of the
    last checkpoint of the run's own pre-training, or of the shipped `model` (a finetune.models
    entry)."""
    start = "the pre-trained checkpoint" if model is None else f"the shipped model {model}"
    claim = (
        f"Fine-tuning{on} from {start} gives lower {_names(metrics)} than scratch at the same "
        f"budget (Table 3: LaMM-S 2 epochs {_paper(PAPER_ERROR_RATIO, metrics, 'lower')})."
    )
    topic = _topic("Table 3 error", metrics, model)
    found = _compare(_read(path) if path.is_file() else pd.DataFrame(), path, claim)
    if isinstance(found, Finding):
        return replace(found, topic=topic)
    table, last = found
    last = model or last
    columns, which = _error_columns(table)
    chosen = _at_budgets(table, ["scratch", last], metrics[0])
    comparisons = [
        Comparison.of(
            NAMES[m],
            UNITS[m],
            _values(chosen, "scratch", columns[m]),
            _values(chosen, last, columns[m]),
            treatment_name=_label(last),
        )
        for m in metrics
    ]
    means = []
    for checkpoint in table["checkpoint"].unique():
        rows = _at_budgets(table, [checkpoint], metrics[0])
        values = (float(rows[columns[m]].mean()) for m in metrics)
        means.append(
            f"{_label(checkpoint)} "
            + ", ".join(f"{fmt_value(v)} {UNITS[m]}" for v, m in zip(values, metrics, strict=True))
        )
    measured = (
        f"{which} MAE, mean over {runs_text(comparisons[0].n)}: "
        + "; ".join(means)
        + "."
        + _budget_text(table, chosen, ["scratch", last])
    )
    decided, why = verdict(comparisons)
    return Finding(
        claim,
        "; ".join(c.size(PAPER_ERROR_RATIO[m]) for c, m in zip(comparisons, metrics, strict=True)),
        seed_spread(comparisons) + _pretraining_text(chosen, last),
        decided,
        measured,
        path.name,
        why,
        topic,
    )


def steps_finding(path: Path, on: str = "", metrics: Sequence[str] = BOTH) -> Finding:
    """Validation steps to the thresholds of `metrics`: the last checkpoint against scratch (never =
    inf)."""
    thresholds = " / ".join(f"{PAPER_THRESHOLDS[m]:g} {UNITS[m]}" for m in metrics)
    claim = (
        f"Fine-tuning{on} from the pre-trained checkpoint reaches the validation {_names(metrics)} "
        f"threshold{'s' if len(metrics) > 1 else ''} in fewer steps than scratch (Table 3: "
        f"{_paper(PAPER_STEPS_RATIO, metrics, 'fewer')} to {thresholds})."
    )
    topic = _topic("Table 3 steps to threshold", metrics)
    found = _compare(_read(path) if path.is_file() else pd.DataFrame(), path, claim)
    if isinstance(found, Finding):
        return replace(found, topic=topic)
    table, last = found
    chosen = _at_budgets(table, ["scratch", last], metrics[0])
    comparisons = []
    for metric in metrics:
        kind = "energy" if metric == ENERGY else "forces"
        threshold = float(table[f"{kind}_threshold"].iloc[0])
        column = f"steps_to_{kind}_threshold"
        comparisons.append(
            Comparison.of(
                f"steps to {fmt_value(threshold)} {UNITS[metric]}",
                "steps",
                _values(chosen, "scratch", column, math.inf),
                _values(chosen, last, column, math.inf),
                treatment_name=_label(last),
            )
        )
    size = "; ".join(
        c.size(PAPER_STEPS_RATIO[m], lower="fewer", higher="more")
        for c, m in zip(comparisons, metrics, strict=True)
    )

    def steps_of(start: str, kind: str) -> str:
        return ", ".join(
            map(fmt_value, _values(chosen, start, f"steps_to_{kind}_threshold", math.inf))
        )

    kinds = ["energy" if m == ENERGY else "forces" for m in metrics]
    per_seed = "; ".join(
        f"{c.metric}: scratch {steps_of('scratch', k)}; {_label(last)} {steps_of(last, k)}"
        for c, k in zip(comparisons, kinds, strict=True)
    )
    measured = (
        "first validation step at or below each threshold (never: not reached within the budget), "
        f"per seed: {per_seed}." + _budget_text(table, chosen, ["scratch", last])
    )
    decided, why = verdict(comparisons)
    spread = seed_spread(comparisons) + _pretraining_text(chosen, last)
    return Finding(claim, size, spread, decided, measured, path.name, why, topic)


def sample_efficiency_finding(path: Path, on: str = "", metrics: Sequence[str] = BOTH) -> Finding:
    """Test errors of `metrics` at the smallest train fraction both scratch and the pre-trained
    model ran."""
    claim = (
        f"Pre-training makes fine-tuning{on} sample-efficient: lower test {_names(metrics)} "
        "than scratch on a small "
        "part of the downstream training set (DPA-2 Fig. 3; the LaMM paper reports no number)."
    )
    topic = _topic("sample efficiency", metrics)
    table = _read(path) if path.is_file() else pd.DataFrame()
    found = _compare(table, path, claim)
    if isinstance(found, Finding):
        return replace(found, topic=topic)
    table, last = found
    fractions = sorted(
        set(table.loc[table["checkpoint"] == "scratch", "train_fraction"])
        & set(table.loc[table["checkpoint"] == last, "train_fraction"])
    )
    if not fractions:
        return not_run(
            claim, f"no train fraction run from both scratch and {_label(last)}", path.name, topic
        )
    fraction = fractions[0]
    rows = table[table["train_fraction"] == fraction]
    structures = int(rows["train_structures"].iloc[0])
    comparisons = [
        Comparison.of(
            f"test {NAMES[m]}",
            UNITS[m],
            _values(rows, "scratch", f"test_{m}"),
            _values(rows, last, f"test_{m}"),
            treatment_name=_label(last),
        )
        for m in metrics
    ]
    size = (
        f"at {fraction:.0%} of the training set ({structures} structures): "
        + "; ".join(c.size(None) for c in comparisons)
        + "; the paper gives no number"
    )
    measured = (
        "; ".join(
            f"{fraction_:.0%}: scratch "
            f"{fmt_value(_mean(table, 'scratch', fraction_, ENERGY))} meV/atom, "
            f"{fmt_value(_mean(table, 'scratch', fraction_, FORCES))} meV/A; {_label(last)} "
            f"{fmt_value(_mean(table, last, fraction_, ENERGY))} meV/atom, "
            f"{fmt_value(_mean(table, last, fraction_, FORCES))} meV/A"
            for fraction_ in fractions
        )
        + " (test MAE, mean over seeds)."
    )
    decided, why = verdict(comparisons)
    spread = seed_spread(comparisons) + _pretraining_text(rows, last)
    return Finding(claim, size, spread, decided, measured, path.name, why, topic)


def _mean(table: pd.DataFrame, checkpoint: str, fraction: float, metric: str) -> float:
    rows = table[(table["checkpoint"] == checkpoint) & (table["train_fraction"] == fraction)]
    return float(rows[f"test_{metric}"].mean())


def finetune_findings(tables: Path, downstream: str | None = None) -> list[Finding]:
    """Table 3 (errors, steps) and sample efficiency of the first downstream set, each judged
    for energies and for forces apart (see the module docstring)."""
    on = f" on {downstream}" if downstream else ""
    table3 = tables / "table3_finetune.csv"
    models = shipped_models(_read(table3)) if table3.is_file() else []
    apart = [(ENERGY,), (FORCES,)]
    return [
        *(table3_finding(table3, on, metrics=m) for m in apart),
        *(steps_finding(table3, on, metrics=m) for m in apart),
        *(table3_finding(table3, on, model, metrics=m) for model in models for m in apart),
        *(
            sample_efficiency_finding(tables / "sample_efficiency.csv", on, metrics=m)
            for m in apart
        ),
    ]
