"""LaMM Table 2 and Figs. 2 (elements) and 4 (atom counts) of a set of stores, written together.

The summaries and the table come from `lamm.analysis.dataset_stats` (store metadata only); this
module draws them. Colour-blind-safe colours (seaborn's "colorblind" palette for subsets, cividis
for the heatmap), markers that differ in shape as well as colour, fonts of 9 pt or more.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lamm.analysis.dataset_stats import StoreSummary, summarize_store, table2, table2_order
from lamm.analysis.figures import MARKERS, periodic_table_position, save_figure

MAX_KDE_SAMPLES = 100_000  # LaMM Fig. 4: KDE of 10^5 randomly sampled structures per subset


def element_heatmap(summaries: list[StoreSummary], path: str | os.PathLike) -> None:
    """Fig. 2: periodic table coloured by the number of subsets containing each element, with one
    marker per subset that contains it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
    from matplotlib.colors import BoundaryNorm

    palette = sns.color_palette("colorblind", max(len(summaries), 1))
    counts = np.zeros(119, dtype=int)
    for summary in summaries:
        counts[summary.elements] += 1
    n_max = max(int(counts.max()), 1)
    cmap = plt.get_cmap("cividis", n_max)
    norm = BoundaryNorm(np.arange(0.5, n_max + 1.5), cmap.N)
    figure, axes = plt.subplots(figsize=(14, 8.2))
    for z in range(1, 119):
        _element_cell(axes, z, counts, cmap, norm, summaries, palette)
    axes.set_xlim(-0.2, 18.1)
    axes.set_ylim(-9.6, 0.2)
    axes.set_aspect("equal")
    axes.axis("off")
    handles = [
        plt.Line2D(
            [],
            [],
            linestyle="",
            marker=MARKERS[k % len(MARKERS)],
            color=palette[k],
            markersize=8,
            markeredgecolor="black",
            markeredgewidth=0.4,
            label=s.subset,
        )
        for k, s in enumerate(summaries)
    ]
    axes.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.43, 1.0),
        ncol=2,
        fontsize=10,
        frameon=False,
        title="subsets containing the element",
        title_fontsize=10,
    )
    mappable = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    bar = figure.colorbar(
        mappable,
        ax=axes,
        orientation="horizontal",
        fraction=0.035,
        pad=0.01,
        aspect=40,
        ticks=np.arange(1, n_max + 1),
    )
    bar.set_label("number of subsets containing the element", fontsize=11)
    bar.ax.tick_params(labelsize=10)
    save_figure(figure, path)


def _element_cell(
    axes: Any,
    z: int,
    counts: np.ndarray,
    cmap: Any,
    norm: Any,
    summaries: list[StoreSummary],
    palette: Any,
) -> None:
    """One element's cell of Fig. 2: coloured by its subset count, with a marker per subset."""
    from ase.data import chemical_symbols
    from matplotlib.patches import Rectangle

    n_max = max(int(counts.max()), 1)
    columns = 4  # marker grid inside a cell
    row, column = periodic_table_position(z)
    y = -row - (0.4 if row >= 7 else 0.0)  # a gap above the f-block rows
    colour = cmap(norm(counts[z])) if counts[z] else (0.93, 0.93, 0.93)
    axes.add_patch(
        Rectangle((column, y - 1), 0.94, 0.94, facecolor=colour, edgecolor="white", linewidth=0.5)
    )
    text_colour = "white" if counts[z] and counts[z] <= n_max / 2 else "black"
    axes.text(
        column + 0.47,
        y - 0.2,
        chemical_symbols[z],
        ha="center",
        va="center",
        fontsize=10,
        fontweight="bold" if counts[z] else "normal",
        color=text_colour if counts[z] else (0.55, 0.55, 0.55),
    )
    present = [k for k, s in enumerate(summaries) if s.element_atoms[z] > 0]
    for k in present:
        mx = column + 0.14 + (k % columns) * 0.22
        my = y - 0.55 - (k // columns) * 0.22
        axes.plot(
            mx,
            my,
            MARKERS[k % len(MARKERS)],
            color=palette[k],
            markersize=4.2,
            markeredgecolor="black",
            markeredgewidth=0.3,
        )


def natoms_kde(summaries: list[StoreSummary], path: str | os.PathLike, *, seed: int = 0) -> None:
    """Fig. 4: Gaussian KDE of the per-sample atom count of each subset (at most 10^5 random
    samples each), with a marker where each density peaks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    palette = sns.color_palette("colorblind", max(len(summaries), 1))
    rng = np.random.default_rng(seed)
    figure, axes = plt.subplots(figsize=(7.5, 4.2))
    largest = 1
    for k, summary in enumerate(summaries):
        natoms = summary.natoms
        if len(natoms) > MAX_KDE_SAMPLES:
            natoms = rng.choice(natoms, size=MAX_KDE_SAMPLES, replace=False)
        largest = max(largest, int(natoms.max()) if len(natoms) else 1)
        colour, marker = palette[k], MARKERS[k % len(MARKERS)]
        if len(natoms) < 2 or np.ptp(natoms) == 0:
            # A KDE needs spread: mark the single size instead of hiding the subset.
            if len(natoms):
                axes.axvline(natoms[0], color=colour, linestyle="--", linewidth=1.2)
                axes.plot(
                    natoms[0],
                    0,
                    marker,
                    color=colour,
                    markersize=8,
                    markeredgecolor="black",
                    markeredgewidth=0.5,
                    label=f"{summary.subset} (all {natoms[0]} atoms)",
                    clip_on=False,
                )
            continue
        lines_before = len(axes.lines)
        sns.kdeplot(
            x=natoms.astype(np.float64), ax=axes, color=colour, linewidth=1.6, clip=(0, None)
        )
        x, y = axes.lines[lines_before].get_data()
        peak = int(np.argmax(y))
        axes.plot(
            x[peak],
            y[peak],
            marker,
            color=colour,
            markersize=8,
            markeredgecolor="black",
            markeredgewidth=0.5,
        )
        axes.plot(
            [],
            [],
            marker,
            linestyle="-",
            color=colour,
            markersize=7,
            markeredgecolor="black",
            markeredgewidth=0.5,
            label=f"{summary.subset} (peak {x[peak]:.0f})",
        )
    axes.set_xlim(0, largest * 1.03)
    axes.set_ylim(bottom=0)
    axes.set_xlabel("atoms per sample", fontsize=11)
    axes.set_ylabel("density (1/atom)", fontsize=11)
    axes.tick_params(labelsize=10)
    axes.legend(fontsize=9, frameon=False, loc="upper right")
    sns.despine(ax=axes)
    save_figure(figure, path)


def write_dataset_stats(
    stores: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    temperature: float = 2.0,
    seed: int = 0,
) -> tuple[dict[str, Path], pd.DataFrame]:
    """Write tables/table2_datasets.csv, figures/fig2_elements.png and figures/fig4_natoms.png."""
    if not stores:
        raise ValueError("no stores given")
    summaries = sorted((summarize_store(path) for path in stores), key=table2_order)
    names = [s.subset for s in summaries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"subsets given more than once: {', '.join(duplicates)}")
    out = Path(out_dir)
    outputs = {
        "table2": out / "tables" / "table2_datasets.csv",
        "fig2": out / "figures" / "fig2_elements.png",
        "fig4": out / "figures" / "fig4_natoms.png",
    }
    for path in outputs.values():
        path.parent.mkdir(parents=True, exist_ok=True)
    table = table2(summaries, temperature)
    tmp = outputs["table2"].with_name(outputs["table2"].name + ".tmp")
    table.to_csv(tmp, index=False)
    tmp.replace(outputs["table2"])
    shown = [s for s in summaries if s.in_figures]
    element_heatmap(shown, outputs["fig2"])
    natoms_kde(shown, outputs["fig4"], seed=seed)
    return outputs, table
