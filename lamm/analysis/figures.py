"""Figures of the dataset statistics: LaMM Fig. 2 (elements) and Fig. 4 (atom counts).

Colour-blind-safe colours throughout (seaborn's "colorblind" palette for subsets, cividis for
the heatmap), markers that differ in shape as well as colour, fonts of 9 pt or more at the
saved size. Figures are written to a temporary file and renamed, like every output.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from lamm.analysis.dataset_stats import StoreSummary

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
MAX_KDE_SAMPLES = 100_000  # LaMM Fig. 4: KDE of 10^5 randomly sampled structures per subset
_PERIOD_STARTS = (1, 3, 11, 19, 37, 55, 87, 119)


def periodic_table_position(z: int) -> tuple[int, int]:
    """0-based (row, column) of element `z` in the 18-column table: rows 0-6 are the periods,
    lanthanides and actinides go to rows 7 and 8 under groups 3-17, as usually drawn."""
    if not 1 <= z <= 118:
        raise ValueError(f"atomic number {z} outside 1..118")
    period = next(p for p in range(7) if _PERIOD_STARTS[p] <= z < _PERIOD_STARTS[p + 1])
    offset = z - _PERIOD_STARTS[period]
    if period == 0:
        return 0, 0 if z == 1 else 17
    if period in (1, 2):
        return period, offset if offset < 2 else offset + 10
    if period in (3, 4):
        return period, offset
    # periods 6 and 7: s block, f block (own row), then d and p blocks from group 4
    if offset < 2:
        return period, offset
    if offset < 17:
        return period + 2, offset  # La..Lu / Ac..Lr in their own rows, under groups 3..17
    return period, offset - 14


def save_figure(figure, path: str | os.PathLike) -> Path:
    """Write a figure atomically (a temporary name, then rename) at 200 dpi, close it, return the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    figure.savefig(tmp, dpi=200, bbox_inches="tight")
    tmp.replace(path)
    plt.close(figure)
    return path


def element_heatmap(summaries: list[StoreSummary], path: str | os.PathLike) -> None:
    """Fig. 2: periodic table coloured by the number of subsets containing each element, with one
    marker per subset that contains it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
    from ase.data import chemical_symbols
    from matplotlib.colors import BoundaryNorm
    from matplotlib.patches import Rectangle

    palette = sns.color_palette("colorblind", max(len(summaries), 1))
    counts = np.zeros(119, dtype=int)
    for summary in summaries:
        counts[summary.elements] += 1
    n_max = max(int(counts.max()), 1)
    cmap = plt.get_cmap("cividis", n_max)
    norm = BoundaryNorm(np.arange(0.5, n_max + 1.5), cmap.N)
    figure, axes = plt.subplots(figsize=(14, 8.2))
    columns = 4  # marker grid inside a cell
    for z in range(1, 119):
        row, column = periodic_table_position(z)
        y = -row - (0.4 if row >= 7 else 0.0)  # a gap above the f-block rows
        colour = cmap(norm(counts[z])) if counts[z] else (0.93, 0.93, 0.93)
        axes.add_patch(Rectangle((column, y - 1), 0.94, 0.94, facecolor=colour, edgecolor="white", linewidth=0.5))
        text_colour = "white" if counts[z] and counts[z] <= n_max / 2 else "black"
        axes.text(column + 0.47, y - 0.2, chemical_symbols[z], ha="center", va="center", fontsize=10,
                  fontweight="bold" if counts[z] else "normal", color=text_colour if counts[z] else (0.55, 0.55, 0.55))
        present = [k for k, s in enumerate(summaries) if s.element_atoms[z] > 0]
        for k in present:
            mx = column + 0.14 + (k % columns) * 0.22
            my = y - 0.55 - (k // columns) * 0.22
            axes.plot(mx, my, MARKERS[k % len(MARKERS)], color=palette[k], markersize=4.2,
                      markeredgecolor="black", markeredgewidth=0.3)
    axes.set_xlim(-0.2, 18.1)
    axes.set_ylim(-9.6, 0.2)
    axes.set_aspect("equal")
    axes.axis("off")
    handles = [plt.Line2D([], [], linestyle="", marker=MARKERS[k % len(MARKERS)], color=palette[k], markersize=8,
                          markeredgecolor="black", markeredgewidth=0.4, label=s.subset)
               for k, s in enumerate(summaries)]
    axes.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.43, 1.0), ncol=2, fontsize=10,
                frameon=False, title="subsets containing the element", title_fontsize=10)
    mappable = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    bar = figure.colorbar(mappable, ax=axes, orientation="horizontal", fraction=0.035, pad=0.01, aspect=40,
                          ticks=np.arange(1, n_max + 1))
    bar.set_label("number of subsets containing the element", fontsize=11)
    bar.ax.tick_params(labelsize=10)
    save_figure(figure, path)


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
                axes.plot(natoms[0], 0, marker, color=colour, markersize=8, markeredgecolor="black",
                          markeredgewidth=0.5, label=f"{summary.subset} (all {natoms[0]} atoms)", clip_on=False)
            continue
        lines_before = len(axes.lines)
        sns.kdeplot(x=natoms.astype(np.float64), ax=axes, color=colour, linewidth=1.6, clip=(0, None))
        x, y = axes.lines[lines_before].get_data()
        peak = int(np.argmax(y))
        axes.plot(x[peak], y[peak], marker, color=colour, markersize=8, markeredgecolor="black",
                  markeredgewidth=0.5)
        axes.plot([], [], marker, linestyle="-", color=colour, markersize=7, markeredgecolor="black",
                  markeredgewidth=0.5, label=f"{summary.subset} (peak {x[peak]:.0f})")
    axes.set_xlim(0, largest * 1.03)
    axes.set_ylim(bottom=0)
    axes.set_xlabel("atoms per sample", fontsize=11)
    axes.set_ylabel("density (1/atom)", fontsize=11)
    axes.tick_params(labelsize=10)
    axes.legend(fontsize=9, frameon=False, loc="upper right")
    sns.despine(ax=axes)
    save_figure(figure, path)
