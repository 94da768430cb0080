"""Each reader on small files in the real format: exact values, units, groups, corrupt files."""

import gzip
import lzma

import numpy as np
import pytest
from ase.io import write

from lamm.data.readers import MISSING_REFERENCE, UNPARSABLE_RECORD, CorruptInputError
from lamm.data.readers.extxyz import read_extxyz
from lamm.data.readers.fairchem_lmdb import read_fairchem_lmdb
from lamm.data.readers.oc20_extxyz import read_oc20_extxyz
from lamm.data.readers.pubchem3d import read_pubchem3d
from lamm.data.readers.qm7x import read_qm7x
from lamm.data.readers.qmugs import read_qmugs
from lamm.data.readers.transition1x import read_transition1x
from tests import data_builders as B

S2EF = {"energy_fields": ("energy", "y"), "forces_fields": ("forces", "force"), "periodic": True}


def test_fairchem_lmdb_legacy_new_and_pre_pyg2_objects(tmp_path):
    slabs = [B.labeled_slab(seed) for seed in range(3)]
    objects = [
        B.fairchem_data(slabs[0], sid=11, fid=0, naming="legacy"),
        B.fairchem_data(slabs[1], sid=11, fid=1, naming="new"),
        B.pre_pyg2(B.fairchem_data(slabs[2], sid=12, fid=0, naming="legacy")),
    ]
    assert "_store" not in objects[2].__dict__
    items = list(
        read_fairchem_lmdb(B.write_fairchem_lmdb(tmp_path / "data.0000.lmdb", objects), **S2EF)
    )
    assert [item.group for item in items] == ["11", "11", "12"]
    assert [item.record.source_id for item in items] == ["11/0", "11/1", "12/0"]
    for item, slab in zip(items, slabs, strict=True):
        record = item.record
        np.testing.assert_array_equal(record.atomic_numbers, slab.numbers)
        np.testing.assert_array_equal(
            record.positions, slab.positions.astype(np.float32).astype(np.float64)
        )
        np.testing.assert_array_equal(
            record.cell, slab.cell.array.astype(np.float32).astype(np.float64)
        )
        assert record.pbc.tolist() == [True, True, True]
        assert record.energy == pytest.approx(slab.get_potential_energy(), abs=0)
        np.testing.assert_array_equal(
            record.forces,
            slab.get_forces(apply_constraint=False).astype(np.float32).astype(np.float64),
        )
        assert record.fixed.tolist() == [True] * 4 + [False] * (len(slab) - 4)
        assert record.tags.tolist() == slab.get_tags().tolist()


def test_fairchem_directory_without_length_key_reads_files_in_order(tmp_path):
    slabs = [B.labeled_slab(seed) for seed in range(3)]
    B.write_fairchem_lmdb(
        tmp_path / "data.0001.lmdb", [B.fairchem_data(slabs[2], 3, 0)], length_key=False
    )
    B.write_fairchem_lmdb(
        tmp_path / "data.0000.lmdb",
        [B.fairchem_data(slabs[0], 1, 0), B.fairchem_data(slabs[1], 2, 0)],
    )
    (tmp_path / "metadata.npz").write_bytes(b"not read")
    items = list(read_fairchem_lmdb(tmp_path, **S2EF))
    assert [item.record.source_id for item in items] == ["1/0", "2/0", "3/0"]


def test_is2re_takes_relaxed_energy_initial_positions_and_no_forces(tmp_path):
    slab = B.labeled_slab(0)
    obj = B.fairchem_data(slab, sid=7, fid=0, naming="is2re", relaxed_energy=-1.25)
    path = B.write_fairchem_lmdb(tmp_path / "data.lmdb", [obj])
    (item,) = read_fairchem_lmdb(
        path, energy_fields=("y_relaxed",), forces_fields=(), periodic=True
    )
    assert item.record.energy == -1.25
    assert item.record.forces is None
    np.testing.assert_array_equal(item.record.positions, obj.pos.numpy().astype(np.float64))
    # oc20_ref.pkl adds the per-system reference (fairchem: data.y += oc20_ref[f"random{sid}"])
    (total,) = read_fairchem_lmdb(
        path,
        energy_fields=("y_relaxed",),
        forces_fields=(),
        periodic=True,
        reference_energies={"random7": -300.5},
    )
    assert total.record.energy == -1.25 + -300.5
    (missing,) = read_fairchem_lmdb(
        path,
        energy_fields=("y_relaxed",),
        forces_fields=(),
        periodic=True,
        reference_energies={"random8": 1.0},
    )
    assert missing.record is None and missing.skip_reason == MISSING_REFERENCE


def test_odac23_reads_the_total_energy_raw_y(tmp_path):
    slab = B.labeled_slab(0)
    path = B.write_fairchem_lmdb(tmp_path / "d.lmdb", [B.fairchem_data(slab, 1, 0, naming="odac")])
    (item,) = read_fairchem_lmdb(
        path, energy_fields=("raw_y",), forces_fields=("force", "forces"), periodic=True
    )
    assert item.record.energy == slab.get_potential_energy()


def test_fairchem_corrupt_files_are_named(tmp_path):
    junk = tmp_path / "data.0000.lmdb"
    junk.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(CorruptInputError, match="data.0000.lmdb"):
        list(read_fairchem_lmdb(junk, **S2EF))
    bad_pickle = B.write_fairchem_lmdb(tmp_path / "bad.lmdb", [])
    import lmdb

    env = lmdb.open(str(bad_pickle), subdir=False)
    with env.begin(write=True) as txn:
        txn.put(b"0", b"not a pickle")
        txn.put(b"length", __import__("pickle").dumps(1))
    env.close()
    with pytest.raises(CorruptInputError, match=r"bad.lmdb \(object 0\)"):
        list(read_fairchem_lmdb(bad_pickle, **S2EF))


def test_oc20_raw_extxyz_pairs(tmp_path):
    frames = [
        ("random1331004", 0, B.labeled_slab(0)),
        ("random1331004", 143, B.labeled_slab(1)),
        ("random42", 2, B.labeled_slab(2, "OH")),
    ]
    B.write_oc20_pair(tmp_path, "0", frames[:2])
    B.write_oc20_pair(tmp_path, "1", frames[2:])
    items = list(read_oc20_extxyz(tmp_path))
    assert [item.group for item in items] == ["random1331004", "random1331004", "random42"]
    assert [item.record.source_id for item in items] == [
        "random1331004/frame0",
        "random1331004/frame143",
        "random42/frame2",
    ]
    for item, (_, _, slab) in zip(items, frames, strict=True):
        record = item.record
        np.testing.assert_array_equal(record.positions, np.round(slab.positions, 8))
        assert record.energy == round(slab.get_potential_energy(), 8)  # `energy`, not `free_energy`
        np.testing.assert_array_equal(
            record.forces, np.round(slab.get_forces(apply_constraint=False), 8)
        )
        assert record.fixed.tolist() == [True] * 4 + [False] * (
            len(slab) - 4
        )  # move_mask F -> fixed
        assert record.tags.tolist() == slab.get_tags().tolist()
        assert record.pbc.all()


def test_oc20_mismatched_or_truncated_pairs_fail_with_the_file_name(tmp_path):
    frames = [("random1", 0, B.labeled_slab(0)), ("random1", 1, B.labeled_slab(1))]
    B.write_oc20_pair(tmp_path, "0", frames)
    with lzma.open(tmp_path / "0.txt.xz", "wt") as handle:
        handle.write("random1,frame0,-1.0\n")
    with pytest.raises(
        CorruptInputError, match="0.extxyz.xz: more frames than the 1 lines of 0.txt.xz"
    ):
        list(read_oc20_extxyz(tmp_path))
    B.write_oc20_pair(tmp_path, "0", frames)
    data = (tmp_path / "0.extxyz.xz").read_bytes()
    (tmp_path / "0.extxyz.xz").write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptInputError, match="0.extxyz.xz"):
        list(read_oc20_extxyz(tmp_path))


def test_hme21_extxyz(tmp_path):
    slabs = [B.labeled_slab(seed) for seed in range(2)]
    for slab in slabs:
        slab.set_constraint()
        slab.info.clear()
    write(tmp_path / "hme21_train.xyz", slabs, format="extxyz")
    items = list(read_extxyz(tmp_path / "hme21_train.xyz"))
    assert [item.group for item in items] == ["hme21_train.xyz:0", "hme21_train.xyz:1"]
    for item, slab in zip(items, slabs, strict=True):
        # ASE writes 8 decimals (eV, Angstrom, eV/A are the file's units, kept as they are)
        np.testing.assert_allclose(item.record.positions, slab.positions, rtol=0, atol=5.1e-9)
        assert item.record.energy == pytest.approx(slab.get_potential_energy(), abs=5.1e-9)
        np.testing.assert_allclose(item.record.forces, slab.get_forces(), rtol=0, atol=5.1e-9)
    (tmp_path / "broken.xyz").write_text('12\nLattice="1 0 0 0 1 0 0 0 1"\nCu 0 0 0\n')
    with pytest.raises(CorruptInputError, match="broken.xyz: frame 0 ends early"):
        list(read_extxyz(tmp_path / "broken.xyz"))


def test_transition1x_reads_reaction_groups_only(tmp_path):
    reactions = {"CH2O/rxn0001": B.reaction(1, frames=4), "CH2O/rxn0002": B.reaction(2, frames=3)}
    path = B.write_transition1x(tmp_path / "Transition1x.h5", reactions)
    items = list(read_transition1x(path))
    assert len(items) == 7  # not 7 + 3 endpoint copies per reaction, not the /train copy
    assert [item.group for item in items] == ["CH2O/rxn0001"] * 4 + ["CH2O/rxn0002"] * 3
    first = reactions["CH2O/rxn0001"]
    record = items[1].record
    assert record.source_id == "CH2O/rxn0001/1"
    np.testing.assert_array_equal(record.atomic_numbers, [8, 6, 1, 1])
    np.testing.assert_array_equal(record.positions, first["positions"][1])
    assert record.energy == first["energy"][1]  # eV, total
    np.testing.assert_array_equal(record.forces, first["forces"][1].astype(np.float64))
    assert not record.pbc.any()
    with pytest.raises(CorruptInputError, match="no group /valid"):
        list(read_transition1x(path, split_group="valid"))


def test_qm7x_hdf5_and_xz(tmp_path):
    molecules = {
        "1": {"Geom-m1-i1-c1-opt": B.qm7x_conformer(0), "Geom-m1-i1-c1-1": B.qm7x_conformer(1)},
        "2": {"Geom-m2-i1-c1-opt": B.qm7x_conformer(2, n_atoms=3)},
    }
    B.write_qm7x(tmp_path / "1000.xz", molecules, xz=True)
    items = list(read_qm7x(tmp_path / "1000.xz", scratch_dir=tmp_path))
    assert [item.group for item in items] == ["1", "1", "2"]
    assert [item.record.source_id for item in items] == [
        "Geom-m1-i1-c1-1",
        "Geom-m1-i1-c1-opt",
        "Geom-m2-i1-c1-opt",
    ]
    conf = molecules["1"]["Geom-m1-i1-c1-opt"]
    record = items[1].record
    assert record.energy == conf["energy"]  # ePBE0+MBD, eV
    np.testing.assert_array_equal(record.forces, conf["forces"])  # totFOR, eV/A
    np.testing.assert_array_equal(record.positions, conf["positions"])
    np.testing.assert_array_equal(record.atomic_numbers, conf["numbers"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1000.xz"]  # the temporary copy is gone
    # a directory with both 2000.hdf5 and its 2000.xz reads the file once
    B.write_qm7x(tmp_path / "2000.hdf5", {"9": {"Geom-m9-i1-c1-opt": B.qm7x_conformer(3)}})
    (tmp_path / "2000.xz").write_bytes(lzma.compress((tmp_path / "2000.hdf5").read_bytes()))
    assert len(list(read_qm7x(tmp_path, scratch_dir=tmp_path))) == 4


def test_qmugs_hartree_to_ev_energy_only(tmp_path):
    written = B.write_qmugs_tree(
        tmp_path,
        {
            "CHEMBL10": [("CCO", -154.123456789), ("CCO", -154.1)],
            "CHEMBL2": [("c1ccccc1O", -307.5)],
        },
    )
    items = list(read_qmugs(tmp_path))  # the parent of structures/ works too
    assert [item.group for item in items] == ["CHEMBL10", "CHEMBL10", "CHEMBL2"]
    record = items[0].record
    assert record.source_id == "CHEMBL10/conf_00"
    assert record.energy == float("-154.1234567890") * B.HARTREE  # DFT:TOTAL_ENERGY, not GFN2
    assert record.forces is None
    mol = written["CHEMBL10/conf_00"]
    np.testing.assert_array_equal(record.atomic_numbers, [a.GetAtomicNum() for a in mol.GetAtoms()])
    np.testing.assert_allclose(
        record.positions, mol.GetConformer().GetPositions(), rtol=0, atol=5e-5
    )  # 4 decimals in SDF
    (tmp_path / "structures" / "CHEMBL3").mkdir()
    (tmp_path / "structures" / "CHEMBL3" / "conf_00.sdf").write_text(
        "this is not a molecule\n$$$$\n"
    )
    assert list(read_qmugs(tmp_path / "structures"))[-1].skip_reason == UNPARSABLE_RECORD


def test_pubchem3d_sdf_gz_unlabeled_and_truncated(tmp_path):
    path = tmp_path / "00000001_00025000.sdf.gz"
    mols = B.write_pubchem_sdf_gz(path, [(702, "CCO"), (241, "c1ccccc1"), (702, "CCO")])
    items = list(read_pubchem3d(tmp_path))
    assert [item.group for item in items] == ["CID702", "CID241", "CID702"]
    assert items[0].record.source_id == "CID702/000002BE00000001"
    assert (
        items[0].record.energy is None and items[0].record.forces is None
    )  # MMFF94 energy is not a label
    np.testing.assert_allclose(
        items[1].record.positions, mols[1].GetConformer().GetPositions(), rtol=0, atol=5e-5
    )
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 40])
    with pytest.raises(CorruptInputError, match="00000001_00025000.sdf.gz"):
        list(read_pubchem3d(path))
    plain = tmp_path / "plain.sdf"
    plain.write_text(gzip.decompress(data).decode())
    assert len(list(read_pubchem3d(plain))) == 3
