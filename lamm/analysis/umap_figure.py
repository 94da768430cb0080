"""LaMM Fig. 8: the four panels of the atom-representation map.

(a) by subset; (b) by element in Jmol colours; (c) atoms other than H, C, N, O by periodic
group; (d) chosen elements of one subset in Jmol colours, each with its 1.5-sigma covariance
ellipse (dashed) and its name at the mean position, over the other atoms in grey.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lamm.analysis.figures import MARKERS, save_figure
from lamm.analysis.umap_atoms import ORGANIC, covariance_ellipse, periodic_group


def choose_ellipse_elements(
    subset: np.ndarray,
    atomic_number: np.ndarray,
    ellipse_subset: str,
    *,
    limit: int = 8,
    min_atoms: int = 5,
) -> list[int]:
    """The most frequent non-H/C/N/O elements of `ellipse_subset` with at least `min_atoms`
    atoms."""
    z = atomic_number[(subset == ellipse_subset) & ~np.isin(atomic_number, ORGANIC)]
    values, counts = np.unique(z, return_counts=True)
    order = np.argsort(-counts, kind="stable")
    return [int(values[k]) for k in order if counts[k] >= min_atoms][:limit]


def plot_umap(
    embedding: np.ndarray,
    subset: np.ndarray,
    atomic_number: np.ndarray,
    path: str | os.PathLike,
    *,
    subsets: Sequence[str],
    ellipse_subset: str,
    ellipse_elements: Sequence[int],
    n_sigma: float = 1.5,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
    from ase.data import chemical_symbols
    from ase.data.colors import jmol_colors
    from matplotlib.lines import Line2D
    from matplotlib.patches import Ellipse

    x, y = embedding[:, 0], embedding[:, 1]
    figure, axes = plt.subplots(2, 2, figsize=(13, 11))
    (ax_subset, ax_element), (ax_group, ax_chosen) = axes
    point = {"s": 6, "linewidths": 0, "alpha": 0.8}

    palette = sns.color_palette("colorblind", len(subsets))
    for k, name in enumerate(subsets):
        mask = subset == name
        ax_subset.scatter(
            x[mask],
            y[mask],
            color=palette[k],
            marker=MARKERS[k % len(MARKERS)],
            label=name,
            **point,
        )
    ax_subset.legend(fontsize=8, markerscale=2.5, loc="best")
    ax_subset.set_title("(a) by subset")

    elements = np.unique(atomic_number)
    ax_element.scatter(x, y, c=jmol_colors[atomic_number], edgecolors="0.4", linewidths=0.1, s=6)
    counts = {int(z): int((atomic_number == z).sum()) for z in elements}
    shown = sorted(counts, key=lambda z: -counts[z])[:12]
    ax_element.legend(
        handles=[
            Line2D(
                [],
                [],
                marker="o",
                linestyle="",
                markerfacecolor=jmol_colors[z],
                markeredgecolor="0.4",
                label=chemical_symbols[z],
            )
            for z in shown
        ],
        fontsize=8,
        ncol=2,
        loc="best",
        title="12 most frequent",
        title_fontsize=8,
    )
    ax_element.set_title("(b) by element (Jmol colours)")

    other = ~np.isin(atomic_number, ORGANIC)
    ax_group.scatter(x, y, color="0.88", **point)
    groups = np.array([periodic_group(int(z)) for z in atomic_number[other]], dtype=int)
    # tab20 without its two greys (which the grey background would hide): 18 colours, one per group
    group_colours = [c for k, c in enumerate(plt.get_cmap("tab20").colors) if k not in (14, 15)]
    for group in np.unique(groups):
        mask = groups == group
        ax_group.scatter(
            x[other][mask],
            y[other][mask],
            color=group_colours[group - 1],
            label=f"group {group}",
            **{**point, "s": 10},
        )
    if other.any():
        ax_group.legend(fontsize=8, markerscale=2, ncol=2, loc="best")
    ax_group.set_title("(c) elements other than H, C, N, O, by periodic group")

    ax_chosen.scatter(x, y, color="0.88", **point)
    for z in ellipse_elements:
        mask = (subset == ellipse_subset) & (atomic_number == z)
        if mask.sum() < 2:
            continue
        colour = jmol_colors[z]
        ax_chosen.scatter(
            x[mask],
            y[mask],
            color=colour,
            edgecolors="0.3",
            **{**point, "s": 10, "linewidths": 0.2},
        )
        center, width, height, angle = covariance_ellipse(
            np.column_stack([x[mask], y[mask]]), n_sigma
        )
        ax_chosen.add_patch(
            Ellipse(
                center,
                width,
                height,
                angle=angle,
                fill=False,
                linestyle="--",
                edgecolor="0.2",
                linewidth=1.0,
            )
        )
        ax_chosen.annotate(
            chemical_symbols[z], center, fontsize=10, fontweight="bold", ha="center", va="center"
        )
    ax_chosen.set_title(f"(d) chosen {ellipse_subset} elements, {n_sigma:g}-sigma ellipses")
    for ax in axes.flat:
        ax.set_xlabel("UMAP 1")
        ax.set_ylabel("UMAP 2")
        ax.set_xticks([])
        ax.set_yticks([])
    figure.suptitle(
        "UMAP of per-atom representations s_i of the pre-trained encoder (LaMM Fig. 8)", fontsize=12
    )
    figure.tight_layout()
    return save_figure(figure, path)
