"""`lamm evaluate` and `lamm zero-shot`: metrics against values computed independently through
the ASE calculator, the change-bias refit, label-less stores, and the error paths."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk, molecule

from lamm.analysis.evaluation import compute_metrics, evaluate_checkpoint, predict_split
from lamm.analysis.zero_shot import apply_energy_shift, baseline_row, fit_energy_shift, zero_shot_rows
from lamm.calculator import LaMMCalculator
from lamm.cli import main
from lamm.data.record import StructureRecord
from lamm.data.store import StructureStore, StructureStoreWriter
from lamm.models.checkpoint import checkpoint_dict, load_potential, save_checkpoint
from tests.model_support import STATS, TINY_CONFIG, single_thread, tiny_potential  # noqa: F401

HEADS = ("a", "b")


def structures() -> list[Atoms]:
    """Periodic and molecular structures of the elements the tiny model's statistics know."""
    out = []
    for seed in range(3):
        crystal = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
        crystal.rattle(0.1, seed=seed)
        out.append(crystal)
    for seed, name in enumerate(("CH3CH2OH", "H2O", "CH4", "CH3OH")):
        mol = molecule(name)
        mol.rattle(0.05, seed=10 + seed)
        out.append(mol)
    return out


def save_tiny(path, force_mode: str = "direct"):
    potential = tiny_potential(force_mode, heads=HEADS, stats=True)
    return save_checkpoint(path, checkpoint_dict(potential, {**TINY_CONFIG, "force_mode": force_mode}))


@pytest.fixture
def checkpoint(tmp_path):
    return save_tiny(tmp_path / "model.pt")


def labeled_store(path, atoms_list, splits, *, energy=True, forces=True, seed=0, energy_kind="total", task="s2ef"):
    """A store with random (seeded) labels: what matters is that the test knows them."""
    rng = np.random.default_rng(seed)
    with StructureStoreWriter(path, subset="down", source="test", energy_kind=energy_kind, extra_info={"task": task}) as writer:
        for i, (atoms, split) in enumerate(zip(atoms_list, splits)):
            record = StructureRecord.from_atoms(atoms)
            label_e = energy if isinstance(energy, bool) else energy[i]
            record = StructureRecord(
                **{**record.__dict__,
                   "energy": (float(rng.normal(-20.0, 5.0)) if label_e is True else label_e if label_e is not False else None),
                   "forces": rng.normal(0.0, 1.0, (len(atoms), 3)) if forces else None}
            )
            writer.add(record, split)
    return StructureStore(path)


def by_calculator(checkpoint, head, atoms_list):
    """Energies [B] and forces [N, 3] through LaMMCalculator, one structure at a time."""
    calculator = LaMMCalculator(checkpoint, head=head)
    energies, forces = [], []
    for atoms in atoms_list:
        atoms = atoms.copy()
        atoms.calc = calculator
        energies.append(atoms.get_potential_energy())
        forces.append(atoms.get_forces())
    return np.array(energies), np.concatenate(forces)


@pytest.mark.parametrize("force_mode", ["direct", "gradient"])
def test_metrics_equal_values_computed_through_the_calculator(tmp_path, force_mode):
    # gradient mode: forces are -dE/dx of head b, also under the evaluation's no_grad
    checkpoint = save_tiny(tmp_path / "model.pt", force_mode)
    atoms_list = structures()
    splits = ["test"] * len(atoms_list)
    # structure 1 has no energy label, so it must not enter the energy MAE
    store = labeled_store(tmp_path / "down.lmdb", atoms_list, splits, energy=[True, False, True, True, True, True, True])
    metrics = evaluate_checkpoint(load_potential(checkpoint), store, tmp_path / "out", head="b", batch_size=3)

    energies, forces = by_calculator(checkpoint, "b", atoms_list)
    records = [store.get_record(i) for i in range(len(store))]
    natoms = np.array([r.natoms for r in records])
    labeled = np.array([r.energy is not None for r in records])
    true_e = np.array([r.energy for r in records if r.energy is not None])
    true_f = np.concatenate([r.forces for r in records])
    expected_energy = 1000 * np.mean(np.abs(energies[labeled] - true_e) / natoms[labeled])
    expected_forces = 1000 * np.mean(np.abs(forces - true_f))
    cosine = np.mean(np.sum(forces * true_f, axis=1) / (np.linalg.norm(forces, axis=1) * np.linalg.norm(true_f, axis=1)))

    assert metrics["n_structures"] == 7 and metrics["n_energy_labels"] == 6 and metrics["n_force_atoms"] == natoms.sum()
    assert metrics["energy_mae_mev_per_atom"] == pytest.approx(expected_energy, rel=1e-5)
    assert metrics["forces_mae_mev_per_a"] == pytest.approx(expected_forces, rel=1e-5)
    assert metrics["force_cosine"] == pytest.approx(cosine, abs=1e-5)
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert written["energy_mae_mev_per_atom"] == metrics["energy_mae_mev_per_atom"] and written["head"] == "b"
    assert (tmp_path / "out" / "parity.png").stat().st_size > 1000
    saved = np.load(tmp_path / "out" / "predictions.npz")
    np.testing.assert_allclose(saved["forces_pred"], forces, rtol=1e-4, atol=1e-6)


def test_store_without_energies_reports_forces_only_and_denoising_labels_are_not_forces(tmp_path, checkpoint):
    atoms_list = structures()[:3]
    potential = load_potential(checkpoint)
    no_energy = labeled_store(tmp_path / "none.lmdb", atoms_list, ["test"] * 3, energy=False, energy_kind="none")
    metrics = compute_metrics(predict_split(potential, no_energy, "test", ["a"])["a"])
    assert "energy_mae_mev_per_atom" not in metrics and metrics["n_energy_labels"] == 0
    assert metrics["forces_mae_mev_per_a"] > 0 and metrics["n_force_atoms"] == 24

    denoising = labeled_store(tmp_path / "noise.lmdb", atoms_list, ["test"] * 3, energy=False, energy_kind="none", task="denoising")
    metrics = compute_metrics(predict_split(potential, denoising, "test", ["a"])["a"])
    assert metrics["n_force_atoms"] == 0 and "forces_mae_mev_per_a" not in metrics


def test_fit_energy_shift_recovers_a_known_per_element_shift():
    rng = np.random.default_rng(0)
    composition = np.zeros((12, 119), dtype=np.int64)
    composition[:, [1, 6, 8]] = rng.integers(0, 6, (12, 3))
    composition[:, 1] += 1  # every structure has atoms
    shift = np.zeros(119)
    shift[[1, 6, 8]] = [-0.37, 2.5, -4.1]
    residual = composition @ shift
    residual[3] = np.nan  # an unlabeled structure is ignored
    np.testing.assert_allclose(fit_energy_shift(composition, residual), shift, atol=1e-10)
    with pytest.raises(ValueError, match="no structure with an energy label"):
        fit_energy_shift(composition, np.full(12, np.nan))


def test_zero_shot_refit_removes_a_per_element_offset_exactly(tmp_path, checkpoint):
    # Labels = the head's own predictions + a per-element offset: after the change-bias refit on
    # train, the test energy error vanishes; before it, it is the offset per atom.
    atoms_list = structures()
    splits = ["train", "test", "train", "train", "test", "train", "train"]
    predicted, _ = by_calculator(checkpoint, "a", atoms_list)
    offset = {1: -0.5, 6: 1.25, 8: 3.0, 11: -2.0, 17: 0.75}  # eV per atom of each element
    shifts = np.array([sum(offset[z] for z in a.get_atomic_numbers()) for a in atoms_list])
    store = labeled_store(tmp_path / "down.lmdb", atoms_list, splits, energy=list(predicted + shifts))

    (row,) = zero_shot_rows(load_potential(checkpoint), store, checkpoint="tiny", heads=["a"])
    test = [i for i, s in enumerate(splits) if s == "test"]
    natoms = np.array([len(atoms_list[i]) for i in test])
    assert row["energy_mae_mev_per_atom_raw"] == pytest.approx(1000 * np.mean(np.abs(shifts[test]) / natoms), rel=1e-4)
    assert row["energy_mae_mev_per_atom"] < 1e-2  # meV/atom: float32 predictions, offsets of eV
    assert row["n_fit_structures"] == 5 and row["n_structures"] == 2 and row["checkpoint"] == "tiny"

    # the shift moves energies only
    predictions = predict_split(load_potential(checkpoint), store, "test", ["a"])["a"]
    moved = apply_energy_shift(predictions, np.ones(119))
    np.testing.assert_allclose(moved.energy_pred - predictions.energy_pred, natoms)
    assert moved.forces_pred is predictions.forces_pred


def test_baseline_row_is_the_composition_fit_and_zero_forces(tmp_path):
    atoms_list = structures()
    splits = ["train", "test", "train", "train", "test", "train", "train"]
    store = labeled_store(tmp_path / "down.lmdb", atoms_list, splits)
    records = [store.get_record(i) for i in range(len(store))]
    composition = np.stack([np.bincount(r.atomic_numbers.astype(int), minlength=119) for r in records])
    energy = np.array([r.energy for r in records])
    train = np.array([s == "train" for s in splits])
    references, *_ = np.linalg.lstsq(composition[train][:, [1, 6, 8, 11, 17]], energy[train], rcond=None)
    predicted = composition[~train][:, [1, 6, 8, 11, 17]] @ references
    row = baseline_row(store)
    expected = 1000 * np.mean(np.abs(predicted - energy[~train]) / composition[~train].sum(axis=1))
    assert row["checkpoint"] == "baseline" and row["energy_mae_mev_per_atom"] == pytest.approx(expected, rel=1e-9)
    test_forces = np.concatenate([records[i].forces for i in np.flatnonzero(~train)])
    assert row["forces_mae_mev_per_a"] == pytest.approx(1000 * np.abs(test_forces).mean())


def test_unknown_head_and_missing_split_are_clear_errors(tmp_path, checkpoint):
    store = labeled_store(tmp_path / "down.lmdb", structures()[:2], ["train", "train"])
    potential = load_potential(checkpoint)
    with pytest.raises(ValueError, match=r"unknown head 'c'.*\['a', 'b'\]"):
        evaluate_checkpoint(potential, store, tmp_path / "out", head="c")
    with pytest.raises(ValueError, match=r"down.lmdb: split 'test' is empty .*'train': 2"):
        evaluate_checkpoint(potential, store, tmp_path / "out", head="a")
    with pytest.raises(ValueError, match=r"down.lmdb: unknown split 'tset'"):
        predict_split(potential, store, "tset", ["a"])


def test_cli_evaluate_and_zero_shot(tmp_path, checkpoint, capsys):
    atoms_list = structures()[:4]
    store = labeled_store(tmp_path / "down.lmdb", atoms_list, ["train", "test", "train", "test"])
    assert main(["evaluate", str(checkpoint), "--data", str(store.path), "--head", "b", "--out", str(tmp_path / "eval")]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["head"] == "b" and summary["n_structures"] == 2
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["forces_mae_mev_per_a"] == summary["forces_mae_mev_per_a"]

    table = tmp_path / "zero_shot.csv"
    assert main(["zero-shot", str(checkpoint), "--data", str(store.path), "--out", str(table)]) == 0
    import pandas as pd

    frame = pd.read_csv(table)
    assert list(frame["head"]) == ["composition", "a", "b"] and list(frame["checkpoint"]) == ["baseline", "model", "model"]
    assert {"energy_mae_mev_per_atom", "energy_mae_mev_per_atom_raw", "forces_mae_mev_per_a", "force_cosine"} <= set(frame.columns)
