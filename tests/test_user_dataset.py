"""A user's own dataset -> a store: extxyz with custom keys and units, ASE db, deepmd npy systems.

Every test builds small files in the real formats from EMT-labeled structures (eV, Angstrom),
writes them in other units where the test says so, converts them, and compares the stored
values with the originals in eV and Angstrom.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from ase import Atoms
from ase.build import bulk, molecule
from ase.calculators.emt import EMT
from ase.db import connect
from ase.io import write

from lamm.cli import main
from lamm.config import ConfigError
from lamm.data.store import StructureStore
from lamm.data.units import ENERGY_UNITS, LENGTH_UNITS, Units
from lamm.data.user_dataset import UserDataset, UserSplit, convert_user_dataset, load_user_dataset

KCAL_PER_MOL = 0.0433641  # eV, to 6 digits (NIST: 1 kcal/mol = 4.336411e-2 eV)


def emt_frames(count: int, seed: int = 0) -> list[Atoms]:
    """Rattled Cu-Ni-Al cells labeled by EMT (eV, eV/A), energies and forces in `info`/`arrays`."""
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(count):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((1, 1, 2))
        atoms.numbers[rng.choice(len(atoms), 3, replace=False)] = [28, 13, 28]
        atoms.positions += rng.normal(0, 0.08, atoms.positions.shape)
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = None
        atoms.info["true_energy"], atoms.arrays["true_forces"] = energy, forces
        atoms.info["trajectory"] = i // 3
        frames.append(atoms)
    return frames


def emt_molecules(names=("H2O", "CH4", "NH3", "C2H6", "CH3OH", "HCOOH")) -> list[Atoms]:
    frames = []
    for i, name in enumerate(names):
        atoms = molecule(name)
        atoms.positions += np.random.default_rng(i).normal(0, 0.02, atoms.positions.shape)
        atoms.calc = EMT()
        atoms.info["true_energy"], atoms.arrays["true_forces"] = (
            atoms.get_potential_energy(),
            atoms.get_forces(),
        )
        atoms.calc = None
        frames.append(atoms)
    return frames


def in_units(
    atoms: Atoms, energy_unit: str, length_unit: str, energy_key: str, forces_key: str
) -> Atoms:
    """A copy with positions/cell in `length_unit` and labels in `energy_unit` (per length_unit)."""
    e, length = ENERGY_UNITS[energy_unit.lower()], LENGTH_UNITS[length_unit.lower()]
    out = Atoms(
        numbers=atoms.numbers,
        positions=atoms.positions / length,
        cell=atoms.cell.array / length,
        pbc=atoms.pbc,
    )
    out.info.update({key: value for key, value in atoms.info.items() if key != "true_energy"})
    out.info[energy_key] = atoms.info["true_energy"] / e
    out.arrays[forces_key] = atoms.arrays["true_forces"] / (e / length)
    return out


def convert_cli(capsys, *argv: str) -> tuple[int, dict | None, str]:
    status = main(["data", "convert", *argv])
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    return status, (json.loads(lines[-1]) if status == 0 else None), captured.err


def stored_by_id(store: StructureStore) -> dict[str, object]:
    return {record.source_id: record for record in store}


def test_unit_factors_are_the_physical_constants():
    assert ENERGY_UNITS["kcal/mol"] == pytest.approx(KCAL_PER_MOL, rel=1e-5)
    assert ENERGY_UNITS["kj/mol"] == pytest.approx(KCAL_PER_MOL / 4.184, rel=1e-5)
    assert ENERGY_UNITS["hartree"] == pytest.approx(27.211386, rel=1e-7)
    assert ENERGY_UNITS["rydberg"] == pytest.approx(27.211386 / 2, rel=1e-7)
    assert LENGTH_UNITS["bohr"] == pytest.approx(0.52917721, rel=1e-7)
    # forces in Hartree/Bohr: 51.42 eV/A per atomic unit of force
    assert Units("hartree", "bohr").forces_factor == pytest.approx(51.422067, rel=1e-6)
    with pytest.raises(ValueError, match="unknown energy unit 'kcal'"):
        Units("kcal", "angstrom")


def test_extxyz_custom_keys_in_kcal_per_mol_and_bohr(tmp_path, capsys):
    frames = emt_frames(12)
    path = tmp_path / "train.xyz"
    write(
        path,
        [in_units(a, "kcal/mol", "bohr", "REF_energy", "DFT_forces") for a in frames],
        format="extxyz",
    )
    out = tmp_path / "my_set.lmdb"
    status, summary, err = convert_cli(
        capsys,
        "--format",
        "extxyz",
        "--name",
        "my_set",
        "--input",
        str(path),
        "--energy-key",
        "REF_energy",
        "--forces-key",
        "DFT_forces",
        "--energy-unit",
        "kcal/mol",
        "--length-unit",
        "bohr",
        "--functional",
        "EMT",
        "--val-fraction",
        "0.25",
        "--test-fraction",
        "0.25",
        "--out",
        str(out),
    )
    assert status == 0, err
    assert summary["read"] == 12 and summary["written"] == 12 and summary["skipped"] == {}
    store = StructureStore(out)
    assert store.subset == "my_set" and store.info["source"] == "user:extxyz"
    assert store.info["units"]["converted_from"] == {"energy": "kcal/mol", "length": "bohr"}
    described = store.info["user_dataset"]
    assert (described["energy_key"], described["forces_key"], described["functional"]) == (
        "REF_energy",
        "DFT_forces",
        "EMT",
    )
    assert store.info["conversion"]["written"] == 12
    records = stored_by_id(store)
    for index, atoms in enumerate(frames):  # extxyz keeps 8 decimals: 1e-8 Bohr, 5e-9 A
        record = records[f"train.xyz:{index}"]
        np.testing.assert_allclose(record.positions, atoms.positions, rtol=0, atol=1e-8)
        np.testing.assert_allclose(record.cell, atoms.cell.array, rtol=0, atol=1e-8)
        assert record.energy == pytest.approx(atoms.info["true_energy"], abs=1e-8)
        np.testing.assert_allclose(record.forces, atoms.arrays["true_forces"], rtol=0, atol=1e-8)
    sizes = {split: len(store.indices(split)) for split in ("train", "val", "test")}
    assert sum(sizes.values()) == 12 and store.info["conversion"]["splits"] == {
        k: v for k, v in sizes.items() if v
    }
    assert (
        sizes["val"] > 0 and sizes["test"] > 0
    )  # 12 frames, 25% each: empty only by a 1e-3 chance


def test_random_split_is_seeded_and_keeps_groups_together(tmp_path):
    frames = emt_frames(30)
    path = tmp_path / "md.xyz"
    write(
        path,
        [in_units(a, "eV", "angstrom", "energy_dft", "forces_dft") for a in frames],
        format="extxyz",
    )

    def convert(seed: int, name: str) -> StructureStore:
        dataset = UserDataset(
            name="md",
            format="extxyz",
            train=(path,),
            energy_key="energy_dft",
            forces_key="forces_dft",
            split=UserSplit(group_by="trajectory", val_fraction=0.3, test_fraction=0.3, seed=seed),
        )
        convert_user_dataset(dataset, tmp_path / name)
        return StructureStore(tmp_path / name)

    first, again, other = convert(0, "a.lmdb"), convert(0, "b.lmdb"), convert(1, "c.lmdb")
    np.testing.assert_array_equal(first.split, again.split)
    assert not np.array_equal(first.split, other.split)
    # frames i // 3 share a trajectory: each trajectory lies on one side
    trajectory = np.arange(30) // 3
    for group in range(10):
        assert len(set(first.split[trajectory == group])) == 1


def test_yaml_description_with_files_and_relative_paths(tmp_path, capsys):
    data = tmp_path / "user" / "data"
    data.mkdir(parents=True)
    train, test = emt_molecules()[:4], emt_molecules()[4:]
    write(
        data / "train.extxyz",
        [in_units(a, "hartree", "angstrom", "E", "F") for a in train],
        format="extxyz",
    )
    write(
        data / "test.extxyz",
        [in_units(a, "hartree", "angstrom", "E", "F") for a in test],
        format="extxyz",
    )
    description = tmp_path / "user" / "molecules.yaml"
    description.write_text(
        yaml.safe_dump(
            {
                "name": "molecules",
                "format": "extxyz",
                "files": {"train": "data/train.extxyz", "test": ["data/test.extxyz"]},
                "energy_key": "E",
                "forces_key": "F",
                "units": {"energy": "Hartree"},
                "periodic": False,
                "functional": "wB97X-D/def2-TZVP",
                "split": {"val_fraction": 0.5},
            }
        )
    )
    dataset = load_user_dataset(description)
    assert (
        dataset.policy == "files" and dataset.test_fraction == 0.0 and dataset.val_fraction == 0.5
    )
    out = tmp_path / "molecules.lmdb"
    status, summary, err = convert_cli(capsys, "--dataset", str(description), "--out", str(out))
    assert status == 0, err
    store = StructureStore(out)
    assert len(store.indices("test")) == 2  # exactly the test file
    assert len(store.indices("train")) + len(store.indices("val")) == 4
    assert store.info["functional"] == "wB97X-D/def2-TZVP" and store.info["periodic"] is False
    assert store.info["user_dataset"]["files"]["test"] == [str((data / "test.extxyz").resolve())]
    for record, atoms in zip(
        store, [*train, *test], strict=True
    ):  # 8 decimals of Hartree/A: 3e-7 eV/A
        assert not record.pbc.any()
        assert record.energy == pytest.approx(atoms.info["true_energy"], abs=1e-7)
        np.testing.assert_allclose(record.forces, atoms.arrays["true_forces"], rtol=0, atol=1e-6)


def test_description_errors_name_the_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        yaml.safe_dump(
            {"name": "x", "format": "extxyz", "files": {"train": "a.xyz"}, "energy_kye": "E"}
        )
    )
    with pytest.raises(
        ConfigError, match=r"(?s)bad.yaml.*unknown key energy_kye \(did you mean energy_key\?\)"
    ):
        load_user_dataset(path)
    path.write_text(
        yaml.safe_dump(
            {
                "name": "x",
                "format": "extxyz",
                "files": {"train": "a.xyz"},
                "units": {"energy": "kcal"},
            }
        )
    )
    with pytest.raises(ConfigError, match="unknown energy unit 'kcal'"):
        load_user_dataset(path)
    path.write_text(
        yaml.safe_dump(
            {
                "name": "x",
                "format": "extxyz",
                "files": {"train": "a.xyz", "test": "b.xyz"},
                "split": {"policy": "random"},
            }
        )
    )
    with pytest.raises(ConfigError, match="policy random takes train files only"):
        load_user_dataset(path)


def test_bad_frames_are_skipped_with_their_reasons(tmp_path, capsys):
    frames = [in_units(a, "eV", "angstrom", "energy_dft", "forces_dft") for a in emt_frames(6)]
    frames[1].info["energy_dft"] = float("nan")
    del frames[2].arrays["forces_dft"]  # declared forces missing in this frame
    frames[3].positions[1] = frames[3].positions[0] + 0.1  # atoms too close
    frames[4].info["energy_dft"] = "not-a-number"
    path = tmp_path / "bad.xyz"
    write(path, frames, format="extxyz")
    out = tmp_path / "bad.lmdb"
    status, summary, err = convert_cli(
        capsys,
        "--format",
        "extxyz",
        "--name",
        "bad",
        "--input",
        str(path),
        "--energy-key",
        "energy_dft",
        "--forces-key",
        "forces_dft",
        "--out",
        str(out),
    )
    assert status == 0, err
    assert summary["read"] == 6 and summary["written"] == 2
    assert summary["skipped"] == {
        "atoms_too_close": 1,
        "missing_forces": 1,
        "non_finite_labels": 1,
        "unparsable_record": 1,
    }
    # without the forces label declared, the frame without forces is kept (its forces are not read)
    status, summary, _ = convert_cli(
        capsys,
        "--format",
        "extxyz",
        "--name",
        "bad",
        "--input",
        str(path),
        "--labels",
        "energy",
        "--energy-key",
        "energy_dft",
        "--out",
        str(tmp_path / "energy_only.lmdb"),
    )
    assert status == 0 and summary["written"] == 3
    assert all(record.forces is None for record in StructureStore(tmp_path / "energy_only.lmdb"))


def test_a_conversion_that_keeps_nothing_fails_and_writes_no_store(tmp_path, capsys):
    path = tmp_path / "unlabeled.xyz"
    write(
        path,
        [Atoms("H2O", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])] * 3,
        format="extxyz",
    )
    out = tmp_path / "none.lmdb"
    status, _, err = convert_cli(
        capsys, "--format", "extxyz", "--name", "none", "--input", str(path), "--out", str(out)
    )
    assert status == 1
    assert "no record kept of 3 read" in err and "missing_energy" in err and err.count("\n") == 1
    assert not out.exists() and not list(tmp_path.glob("none.lmdb.tmp-*"))


def test_ase_db_labels_from_calculator_key_value_pairs_and_data(tmp_path, capsys):
    frames = emt_frames(5)
    path = tmp_path / "frames.db"
    with connect(path) as db:
        for atoms in frames[:2]:  # the stored calculator: the columns energy and forces
            stored = atoms.copy()
            stored.calc = EMT()
            stored.get_forces()
            db.write(stored, trajectory=int(atoms.info["trajectory"]))
    status, summary, err = convert_cli(
        capsys,
        "--format",
        "ase_db",
        "--name",
        "calc_db",
        "--input",
        str(path),
        "--out",
        str(tmp_path / "calc.lmdb"),
    )
    assert status == 0 and summary["written"] == 2, err

    path = tmp_path / "custom.db"
    with connect(path) as db:
        for atoms in frames:  # kcal/mol in a key-value pair, forces in data
            plain = Atoms(
                numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=True
            )
            db.write(
                plain,
                REF_energy=atoms.info["true_energy"] / ENERGY_UNITS["kcal/mol"],
                data={"REF_forces": atoms.arrays["true_forces"] / ENERGY_UNITS["kcal/mol"]},
            )
    status, summary, err = convert_cli(
        capsys,
        "--format",
        "ase_db",
        "--name",
        "custom_db",
        "--input",
        str(path),
        "--energy-key",
        "REF_energy",
        "--forces-key",
        "REF_forces",
        "--energy-unit",
        "kcal/mol",
        "--out",
        str(tmp_path / "custom.lmdb"),
    )
    assert status == 0 and summary["written"] == 5, err
    for record, atoms in zip(StructureStore(tmp_path / "custom.lmdb"), frames, strict=True):
        assert record.energy == pytest.approx(atoms.info["true_energy"], abs=1e-9)
        np.testing.assert_allclose(record.forces, atoms.arrays["true_forces"], atol=1e-9)
        assert record.pbc.all()


def test_a_file_that_is_not_a_database_fails_with_its_name(tmp_path, capsys):
    path = tmp_path / "broken.db"
    path.write_text("this is not sqlite\n" * 10)
    status, _, err = convert_cli(
        capsys,
        "--format",
        "ase_db",
        "--name",
        "broken",
        "--input",
        str(path),
        "--out",
        str(tmp_path / "b.lmdb"),
    )
    assert status == 1 and "broken.db" in err and "cannot be read" in err


def write_deepmd_system(
    folder: Path, frames: list[Atoms], sets: list[slice], *, periodic: bool = True
) -> None:
    """deepmd-kit npy layout: type.raw, type_map.raw, set.*/{coord,box,energy,force}.npy (eV, A)."""
    folder.mkdir(parents=True)
    elements = sorted(set(frames[0].get_chemical_symbols()))
    (folder / "type_map.raw").write_text("\n".join(elements) + "\n")
    (folder / "type.raw").write_text(
        " ".join(str(elements.index(s)) for s in frames[0].get_chemical_symbols()) + "\n"
    )
    if not periodic:
        (folder / "nopbc").touch()
    for k, part in enumerate(sets):
        chosen = frames[part]
        set_dir = folder / f"set.{k:03d}"
        set_dir.mkdir()
        np.save(set_dir / "coord.npy", np.stack([a.positions.reshape(-1) for a in chosen]))
        if periodic:
            np.save(set_dir / "box.npy", np.stack([a.cell.array.reshape(-1) for a in chosen]))
        np.save(set_dir / "energy.npy", np.array([a.info["true_energy"] for a in chosen]))
        np.save(
            set_dir / "force.npy", np.stack([a.arrays["true_forces"].reshape(-1) for a in chosen])
        )


def test_deepmd_system_with_two_sets_and_a_molecule_system(tmp_path, capsys):
    cells = emt_frames(7)
    for atoms in cells:  # one composition per system, as deepmd's type.raw requires
        atoms.numbers = cells[0].numbers
        atoms.calc = EMT()
        atoms.info["true_energy"], atoms.arrays["true_forces"] = (
            atoms.get_potential_energy(),
            atoms.get_forces(),
        )
        atoms.calc = None
    water = [molecule("H2O") for _ in range(3)]
    for i, atoms in enumerate(water):
        atoms.positions += np.random.default_rng(i).normal(0, 0.03, (3, 3))
        atoms.calc = EMT()
        atoms.info["true_energy"], atoms.arrays["true_forces"] = (
            atoms.get_potential_energy(),
            atoms.get_forces(),
        )
    root = tmp_path / "systems"
    write_deepmd_system(root / "alloy", cells, [slice(0, 4), slice(4, 7)])
    write_deepmd_system(root / "water", water, [slice(0, 3)], periodic=False)
    out = tmp_path / "dp.lmdb"
    status, summary, err = convert_cli(
        capsys,
        "--format",
        "deepmd",
        "--name",
        "dp",
        "--input",
        str(root),
        "--group-by",
        "file",
        "--val-fraction",
        "0",
        "--test-fraction",
        "0",
        "--out",
        str(out),
    )
    assert status == 0, err
    assert summary["written"] == 10 and StructureStore(out).info["conversion"]["splits"] == {
        "train": 10
    }
    records = stored_by_id(StructureStore(out))
    for index, atoms in enumerate(cells):
        set_index, within = (0, index) if index < 4 else (1, index - 4)
        record = records[f"alloy/set.{set_index:03d}:{within}"]
        np.testing.assert_array_equal(record.atomic_numbers, atoms.numbers)
        np.testing.assert_allclose(record.positions, atoms.positions, atol=1e-12)
        np.testing.assert_allclose(record.cell, atoms.cell.array, atol=1e-12)
        assert record.pbc.all() and record.energy == pytest.approx(
            atoms.info["true_energy"], abs=1e-12
        )
        np.testing.assert_allclose(record.forces, atoms.arrays["true_forces"], atol=1e-12)
    water_record = records["water/set.000:2"]
    assert not water_record.pbc.any() and list(water_record.atomic_numbers) == [8, 1, 1]

    (root / "water" / "type_map.raw").unlink()
    status, _, err = convert_cli(
        capsys,
        "--format",
        "deepmd",
        "--name",
        "dp",
        "--input",
        str(root),
        "--out",
        str(tmp_path / "x.lmdb"),
    )
    assert status == 1 and "no type_map.raw" in err and "water" in err


def test_deepmd_set_without_forces_skips_its_frames(tmp_path, capsys):
    cells = emt_frames(4)
    for atoms in cells:
        atoms.numbers = cells[0].numbers
    write_deepmd_system(tmp_path / "sys", cells, [slice(0, 2), slice(2, 4)])
    (tmp_path / "sys" / "set.001" / "force.npy").unlink()
    status, summary, err = convert_cli(
        capsys,
        "--format",
        "deepmd",
        "--name",
        "sys",
        "--input",
        str(tmp_path / "sys"),
        "--out",
        str(tmp_path / "s.lmdb"),
    )
    assert status == 0, err
    assert summary["written"] == 2 and summary["skipped"] == {"missing_forces": 2}


def test_builtin_source_and_user_flags_do_not_mix(tmp_path, capsys):
    status, _, err = convert_cli(
        capsys, "hme21", "--format", "extxyz", "--input", "x.xyz", "--out", str(tmp_path / "x.lmdb")
    )
    assert status == 1 and "not both" in err
    status, _, err = convert_cli(
        capsys,
        "--dataset",
        str(tmp_path / "d.yaml"),
        "--input",
        "x.xyz",
        "--out",
        str(tmp_path / "x.lmdb"),
    )
    assert status == 1 and "drop --input" in err
