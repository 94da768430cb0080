"""What the report shows of each result table: the few columns that answer its question.

A result CSV holds everything a stage measured (the throughput table has 35 columns); a reader
needs five to eight. A `View` names them, with the unit in each header, and how to format them;
the report shows the view and links the full CSV. A view column that a table does not have is
left out (older or partial results), and a table without a view shows its first columns.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

Cell = Callable[[pd.Series], str]


def _number(value: object, digits: int = 3) -> str:
    """Significant digits, plain; empty and NaN read as a dash, inf as 'never'."""
    if value is None or value is pd.NA or (isinstance(value, numbers.Real) and math.isnan(value)):
        return "–"
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if math.isinf(value):
            return "never"
        if float(value).is_integer() and abs(value) < 1e6:
            return f"{int(value)}"
        return f"{value:.{digits}g}" if abs(value) < 10**digits else f"{value:.0f}"
    return str(value)


def col(name: str, digits: int = 3) -> Cell:
    return lambda row: _number(row.get(name), digits)


def ratio(name: str) -> Cell:
    return lambda row: (
        "–" if pd.isna(row.get(name)) else ("∞" if math.isinf(row[name]) else f"{row[name]:.2f}x")
    )


def mean_std(prefix: str) -> Cell:
    """'mean ± std' of a summary column (std empty with one seed: mean alone)."""

    def cell(row: pd.Series) -> str:
        mean, std = row.get(f"{prefix}_mean"), row.get(f"{prefix}_std")
        return _number(mean) if pd.isna(std) else f"{_number(mean)} ± {_number(std, 2)}"

    return cell


def fixed(name: str, decimals: int) -> Cell:
    """Fixed decimals, so a column of small lengths (Å) lines up: 0.0440, not 0.044."""
    return lambda row: "–" if pd.isna(row.get(name)) else f"{float(row[name]):.{decimals}f}"


def start(row: pd.Series) -> str:
    """A fine-tuning run's start: 'scratch', 'epoch 2' (Table 3 stores the epoch alone), a model
    name."""
    value = str(row["checkpoint"])
    try:
        float(value)
    except ValueError:
        return value
    return f"epoch {value}"


def span(low: str, high: str) -> Cell:
    return lambda row: "–" if pd.isna(row.get(low)) else f"{_number(row[low])}–{_number(row[high])}"


@dataclass(frozen=True)
class View:
    """Columns (header with unit, the CSV columns it needs, cell) and an optional row reduction."""

    columns: tuple[tuple[str, tuple[str, ...], Cell], ...]
    reduce: Callable[[pd.DataFrame], pd.DataFrame] | None = None

    def render(self, frame: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
        if self.reduce is not None:
            frame = self.reduce(frame)
        present = [
            (header, cell) for header, needs, cell in self.columns if all(n in frame for n in needs)
        ]
        return [header for header, _ in present], [
            [cell(row) for _, cell in present] for _, row in frame.iterrows()
        ]


def c(header: str, name: str, digits: int = 3) -> tuple[str, tuple[str, ...], Cell]:
    """A plain column."""
    return header, (name,), col(name, digits)


def _last_per_mode(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("step").groupby("mode", sort=False).tail(1)


E, F = "energy_mae_mev_per_atom", "forces_mae_mev_per_a"

VIEWS: dict[str, View] = {
    "table2_datasets": View(
        (
            c("subset", "subset"),
            c("role", "role"),
            c("task", "task"),
            c("labels", "labels"),
            c("structures", "samples"),
            c("atoms per structure (mean)", "avg_atoms"),
            c("atoms per structure (max)", "max_atoms"),
        )
    ),
    "throughput": View(
        (
            c("dataset", "dataset"),
            c("sampler", "sampler"),
            c("per-rank batch B'", "batch_per_rank"),
            c("memory cap (atoms/rank)", "max_atoms_per_rank"),
            c("throughput (samples/s)", "samples_per_s"),
            (
                "samples/s over repeats (min–max)",
                ("samples_per_s_min", "samples_per_s_max"),
                span("samples_per_s_min", "samples_per_s_max"),
            ),
            c("balance efficiency (mean / max rank compute)", "efficiency"),
            (
                "speedup vs random (samples/s ratio)",
                ("speedup_vs_random",),
                ratio("speedup_vs_random"),
            ),
        )
    ),
    "throughput_scaling": View(
        (
            c("dataset", "dataset"),
            c("sampler", "strategy"),
            c("ranks", "world_size"),
            c("per-rank batch B'", "batch_per_rank"),
            c("simulated efficiency", "efficiency"),
            ("simulated speedup vs random", ("speedup_vs_random",), ratio("speedup_vs_random")),
            ("measured speedup vs random", ("measured_speedup",), ratio("measured_speedup")),
            c("cost model R²", "calibration_r2"),
        )
    ),
    "balance_simulation": View(
        (
            c("sampler", "strategy"),
            c("ranks", "world_size"),
            c("per-rank batch B'", "batch_per_rank"),
            c("efficiency", "efficiency"),
            ("predicted speedup vs random", ("speedup_vs_random",), ratio("speedup_vs_random")),
            c("peak atoms per rank", "peak_atoms_per_rank"),
        )
    ),
    "denoising": View(
        (
            c("noise labels", "mode"),
            c("final step", "step"),
            c("epoch", "epoch"),
            ("validation error, own labels (Å)", ("val_error_a",), fixed("val_error_a", 4)),
            (
                "validation error, centered (Å)",
                ("val_error_centered_a",),
                fixed("val_error_centered_a", 4),
            ),
        ),
        reduce=_last_per_mode,
    ),
    "table3_summary": View(
        (
            ("start", ("checkpoint",), start),
            c("seeds", "seeds"),
            ("test energy MAE (meV/atom), mean ± std", (f"test_{E}_mean",), mean_std(f"test_{E}")),
            ("test force MAE (meV/Å), mean ± std", (f"test_{F}_mean",), mean_std(f"test_{F}")),
            (
                "energy MAE: scratch / this",
                (f"test_{E}_ratio_vs_scratch",),
                ratio(f"test_{E}_ratio_vs_scratch"),
            ),
            (
                "force MAE: scratch / this",
                (f"test_{F}_ratio_vs_scratch",),
                ratio(f"test_{F}_ratio_vs_scratch"),
            ),
            (
                "val. steps to energy threshold, mean (reached/seeds)",
                ("steps_to_energy_threshold_mean",),
                lambda r: (
                    f"{_number(r['steps_to_energy_threshold_mean'])} "
                    f"({r['steps_to_energy_threshold_reached']}/{r['seeds']})"
                ),
            ),
            (
                "val. steps to force threshold, mean (reached/seeds)",
                ("steps_to_forces_threshold_mean",),
                lambda r: (
                    f"{_number(r['steps_to_forces_threshold_mean'])} "
                    f"({r['steps_to_forces_threshold_reached']}/{r['seeds']})"
                ),
            ),
        )
    ),
    "table3_finetune": View(
        (
            ("start", ("checkpoint",), start),
            c("seed", "seed"),
            c("pre-training seed", "pretrain_seed"),
            c("budget (steps)", "steps"),
            c("test energy MAE (meV/atom)", f"test_{E}"),
            c("test force MAE (meV/Å)", f"test_{F}"),
            c("best val. energy MAE (meV/atom)", E),
            c("best val. force MAE (meV/Å)", F),
            c("final val. energy MAE (meV/atom)", f"final_val_{E}"),
            c("final val. force MAE (meV/Å)", f"final_val_{F}"),
            c("val. steps to energy threshold", "steps_to_energy_threshold"),
            c("val. steps to force threshold", "steps_to_forces_threshold"),
        )
    ),
    "zero_shot": View(
        (
            ("checkpoint", ("checkpoint",), start),
            c("pre-training head", "head"),
            c("test structures", "n_structures"),
            c("energy MAE, shift refitted (meV/atom)", E),
            c("energy MAE, raw (meV/atom)", f"{E}_raw"),
            c("force MAE (meV/Å)", F),
            c("force cosine", "force_cosine"),
        )
    ),
    "sample_efficiency_summary": View(
        (
            ("start", ("checkpoint",), start),
            c("train fraction", "train_fraction"),
            c("train structures", "train_structures"),
            c("seeds", "seeds"),
            ("test energy MAE (meV/atom), mean ± std", (f"test_{E}_mean",), mean_std(f"test_{E}")),
            ("test force MAE (meV/Å), mean ± std", (f"test_{F}_mean",), mean_std(f"test_{F}")),
            (
                "energy MAE: scratch / this",
                (f"test_{E}_ratio_vs_scratch",),
                ratio(f"test_{E}_ratio_vs_scratch"),
            ),
            (
                "force MAE: scratch / this",
                (f"test_{F}_ratio_vs_scratch",),
                ratio(f"test_{F}_ratio_vs_scratch"),
            ),
        )
    ),
    "batching_throughput": View(
        (
            c("DataLoader workers", "workers"),
            c("batch size", "batch_size"),
            c("structures/s", "structures_per_s"),
            c("atoms/s", "atoms_per_s"),
            c("edges/s", "edges_per_s"),
        )
    ),
    "data_throughput": View(
        (
            c("reader", "reader"),
            c("decoded to", "decode"),
            c("mode", "mode"),
            c("reads/s (median)", "reads_per_s"),
            (
                "reads/s over repeats (min–max)",
                ("reads_per_s_min",),
                span("reads_per_s_min", "reads_per_s_max"),
            ),
            c("bytes per record", "bytes_per_record"),
            ("speedup vs pickle", ("speedup_vs_pickle",), ratio("speedup_vs_pickle")),
        )
    ),
}


def view_for(stem: str) -> View | None:
    """The view of a table file stem; a further downstream set's `<stem>_<name>` uses `<stem>`'s."""
    if stem in VIEWS:
        return VIEWS[stem]
    for name in sorted(VIEWS, key=len, reverse=True):
        if stem.startswith(name + "_"):
            return VIEWS[name]
    return None


def render_table(
    frame: pd.DataFrame, stem: str, max_columns: int = 8
) -> tuple[list[str], list[list[str]]]:
    """Headers and cells of a table's view; without a view (or none of its columns), the first
    `max_columns` columns as they are (the link to the full CSV says there are more)."""
    view = view_for(stem)
    if view is not None:
        headers, rows = view.render(frame)
        if headers:
            return headers, rows
    shown = frame.iloc[:, :max_columns]
    return list(shown.columns), [[_number(v) for v in row] for row in shown.itertuples(index=False)]
