"""The anchors (a universal potential's calculator) scored on a store: the per-element energy
shift fitted on the training split only, raw energies where there is none, and a run's carved test
records kept out of the fit. EMT stands in for the universal potential: the labels are EMT plus a
known energy per element, so the shifted error is zero and the raw one is that energy."""

from __future__ import annotations

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

import lamm.data.demo.universal as universal
from lamm.analysis.anchors import anchor_row
from lamm.analysis.transfer import prepare_store
from lamm.training.finetune_splits import StoreSplits

OFFSET = {"Cu": 0.5, "Ni": -0.2}  # eV per atom the "DFT" adds to EMT's energy


@pytest.fixture
def emt_anchor(monkeypatch):
    monkeypatch.setattr(universal, "calculator", lambda name: EMT())


def offset_file(path, count=12, seed=0):
    """CuNi cells of varying composition, energies EMT + OFFSET per atom, forces EMT's."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(count):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
        nickel = rng.choice(len(atoms), size=int(rng.integers(0, len(atoms))), replace=False)
        atoms.symbols[nickel] = "Ni"
        atoms.rattle(0.05, seed=i)
        atoms.calc = EMT()
        energy = atoms.get_potential_energy() + sum(OFFSET[s] for s in atoms.get_chemical_symbols())
        forces = atoms.get_forces()
        atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=forces)
        atoms.info["config_group"] = "fcc"
        frames.append(atoms)
    write(path, frames, format="extxyz")
    return frames


def test_the_energy_shift_is_fitted_on_training_structures_and_removes_the_offset(
    tmp_path, emt_anchor
):
    offset_file(tmp_path / "cuni.extxyz")
    store = prepare_store(tmp_path / "cuni.extxyz", "cuni", tmp_path / "s.lmdb", group_key=None)
    row = anchor_row("emt", store)
    assert row["n_structures"] == len(store.indices("test"))
    assert row["n_fit_structures"] == len(store.indices("train"))
    assert row["energy_mae_mev_per_atom"] == pytest.approx(0.0, abs=1e-3)
    assert row["forces_mae_mev_per_a"] == pytest.approx(0.0, abs=1e-3)  # float32 in the store
    # raw: the mean over test structures of |sum of offsets| / natoms
    expected = np.mean(
        [
            abs(sum(OFFSET[s] for s in store.get_atoms(int(i)).get_chemical_symbols()))
            / len(store.get_atoms(int(i)))
            for i in store.indices("test")
        ]
    )
    assert row["energy_mae_mev_per_atom_raw"] == pytest.approx(1000 * expected)
    assert row["energy_shift"] == "per element, fitted on the train split"


def test_carved_test_records_are_kept_out_of_the_fit_and_no_fit_means_raw_energies(
    tmp_path, emt_anchor
):
    offset_file(tmp_path / "cuni.extxyz")
    store = prepare_store(tmp_path / "cuni.extxyz", "cuni", tmp_path / "s.lmdb", group_key=None)
    train = store.indices("train")
    # a fine-tuning run carved its test records out of the training split
    carved = StoreSplits(store, {"test": train[:3]})
    row = anchor_row("emt", carved)
    assert row["n_structures"] == 3 and row["n_fit_structures"] == len(train) - 3
    assert row["energy_mae_mev_per_atom"] == pytest.approx(0.0, abs=1e-3)
    # every training record is a test record: nothing left to fit the shift on
    row = anchor_row("emt", StoreSplits(store, {"test": train}))
    assert row["energy_shift"] == "none: no train split to fit it on (raw energies)"
    assert "n_fit_structures" not in row and row["energy_mae_mev_per_atom"] > 100.0
