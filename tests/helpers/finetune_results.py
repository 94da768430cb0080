"""Hand-made fine-tuning run folders and result tables, as `lamm finetune`, `lamm summarize`
and the benchmarks write them, for the tests of Table 3 over seeds, the findings and the report
(and for looking at the report in a browser without running the workflow)."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
import yaml

STEPS = (0, 10, 20, 30, 40)


def run_folder(
    directory: Path,
    checkpoint: str,
    curves: Sequence[tuple[float, float]],
    *,
    seed: int | None = 0,
    fraction: float = 1.0,
    structures: int = 64,
    test: tuple[float, float] = (10.0, 100.0),
    steps: int = STEPS[-1],
    extra: dict | None = None,
) -> Path:
    """A finished run: summary.json (`extra` keys added), test_metrics.json, validation.csv
    (curves at STEPS) and the config.yaml the run wrote (its seed; None writes none, as an old
    run)."""
    directory.mkdir(parents=True)
    (directory / "summary.json").write_text(
        json.dumps(
            {
                "checkpoint": checkpoint,
                "steps": steps,
                "train_fraction": fraction,
                "train_structures": structures,
                "force_mode": "direct",
                **(extra or {}),
            }
        )
    )
    (directory / "test_metrics.json").write_text(
        json.dumps(
            {"energy_mae_mev_per_atom": test[0], "forces_mae_mev_per_a": test[1], "structures": 8}
        )
    )
    if seed is not None:
        (directory / "config.yaml").write_text(yaml.safe_dump({"name": "demo", "seed": seed}))
    with open(
        directory / "metrics.csv", "w", newline=""
    ) as handle:  # the training loss terms, falling
        writer = csv.writer(handle)
        writer.writerow(["step", "loss/energy", "loss/forces"])
        writer.writerows(
            [step, 1.0 / (1 + step), 2.0 / (1 + step)] for step in range(STEPS[-1] + 1)
        )
    with open(directory / "validation.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "epoch", "metric", "value"])
        for step, (energy, forces) in zip(STEPS, curves, strict=True):
            writer.writerow([step, step / 10, "val/hme21/energy_mae_mev_per_atom", energy])
            writer.writerow([step, step / 10, "val/hme21/forces_mae_mev_per_a", forces])
    return directory


def seeded_sweep(root: Path, errors: dict[str, Sequence[tuple[float, float]]]) -> list[Path]:
    """Table 3 run folders: errors[checkpoint][k] = (test energy, test forces) of seed k, in the
    workflow's folder names (seed 0 bare, seed k `_seed<k>`). The validation curves fall
    linearly from 4x to 1x the test errors, so steps to a threshold follow from the errors."""
    folders = []
    for checkpoint, per_seed in errors.items():
        for seed, (energy, forces) in enumerate(per_seed):
            label = "scratch" if checkpoint == "scratch" else f"epoch_{checkpoint}"
            curves = [
                (energy * (4 - 3 * k / 4), forces * (4 - 3 * k / 4)) for k in range(len(STEPS))
            ]
            folders.append(
                run_folder(
                    root / (label + (f"_seed{seed}" if seed else "")),
                    checkpoint,
                    curves,
                    seed=seed,
                    test=(energy, forces),
                )
            )
    return folders


def throughput_table(path: Path, repeats: int = 3) -> None:
    """throughput.csv as `lamm bench throughput` writes it (its many columns included), with
    lamm 1.1-1.2x random at equal batch and a capped larger batch."""
    rows = []
    for dataset in ("oc20_s2ef", "joint"):
        for batch, gain in ((2, 1.04), (4, 1.15)):
            for sampler, rate in (("random", 40.0), ("greedy", 41.0), ("lamm", 40.0 * gain)):
                rows.append(
                    {
                        "sampler": sampler,
                        "dataset": dataset,
                        "world_size": 2,
                        "batch_per_rank": batch,
                        "samples_per_s": rate,
                        "samples_per_s_min": rate - 1.5,
                        "samples_per_s_max": rate + 1.5,
                        "repeats": repeats,
                        "efficiency": 0.8 + 0.1 * (sampler == "lamm"),
                        "step_time_mean_s": batch / rate,
                        "step_time_median_s": batch / rate,
                        "idle_mean_s": 0.01,
                        "peak_atoms_per_rank": 300 * batch,
                        "compute_us_per_edge": 9.0,
                        "max_atoms_per_rank": None,
                        "num_splits": 10,
                        "speedup_vs_random": rate / 40.0,
                        "efficiency_speedup_vs_random": 1.0 + 0.125 * (sampler == "lamm"),
                    }
                )
        rows.append(
            {
                "sampler": "lamm",
                "dataset": dataset,
                "world_size": 2,
                "batch_per_rank": 8,
                "samples_per_s": 52.0,
                "samples_per_s_min": 50.0,
                "samples_per_s_max": 54.0,
                "repeats": repeats,
                "efficiency": 0.93,
                "max_atoms_per_rank": 1200,
                "speedup_vs_random": 52.0 / 40.0,
                "peak_atoms_per_rank": 1190,
            }
        )
    pd.DataFrame(rows).to_csv(path, index=False)
