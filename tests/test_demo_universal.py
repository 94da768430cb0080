"""The universal label set: crystal prototypes and their volumes, bulk snapshots, labels that are
what the named universal potential gives, provenance in every store, and the catalog's promises
(coverage of the periodic table, a downstream labeler no pre-training subset uses)."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.data import atomic_numbers, covalent_radii

from lamm.data.demo import crystals
from lamm.data.demo.bulk import MAX_ATOMS, MIN_ATOMS, add_defect, omat24_system, supercell
from lamm.data.demo.catalog import (
    LABEL_SETS,
    UNIVERSAL_TARGETS,
    frames_per_system,
    label_set,
    subset_spec,
    target_sizes,
)
from lamm.data.demo.elements import ANIONS, CATIONS, all_elements
from lamm.data.demo.systems import SystemRequest, system_rng
from lamm.data.demo.universal import LABELERS, label, provenance

pytest.importorskip("chgnet")
pytest.importorskip("sevenn")


def nearest(atoms, a: str, b: str) -> float:
    """Shortest distance between an atom of element a and one of b (periodic images included)."""
    big = atoms.repeat(3)
    first = [i for i, s in enumerate(big.get_chemical_symbols()) if s == a]
    second = [i for i, s in enumerate(big.get_chemical_symbols()) if s == b]
    d = big.get_all_distances(mic=True)[np.ix_(first, second)]
    return float(d[d > 1e-6].min())


@pytest.mark.parametrize(
    "build,a,b",
    [
        (lambda: crystals.binary_ax("Na", "Cl", "rocksalt"), "Na", "Cl"),
        (lambda: crystals.binary_ax("Ga", "As", "zincblende"), "Ga", "As"),
        (lambda: crystals.binary_ax("Cs", "Br", "cesiumchloride"), "Cs", "Br"),
        (lambda: crystals.fluorite("Ca", "F"), "Ca", "F"),
        (lambda: crystals.reo3("W", "O"), "W", "O"),
        (lambda: crystals.perovskite("Sr", "Ti", "O"), "Ti", "O"),
        (lambda: crystals.elemental("Fe", "bcc"), "Fe", "Fe"),
        (lambda: crystals.elemental("Si", "diamond"), "Si", "Si"),
    ],
)
def test_prototypes_put_nearest_neighbours_at_the_sum_of_covalent_radii(build, a, b):
    atoms = build()
    bond = covalent_radii[atomic_numbers[a]] + covalent_radii[atomic_numbers[b]]
    assert nearest(atoms, a, b) == pytest.approx(bond, rel=1e-6)


def test_charge_balanced_formulas_hold_the_oxidation_states():
    rng = np.random.default_rng(0)
    assert crystals._charge_balanced("Al", "O", rng) == (2, 3)
    assert crystals._charge_balanced("Mg", "Cl", rng) == (1, 2)
    assert crystals._charge_balanced("Li", "N", rng) == (3, 1)
    seen = set()
    for _ in range(30):  # Ti: +2 (1:1), +3 (2:3) or +4 (1:2); the charges cancel in each
        n_a, n_x = crystals._charge_balanced("Ti", "O", rng)
        assert any(n_a * q == n_x * 2 for q in CATIONS["Ti"])
        seen.add((n_a, n_x))
    assert seen == {(1, 1), (2, 3), (1, 2)}


def emt_label(atoms):
    probe = atoms.copy()
    probe.calc = EMT()
    return probe.get_potential_energy(), probe.get_forces(), probe.get_stress(voigt=False)


def test_fit_volume_finds_the_zero_pressure_volume_of_the_labeler():
    atoms = crystals.elemental("Cu", "fcc")  # the radii guess: a = 2 * 1.32 * sqrt(2) = 3.73 A
    scale = crystals.fit_volume(atoms, emt_label)
    pressure = crystals.pressure(emt_label(atoms)[2])
    assert abs(pressure) < crystals.PRESSURE_TOLERANCE
    # EMT's own minimum, by brute force over lattice constants
    grid = np.linspace(3.55, 3.65, 201)
    energies = [emt_label(bulk("Cu", "fcc", a=a))[0] for a in grid]
    a_min = grid[int(np.argmin(energies))]
    a_fit = 2 * covalent_radii[29] * 2**0.5 * scale
    assert a_fit == pytest.approx(a_min, abs=0.002)


def test_fit_volume_counts_a_volume_out_of_range():
    from lamm.data.demo.labelers import DemoFailure

    atoms = crystals.elemental("Cu", "fcc")
    atoms.set_cell(atoms.cell.array * 0.4, scale_atoms=True)  # the labeler's volume is 2.5x away
    with pytest.raises(DemoFailure, match="volume fit"):
        crystals.fit_volume(atoms, emt_label)


def test_supercells_stay_within_limits_and_are_not_needles():
    rng = np.random.default_rng(1)
    for build in (
        lambda: crystals.elemental("Mg", "hcp"),
        lambda: crystals.corundum("Al", "O"),
        lambda: crystals.binary_ax("Ga", "N", "wurtzite"),
    ):
        cell = supercell(build(), rng)
        lengths = cell.cell.lengths()
        assert MIN_ATOMS <= len(cell) <= MAX_ATOMS
        assert lengths.max() <= 2 * lengths.min() + 1e-9


def test_defects_change_the_cell_as_named():
    rng = np.random.default_rng(2)
    base = crystals.binary_ax("Mg", "O", "rocksalt").repeat(2)
    seen = set()
    for _ in range(30):
        cell = base.copy()
        kind = add_defect(cell, rng)
        seen.add(kind.rstrip("12"))
        if kind == "antisite":
            assert sorted(cell.numbers) == sorted(base.numbers)
            assert (cell.numbers != base.numbers).sum() == 2
        elif kind == "interstitial":
            assert len(cell) == len(base) + 1
        else:
            assert len(cell) == len(base) - int(kind[-1])
    assert seen == {"vacancy", "antisite", "interstitial"}


def test_bulk_snapshots_carry_the_labelers_energy_forces_and_stress():
    request = SystemRequest("omat24", 3, frames=2)
    result = omat24_system(request, system_rng(0, "omat24", 3))
    again = omat24_system(request, system_rng(0, "omat24", 3))
    records = result.records["omat24"]
    assert len(records) == 2
    for record, twin in zip(records, again.records["omat24"], strict=True):
        np.testing.assert_array_equal(record.positions, twin.positions)  # same seed, same cell
        energy, forces, stress = label(record.to_atoms(), "chgnet-0.3.0")
        assert record.energy == pytest.approx(energy, abs=1e-5)
        np.testing.assert_allclose(record.forces, forces, atol=1e-4)
        np.testing.assert_allclose(record.stress, stress, atol=1e-5)


def test_catalog_covers_the_periodic_table_and_keeps_hme21_labeler_apart():
    elements = all_elements()
    assert len(elements) >= 60
    blocks = {"s": {"Li", "Na", "K", "Cs", "Mg", "Ba"}, "p": {"Al", "In", "P", "Bi", "I"}}
    blocks["d"] = {"Ti", "Fe", "Ta", "W", "Pt", "Au"}
    for members in blocks.values():
        assert members <= set(elements)
    assert set(ANIONS) | set(CATIONS) <= set(elements)
    universal = label_set("universal")
    pretrain = {s.labeler for s in universal.subsets if s.role == "pretrain"}
    assert subset_spec("hme21", "universal").labeler not in pretrain
    assert len(pretrain & set(LABELERS)) >= 3  # heterogeneous, as the paper's subsets
    for spec in universal.subsets:
        assert spec.labeler in (*LABELERS, "gfn2-xtb", "none"), spec.name


def test_universal_targets_fit_their_families():
    for scale in UNIVERSAL_TARGETS:
        targets = target_sizes(scale, "universal")
        assert set(targets) == {s.name for s in LABEL_SETS["universal"].subsets}
        for family in LABEL_SETS["universal"].families:
            if family.is2re:
                frames = frames_per_system(family, scale, "universal")
                assert frames * targets[family.is2re] >= targets[family.s2ef]
    with pytest.raises(ValueError, match="not a scale|unknown scale"):
        target_sizes("medium", "universal")


def test_provenance_names_package_version_and_model():
    record = provenance("sevennet-0")
    assert record["package"] == "sevenn" and record["model"] == "7net-0"
    assert record["version"][0].isdigit()
    assert provenance("gfn2-xtb")["package"] == "tblite"
    assert provenance("none") == {"name": "none"}


def test_universal_store_records_its_labeler_and_reuses_itself(tmp_path):
    from lamm.data.demo.generate import generate_demo
    from lamm.data.store import StructureStore

    report = generate_demo(tmp_path, scale="tiny", labels="universal", subsets=["omat24"])
    assert report.labels == "universal"
    store = StructureStore(tmp_path / "omat24.lmdb")
    assert len(store) == UNIVERSAL_TARGETS["tiny"]["omat24"]
    assert store.info["labeler"]["package"] == "chgnet"
    assert store.info["demo"]["labels"] == "universal"
    assert all(store.get_record(i).stress is not None for i in range(len(store)))
    again = generate_demo(tmp_path, scale="tiny", labels="universal", subsets=["omat24"])
    assert again.subsets["omat24"]["reused"]
    light = generate_demo(tmp_path / "light", scale="tiny", subsets=["qm7x"])
    assert StructureStore(tmp_path / "light" / "qm7x.lmdb").info["labeler"]["name"] == "gfn2-xtb"
    assert light.labels == "light"
