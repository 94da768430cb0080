"""The HME21-like downstream MD (`lamm.data.demo.alloy_md`) and its labeler (`VariantEMT`):
labels are the variant's, close to plain EMT's but not equal; snapshots of one trajectory share
a split; MD failures are counted; the same seed gives the same records."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT

from lamm.data.demo import alloy_md
from lamm.data.demo.catalog import FAMILIES, FamilySpec, frames_per_system, target_sizes
from lamm.data.demo.generate import _build, _FamilyState
from lamm.data.demo.labelers import DemoFailure, VariantEMT, emt_variant_parameters
from lamm.data.demo.systems import SystemRequest, system_rng

FRAMES = 2


@pytest.fixture(scope="module")
def trajectory():
    return alloy_md.hme21_md_system(
        SystemRequest("hme21", 3, FRAMES), system_rng(0, "hme21", 3)
    ).records["hme21"]


def _alloy():
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 2, 1))
    atoms.symbols = ["Cu", "Ni", "Pd", "Pt"] * 4
    atoms.rattle(0.1, rng=np.random.default_rng(0))
    return atoms


def test_variant_emt_with_the_unmodified_table_is_emt_bit_for_bit():
    atoms = _alloy()
    atoms.calc = EMT()
    energy, forces = atoms.get_potential_energy(), atoms.get_forces()
    atoms.calc = VariantEMT(emt_variant_parameters({}))
    assert atoms.get_potential_energy() == energy
    np.testing.assert_array_equal(atoms.get_forces(), forces)
    with pytest.raises(ValueError, match="unknown EMT parameters"):
        emt_variant_parameters({"sigma": 1.1})


def test_snapshots_are_variant_emt_labels_close_to_but_not_plain_emt(trajectory):
    assert len(trajectory) == FRAMES
    for record in trajectory:
        atoms = record.to_atoms()
        atoms.calc = VariantEMT()
        assert atoms.get_potential_energy() == pytest.approx(record.energy, abs=1e-9)
        np.testing.assert_allclose(atoms.get_forces(), record.forces, atol=1e-9)
        # the documented distance to the pre-training's plain EMT, at the same geometry:
        # 20-80 meV/atom in energy, 30-40% of the force norm (measured on the prototype's snapshots)
        atoms.calc = EMT()
        energy_gap = abs(atoms.get_potential_energy() - record.energy) / len(atoms)
        force_gap = np.linalg.norm(atoms.get_forces() - record.forces) / np.linalg.norm(
            record.forces
        )
        assert 0.005 < energy_gap < 0.15 and 0.1 < force_gap < 0.6
    # forces are minus the gradient of the variant's energy
    atoms = trajectory[0].to_atoms()
    atom, axis, step = int(np.argmax(np.abs(trajectory[0].forces).max(axis=1))), 0, 1e-4
    energies = []
    for sign in (1, -1):
        moved = atoms.copy()
        moved.positions[atom, axis] += sign * step
        moved.calc = VariantEMT()
        energies.append(moved.get_potential_energy())
    assert -(energies[0] - energies[1]) / (2 * step) == pytest.approx(
        trajectory[0].forces[atom, axis], abs=1e-4
    )


def test_snapshots_of_one_trajectory_share_a_group_and_a_split():
    spec = FamilySpec("hme21", alloy_md.hme21_md_system, ("hme21",), frames=FRAMES)
    state = _FamilyState(spec, {"hme21": 3 * FRAMES}, FRAMES)
    assert state.systems_needed() == 4  # ceil(3 trajectories x 1.05), not one system per snapshot
    while not state.complete:
        state.consume(_build((spec, state.next_index, 0, FRAMES)))
        state.next_index += 1
    groups: dict[str, set[str]] = {}
    for record, split in state.records["hme21"]:
        groups.setdefault(record.source_id.rsplit("/frame", 1)[0], set()).add(split)
    assert len(groups) == 3 and all(len(splits) == 1 for splits in groups.values())
    assert sorted(next(iter(s)) for s in groups.values()) == [
        "test",
        "train",
        "val",
    ]  # ordinals 0, 1, 2


def test_same_seed_same_snapshots(trajectory):
    again = alloy_md.hme21_md_system(
        SystemRequest("hme21", 3, FRAMES), system_rng(0, "hme21", 3)
    ).records["hme21"]
    for first, second in zip(trajectory, again, strict=True):
        assert first.source_id == second.source_id and first.energy == second.energy
        np.testing.assert_array_equal(first.positions, second.positions)
        np.testing.assert_array_equal(first.forces, second.forces)


def test_an_md_gone_wrong_is_a_counted_failure():
    atoms = _alloy()
    forces = np.zeros((len(atoms), 3))
    with pytest.raises(DemoFailure, match="non-finite"):
        alloy_md.check_snapshot(atoms, float("nan"), forces, 1000.0)
    with pytest.raises(DemoFailure, match="forces above"):
        alloy_md.check_snapshot(atoms, 0.0, forces + 2 * alloy_md.MAX_FORCE, 1000.0)
    close = atoms.copy()
    close.positions[1] = close.positions[0] + [0.5, 0.0, 0.0]
    with pytest.raises(DemoFailure) as failure:
        alloy_md.check_snapshot(close, 0.0, forces, 1000.0)
    assert failure.value.reason == f"MD atoms closer than {alloy_md.MIN_DISTANCE} A"
    # a system that raises is counted by the orchestrator under its reason, not dropped
    spec = FamilySpec(
        "hme21",
        lambda request, rng: alloy_md.check_snapshot(close, 0.0, forces, 1000.0),
        ("hme21",),
    )
    state = _FamilyState(spec, {"hme21": 1}, 1)
    state.consume(_build((spec, 0, 0, 1)))
    assert dict(state.failures["hme21"]) == {f"MD atoms closer than {alloy_md.MIN_DISTANCE} A": 1}


def test_the_demo_downstream_is_the_md_family():
    family = next(f for f in FAMILIES if f.name == "hme21")
    assert family.build is alloy_md.hme21_md_system and family.subsets == ("hme21",)
    assert frames_per_system(family, "small") == family.frames > 1
    assert all(
        target_sizes(scale)["hme21"] % family.frames == 0 for scale in ("tiny", "small", "medium")
    )  # whole trajectories
