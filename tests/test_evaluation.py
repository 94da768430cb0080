"""`lamm evaluate` and `lamm zero-shot`: metrics against values computed independently through
the ASE calculator, the change-bias refit, label-less stores, hand-computed per-element and
force-angle metrics, --split all, extended-XYZ input, the parity baseline, and the error paths."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.calculator import Calculator, all_changes

from lamm.analysis.checkpoint_evaluation import evaluate_checkpoint
from lamm.analysis.element_metrics import element_rows
from lamm.analysis.evaluation import (
    Predictions,
    compute_metrics,
    predict_split,
    zero_predictions,
)
from lamm.analysis.parity import composition_references, relative_energies
from lamm.analysis.zero_shot import (
    apply_energy_shift,
    baseline_row,
    fit_energy_shift,
    shift_strength,
    zero_shot_rows,
)
from lamm.calculator import LaMMCalculator
from lamm.cli import main
from lamm.data.element_ridge import RIDGE_STRENGTHS
from lamm.data.record import StructureRecord
from lamm.data.store import StructureStore, StructureStoreWriter
from lamm.data.user_dataset import UserDataset, UserSplit, convert_user_dataset
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
    return save_checkpoint(
        path, checkpoint_dict(potential, {**TINY_CONFIG, "force_mode": force_mode})
    )


@pytest.fixture
def checkpoint(tmp_path):
    return save_tiny(tmp_path / "model.pt")


def labeled_store(
    path, atoms_list, splits, *, energy=True, forces=True, seed=0, energy_kind="total", task="s2ef"
):
    """A store with random (seeded) labels: what matters is that the test knows them."""
    rng = np.random.default_rng(seed)
    with StructureStoreWriter(
        path, subset="down", source="test", energy_kind=energy_kind, extra_info={"task": task}
    ) as writer:
        for i, (atoms, split) in enumerate(zip(atoms_list, splits, strict=True)):
            record = StructureRecord.from_atoms(atoms)
            label_e = energy if isinstance(energy, bool) else energy[i]
            record = StructureRecord(
                **{
                    **record.__dict__,
                    "energy": (
                        float(rng.normal(-20.0, 5.0))
                        if label_e is True
                        else label_e
                        if label_e is not False
                        else None
                    ),
                    "forces": rng.normal(0.0, 1.0, (len(atoms), 3)) if forces else None,
                }
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
    store = labeled_store(
        tmp_path / "down.lmdb",
        atoms_list,
        splits,
        energy=[True, False, True, True, True, True, True],
    )
    metrics = evaluate_checkpoint(
        load_potential(checkpoint), store, tmp_path / "out", head="b", batch_size=3
    )

    energies, forces = by_calculator(checkpoint, "b", atoms_list)
    records = [store.get_record(i) for i in range(len(store))]
    natoms = np.array([r.natoms for r in records])
    labeled = np.array([r.energy is not None for r in records])
    true_e = np.array([r.energy for r in records if r.energy is not None])
    true_f = np.concatenate([r.forces for r in records])
    expected_energy = 1000 * np.mean(np.abs(energies[labeled] - true_e) / natoms[labeled])
    expected_forces = 1000 * np.mean(np.abs(forces - true_f))
    cosine = np.mean(
        np.sum(forces * true_f, axis=1)
        / (np.linalg.norm(forces, axis=1) * np.linalg.norm(true_f, axis=1))
    )

    assert (
        metrics["n_structures"] == 7
        and metrics["n_energy_labels"] == 6
        and metrics["n_force_atoms"] == natoms.sum()
    )
    assert metrics["energy_mae_mev_per_atom"] == pytest.approx(expected_energy, rel=1e-5)
    assert metrics["forces_mae_mev_per_a"] == pytest.approx(expected_forces, rel=1e-5)
    assert metrics["force_cosine"] == pytest.approx(cosine, abs=1e-5)
    written = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert (
        written["energy_mae_mev_per_atom"] == metrics["energy_mae_mev_per_atom"]
        and written["head"] == "b"
    )
    assert (tmp_path / "out" / "parity.png").stat().st_size > 1000
    saved = np.load(tmp_path / "out" / "predictions.npz")
    np.testing.assert_allclose(saved["forces_pred"], forces, rtol=1e-4, atol=1e-6)


def test_store_without_energies_reports_forces_only_and_denoising_labels_are_not_forces(
    tmp_path, checkpoint
):
    atoms_list = structures()[:3]
    potential = load_potential(checkpoint)
    no_energy = labeled_store(
        tmp_path / "none.lmdb", atoms_list, ["test"] * 3, energy=False, energy_kind="none"
    )
    metrics = compute_metrics(predict_split(potential, no_energy, "test", ["a"])["a"])
    assert "energy_mae_mev_per_atom" not in metrics and metrics["n_energy_labels"] == 0
    assert metrics["forces_mae_mev_per_a"] > 0 and metrics["n_force_atoms"] == 24

    denoising = labeled_store(
        tmp_path / "noise.lmdb",
        atoms_list,
        ["test"] * 3,
        energy=False,
        energy_kind="none",
        task="denoising",
    )
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


def test_the_shift_strength_is_the_brute_force_leave_one_out_choice():
    """The closed-form leave-one-out error of the ridge fit chooses the same strength as refitting
    without each structure in turn and scoring it (mean absolute error per atom)."""
    rng = np.random.default_rng(3)
    composition = np.zeros((9, 119))
    composition[:, [13, 28, 29, 46]] = rng.integers(0, 5, (9, 4))
    composition[:, 29] += 1
    residual = composition @ rng.normal(0, 0.3, 119) + rng.normal(0, 0.4, 9)
    natoms = composition.sum(axis=1)

    def loo_error(strength):
        errors = []
        for i in range(len(residual)):
            keep = np.arange(len(residual)) != i
            shift = fit_energy_shift(composition[keep], residual[keep], strength=strength)
            errors.append(abs(residual[i] - composition[i] @ shift) / natoms[i])
        return np.mean(errors)

    chosen = shift_strength(composition, residual)
    assert chosen == min(RIDGE_STRENGTHS, key=loo_error)
    assert chosen > 0  # noisy labels over 4 elements from 9 structures: shrinking pays
    np.testing.assert_allclose(
        fit_energy_shift(composition, residual),
        fit_energy_shift(composition, residual, strength=chosen),
    )


def test_the_shift_of_one_element_is_its_least_squares_value_at_any_strength():
    """One element: the per-atom shift and its deviation are the same column, so the ridge
    changes nothing: b = sum n_i r_i / sum n_i^2."""
    composition = np.zeros((4, 119))
    composition[:, 73] = [2, 16, 54, 100]
    residual = np.array([0.3, -1.2, 4.0, 2.5])
    expected = np.sum(composition[:, 73] * residual) / np.sum(composition[:, 73] ** 2)
    for strength in (None, 0.0, 10.0, 1e6):
        shift = fit_energy_shift(composition, residual, strength=strength)
        assert shift[73] == pytest.approx(expected, rel=1e-9)
        assert np.count_nonzero(shift) == 1


def test_one_structure_takes_the_common_per_atom_shift():
    """A2B alone: least squares splits its residual by the minimum norm (b proportional to the
    counts); leave-one-out is undefined at every strength (the per-atom shift alone fits it
    exactly), so the strongest is taken: b_A = b_B = r / 3."""
    composition = np.zeros((1, 119))
    composition[0, [1, 8]] = [2, 1]
    residual = np.array([0.9])
    np.testing.assert_allclose(
        fit_energy_shift(composition, residual, strength=0.0)[[1, 8]], [0.36, 0.18]
    )
    assert shift_strength(composition, residual) == RIDGE_STRENGTHS[-1]
    np.testing.assert_allclose(fit_energy_shift(composition, residual)[[1, 8]], [0.3, 0.3])


def test_zero_shot_refit_removes_a_per_element_offset_exactly(tmp_path, checkpoint):
    # Labels = the head's own predictions + a per-element offset: after the change-bias refit on
    # train, the test energy error vanishes; before it, it is the offset per atom.
    atoms_list = structures()
    splits = ["train", "test", "train", "train", "test", "train", "train"]
    predicted, _ = by_calculator(checkpoint, "a", atoms_list)
    offset = {1: -0.5, 6: 1.25, 8: 3.0, 11: -2.0, 17: 0.75}  # eV per atom of each element
    shifts = np.array([sum(offset[z] for z in a.get_atomic_numbers()) for a in atoms_list])
    store = labeled_store(
        tmp_path / "down.lmdb", atoms_list, splits, energy=list(predicted + shifts)
    )

    (row,) = zero_shot_rows(load_potential(checkpoint), store, checkpoint="tiny", heads=["a"])
    test = [i for i, s in enumerate(splits) if s == "test"]
    natoms = np.array([len(atoms_list[i]) for i in test])
    assert row["energy_mae_mev_per_atom_raw"] == pytest.approx(
        1000 * np.mean(np.abs(shifts[test]) / natoms), rel=1e-4
    )
    # meV/atom, against offsets of eV: the 3 molecules fit C, H and O exactly, so leave-one-out
    # cannot vouch for plain least squares and the weakest ridge (1e-3 atoms^2) is taken
    assert row["energy_mae_mev_per_atom"] < 0.5
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
    composition = np.stack(
        [np.bincount(r.atomic_numbers.astype(int), minlength=119) for r in records]
    )
    energy = np.array([r.energy for r in records])
    train = np.array([s == "train" for s in splits])
    references, *_ = np.linalg.lstsq(
        composition[train][:, [1, 6, 8, 11, 17]], energy[train], rcond=None
    )
    predicted = composition[~train][:, [1, 6, 8, 11, 17]] @ references
    row = baseline_row(store)
    expected = 1000 * np.mean(np.abs(predicted - energy[~train]) / composition[~train].sum(axis=1))
    assert row["checkpoint"] == "baseline" and row["energy_mae_mev_per_atom"] == pytest.approx(
        expected, rel=1e-9
    )
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
    assert (
        main(
            [
                "evaluate",
                str(checkpoint),
                "--store",
                str(store.path),
                "--head",
                "b",
                "--out",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["head"] == "b" and summary["n_structures"] == 2
    assert (
        json.loads((tmp_path / "eval" / "metrics.json").read_text())["forces_mae_mev_per_a"]
        == summary["forces_mae_mev_per_a"]
    )

    table = tmp_path / "zero_shot.csv"
    assert (
        main(["zero-shot", str(checkpoint), "--store", str(store.path), "--out", str(table)]) == 0
    )
    import pandas as pd

    frame = pd.read_csv(table)
    assert list(frame["head"]) == ["composition", "a", "b"] and list(frame["checkpoint"]) == [
        "baseline",
        "model",
        "model",
    ]
    assert {
        "energy_mae_mev_per_atom",
        "energy_mae_mev_per_atom_raw",
        "forces_mae_mev_per_a",
        "force_cosine",
    } <= set(frame.columns)


# --- per-element metrics, force angles, --split all, extended XYZ, the parity baseline, errors ---


def hand_predictions() -> Predictions:
    """H2 and HO2 with known errors: energies off by +0.1 and -0.2 eV/atom; force angles 90, 0,
    180 and 0 degrees, and one zero true force (no direction)."""
    composition = np.zeros((2, 119), dtype=np.int64)
    composition[0, 1], composition[1, 1], composition[1, 8] = 2, 1, 2
    forces = np.array([[1, 0, 0], [0, 0, 2], [1, 1, 0], [0, 3, 0], [0, 0, 0]], dtype=float)
    forces_pred = np.array([[0, 1, 0], [0, 0, 1], [-1, -1, 0], [0, 3, 0], [0, 0, 0.5]], dtype=float)
    return Predictions(
        head="h",
        sample_index=np.array([0, 1]),
        natoms=np.array([2, 3]),
        composition=composition,
        energy=np.array([1.0, 2.0]),
        energy_pred=np.array([1.2, 1.4]),
        forces=forces,
        forces_pred=forces_pred,
        atom_structure=np.array([0, 0, 1, 1, 1]),
        atomic_numbers=np.array([1, 1, 1, 8, 8]),
    )


def test_metric_formulas_on_a_hand_computed_case():
    metrics = compute_metrics(hand_predictions())
    assert metrics["energy_mae_mev_per_atom"] == pytest.approx(150.0)
    assert metrics["energy_rmse_mev_per_atom"] == pytest.approx(
        1000 * np.sqrt((0.1**2 + 0.2**2) / 2)
    )
    assert metrics["forces_mae_mev_per_a"] == pytest.approx(1000 * 7.5 / 15)
    assert metrics["n_cosine_atoms"] == 4 and metrics["force_cosine"] == pytest.approx(0.25)
    assert metrics["force_angle_mean_deg"] == pytest.approx(67.5) and metrics[
        "force_angle_median_deg"
    ] == pytest.approx(45.0)

    rows = {row["element"]: row for row in element_rows(hand_predictions(), "test")}
    assert list(rows) == ["all", "H", "O"]
    h, o = rows["H"], rows["O"]
    assert (h["n_atoms"], h["n_structures"], o["n_atoms"], o["n_structures"]) == (3, 2, 2, 1)
    assert h["forces_mae_mev_per_a"] == pytest.approx(1000 * 7 / 9)
    assert h["forces_rmse_mev_per_a"] == pytest.approx(1000 * np.sqrt(11 / 9))
    assert o["forces_mae_mev_per_a"] == pytest.approx(1000 * 0.5 / 6) and o[
        "forces_rmse_mev_per_a"
    ] == pytest.approx(1000 * np.sqrt(0.25 / 6))
    assert h["force_angle_mean_deg"] == pytest.approx(90.0) and h[
        "force_angle_median_deg"
    ] == pytest.approx(90.0)
    assert o["force_angle_mean_deg"] == pytest.approx(0.0, abs=1e-12) and o["n_cosine_atoms"] == 1
    assert h["energy_mae_mev_per_atom"] == pytest.approx(150.0) and o[
        "energy_mae_mev_per_atom"
    ] == pytest.approx(200.0)
    assert rows["all"]["forces_mae_mev_per_a"] == pytest.approx(metrics["forces_mae_mev_per_a"])


def test_parity_baseline_removes_a_composition_linear_energy_exactly():
    predictions = hand_predictions()
    rng = np.random.default_rng(0)
    composition = np.zeros((6, 119), dtype=np.int64)
    composition[:, [1, 6, 8]] = rng.integers(1, 5, (6, 3))
    references = np.zeros(119)
    references[[1, 6, 8]] = [-13.6, -1030.0, -2040.0]
    energy = composition @ references  # linear in composition: nothing left after the baseline
    natoms = composition.sum(axis=1)
    error = rng.normal(0, 0.1, 6)
    predictions = Predictions(
        head="h",
        sample_index=np.arange(6),
        natoms=natoms,
        composition=composition,
        energy=energy,
        energy_pred=energy + error,
        forces=np.zeros((natoms.sum(), 3)),
        forces_pred=np.zeros((natoms.sum(), 3)),
        atom_structure=np.repeat(np.arange(6), natoms),
    )
    fitted = composition_references({"test": predictions})
    np.testing.assert_allclose(fitted[[1, 6, 8]], references[[1, 6, 8]], rtol=1e-9)
    true, pred = relative_energies(predictions, fitted)
    np.testing.assert_allclose(true, 0.0, atol=1e-9)
    np.testing.assert_allclose(
        pred - true, error / natoms, atol=1e-9
    )  # the distance from the diagonal is the error


def test_split_all_writes_every_split_and_per_element_rows(tmp_path, checkpoint, capsys):
    atoms_list = structures()
    splits = ["test", "val", "test", "train", "train", "val", "train"]
    store = labeled_store(tmp_path / "down.lmdb", atoms_list, splits)
    out = tmp_path / "eval"
    assert (
        main(
            [
                "evaluate",
                str(checkpoint),
                "--store",
                str(store.path),
                "--split",
                "all",
                "--head",
                "a",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["evaluated_splits"] == ["train", "val", "test"]
    potential = load_potential(checkpoint)
    for split in ("train", "val", "test"):
        expected = compute_metrics(predict_split(potential, store, split, ["a"])["a"])
        assert metrics["per_split"][split]["forces_mae_mev_per_a"] == pytest.approx(
            expected["forces_mae_mev_per_a"], rel=1e-6
        )
        assert metrics["per_split"][split]["force_angle_median_deg"] == pytest.approx(
            expected["force_angle_median_deg"], rel=1e-6
        )
    assert (
        metrics["energy_mae_mev_per_atom"]
        == metrics["per_split"]["test"]["energy_mae_mev_per_atom"]
    )
    import pandas as pd

    table = pd.read_csv(out / "metrics_per_element.csv")
    assert set(table["split"]) == {"train", "val", "test"}
    test_rows = table[table["split"] == "test"].set_index("element")
    assert list(test_rows.index) == ["all", "Na", "Cl"]  # test = two NaCl crystals
    assert test_rows.loc["Na", "n_atoms"] == 8 and test_rows.loc["Na", "n_structures"] == 2
    assert (out / "parity.png").stat().st_size > 1000 and (out / "predictions_train.npz").is_file()


def _write_extxyz(path, atoms_list, store, energy_scale=1.0):
    """The records of `store` as extended XYZ, labels under REF_ keys, energies times
    `energy_scale`."""
    from ase.io import write

    frames = []
    for i, atoms in enumerate(atoms_list):
        record = store.get_record(i)
        frame = Atoms(
            atoms.get_chemical_symbols(),
            positions=record.positions,
            cell=record.cell,
            pbc=record.pbc,
        )
        frame.info["REF_energy"] = record.energy * energy_scale
        frame.arrays["REF_forces"] = record.forces * energy_scale
        frames.append(frame)
    write(path, frames, format="extxyz")


def test_extxyz_data_gives_the_metrics_of_its_store(tmp_path, checkpoint, capsys):
    atoms_list = structures()
    store = labeled_store(tmp_path / "down.lmdb", atoms_list, ["test"] * len(atoms_list))
    xyz = tmp_path / "frames.extxyz"
    _write_extxyz(xyz, atoms_list, store, energy_scale=1000.0)  # meV and meV/A in the file
    argv = [
        "evaluate",
        str(checkpoint),
        "--store",
        str(xyz),
        "--head",
        "a",
        "--energy-key",
        "REF_energy",
        "--forces-key",
        "REF_forces",
        "--energy-unit",
        "meV",
        "--out",
        str(tmp_path / "xyz"),
    ]
    assert main(argv) == 0
    from_xyz = json.loads((tmp_path / "xyz" / "metrics.json").read_text())
    assert (
        from_xyz["converted_from_extxyz"]
        and from_xyz["frames_written"] == 7
        and from_xyz["energy_unit"] == "meV"
    )

    converted = tmp_path / "converted.lmdb"
    convert_user_dataset(
        UserDataset(
            name="frames",
            format="extxyz",
            test=(xyz,),
            split=UserSplit(policy="files"),
            energy_key="REF_energy",
            forces_key="REF_forces",
            energy_unit="meV",
        ),
        converted,
    )
    assert (
        main(
            [
                "evaluate",
                str(checkpoint),
                "--store",
                str(converted),
                "--head",
                "a",
                "--out",
                str(tmp_path / "store"),
            ]
        )
        == 0
    )
    from_store = json.loads((tmp_path / "store" / "metrics.json").read_text())
    direct = evaluate_checkpoint(load_potential(checkpoint), store, tmp_path / "direct", head="a")
    for key in (
        "energy_mae_mev_per_atom",
        "forces_mae_mev_per_a",
        "force_cosine",
        "force_angle_mean_deg",
        "n_structures",
    ):
        assert from_xyz[key] == pytest.approx(from_store[key], rel=1e-9), key
        assert from_xyz[key] == pytest.approx(direct[key], rel=1e-5), (
            key
        )  # extxyz keeps ~1e-8 of precision


def test_cli_errors_are_one_line(tmp_path, checkpoint, capsys):
    store = labeled_store(tmp_path / "down.lmdb", structures()[:3], ["train", "train", "test"])
    xyz = tmp_path / "frames.lmdb"  # an extended-XYZ file where a store is expected
    xyz.write_text("1\nenergy=-1.0\nH 0 0 0\n")
    cases = [
        (["--store", str(xyz)], "frames.lmdb is not a readable structure store"),
        (["--store", str(store.path), "--head", "c"], "unknown head 'c'"),
        (["--store", str(store.path), "--split", "val"], "split 'val' is empty"),
        (
            ["--store", str(store.path), "--energy-key", "E"],
            "--energy-key apply to an extended-XYZ --store",
        ),
        (["--store", str(tmp_path / "missing.lmdb")], "missing.lmdb does not exist"),
    ]
    for extra, message in cases:
        assert main(["evaluate", str(checkpoint), *extra, "--out", str(tmp_path / "out")]) == 1, (
            extra
        )
        err = capsys.readouterr().err.strip().splitlines()
        assert (
            len(err) == 1 and err[0].startswith("lamm evaluate: error: ") and message in err[0]
        ), (extra, err)
    assert (
        main(
            [
                "evaluate",
                str(store.path),
                "--store",
                str(store.path),
                "--out",
                str(tmp_path / "out"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a readable lamm checkpoint" in err[0], err


class _Zero(Calculator):
    """A "universal potential" that predicts zero energy and forces for any element."""

    implemented_properties = ["energy", "forces"]

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        self.results = {"energy": 0.0, "forces": np.zeros((len(self.atoms), 3))}


def test_cli_evaluate_scores_a_reference_potential_on_the_same_split(
    tmp_path, checkpoint, capsys, monkeypatch
):
    import lamm.data.demo.universal as universal
    from lamm.analysis.zero_shot import baseline_row

    # zero predictions, shifted per element on the training split, are the composition fit
    monkeypatch.setattr(universal, "calculator", lambda name: _Zero())
    splits = ["train", "train", "test", "train", "test", "train", "test"]
    store = labeled_store(tmp_path / "down.lmdb", structures(), splits)
    out = tmp_path / "eval"
    argv = ["evaluate", str(checkpoint), "--store", str(store.path), "--head", "b"]
    assert main([*argv, "--out", str(out), "--reference", "sevennet-0"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    baseline = baseline_row(store)
    reference = summary["references"]["sevennet-0"]
    assert reference["n_structures"] == 3 and reference["n_fit_structures"] == 4
    assert reference["forces_mae_mev_per_a"] == pytest.approx(baseline["forces_mae_mev_per_a"])
    # energies: the zero predictions shifted as a head's are (the leave-one-out ridge), which
    # the baseline row is not (plain least squares)
    train, test = zero_predictions(store, "train"), zero_predictions(store, "test")
    shifted = apply_energy_shift(test, fit_energy_shift(train.composition, train.energy))
    assert reference["energy_mae_mev_per_atom"] == pytest.approx(
        compute_metrics(shifted)["energy_mae_mev_per_atom"]
    )
    table = pd.read_csv(out / "references.csv")
    assert list(table["model"]) == ["model", "sevennet-0"]
    assert table["forces_mae_mev_per_a"][0] == pytest.approx(summary["forces_mae_mev_per_a"])
    assert json.loads((out / "metrics.json").read_text())["references"] == summary["references"]
    # a store with forces only: the reference is scored on forces, its energy cell left empty
    forces_only = labeled_store(tmp_path / "f.lmdb", structures(), splits, energy=False)
    argv_f = ["evaluate", str(checkpoint), "--store", str(forces_only.path), "--head", "b"]
    assert main([*argv_f, "--out", str(tmp_path / "f"), "--reference", "sevennet-0"]) == 0
    reference = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["references"]
    assert "energy_mae_mev_per_atom" not in reference["sevennet-0"]
    assert reference["sevennet-0"]["forces_mae_mev_per_a"] > 0
    # an unknown name fails before anything is computed
    assert main([*argv, "--out", str(tmp_path / "x"), "--reference", "mace-mp"]) == 1
    assert "unknown labeler 'mace-mp'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
