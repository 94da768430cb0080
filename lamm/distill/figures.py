"""Figures of a distillation run: error per round, and MD speed of teacher and student (the
student-vs-teacher parity plot is `lamm.analysis.parity.parity_plot` on the validation set)."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

TEACHER_COLOR, STUDENT_COLOR = "#de8f05", "#0173b2"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def rounds_figure(
    rows: Sequence[Mapping[str, Any]],
    path: str | os.PathLike,
    *,
    teacher_error: float | None = None,
    ratio: float = 1.5,
) -> Path:
    """Student force MAE against the teacher (validation set) per round, the labels so far, and
    the teacher's own error against the labels (with `ratio` x it, the acceptance line)."""
    from lamm.analysis.figures import save_figure

    plt = _pyplot()
    trained = [r for r in rows if r.get("status") == "trained"]
    figure, axis = plt.subplots(figsize=(5.5, 3.5))
    axis.plot(
        [r["round"] for r in trained],
        [r["student_forces_mae_mev_per_a"] for r in trained],
        "o-",
        color=STUDENT_COLOR,
        label="student vs teacher (validation)",
    )
    if teacher_error is not None and math.isfinite(teacher_error):
        axis.axhline(
            teacher_error, color=TEACHER_COLOR, ls="-", lw=1, label="teacher vs labels (test)"
        )
        axis.axhline(
            ratio * teacher_error,
            color=TEACHER_COLOR,
            ls="--",
            lw=1,
            label=f"{ratio:g} x teacher vs labels",
        )
    axis.set_xlabel("round", fontsize=9)
    axis.set_ylabel("force MAE (meV/A)", fontsize=9)
    axis.set_xticks([r["round"] for r in rows])
    axis.tick_params(labelsize=9)
    right = axis.twinx()
    right.bar(
        [r["round"] for r in rows],
        [r.get("labels_total", 0) for r in rows],
        width=0.4,
        color="0.85",
        zorder=0,
    )
    right.set_ylabel("teacher labels so far", fontsize=9, color="0.4")
    right.tick_params(labelsize=9, colors="0.4")
    axis.set_zorder(right.get_zorder() + 1)
    axis.patch.set_visible(False)
    axis.legend(fontsize=8, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
    figure.tight_layout()
    return save_figure(figure, path)


def speed_figure(speed: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """MD atoms/s of teacher and student (best repeat; the other repeats as dots)."""
    from lamm.analysis.figures import save_figure

    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(3.8, 3.2))
    names = ["teacher", "student"]
    values = [speed[f"{n}_atoms_per_s"] for n in names]
    axis.bar(names, values, color=[TEACHER_COLOR, STUDENT_COLOR], width=0.6)
    for x, name in enumerate(names):
        runs = speed.get(f"{name}_atoms_per_s_runs") or []
        axis.plot([x] * len(runs), runs, "k.", ms=4)
    axis.set_ylabel("MD speed (atoms x steps / s)", fontsize=9)
    natoms = speed["speed_natoms"]
    axis.set_title(
        f"velocity Verlet, {len(natoms)} cells of {min(natoms)}-{max(natoms)} atoms: "
        f"{values[1] / values[0]:.1f}x",
        fontsize=9,
    )
    axis.tick_params(labelsize=9)
    figure.tight_layout()
    return save_figure(figure, path)
