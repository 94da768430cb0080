"""Fig. 9 (fine-tuning learning curves per checkpoint) and the sample-efficiency figure."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from lamm.analysis.figures import save_figure
from lamm.analysis.finetune import ENERGY, FORCES, SCRATCH, FinetuneRun, moving_average


def _label(checkpoint: str) -> str:
    return "scratch" if checkpoint == SCRATCH else f"pre-trained {checkpoint} epoch"


def finetune_curves(runs: Sequence[FinetuneRun], path: str | os.PathLike, *, thresholds: dict[str, float] | None = None,
                    window: int = 31) -> None:
    """Top: validation energy MAE (meV/atom) and force MAE (meV/A) per step, one line per
    checkpoint, thresholds dashed. Bottom: the training loss terms (normalized units),
    `window`-point moving averages (the paper's 31)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(10, 7), sharex="col")
    colors = plt.get_cmap("viridis")
    ordered = sorted(runs, key=lambda r: r.epoch)
    for i, run in enumerate(ordered):
        scratch = run.checkpoint == SCRATCH
        color = "black" if scratch else colors(0.15 + 0.7 * i / max(1, len(ordered) - 1))
        style = {"color": color, "linestyle": "--" if scratch else "-", "zorder": 3 if scratch else 2}
        for column, (metric, loss) in enumerate([(ENERGY, "loss/energy"), (FORCES, "loss/forces")]):
            curve = run.validation[metric]
            axes[0, column].plot([s for s, _ in curve], [v for _, v in curve], marker="o", markersize=3, **style,
                                 label=_label(run.checkpoint))
            smooth = moving_average(run.training[loss], window)
            axes[1, column].plot([s for s, _ in smooth], [v for _, v in smooth], **style, label=_label(run.checkpoint))
    for column, (metric, title, unit) in enumerate([(ENERGY, "energy", "meV/atom"), (FORCES, "forces", "meV/Å")]):
        if thresholds and metric in thresholds:
            axes[0, column].axhline(thresholds[metric], color="grey", linestyle="--", linewidth=1, label="threshold")
        axes[0, column].set_title(f"validation {title} MAE")
        axes[0, column].set_ylabel(f"MAE ({unit})")
        axes[0, column].set_yscale("log")
        axes[1, column].set_title(f"training {title} loss ({window}-point moving average)")
        axes[1, column].set_ylabel("loss term (normalized)")
        axes[1, column].set_yscale("log")
        axes[1, column].set_xlabel("fine-tuning step")
    axes[0, 0].legend(fontsize=8)
    figure.tight_layout()
    save_figure(figure, path)


def sample_efficiency(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Final test energy and force MAE against the number of training structures (log-log),
    one line per starting checkpoint (DPA-2 Fig. 3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    checkpoints = list(dict.fromkeys(row["checkpoint"] for row in rows))
    for checkpoint in checkpoints:
        mine = sorted((r for r in rows if r["checkpoint"] == checkpoint), key=lambda r: r["train_structures"])
        style = {"color": "black"} if checkpoint == SCRATCH else {}
        for axis, metric in zip(axes, (ENERGY, FORCES)):
            axis.plot([r["train_structures"] for r in mine], [r[f"test_{metric}"] for r in mine], marker="o",
                      label=_label(checkpoint), **style)
    for axis, (title, unit) in zip(axes, [("energy", "meV/atom"), ("forces", "meV/Å")]):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("downstream training structures")
        axis.set_ylabel(f"test {title} MAE ({unit})")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    save_figure(figure, path)
