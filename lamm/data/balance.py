"""Which rank trains on which sample at which step: LaMM's load balancer and two baselines.

All planners are pure functions of (work per sample, world size W, per-rank batch B', seed):
every rank computes the same plan without communicating, and a restarted run recomputes it.
An epoch plan uses every sample exactly once (no padding, nothing dropped; under a memory cap,
samples larger than the cap, and in rare cases fewer than W samples at the end of the epoch
when no rank anywhere has room, are reported in `EpochPlan.skipped`), every step gives
every rank at least one sample, and all but the last step hold exactly W * B' samples; when
fewer than W samples are left over at the end, they join the last step (some ranks then get
B' + 1 samples) instead of being dropped or padded with repeats as `DistributedSampler` does.

LaMM (`plan_lamm`, SPEC section 6, LaMM section 3.4):
1. Shuffle the epoch and split it into S random splits; sort each split by work, descending.
2. Cut each split into chunks of W samples. Splits are taken in groups of B'; inside a group
   the chunks are rearranged all-to-all: the group's sorted chunk lists are merged by chunk
   work (chunk 0 of every split, then chunk 1 of every split, ...), and every B' consecutive
   chunks form one mini-batch. So a mini-batch mixes splits and holds W * B' samples of
   nearly equal size, and within a group the work per step never grows (nor does the memory
   the allocator must provide). Groups are consumed in turn, which spreads subsets of large
   structures (ODAC) over the epoch instead of front-loading them, the reason for splitting.
3. Inside each mini-batch, samples go to ranks greedily, largest first to the least loaded
   rank (LPT).
What does not fill a chunk or a mini-batch (at most W - 1 samples per split and B' - 1 chunks
per group) is pooled at the end of the epoch, sorted, and balanced the same way.

Baselines: `plan_random` (what `DistributedSampler` + per-rank batches do: every rank takes B'
random samples per step) and `plan_greedy` (fairchem's `BalancedBatchSampler`: a random global
batch of W * B' samples per step, then LPT over it; with B' = 1 every rank still gets one random
sample, so it cannot help there).

Work per sample is the atom count by default, or any positive cost (edges, a fitted time per
structure; see `lamm.data.cost`). The memory cap `max_atoms_per_rank` always counts atoms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lamm.data.lpt import assign_lpt

STRATEGIES = ("lamm", "greedy", "random")  # the planners below, by name

Seed = int | Sequence[int]


@dataclass(frozen=True)
class EpochPlan:
    """Sample `sample[j]` is trained on by rank `rank[j]` at step `step[j]`.

    Entries are ordered by step, then rank, then the order the balancer placed them (largest
    first). `block[k]` says which split group step k came from (the pool of leftovers has the
    last id). `skipped` maps a reason to the samples that are in no step.
    """

    sample: np.ndarray  # [m] int64, indices into the natoms array given to the planner
    step: np.ndarray  # [m] int64
    rank: np.ndarray  # [m] int64
    num_steps: int
    world_size: int
    block: np.ndarray  # [num_steps] int64
    skipped: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.num_steps

    @property
    def steps(self) -> list[list[np.ndarray]]:
        """steps[k][r] = the sample indices rank r trains on at step k."""
        bounds = np.searchsorted(
            self.step * self.world_size + self.rank, np.arange(self.num_steps * self.world_size + 1)
        )
        return [
            [
                self.sample[bounds[k * self.world_size + r] : bounds[k * self.world_size + r + 1]]
                for r in range(self.world_size)
            ]
            for k in range(self.num_steps)
        ]

    def rank_steps(self, rank: int) -> list[np.ndarray]:
        """The samples of one rank, per step (what a DDP sampler on that rank yields)."""
        if not 0 <= rank < self.world_size:
            raise ValueError(f"rank {rank} outside world size {self.world_size}")
        mine = self.rank == rank
        samples, steps = self.sample[mine], self.step[mine]
        bounds = np.searchsorted(steps, np.arange(self.num_steps + 1))
        return [samples[bounds[k] : bounds[k + 1]] for k in range(self.num_steps)]

    def loads(self, values: np.ndarray) -> np.ndarray:
        """[num_steps, W] sum of `values` (per sample: atoms, cost) on each rank at each step."""
        values = np.asarray(values, dtype=np.float64)
        out = np.zeros(self.num_steps * self.world_size, dtype=np.float64)
        np.add.at(out, self.step * self.world_size + self.rank, values[self.sample])
        return out.reshape(self.num_steps, self.world_size)


class TooFewSamplesError(ValueError):
    """An epoch with fewer samples than ranks: some rank would get none."""


def efficiency(loads: np.ndarray) -> float:
    """Mean rank load over max rank load, summed over steps: 1 = no rank ever waits."""
    loads = np.asarray(loads, dtype=np.float64)
    return float(loads.mean(axis=1).sum() / loads.max(axis=1).sum())


# --- planners ----------------------------------------------------------------------------------
def plan_lamm(
    natoms: np.ndarray,
    world_size: int,
    batch_per_rank: int,
    num_splits: int,
    seed: Seed,
    *,
    work: np.ndarray | None = None,
    max_atoms_per_rank: int | None = None,
) -> EpochPlan:
    """LaMM's three steps (module docstring). `num_splits` is capped so every split holds at
    least one chunk of W samples; `max_atoms_per_rank` defers samples that would overfill a rank
    to the pool and reports those that exceed it alone."""
    natoms, work, candidates, skipped = _prepare(
        natoms, work, world_size, batch_per_rank, max_atoms_per_rank
    )
    if num_splits < 1:
        raise ValueError(f"num_splits must be at least 1, got {num_splits}")
    w, b = world_size, batch_per_rank
    rng = np.random.default_rng(seed)
    order = rng.permutation(candidates)
    num_splits = int(min(num_splits, max(1, len(order) // w)))
    batches: list[np.ndarray] = []  # each: the W * B' samples of one mini-batch
    blocks: list[int] = []
    pool: list[np.ndarray] = []
    splits = np.array_split(order, num_splits)
    for group_id, start in enumerate(range(0, num_splits, b)):
        chunk_rows = []
        for split in splits[start : start + b]:
            ranked = split[np.argsort(-work[split], kind="stable")]
            full = len(ranked) // w * w
            chunk_rows.append(ranked[:full].reshape(-1, w))  # [chunks, W]
            pool.append(ranked[full:])
        # all-to-all: merge the group's sorted chunk lists by chunk work (chunk 0 of every
        # split first, then chunk 1, ...), so consecutive mini-batches never grow
        chunks = np.concatenate(chunk_rows)  # [chunks in group, W]
        interleaved = list(chunks[np.argsort(-work[chunks].sum(axis=1), kind="stable")])
        usable = len(interleaved) // b * b
        for first in range(0, usable, b):
            batches.append(np.concatenate(interleaved[first : first + b]))
            blocks.append(group_id)
        pool.extend(interleaved[usable:])
    builder = _PlanBuilder(w)
    builder.add(*assign_lpt(batches, work, natoms, w, max_atoms_per_rank), blocks=blocks)
    leftovers = np.concatenate([*pool, builder.deferred])
    pool_block = -(-num_splits // b)  # after the last group
    return builder.finish(
        leftovers, work, natoms, b, max_atoms_per_rank, skipped, pool_block, sort_pool=True
    )


def plan_greedy(
    natoms: np.ndarray,
    world_size: int,
    batch_per_rank: int,
    seed: Seed,
    *,
    work: np.ndarray | None = None,
) -> EpochPlan:
    """fairchem's BalancedBatchSampler: random global batches of W * B', LPT inside each."""
    natoms, work, candidates, skipped = _prepare(natoms, work, world_size, batch_per_rank, None)
    order = np.random.default_rng(seed).permutation(candidates)
    # the whole (shuffled) epoch is the "pool", cut in order into global batches
    return _PlanBuilder(world_size).finish(
        order, work, natoms, batch_per_rank, None, skipped, 0, sort_pool=False
    )


def plan_random(natoms: np.ndarray, world_size: int, batch_per_rank: int, seed: Seed) -> EpochPlan:
    """DistributedSampler: every rank takes B' random samples per step, regardless of size."""
    natoms, _, candidates, skipped = _prepare(natoms, None, world_size, batch_per_rank, None)
    order = np.random.default_rng(seed).permutation(candidates)
    per_step = world_size * batch_per_rank
    cuts = _step_cuts(len(order), per_step, world_size)
    sample = order
    step = np.repeat(np.arange(len(cuts) - 1), np.diff(cuts))
    rank = np.concatenate(
        [np.arange(cuts[k + 1] - cuts[k]) % world_size for k in range(len(cuts) - 1)]
    )
    return _build(
        sample,
        step,
        rank,
        len(cuts) - 1,
        world_size,
        np.zeros(len(cuts) - 1, dtype=np.int64),
        skipped,
    )


# --- the interface of INTERFACES.md: nested lists ----------------------------------------------
def balanced_batches(
    natoms: np.ndarray,
    world_size: int,
    batch_per_rank: int,
    num_splits: int,
    seed: Seed,
    *,
    work: np.ndarray | None = None,
    max_atoms_per_rank: int | None = None,
) -> list[list[np.ndarray]]:
    """steps[k][r] = indices rank r trains on at step k (LaMM). Raises ValueError when a cap
    leaves samples unplaced; use `plan_lamm` to get them reported instead."""
    plan = plan_lamm(
        natoms,
        world_size,
        batch_per_rank,
        num_splits,
        seed,
        work=work,
        max_atoms_per_rank=max_atoms_per_rank,
    )
    if plan.skipped:
        detail = ", ".join(
            f"{len(v)} {reason} (e.g. {v[:5].tolist()})" for reason, v in plan.skipped.items()
        )
        raise ValueError(
            f"samples that fit on no rank under max_atoms_per_rank={max_atoms_per_rank}: {detail}"
        )
    return plan.steps


def greedy_batches(
    natoms: np.ndarray,
    world_size: int,
    batch_per_rank: int,
    seed: Seed,
    *,
    work: np.ndarray | None = None,
) -> list[list[np.ndarray]]:
    return plan_greedy(natoms, world_size, batch_per_rank, seed, work=work).steps


def random_batches(
    natoms: np.ndarray, world_size: int, batch_per_rank: int, seed: Seed
) -> list[list[np.ndarray]]:
    return plan_random(natoms, world_size, batch_per_rank, seed).steps


# --- internals ---------------------------------------------------------------------------------
def _prepare(natoms, work, world_size, batch_per_rank, max_atoms_per_rank):
    natoms = np.asarray(natoms)
    if natoms.ndim != 1:
        raise ValueError(f"natoms must be 1-D, got shape {natoms.shape}")
    if not np.issubdtype(natoms.dtype, np.integer) or (len(natoms) and natoms.min() < 1):
        raise ValueError("natoms must be positive integers (atoms per sample)")
    natoms = natoms.astype(np.int64)
    if world_size < 1 or batch_per_rank < 1:
        raise ValueError(
            f"world_size and batch_per_rank must be at least 1, got {world_size} and "
            f"{batch_per_rank}"
        )
    if work is None:
        work = natoms.astype(np.float64)
    else:
        work = np.asarray(work, dtype=np.float64)
        if work.shape != natoms.shape:
            raise ValueError(f"work has shape {work.shape}, natoms {natoms.shape}")
        if not (np.isfinite(work).all() and (work > 0).all()):
            raise ValueError("work must be finite and positive for every sample")
    skipped: dict[str, np.ndarray] = {}
    candidates = np.arange(len(natoms), dtype=np.int64)
    if max_atoms_per_rank is not None:
        if max_atoms_per_rank < 1:
            raise ValueError(f"max_atoms_per_rank must be positive, got {max_atoms_per_rank}")
        too_large = natoms > max_atoms_per_rank
        if too_large.any():
            skipped["exceeds_max_atoms_per_rank"] = candidates[too_large]
            candidates = candidates[~too_large]
    if len(candidates) < world_size:
        raise TooFewSamplesError(
            f"{len(candidates)} schedulable samples cannot give each of {world_size} ranks "
            "one sample"
        )
    return natoms, work, candidates, skipped


def _step_cuts(count: int, per_step: int, world_size: int) -> np.ndarray:
    """Boundaries of consecutive steps of `per_step` samples; a last step of at least W samples
    stands alone, fewer than W join the step before."""
    cuts = list(range(0, count, per_step)) + [count]
    if len(cuts) > 2 and cuts[-1] - cuts[-2] < world_size:
        del cuts[-2]
    return np.asarray(cuts, dtype=np.int64)


class _PlanBuilder:
    """Collects assigned batches as steps, then balances the leftover pool and the tail."""

    def __init__(self, world_size: int) -> None:
        self.world_size = world_size
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self.blocks: list[int] = []
        self.num_steps = 0
        self.deferred = np.zeros(0, dtype=np.int64)

    def add(self, sample, batch, rank, deferred, *, blocks) -> None:
        count = len(blocks)
        # batch ids are dense 0..count-1: every batch of >= W samples places >= W of them
        self.parts.append((sample, batch + self.num_steps, rank))
        self.blocks.extend(blocks)
        self.num_steps += count
        self.deferred = deferred

    def finish(
        self, leftovers, work, natoms, batch_per_rank, cap, skipped, pool_block, *, sort_pool
    ) -> EpochPlan:
        w = self.world_size
        leftovers = np.asarray(leftovers, dtype=np.int64)
        while len(leftovers) >= w:
            if sort_pool:
                leftovers = leftovers[np.argsort(-work[leftovers], kind="stable")]
            cuts = _step_cuts(len(leftovers), w * batch_per_rank, w)
            batches = [leftovers[cuts[i] : cuts[i + 1]] for i in range(len(cuts) - 1)]
            self.add(*assign_lpt(batches, work, natoms, w, cap), blocks=[pool_block] * len(batches))
            leftovers = self.deferred
        sample, step, rank = (np.concatenate(x) for x in zip(*self.parts, strict=True))
        if len(leftovers):
            # Fewer than W samples remain (a small pool, or deferrals under a cap): they cannot make
            # a step of their own, so the last step is rebalanced with them.
            last = step == self.num_steps - 1
            merged = np.concatenate([sample[last], leftovers])
            extra_sample, _, extra_rank, unplaced = assign_lpt([merged], work, natoms, w, cap)
            sample = np.concatenate([sample[~last], extra_sample])
            step = np.concatenate([step[~last], np.full(len(extra_sample), self.num_steps - 1)])
            rank = np.concatenate([rank[~last], extra_rank])
            if len(unplaced):
                # Under a cap the last step may be full: move the smallest samples of ranks that
                # hold more than one into a final step beside the unplaced ones (one per rank).
                sample, step, rank, unplaced = self._final_step(
                    sample, step, rank, unplaced, natoms, work, cap
                )
            if len(unplaced):
                skipped = {**skipped, "no_room_under_max_atoms_per_rank": np.sort(unplaced)}
        return _build(
            sample, step, rank, self.num_steps, w, np.asarray(self.blocks, dtype=np.int64), skipped
        )

    def _final_step(self, sample, step, rank, unplaced, natoms, work, cap):
        w = self.world_size
        need = w - len(unplaced)
        slot = step * w + rank
        remaining = np.bincount(slot, minlength=self.num_steps * w)  # samples per (step, rank)
        borrowed = []
        for entry in np.argsort(natoms[sample], kind="stable"):  # smallest first
            if len(borrowed) == need:
                break
            if remaining[slot[entry]] > 1:
                remaining[slot[entry]] -= 1
                borrowed.append(entry)
        if len(borrowed) < need:  # every rank holds one sample per step (B' = 1): nothing to move
            return sample, step, rank, unplaced
        keep = np.ones(len(sample), dtype=bool)
        keep[borrowed] = False
        final = np.concatenate([unplaced, sample[borrowed]])  # W samples, each within the cap alone
        final_sample, _, final_rank, left = assign_lpt([final], work, natoms, w, cap)
        self.blocks.append(self.blocks[-1])
        self.num_steps += 1
        step_of_final = np.full(len(final_sample), self.num_steps - 1)
        return (
            np.concatenate([sample[keep], final_sample]),
            np.concatenate([step[keep], step_of_final]),
            np.concatenate([rank[keep], final_rank]),
            left,
        )


def _build(sample, step, rank, num_steps, world_size, block, skipped) -> EpochPlan:
    order = np.lexsort((np.arange(len(sample)), rank, step))  # by step, rank, placement order
    plan = EpochPlan(
        sample=np.asarray(sample, dtype=np.int64)[order],
        step=np.asarray(step, dtype=np.int64)[order],
        rank=np.asarray(rank, dtype=np.int64)[order],
        num_steps=int(num_steps),
        world_size=world_size,
        block=block,
        skipped=skipped,
    )
    per_step_ranks = np.zeros((num_steps, world_size), dtype=bool)
    per_step_ranks[plan.step, plan.rank] = True
    if not per_step_ranks.all():  # an invariant of the planners, checked because DDP would hang
        raise AssertionError("a rank got no sample in some step")
    return plan
