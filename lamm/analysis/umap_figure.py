"""LaMM Fig. 8: the four panels of the atom-representation map.

(a) by subset; (b) by element in Jmol colours; (c) atoms other than H, C, N, O by periodic
group; (d) chosen elements of one subset in Jmol colours, each with its 1.5-sigma covariance
ellipse (dashed) and its name at the mean position, over the other atoms in grey.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

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
    """Fig. 8's four panels: by subset, by element, by periodic group, and covariance ellipses of
    the chosen elements of one subset."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x, y = embedding[:, 0], embedding[:, 1]
    figure, axes = plt.subplots(2, 2, figsize=(13, 11))
    (ax_subset, ax_element), (ax_group, ax_chosen) = axes
    _panel_subsets(ax_subset, x, y, subset, subsets)
    _panel_elements(ax_element, x, y, atomic_number)
    _panel_groups(ax_group, x, y, atomic_number)
    chosen = (subset == ellipse_subset)[:, None] & (atomic_number[:, None] == ellipse_elements)
    _panel_ellipses(ax_chosen, x, y, atomic_number, chosen, ellipse_elements, n_sigma)
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


POINT = {"s": 6, "linewidths": 0, "alpha": 0.8}


def _panel_subsets(
    ax: Any, x: np.ndarray, y: np.ndarray, subset: np.ndarray, subsets: Sequence[str]
) -> None:
    import seaborn as sns

    palette = sns.color_palette("colorblind", len(subsets))
    for k, name in enumerate(subsets):
        mask = subset == name
        ax.scatter(
            x[mask],
            y[mask],
            color=palette[k],
            marker=MARKERS[k % len(MARKERS)],
            label=name,
            **POINT,
        )
    ax.legend(fontsize=8, markerscale=2.5, loc="best")
    ax.set_title("(a) by subset")


def _panel_elements(ax: Any, x: np.ndarray, y: np.ndarray, atomic_number: np.ndarray) -> None:
    from ase.data import chemical_symbols
    from ase.data.colors import jmol_colors
    from matplotlib.lines import Line2D

    elements = np.unique(atomic_number)
    ax.scatter(x, y, c=jmol_colors[atomic_number], edgecolors="0.4", linewidths=0.1, s=6)
    counts = {int(z): int((atomic_number == z).sum()) for z in elements}
    shown = sorted(counts, key=lambda z: -counts[z])[:12]
    handles = [
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
    ]
    ax.legend(
        handles=handles,
        fontsize=8,
        ncol=2,
        loc="best",
        title="12 most frequent",
        title_fontsize=8,
    )
    ax.set_title("(b) by element (Jmol colours)")


def _panel_groups(ax: Any, x: np.ndarray, y: np.ndarray, atomic_number: np.ndarray) -> None:
    import matplotlib.pyplot as plt

    other = ~np.isin(atomic_number, ORGANIC)
    ax.scatter(x, y, color="0.88", **POINT)
    groups = np.array([periodic_group(int(z)) for z in atomic_number[other]], dtype=int)
    # tab20 without its two greys (which the grey background would hide): 18 colours, one per
    # group
    group_colours = [c for k, c in enumerate(plt.get_cmap("tab20").colors) if k not in (14, 15)]
    for group in np.unique(groups):
        mask = groups == group
        ax.scatter(
            x[other][mask],
            y[other][mask],
            color=group_colours[group - 1],
            label=f"group {group}",
            **{**POINT, "s": 10},
        )
    if other.any():
        ax.legend(fontsize=8, markerscale=2, ncol=2, loc="best")
    ax.set_title("(c) elements other than H, C, N, O, by periodic group")


def _panel_ellipses(
    ax: Any,
    x: np.ndarray,
    y: np.ndarray,
    atomic_number: np.ndarray,
    chosen: np.ndarray,
    elements: Sequence[int],
    n_sigma: float,
) -> None:
    """`chosen[:, k]`: the atoms of element `elements[k]` in the ellipse subset."""
    from ase.data import chemical_symbols
    from ase.data.colors import jmol_colors
    from matplotlib.patches import Ellipse

    ax.scatter(x, y, color="0.88", **POINT)
    for k, z in enumerate(elements):
        mask = chosen[:, k]
        if mask.sum() < 2:
            continue
        ax.scatter(
            x[mask],
            y[mask],
            color=jmol_colors[z],
            edgecolors="0.3",
            **{**POINT, "s": 10, "linewidths": 0.2},
        )
        center, width, height, angle = covariance_ellipse(
            np.column_stack([x[mask], y[mask]]), n_sigma
        )
        ellipse = Ellipse(
            center,
            width,
            height,
            angle=angle,
            fill=False,
            linestyle="--",
            edgecolor="0.2",
            linewidth=1.0,
        )
        ax.add_patch(ellipse)
        ax.annotate(
            chemical_symbols[z], center, fontsize=10, fontweight="bold", ha="center", va="center"
        )
