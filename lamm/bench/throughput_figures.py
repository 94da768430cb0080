"""Fig. 6: step-time violins per sampler (single subset, joint data) and per-rank compute over
steps."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from lamm.analysis.figures import save_figure
from lamm.bench.throughput_stats import cut_at_quantile, rank_series

SAMPLER_COLORS = {"random": "#d62728", "greedy": "#ff7f0e", "lamm": "#1f77b4"}


def _violins(
    ax, groups: Sequence[tuple[str, str, np.ndarray]], title: str, quantile: float
) -> None:
    """groups: (label, sampler, step times)."""
    shown = [
        (label, sampler, cut_at_quantile(values, quantile)) for label, sampler, values in groups
    ]
    shown = [g for g in shown if len(g[2]) > 1]
    if not shown:
        ax.set_visible(False)
        return
    parts = ax.violinplot([v for _, _, v in shown], showmedians=True, widths=0.8)
    for body, (_, sampler, _) in zip(parts["bodies"], shown, strict=True):
        body.set_facecolor(SAMPLER_COLORS.get(sampler, "grey"))
        body.set_alpha(0.6)
    ax.set_xticks(
        range(1, len(shown) + 1),
        [label for label, _, _ in shown],
        rotation=30,
        ha="right",
        fontsize=8,
    )
    ax.set_ylabel("step time (s)")
    ax.set_title(title, fontsize=10)


def fig6_step_time(
    step_times: Mapping[tuple[str, str, str], np.ndarray],
    datasets: Sequence[str],
    rank_timings: Mapping[str, pd.DataFrame],
    path: str | os.PathLike,
    *,
    warmup: int,
    window: int = 5,
    quantile: float = 0.95,
) -> None:
    """step_times: (dataset, case label, sampler) -> step times; rank_timings: sampler -> the
    timings.csv rows of the run shown in panel (c)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, letter, dataset in zip(axes[:2], "ab", list(datasets)[:2], strict=False):
        groups = [
            (label, sampler, values)
            for (d, label, sampler), values in step_times.items()
            if d == dataset
        ]
        _violins(
            ax,
            groups,
            f"({letter}) {dataset}: step time (cut at p{round(quantile * 100)})",
            quantile,
        )
    if len(datasets) < 2:
        axes[1].set_visible(False)
    ax = axes[2]
    for sampler, timings in rank_timings.items():
        for rank, style in zip(
            sorted(timings["rank"].unique()), ("-", "--", ":", "-."), strict=False
        ):
            steps, values = rank_series(timings, int(rank), warmup=warmup, window=window)
            ax.plot(
                steps,
                values,
                style,
                color=SAMPLER_COLORS.get(sampler, "grey"),
                label=f"{sampler} rank {rank}",
            )
    ax.set_xlabel("step")
    ax.set_ylabel(f"forward + backward of the rank (s, {window}-step mean)")
    ax.set_title(f"(c) per-rank compute, first {warmup} steps dropped", fontsize=10)
    if rank_timings:
        ax.legend(fontsize=8)
    figure.tight_layout()
    save_figure(figure, path)
