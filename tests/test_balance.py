"""LaMM's load balancer and its baselines: partitions, split order, seeds, caps, efficiency."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lamm.data.balance import (
    balanced_batches,
    efficiency,
    greedy_batches,
    plan_greedy,
    plan_lamm,
    plan_random,
    random_batches,
)


def planners(natoms, world_size, batch_per_rank, num_splits, seed):
    return {
        "lamm": plan_lamm(natoms, world_size, batch_per_rank, num_splits, seed),
        "greedy": plan_greedy(natoms, world_size, batch_per_rank, seed),
        "random": plan_random(natoms, world_size, batch_per_rank, seed),
    }


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    world_size=st.integers(1, 12),
    batch_per_rank=st.integers(1, 4),
    num_splits=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
)
def test_every_epoch_is_a_partition(data, world_size, batch_per_rank, num_splits, seed):
    n = data.draw(st.integers(world_size, 300), label="samples")
    natoms = np.array(
        data.draw(st.lists(st.integers(1, 400), min_size=n, max_size=n), label="natoms")
    )
    for name, plan in planners(natoms, world_size, batch_per_rank, num_splits, seed).items():
        steps = plan.steps
        used = np.concatenate([np.concatenate(ranks) for ranks in steps])
        assert np.array_equal(np.sort(used), np.arange(n)), name  # every sample exactly once
        assert all(len(samples) >= 1 for ranks in steps for samples in ranks), name
        sizes = [sum(len(s) for s in ranks) for ranks in steps]
        per_step = world_size * batch_per_rank
        assert all(size == per_step for size in sizes[:-1]), (name, sizes)
        assert world_size <= sizes[-1] < per_step + world_size, (name, sizes)
        assert not plan.skipped


def test_hand_computed_plan():
    # one split, sorted: 10 9 8 7 | 6 5 4 3 (chunks of W = 2, mini-batches of B' = 2 chunks);
    # LPT: 10 -> r0, 9 -> r1, 8 -> r1, 7 -> r0 (17 / 17); then 6 -> r0, 5 -> r1, 4 -> r1, 3 -> r0
    natoms = np.array([3, 10, 6, 9, 4, 8, 5, 7])
    steps = balanced_batches(natoms, world_size=2, batch_per_rank=2, num_splits=1, seed=123)
    as_atoms = [[natoms[s].tolist() for s in ranks] for ranks in steps]
    assert as_atoms == [[[10, 7], [9, 8]], [[6, 3], [5, 4]]]


def test_atom_totals_fall_within_each_split():
    rng = np.random.default_rng(5)
    natoms = np.concatenate([rng.integers(8, 30, 3000), rng.integers(60, 300, 1000)])
    for batch_per_rank in (1, 3):
        plan = plan_lamm(natoms, 8, batch_per_rank, num_splits=6, seed=1)
        totals = plan.loads(natoms).sum(axis=1)
        assert len(set(plan.block.tolist())) > 2  # several split groups plus the pool
        for block in np.unique(plan.block):
            steps = np.flatnonzero(plan.block == block)
            steps = steps[steps != plan.num_steps - 1]  # the last step may take the tail
            assert (np.diff(totals[steps]) <= 0).all(), block


def test_same_seed_same_batches_other_seed_other_batches():
    natoms = np.random.default_rng(0).integers(5, 200, 500)
    for plan in (
        lambda seed: balanced_batches(natoms, 4, 2, 5, seed),
        lambda seed: greedy_batches(natoms, 4, 2, seed),
        lambda seed: random_batches(natoms, 4, 2, seed),
    ):
        same = [np.concatenate(r) for r in plan(7)], [np.concatenate(r) for r in plan(7)]
        assert all(np.array_equal(a, b) for a, b in zip(*same, strict=True))
        other = [np.concatenate(r) for r in plan(8)]
        assert not all(np.array_equal(a, b) for a, b in zip(same[0], other, strict=True))
    # a seed may be a sequence (seed, epoch), as the DDP sampler passes it
    assert not np.array_equal(
        plan_lamm(natoms, 4, 2, 5, (7, 0)).sample, plan_lamm(natoms, 4, 2, 5, (7, 1)).sample
    )


def test_lamm_balances_single_sample_batches_where_greedy_cannot():
    # atom counts spread like LaMM Fig. 4: molecules of 10-30 atoms, slabs 40-120, MOFs to 300
    rng = np.random.default_rng(0)
    natoms = np.concatenate(
        [rng.integers(10, 30, 6000), rng.integers(40, 120, 3000), rng.integers(100, 300, 1000)]
    )
    eff = {
        name: efficiency(plan.loads(natoms)) for name, plan in planners(natoms, 16, 1, 4, 3).items()
    }
    assert eff["greedy"] == pytest.approx(
        eff["random"]
    )  # LPT over one sample per rank changes nothing
    assert eff["lamm"] > 0.95 and eff["lamm"] > 2 * eff["random"], eff
    eff4 = {
        name: efficiency(plan.loads(natoms)) for name, plan in planners(natoms, 16, 4, 4, 3).items()
    }
    assert eff4["random"] < eff4["greedy"] < eff4["lamm"], eff4


def test_cost_model_work_is_balanced_instead_of_atoms():
    rng = np.random.default_rng(2)
    natoms = rng.integers(5, 100, 2000)
    edges = natoms * rng.integers(5, 60, 2000)  # dense and sparse structures of equal size
    by_edges = plan_lamm(natoms, 8, 1, 2, 0, work=edges)
    by_atoms = plan_lamm(natoms, 8, 1, 2, 0)
    assert efficiency(by_edges.loads(edges)) > efficiency(by_atoms.loads(edges)) + 0.1
    with pytest.raises(ValueError, match="positive"):
        plan_lamm(natoms, 8, 1, 2, 0, work=np.zeros(len(natoms)))


def test_memory_cap_reports_what_never_fits_and_places_the_rest():
    rng = np.random.default_rng(3)
    natoms = np.concatenate([rng.integers(10, 150, 400), [400, 500]])
    plan = plan_lamm(natoms, 4, 3, 2, seed=0, max_atoms_per_rank=300)
    too_large = np.flatnonzero(natoms > 300)
    assert np.array_equal(plan.skipped["exceeds_max_atoms_per_rank"], too_large)
    assert np.array_equal(np.sort(plan.sample), np.setdiff1d(np.arange(len(natoms)), too_large))
    assert plan.loads(natoms).max() <= 300
    assert (plan.loads(np.ones(len(natoms))) >= 1).all()  # still a sample on every rank
    unbounded = plan_random(natoms, 4, 3, seed=0)
    assert unbounded.loads(natoms).max() > 300  # what the cap prevents
    with pytest.raises(ValueError, match="fit on no rank"):
        balanced_batches(natoms, 4, 3, 2, 0, max_atoms_per_rank=300)


@pytest.mark.parametrize(
    "natoms, world_size, message",
    [
        (np.array([5, 6]), 3, "cannot give each"),
        (np.array([5, 0, 3]), 1, "positive"),
        (np.ones((2, 2), dtype=int), 1, "1-D"),
    ],
)
def test_bad_input(natoms, world_size, message):
    with pytest.raises(ValueError, match=message):
        plan_lamm(natoms, world_size, 1, 1, 0)


@settings(max_examples=40, deadline=None)
@given(
    data=st.data(),
    world_size=st.integers(1, 8),
    batch_per_rank=st.integers(1, 4),
    cap=st.integers(50, 600),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_capped_epoch_places_every_fitting_sample_once_within_the_cap(
    data, world_size, batch_per_rank, cap, seed
):
    n = data.draw(st.integers(world_size + 2, 200), label="samples")
    natoms = np.array(
        data.draw(st.lists(st.integers(1, 300), min_size=n, max_size=n), label="natoms")
    )
    if (natoms <= cap).sum() < world_size:
        return
    plan = plan_lamm(natoms, world_size, batch_per_rank, 3, seed, max_atoms_per_rank=cap)
    skipped = np.concatenate([np.zeros(0, dtype=np.int64), *plan.skipped.values()])
    assert np.array_equal(np.sort(np.concatenate([plan.sample, skipped])), np.arange(n))
    assert np.array_equal(
        plan.skipped.get("exceeds_max_atoms_per_rank", np.zeros(0)), np.flatnonzero(natoms > cap)
    )
    assert plan.loads(natoms).max() <= cap
    assert (plan.loads(np.ones(n)) >= 1).all()
    # a sample that fits alone is lost only when fewer than W are left and no rank anywhere
    # holds two samples that could make room (then only repeats could fill a step)
    assert set(plan.skipped) <= {"exceeds_max_atoms_per_rank", "no_room_under_max_atoms_per_rank"}
    assert len(plan.skipped.get("no_room_under_max_atoms_per_rank", [])) < world_size
