"""The DDP batch sampler: this rank's keys per step, temperature-sampled and load-balanced.

Each epoch: draw every subset to its virtual size (`temperature_epoch`), plan the epoch with the
chosen strategy (`lamm`, `greedy`, `random`; `lamm.data.balance`), and yield, step by step, the
`SampleKey`s this rank trains on. Every rank computes the same plan from (sizes, natoms, seed,
epoch), so all ranks run the same number of steps and every rank has at least one sample in
every step, without any communication.

Resuming: `state_dict(steps_done)` records the epoch and how many of its steps were trained;
`load_state_dict` makes the next iteration start at the following step with the same keys
(hence the same noise). With a prefetching DataLoader the sampler runs ahead of training, so
the step count must come from the consumer: `lamm.data.loader.EpochLoader` tracks it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from lamm.data.balance import STRATEGIES, EpochPlan, plan_greedy, plan_lamm, plan_random
from lamm.data.dataset import SampleKey
from lamm.data.sampling import temperature_epoch

STATE_FORMAT = "lamm-batch-sampler"
_PLAN_STREAM = 0xBA1A  # separates the planner's stream from the epoch draw's


class DistributedBatchSampler(Sampler[list[SampleKey]]):
    """Yields `list[SampleKey]` per step for rank `rank` of `world_size`.

    Args:
        natoms: [N] atoms of every sample in the dataset's global order (`dataset.natoms`).
        subset_sizes: samples per subset, in order (`dataset.sizes`); they partition natoms.
        world_size, rank: the DDP group.
        batch_per_rank: B', samples per rank and step (LPT strategies may give a rank more
            small samples and another fewer large ones; the global batch is W * B').
        strategy: `lamm`, `greedy` or `random` (see `lamm.data.balance`).
        temperature: T of the temperature sampling (SPEC 2); None draws every sample once.
        num_splits: S of the LaMM balancer (capped so each split holds W samples).
        seed: seeds the epoch draw and the plan (with the epoch).
        work: [N] cost per sample to balance (default: atoms).
        max_atoms_per_rank: memory cap (lamm only); samples that never fit are in `skipped`.
    """

    def __init__(
        self,
        natoms: np.ndarray,
        subset_sizes: Sequence[int],
        *,
        world_size: int = 1,
        rank: int = 0,
        batch_per_rank: int = 1,
        strategy: str = "lamm",
        temperature: float | None = 2.0,
        num_splits: int = 10_000,
        seed: int = 0,
        work: np.ndarray | None = None,
        max_atoms_per_rank: int | None = None,
    ) -> None:
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}; expected one of {STRATEGIES}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world size {world_size}")
        if max_atoms_per_rank is not None and strategy != "lamm":
            raise ValueError(
                "max_atoms_per_rank needs strategy 'lamm' (the baselines have no memory cap)"
            )
        self.natoms = np.asarray(natoms, dtype=np.int64)
        self.subset_sizes = np.asarray(subset_sizes, dtype=np.int64)
        if self.subset_sizes.sum() != len(self.natoms):
            raise ValueError(
                f"subset sizes sum to {self.subset_sizes.sum()}, but natoms has "
                f"{len(self.natoms)} samples"
            )
        self.offsets = np.concatenate([[0], np.cumsum(self.subset_sizes)])
        self.work = None if work is None else np.asarray(work, dtype=np.float64)
        self.world_size, self.rank, self.batch_per_rank = world_size, rank, batch_per_rank
        self.strategy, self.temperature, self.num_splits, self.seed = (
            strategy,
            temperature,
            num_splits,
            seed,
        )
        self.max_atoms_per_rank = max_atoms_per_rank
        self.epoch = 0
        self._start_step = 0  # first step of the next iteration (set by load_state_dict)
        self._yielded = 0  # steps of this epoch handed out so far
        self._cached: tuple[int, EpochPlan, np.ndarray] | None = None

    # --- the epoch -------------------------------------------------------------------------
    def epoch_samples(self, epoch: int) -> np.ndarray:
        """Global sample index at each position of the epoch (the temperature-sampled draw)."""
        draws = temperature_epoch(self.subset_sizes, self.temperature, self.seed, epoch)
        return np.concatenate(
            [offset + draw for offset, draw in zip(self.offsets[:-1], draws, strict=True)]
        )

    def plan(self, epoch: int | None = None) -> tuple[EpochPlan, np.ndarray]:
        """(plan over epoch positions, global index of each position) of `epoch` (default:
        current)."""
        epoch = self.epoch if epoch is None else epoch
        if self._cached is not None and self._cached[0] == epoch:
            return self._cached[1], self._cached[2]
        samples = self.epoch_samples(epoch)
        natoms = self.natoms[samples]
        work = None if self.work is None else self.work[samples]
        seed = (self.seed, epoch, _PLAN_STREAM)
        w, b = self.world_size, self.batch_per_rank
        if self.strategy == "lamm":
            plan = plan_lamm(
                natoms,
                w,
                b,
                self.num_splits,
                seed,
                work=work,
                max_atoms_per_rank=self.max_atoms_per_rank,
            )
        elif self.strategy == "greedy":
            plan = plan_greedy(natoms, w, b, seed, work=work)
        else:
            plan = plan_random(natoms, w, b, seed)
        self._cached = (epoch, plan, samples)
        return plan, samples

    @property
    def skipped(self) -> dict[str, np.ndarray]:
        """Reason -> global indices of samples left out of the current epoch (memory cap)."""
        plan, samples = self.plan()
        return {reason: samples[positions] for reason, positions in plan.skipped.items()}

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch to iterate; keeps a resume position loaded for this same epoch."""
        if epoch < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        if epoch != self.epoch:
            self.epoch, self._start_step, self._yielded = epoch, 0, 0

    def __len__(self) -> int:
        """Steps per epoch (the same on every rank)."""
        return len(self.plan()[0])

    def __iter__(self) -> Iterator[list[SampleKey]]:
        plan, samples = self.plan()
        start, self._start_step = self._start_step, 0
        epoch = self.epoch
        for step, positions in enumerate(plan.rank_steps(self.rank)[start:], start=start):
            self._yielded = step + 1
            yield [SampleKey(int(samples[p]), epoch, int(p)) for p in positions]

    # --- resume ----------------------------------------------------------------------------
    @property
    def start_step(self) -> int:
        """Where the next iteration starts (0, or the step after a loaded state)."""
        return self._start_step

    def _identity(self) -> dict[str, Any]:
        digest = hashlib.sha256(self.natoms.tobytes())
        digest.update(self.subset_sizes.tobytes())
        if self.work is not None:
            digest.update(self.work.tobytes())
        return {
            "world_size": self.world_size,
            "batch_per_rank": self.batch_per_rank,
            "strategy": self.strategy,
            "temperature": self.temperature,
            "num_splits": self.num_splits,
            "seed": self.seed,
            "max_atoms_per_rank": self.max_atoms_per_rank,
            "data_sha256": digest.hexdigest()[:16],
        }

    def state_dict(self, steps_done: int | None = None) -> dict[str, Any]:
        """{format, version, epoch, step (steps of the epoch trained), and what must match}.

        `steps_done` defaults to the steps this sampler has yielded in the epoch (correct when
        it is iterated directly; a prefetching DataLoader needs the consumer's count).
        """
        step = self._yielded if steps_done is None else int(steps_done)
        if not 0 <= step <= len(self):
            raise ValueError(f"steps_done {step} outside 0..{len(self)}")
        return {
            "format": STATE_FORMAT,
            "version": 1,
            "epoch": self.epoch,
            "step": step,
            **self._identity(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue where `state` stopped: the next iteration starts at step `state["step"]`."""
        if state.get("format") != STATE_FORMAT or state.get("version") != 1:
            raise ValueError(
                f"not a batch sampler state: format {state.get('format')!r} version "
                f"{state.get('version')!r}"
            )
        mine = self._identity()
        differences = [
            f"{k}: saved {state.get(k)!r}, now {v!r}" for k, v in mine.items() if state.get(k) != v
        ]
        if differences:
            raise ValueError(
                "cannot resume mid-epoch with a different sampler: " + "; ".join(differences)
            )
        self.epoch, self._yielded = int(state["epoch"]), int(state["step"])
        if not 0 <= self._yielded <= len(self):
            raise ValueError(f"saved step {self._yielded} outside the epoch's {len(self)} steps")
        self._start_step = self._yielded
