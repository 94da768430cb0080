"""Users' own DFT outputs (issue 27): formats detected and read (ASE, dpdata, deepmd virials,
extxyz stress and virial), the energy choice, the group/block splitter, warnings and errors that
name the fix. Files are made here in the real formats; the dev-dft outputs (VASP, QE, CP2K) are
read too where ../shared/dev-dft exists (LAMM_DEV_DFT overrides the path), else skipped."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write

from lamm.cli import main
from lamm.data.readers.dft import detect_format, element_of
from lamm.data.splitting import split_by_groups
from lamm.data.store import StructureStore

DEV_DFT = Path(os.environ.get("LAMM_DEV_DFT", Path(__file__).parents[2] / "shared" / "dev-dft"))
FORMATS = DEV_DFT / "formats"
needs_dev_dft = pytest.mark.skipif(not FORMATS.is_dir(), reason=f"{FORMATS} not present")


def convert(capsys, *argv: str) -> tuple[int, dict | None, str]:
    status = main(["data", "convert", *argv])
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    return status, json.loads(lines[-1]) if status == 0 else None, captured.err


def emt_md(n: int = 10, free_shift: float = 0.0) -> list:
    """`n` frames of a rattled Cu cell labeled by EMT (energy, forces, stress), as an MD run."""
    frames = []
    for i in range(n):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(2)
        atoms.rattle(0.05, seed=i)
        atoms.calc = EMT()
        labels = {
            "energy": atoms.get_potential_energy(),
            "free_energy": atoms.get_potential_energy() + free_shift,
            "forces": atoms.get_forces(),
            "stress": atoms.get_stress(),
        }
        atoms.calc = SinglePointCalculator(atoms, **labels)
        frames.append(atoms)
    return frames


# --- the splitter --------------------------------------------------------------------------
def test_ten_frames_of_one_run_split_into_contiguous_blocks():
    split = split_by_groups(["run"] * 10, 0.1, 0.1, seed=0)
    assert sorted(split.tolist()).count("train") == 8
    assert (split == "val").sum() == 1 and (split == "test").sum() == 1
    held = np.flatnonzero(split != "train")  # val and test adjacent: one held-out block
    assert held.max() - held.min() == 1
    np.testing.assert_array_equal(split, split_by_groups(["run"] * 10, 0.1, 0.1, seed=0))
    assert any(
        not np.array_equal(split, split_by_groups(["run"] * 10, 0.1, 0.1, seed=s))
        for s in range(1, 5)
    )


def test_blocks_never_interleave_and_follow_the_fractions():
    groups = ["a"] * 40 + ["b"] * 25 + ["c"] * 3
    split = split_by_groups(groups, 0.1, 0.2, seed=3, mode="blocks")
    assert (split == "test").sum() == 14 and (split == "val").sum() == 7  # round(f * 68)
    for name in ("a", "b", "c"):
        sides = split[np.asarray(groups) == name]
        # within a group: train | held-out | train, each held-out split one contiguous block
        for side in ("val", "test"):
            where = np.flatnonzero(sides == side)
            assert len(where) == 0 or where.max() - where.min() + 1 == len(where)


def test_many_groups_go_whole_and_auto_falls_back_to_blocks():
    groups = [f"traj{i // 4}" for i in range(80)]  # 20 trajectories of 4 frames
    split = split_by_groups(groups, 0.1, 0.1, seed=1)
    for g in set(groups):
        assert len(set(split[np.asarray(groups) == g])) == 1  # no trajectory straddles
    assert (split == "test").sum() == 8 and (split == "val").sum() == 8
    few = split_by_groups(["x"] * 30 + ["y"] * 30, 0.1, 0.1, seed=1)  # 2 groups: blocks
    assert {"train", "val", "test"} <= set(few[:30]) and {"train", "val", "test"} <= set(few[30:])
    with pytest.raises(ValueError, match="mode must be one of"):
        split_by_groups(groups, mode="frames")


# --- formats -------------------------------------------------------------------------------
def test_trajectory_with_two_energies_and_stress(tmp_path, capsys):
    frames = emt_md(10, free_shift=-0.25)
    write(tmp_path / "md.traj", frames)
    for choice, key in (("free", "free_energy"), ("zero-smearing", "energy")):
        out = tmp_path / f"{choice}.lmdb"
        status, summary, err = convert(
            capsys, "--name", "cu", "--input", str(tmp_path / "md.traj"), "--energy", choice,
            "--out", str(out),
        )  # fmt: skip
        assert status == 0 and summary["written"] == 10, err
        store = StructureStore(out)
        assert detect_format(tmp_path / "md.traj") == ("ase", "traj")
        for index, atoms in enumerate(frames):
            record = store.get_record(index)
            assert record.energy == pytest.approx(atoms.calc.results[key])
            np.testing.assert_allclose(record.stress.flat[[0, 4, 8]], atoms.get_stress()[:3])
        recorded = store.info["energy_choice"][str(tmp_path / "md.traj")]
        assert recorded == {"choice": choice, "key": key, "distinct_in_file": True}
        assert store.has_stress and store.info["with_stress"] == 10
        # one run: train | val | test blocks, 8 / 1 / 1
        assert [len(store.indices(s)) for s in ("train", "val", "test")] == [8, 1, 1]


def test_several_inputs_globs_compressed_and_extxyz_virial(tmp_path, capsys):
    frames = emt_md(6)
    for run in range(3):
        with gzip.open(tmp_path / f"run{run}.xyz.gz", "wt") as handle:
            write(handle, frames[2 * run : 2 * run + 2], format="extxyz")
    virial = emt_md(2)
    for atoms in virial:  # MACE/nequip files: virial (eV) in info, no stress
        atoms.info["virial"] = -atoms.get_stress(voigt=False) * atoms.get_volume()
        atoms.calc = SinglePointCalculator(
            atoms, energy=atoms.get_potential_energy(), forces=atoms.get_forces()
        )
    write(tmp_path / "virial.extxyz", virial)
    status, summary, err = convert(
        capsys, "--name", "cu", "--input", str(tmp_path / "run*.xyz.gz"), "--input",
        str(tmp_path / "virial.extxyz"), "--out", str(tmp_path / "cu.lmdb"),
    )  # fmt: skip
    assert status == 0 and summary["read"] == 8, err
    store = StructureStore(tmp_path / "cu.lmdb")
    assert len(store.info["readers"]) == 4
    np.testing.assert_allclose(
        store.get_record(6).stress, emt_md(2)[0].get_stress(voigt=False), atol=1e-9
    )


def test_deepmd_virial_becomes_stress(tmp_path, capsys):
    frames = emt_md(3)
    system = tmp_path / "sys"
    (system / "set.000").mkdir(parents=True)
    (system / "type_map.raw").write_text("Cu\n")
    (system / "type.raw").write_text(" ".join(["0"] * len(frames[0])))
    sets = system / "set.000"
    np.save(sets / "coord.npy", np.stack([a.positions.ravel() for a in frames]))
    np.save(sets / "box.npy", np.stack([a.cell.array.ravel() for a in frames]))
    np.save(sets / "energy.npy", np.array([a.get_potential_energy() for a in frames]))
    np.save(sets / "force.npy", np.stack([a.get_forces().ravel() for a in frames]))
    virials = [-a.get_stress(voigt=False) * a.get_volume() for a in frames]
    np.save(sets / "virial.npy", np.stack([v.ravel() for v in virials]))
    status, _, err = convert(
        capsys, "--name", "cu", "--input", str(system), "--out", str(tmp_path / "d.lmdb")
    )
    assert status == 0, err
    store = StructureStore(tmp_path / "d.lmdb")
    for index, atoms in enumerate(frames):
        np.testing.assert_allclose(
            store.get_record(index).stress, atoms.get_stress(voigt=False), atol=1e-12
        )
    # without force.npy: the error names the files the set has and --labels energy
    (sets / "force.npy").unlink()
    status, _, err = convert(
        capsys, "--name", "cu", "--input", str(system), "--out", str(tmp_path / "e.lmdb")
    )
    assert status == 1 and "missing_forces" in err and "energy.npy" in err
    assert "force.npy" not in err.split(" has ")[1] and "--labels energy" in err


def test_wrong_forces_key_names_the_keys_and_hartree_on_ev_data_warns(tmp_path, capsys):
    write(tmp_path / "md.extxyz", emt_md(4))
    status, _, err = convert(
        capsys, "--name", "cu", "--format", "extxyz", "--input", str(tmp_path / "md.extxyz"),
        "--forces-key", "DFT_forces", "--out", str(tmp_path / "a.lmdb"),
    )  # fmt: skip
    assert status == 1 and "--forces-key (read: DFT_forces)" in err and "forces" in err
    assert "--labels energy" in err
    status, _, err = convert(
        capsys, "--name", "cu", "--input", str(tmp_path / "md.extxyz"), "--energy-unit",
        "hartree", "--out", str(tmp_path / "b.lmdb"),
    )  # fmt: skip
    assert status == 0
    warning = [line for line in err.splitlines() if "force RMS" in line]
    assert warning and "--energy-unit" in warning[0]
    assert StructureStore(tmp_path / "b.lmdb").info["warnings"]


def test_single_frame_warns_that_val_and_test_are_empty(tmp_path, capsys):
    write(tmp_path / "one.extxyz", emt_md(1))
    status, _, err = convert(
        capsys, "--name", "one", "--input", str(tmp_path / "one.extxyz"), "--out",
        str(tmp_path / "one.lmdb"),
    )  # fmt: skip
    assert status == 0
    assert "the val split is empty" in err and "--carve-test 0.1" in err
    assert len(StructureStore(tmp_path / "one.lmdb").info["warnings"]) == 2


def test_element_of_kind_labels():
    assert element_of("Fe1") == 26 and element_of("O") == 8 and element_of("Fe_up") == 26
    with pytest.raises(ValueError, match="element symbol"):
        element_of("X1")  # ASE's dummy atom is no element


@needs_dev_dft
@pytest.mark.parametrize(
    "name, reader, frames",
    [
        ("OUTCAR.h2o_md", ("ase", "vasp-out"), 3),
        ("vasprun.h2o_md.xml", ("ase", "vasp-xml"), 3),
        ("qe_Al_scf.out", ("ase", "espresso-out"), 1),
        ("cp2k_scf.out", ("dpdata", "cp2k/output"), 1),
        ("OUTCAR.ch4_unconverged", ("ase", "vasp-out"), 1),  # 2 of 3 steps ran NELM: skipped
    ],
)
def test_dev_dft_outputs_convert_with_one_command(tmp_path, capsys, name, reader, frames):
    assert detect_format(FORMATS / name) == reader
    status, summary, err = convert(
        capsys, "--name", "x", "--input", str(FORMATS / name), "--out", str(tmp_path / "x.lmdb")
    )
    assert status == 0 and summary["written"] == frames, err
    record = StructureStore(tmp_path / "x.lmdb").get_record(0)
    assert np.isfinite(record.energy) and np.isfinite(record.forces).all()
    if name == "OUTCAR.ch4_unconverged":
        assert summary["skipped"] == {"unconverged_scf": 2}


@needs_dev_dft
def test_vasp_md_is_the_same_from_outcar_and_vasprun(tmp_path, capsys):
    stores = []
    for name in ("OUTCAR.h2o_md", "vasprun.h2o_md.xml"):
        out = tmp_path / f"{name}.lmdb"
        assert (
            convert(capsys, "--name", "w", "--input", str(FORMATS / name), "--out", str(out))[0]
            == 0
        )
        stores.append(StructureStore(out))
    a, b = stores
    np.testing.assert_array_equal(a.split, b.split)
    for index in range(len(a)):
        ra, rb = a.get_record(index), b.get_record(index)
        assert ra.energy == rb.energy  # the same printed energies
        # OUTCAR prints 5 decimals of Cartesian positions, vasprun.xml 8 of fractional ones
        np.testing.assert_allclose(ra.positions, rb.positions, atol=1e-5)
        np.testing.assert_allclose(ra.forces, rb.forces, atol=1e-6)
        np.testing.assert_allclose(ra.stress, rb.stress, atol=1e-7)


def test_a_vasprun_read_as_extxyz_names_format_auto(tmp_path, capsys):
    path = tmp_path / "vasprun.xml"
    path.write_text('<?xml version="1.0" encoding="ISO-8859-1"?>\n<modeling>\n</modeling>\n')
    status, _, err = convert(
        capsys, "--name", "x", "--format", "extxyz", "--input", str(path), "--out",
        str(tmp_path / "x.lmdb"),
    )  # fmt: skip
    assert status == 1 and "--format auto detects the format" in err
