"""Measured DDP throughput of the samplers: many short real trainings in one process group.

Each case (sampler, dataset, per-rank batch, optional atom cap) is a real pre-training run
(`run_pretraining`, hence the same Trainer, DDP and loader) of a fixed number of optimizer
steps, with validation, checkpoints and MLflow effectively off, so the trainer's per-rank
`timings.csv` holds the steps and nothing else. All cases run inside one process group (one
launch, one rendezvous, one torch import per rank): on a 2-core machine starting the ranks
costs more than a short case.

A dataset is either one subset of the trainer config (e.g. `oc20_s2ef`) or `joint`: all its
subsets, temperature-sampled as in pre-training.
"""

from __future__ import annotations

import copy
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamm.data.sampler import STRATEGIES, DistributedBatchSampler
from lamm.data.store import StructureStore

log = logging.getLogger(__name__)

JOINT = "joint"
# Large enough that validation only runs at the first and last step (the trainer always does).
NEVER = 10**9


@dataclass(frozen=True)
class ThroughputCase:
    """One measured configuration."""

    sampler: str
    dataset: str
    batch_per_rank: int
    max_atoms_per_rank: int | None = None
    num_splits: int | None = None  # None: the trainer config's

    def __post_init__(self) -> None:
        if self.sampler not in STRATEGIES:
            raise ValueError(f"unknown sampler {self.sampler!r}; expected one of {STRATEGIES}")
        if self.batch_per_rank < 1:
            raise ValueError(f"batch_per_rank must be at least 1, got {self.batch_per_rank}")
        if self.max_atoms_per_rank is not None and self.sampler != "lamm":
            raise ValueError("only the lamm sampler takes a max_atoms_per_rank cap")

    @property
    def name(self) -> str:
        cap = f"_cap{self.max_atoms_per_rank}" if self.max_atoms_per_rank else ""
        return f"{self.dataset}_{self.sampler}_b{self.batch_per_rank}{cap}"


def dataset_subsets(dataset: str, subsets: Sequence[str]) -> list[str]:
    """The subsets a dataset name stands for (`joint` = all of the config's)."""
    if dataset == JOINT:
        return list(subsets)
    if dataset not in subsets:
        raise ValueError(
            f"unknown dataset {dataset!r}: expected {JOINT!r} or one of the config's "
            f"subsets {list(subsets)}"
        )
    return [dataset]


def case_config(
    base: Mapping[str, Any], case: ThroughputCase, *, steps: int, seed: int
) -> dict[str, Any]:
    """The trainer config of one case: the base config with sampler, data and logging overridden."""
    config = copy.deepcopy(dict(base))
    config["name"] = f"throughput-{case.name}"
    config["seed"] = seed
    config["data"]["subsets"] = dataset_subsets(case.dataset, base["data"]["subsets"])
    # no DataLoader worker processes: on a few shared cores they would compete with the ranks
    # and blur the compute times; batch building is then timed as data_s inside the step
    config["data"]["num_workers"] = 0
    config["sampler"].update(
        strategy=case.sampler,
        batch_per_rank=case.batch_per_rank,
        max_atoms_per_rank=case.max_atoms_per_rank,
    )
    if case.num_splits is not None:
        config["sampler"]["num_splits"] = case.num_splits
    # epochs: the schedule must span at least `steps` (tiny single-subset epochs at large
    # batches); the run stops after `steps` anyway.
    config["train"].update(
        epochs=float(max(1, steps)),
        checkpoint_epochs=[],
        val_every_steps=NEVER,
        val_max_samples=1,
        log_every_steps=max(1, steps),
        save_every_minutes=float(NEVER),
    )
    return config


def train_natoms(
    data_dir: str | os.PathLike, subsets: Sequence[str]
) -> tuple[np.ndarray, list[int]]:
    """(atoms of every train sample in the dataset's order, samples per subset)."""
    natoms, sizes = [], []
    for subset in subsets:
        store = StructureStore(Path(data_dir) / f"{subset}.lmdb")
        counts = store.natoms[store.indices("train")].astype(np.int64)
        natoms.append(counts)
        sizes.append(len(counts))
    return np.concatenate(natoms), sizes


def splits_for_group_steps(
    natoms: np.ndarray,
    sizes: Sequence[int],
    *,
    world_size: int,
    temperature: float | None,
    seed: int,
    group_steps: int,
) -> int:
    """LaMM's S such that each of the epoch's first groups of splits lasts exactly `group_steps`
    steps.

    The lamm plan consumes B' splits at a time from their largest samples to their smallest,
    and a group lasts (split size) / W steps whatever B'. A short measurement of the first steps
    of an epoch would see only the large samples of the first group; a window of whole groups
    sees a random sample of the epoch. More than that: every planner starts from the same
    shuffled epoch (same seed), random and greedy cut it into consecutive global batches, and a
    lamm group whose B' splits hold exactly W * `group_steps` samples each is the same
    consecutive stretch of it. So with S = ceil(epoch / (W * group_steps)) (numpy's
    `array_split` makes the first splits the full-sized ones) a window of whole groups holds the
    same structures under every sampler, and the samplers are timed on the same work: the
    structures of a demo epoch differ in cost by 100x, and with S rounded down the windows
    differed by a few structures. Exact for the first S - (S * W * group_steps - epoch) splits,
    i.e. all but the last few.
    """
    if group_steps < 1:
        raise ValueError(f"group_steps must be at least 1, got {group_steps}")
    sampler = DistributedBatchSampler(
        natoms, sizes, world_size=world_size, temperature=temperature, seed=seed
    )
    epoch = len(sampler.epoch_samples(0))
    return max(1, -(-epoch // (world_size * group_steps)))


def peak_atoms_per_rank(
    natoms: np.ndarray,
    sizes: Sequence[int],
    *,
    strategy: str,
    world_size: int,
    batch_per_rank: int,
    temperature: float | None,
    num_splits: int,
    seed: int,
    max_atoms_per_rank: int | None = None,
    epochs: int = 1,
) -> int:
    """Most atoms one rank holds in any step of the first `epochs` epochs (the exact training
    plan)."""
    sampler = DistributedBatchSampler(
        natoms,
        sizes,
        world_size=world_size,
        batch_per_rank=batch_per_rank,
        strategy=strategy,
        temperature=temperature,
        num_splits=num_splits,
        seed=seed,
        max_atoms_per_rank=max_atoms_per_rank,
    )
    peak = 0
    for epoch in range(epochs):
        plan, samples = sampler.plan(epoch)
        peak = max(peak, int(plan.loads(natoms[samples]).max()))
    return peak


def case_dir(out_root: str | os.PathLike, case: ThroughputCase, repeat: int) -> Path:
    """Where one repeat of a case writes its trainer outputs."""
    return Path(out_root) / f"rep{repeat}" / case.name


def case_order(cases: Sequence[ThroughputCase], repeat: int) -> list[ThroughputCase]:
    """The order the cases run in repeat `repeat`: within each group of cases compared with one
    another (same dataset and per-rank batch) the samplers rotate by one place per repeat, and
    so do the groups, so no sampler always runs first (on a cold cache, or after a heavy case)
    or always follows the same case. Over as many repeats as a group has cases, each sampler
    takes each place once."""
    groups: dict[tuple[str, int], list[ThroughputCase]] = {}
    for case in cases:
        groups.setdefault((case.dataset, case.batch_per_rank), []).append(case)
    rotated = [
        group[repeat % len(group) :] + group[: repeat % len(group)] for group in groups.values()
    ]
    shift = repeat % len(rotated) if rotated else 0
    return [case for group in rotated[shift:] + rotated[:shift] for case in group]


def another_repeat_fits(elapsed_s: float, repeats_done: int, budget_s: float | None) -> bool:
    """Whether one more repeat fits a time budget: the first always runs; another only when the
    mean repeat so far still fits in what is left (None: no budget)."""
    if budget_s is None or repeats_done == 0:
        return True
    return elapsed_s + elapsed_s / repeats_done <= budget_s


def run_cases(
    cases: Sequence[ThroughputCase],
    base_config: Mapping[str, Any],
    data_dir: str | os.PathLike,
    out_root: str | os.PathLike,
    *,
    steps: int,
    seed: int,
    repeats: int = 1,
    resume: bool = False,
    budget_s: float | None = None,
) -> list[dict[str, Any]]:
    """What every rank runs: the cases one after the other in one process group.

    With `repeats` > 1 the whole list runs again (interleaved, so a burst of load from other
    processes hits one repeat of many cases rather than every repeat of one case), in the order
    `case_order` rotates per repeat. Returns per
    case and repeat {case, repeat, out_dir, summary}; each writes
    `<out_root>/rep<r>/<case.name>/timings.csv`. `resume` is accepted for the launcher's requeue
    protocol only: a benchmark restarts its cases. `budget_s` stops before a repeat that would not
    fit (rank 0 decides, every rank follows), so a loaded host runs fewer repeats, not longer.
    """
    import torch

    from lamm.training.distributed import init_distributed, shutdown
    from lamm.training.pretrain import run_pretraining

    context = init_distributed(base_config["device"], base_config["threads_per_rank"])
    try:
        results = []
        started = time.monotonic()
        for repeat in range(repeats):
            # on the rank's device: NCCL broadcasts CUDA tensors only
            fits = torch.tensor(
                [int(another_repeat_fits(time.monotonic() - started, repeat, budget_s))],
                device=context.device,
            )
            if context.distributed:
                torch.distributed.broadcast(fits, src=0)
            if not fits.item():
                log.warning(
                    "throughput: %d of %d repeats fit the %.0f s budget", repeat, repeats, budget_s
                )
                break
            for case in case_order(cases, repeat):
                out_dir = case_dir(out_root, case, repeat)
                config = case_config(base_config, case, steps=steps, seed=seed)
                summary = run_pretraining(
                    config, data_dir, out_dir, max_steps=steps, track=False, validate=False
                )
                results.append(
                    {
                        "case": case.name,
                        "repeat": repeat,
                        "out_dir": str(out_dir),
                        "summary": summary,
                    }
                )
        return results
    finally:
        shutdown()


def rank_step_totals(
    values: np.ndarray,
    natoms: np.ndarray,
    sizes: Sequence[int],
    case: ThroughputCase,
    *,
    world_size: int,
    temperature: float | None,
    num_splits: int,
    seed: int,
    steps: int,
) -> np.ndarray:
    """[steps, W]: a per-sample quantity (atoms, edges) summed over the samples each rank
    trained on in each of a case's first `steps` trainer steps.

    The sampler is a pure function of (sizes, world size, seed, epoch), so the plan the trainer
    followed is rebuilt here rather than logged; epochs follow each other as in the trainer.
    """
    sampler = DistributedBatchSampler(
        natoms,
        sizes,
        world_size=world_size,
        batch_per_rank=case.batch_per_rank,
        strategy=case.sampler,
        temperature=temperature,
        num_splits=case.num_splits or num_splits,
        seed=seed,
        max_atoms_per_rank=case.max_atoms_per_rank,
    )
    totals: list[list[float]] = []
    epoch = 0
    while len(totals) < steps:
        plan, samples = sampler.plan(epoch)
        per_rank = [plan.rank_steps(rank) for rank in range(world_size)]
        for k in range(min(len(plan), steps - len(totals))):
            totals.append(
                [float(values[samples[per_rank[rank][k]]].sum()) for rank in range(world_size)]
            )
        epoch += 1
    return np.asarray(totals)
