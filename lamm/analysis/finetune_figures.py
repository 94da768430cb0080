"""Fig. 9 (fine-tuning learning curves per checkpoint) and the sample-efficiency figure."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from lamm.analysis.figures import save_figure
from lamm.analysis.finetune import ENERGY, FORCES, SCRATCH, FinetuneRun, moving_average


def _label(checkpoint: str) -> str:
    return "scratch" if checkpoint == SCRATCH else f"pre-trained {checkpoint} epoch"


def finetune_curves(
    runs: Sequence[FinetuneRun],
    path: str | os.PathLike,
    *,
    thresholds: dict[str, float] | None = None,
    window: int = 31,
) -> None:
    """Top: validation energy MAE (meV/atom) and force MAE (meV/A) per step, one line per
    run (one color per checkpoint, one line per seed), thresholds dashed. Bottom: the training loss
    terms (normalized units), `window`-point moving averages (the paper's 31)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 2, figsize=(10, 7), sharex="col")
    colors = plt.get_cmap("viridis")
    checkpoints = sorted(
        {run.checkpoint: run.epoch for run in runs}.items(), key=lambda item: item[1]
    )
    color_of = {
        name: "black" if name == SCRATCH else colors(0.15 + 0.7 * i / max(1, len(checkpoints) - 1))
        for i, (name, _) in enumerate(checkpoints)
    }
    labelled: set[str] = set()  # one legend entry per checkpoint, however many seeds
    for run in sorted(runs, key=lambda r: (r.epoch, r.seed is not None, r.seed or 0)):
        scratch = run.checkpoint == SCRATCH
        label = None if run.checkpoint in labelled else _label(run.checkpoint)
        labelled.add(run.checkpoint)
        style = {
            "color": color_of[run.checkpoint],
            "linestyle": "--" if scratch else "-",
            "zorder": 3 if scratch else 2,
            "alpha": 0.9 if len(runs) == len(checkpoints) else 0.6,
        }  # seeds overlap: see through them
        for column, (metric, loss) in enumerate([(ENERGY, "loss/energy"), (FORCES, "loss/forces")]):
            curve = run.validation[metric]
            axes[0, column].plot(
                [s for s, _ in curve],
                [v for _, v in curve],
                marker="o",
                markersize=3,
                **style,
                label=label,
            )
            smooth = moving_average(run.training[loss], window)
            axes[1, column].plot(
                [s for s, _ in smooth], [v for _, v in smooth], **style, label=label
            )
    for column, (metric, title, unit) in enumerate(
        [(ENERGY, "energy", "meV/atom"), (FORCES, "forces", "meV/Å")]
    ):
        if thresholds and metric in thresholds:
            axes[0, column].axhline(
                thresholds[metric], color="grey", linestyle="--", linewidth=1, label="threshold"
            )
        axes[0, column].set_title(f"validation {title} MAE")
        axes[0, column].set_ylabel(f"MAE ({unit})")
        axes[0, column].set_yscale("log")
        axes[1, column].set_title(f"training {title} loss ({window}-point moving average)")
        axes[1, column].set_ylabel("loss term (normalized)")
        if any(
            len(line.get_xdata()) for line in axes[1, column].get_lines()
        ):  # a run without metrics.csv plots none
            axes[1, column].set_yscale("log")
        axes[1, column].set_xlabel("fine-tuning step")
    axes[0, 0].legend(fontsize=8)
    figure.tight_layout()
    save_figure(figure, path)


def sample_efficiency(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Final test energy and force MAE against the number of training structures (log-log),
    one line per starting checkpoint (DPA-2 Fig. 3): the mean over seeds, the band from the
    best to the worst seed where there are several."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    checkpoints = list(dict.fromkeys(row["checkpoint"] for row in rows))
    for checkpoint in checkpoints:
        mine = [r for r in rows if r["checkpoint"] == checkpoint]
        sizes = sorted({r["train_structures"] for r in mine})
        style = {"color": "black"} if checkpoint == SCRATCH else {}
        for axis, metric in zip(axes, (ENERGY, FORCES), strict=True):
            values = [
                np.array([float(r[f"test_{metric}"]) for r in mine if r["train_structures"] == n])
                for n in sizes
            ]
            (line,) = axis.plot(
                sizes, [v.mean() for v in values], marker="o", label=_label(checkpoint), **style
            )
            if any(v.size > 1 for v in values):
                axis.fill_between(
                    sizes,
                    [v.min() for v in values],
                    [v.max() for v in values],
                    color=line.get_color(),
                    alpha=0.2,
                )
    from matplotlib.ticker import NullFormatter

    sizes = sorted({r["train_structures"] for r in rows})
    for axis, (title, unit) in zip(
        axes, [("energy", "meV/atom"), ("forces", "meV/Å")], strict=True
    ):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xticks(sizes, [str(n) for n in sizes])  # the sizes run, not 2 x 10^1
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_xlabel("downstream training structures")
        axis.set_ylabel(f"test {title} MAE ({unit})")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    save_figure(figure, path)
