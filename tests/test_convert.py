"""`lamm data convert`: counted skips, splits, summaries, corrupt and interrupted conversions."""

import json
import os
import pickle
import signal
import threading
import time

import numpy as np
import pytest
import torch
from ase.io import write
from torch_geometric.data import Data

from lamm.cli import main
from lamm.data.convert import convert, split_of
from lamm.data.sources import load_source
from lamm.data.store import StructureStore
from tests import data_builders as B


def run_cli(capsys, *argv: str) -> tuple[int, list[str], str]:
    status = main(["data", "convert", *argv])
    captured = capsys.readouterr()
    return status, captured.out.strip().splitlines(), captured.err


def test_random_split_keeps_each_reaction_on_one_side_and_is_idempotent(tmp_path):
    reactions = {f"CH2O/rxn{i:04d}": B.reaction(i, frames=3) for i in range(40)}
    h5 = B.write_transition1x(tmp_path / "Transition1x.h5", reactions)
    out = tmp_path / "out" / "transition1x.lmdb"
    source = load_source("transition1x")
    summary = convert(source, out, train_inputs=[h5], val_fraction=0.2, seed=3)
    assert summary.as_json() == {
        "source": "transition1x",
        "read": 120,
        "written": 120,
        "skipped": {},
    }
    store = StructureStore(out)
    sides: dict[str, set] = {}
    for index, record in enumerate(store):
        reaction = record.source_id.rsplit("/", 1)[0]
        sides.setdefault(reaction, set()).add(int(store.split[index]))
    assert all(len(s) == 1 for s in sides.values())  # no reaction straddles the split
    expected_val = {r for r in reactions if split_of(r, 3, 0.2) == "val"}
    assert {r for r, s in sides.items() if s == {1}} == expected_val
    assert 0 < len(expected_val) < 40
    info = store.info
    for key, value in {
        "subset": "transition1x",
        "source": "transition1x",
        "task": "s2ef",
        "energy_kind": "total",
        "functional": "wB97x/6-31G(d)",
        "periodic": False,
        "split_policy": "random_group",
    }.items():
        assert info[key] == value
    first = out.read_bytes()
    convert(source, out, train_inputs=[h5], val_fraction=0.2, seed=3)
    assert out.read_bytes() == first  # converting again gives the same store
    assert sorted(p.name for p in out.parent.iterdir()) == ["transition1x.lmdb"]


def test_split_of_is_a_pure_seeded_function():
    groups = [f"CHEMBL{i}" for i in range(20000)]
    sides = [split_of(g, 0, 0.01) for g in groups]
    assert sides == [split_of(g, 0, 0.01) for g in groups]
    assert 140 < sides.count("val") < 260  # about 1% of 20,000 groups
    assert sides != [split_of(g, 1, 0.01) for g in groups]


def _odac(atoms, sid, **changes):
    data = B.fairchem_data(atoms, sid, 0, naming="odac")
    fields = data.to_dict()
    fields.update(changes)
    return Data(**{k: v for k, v in fields.items() if v is not None})


def test_bad_records_are_skipped_and_counted(tmp_path):
    slab = B.labeled_slab(0)
    n = len(slab)
    good = _odac(slab, 1)
    pos = good.pos.clone()
    pos[3] = pos[2]
    nan_pos = good.pos.clone()
    nan_pos[0, 0] = float("nan")
    numbers = good.atomic_numbers.clone()
    numbers[0] = 0.0
    big = 301  # ODAC23: LaMM drops samples over 300 atoms (the source's default max_atoms)
    grid = np.stack(np.meshgrid(*[np.arange(7)] * 3, indexing="ij"), -1).reshape(-1, 3)[:big] * 2.0
    objects = [
        good,
        _odac(slab, 2, force=good.force[:-1]),  # forces of the wrong shape
        _odac(slab, 3, raw_y=None),  # no total energy
        _odac(slab, 4, atomic_numbers=numbers),  # unknown element
        _odac(slab, 5, pos=nan_pos),
        _odac(slab, 6, force=good.force * float("nan")),
        _odac(slab, 7, pos=pos),  # two atoms on top of each other
        _odac(slab, 8, cell=torch.zeros(1, 3, 3)),
        Data(
            pos=torch.zeros(0, 3),
            atomic_numbers=torch.zeros(0),
            cell=good.cell,
            raw_y=0.0,
            force=torch.zeros(0, 3),
            sid=9,
        ),
        Data(
            pos=torch.tensor(grid, dtype=torch.float32),
            atomic_numbers=torch.full((big,), 29.0),
            cell=torch.eye(3).view(1, 3, 3) * 14.0,
            raw_y=-1.0,
            force=torch.zeros(big, 3),
            sid=10,
        ),
        _odac(slab, 11),
    ]
    lmdb_path = B.write_fairchem_lmdb(tmp_path / "train" / "data.0000.lmdb", objects)
    source = load_source("odac23_s2ef")
    summary = convert(
        source, tmp_path / "odac.lmdb", train_inputs=[lmdb_path.parent], max_atoms=source.max_atoms
    )
    assert summary.as_json() == {
        "source": "odac23_s2ef",
        "read": 11,
        "written": 2,
        "skipped": {
            "atoms_too_close": 1,
            "forces_shape": 1,
            "invalid_cell": 1,
            "missing_energy": 1,
            "no_atoms": 1,
            "non_finite_coordinates": 1,
            "non_finite_labels": 1,
            "too_many_atoms": 1,
            "unknown_element": 1,
        },
    }
    store = StructureStore(tmp_path / "odac.lmdb")
    assert [r.source_id for r in store] == ["1/0", "11/0"]
    assert store.get_record(0).energy == slab.get_potential_energy()  # raw_y, the total energy
    assert store.natoms.tolist() == [n, n]
    assert store.info["max_atoms"] == 300
    # without the limit the 301-atom structure is kept
    unlimited = convert(
        source, tmp_path / "odac_all.lmdb", train_inputs=[lmdb_path.parent], max_atoms=None
    )
    assert unlimited.written == 3


def test_official_splits_from_the_release_files(tmp_path):
    slabs = [B.labeled_slab(seed) for seed in range(4)]
    for slab in slabs:
        slab.set_constraint()
        slab.info.clear()
    write(tmp_path / "hme21_train.xyz", slabs[:2], format="extxyz")
    write(tmp_path / "hme21_val.xyz", slabs[2:3], format="extxyz")
    write(tmp_path / "hme21_test.xyz", slabs[3:], format="extxyz")
    summary = convert(
        load_source("hme21"),
        tmp_path / "hme21.lmdb",
        train_inputs=[tmp_path / "hme21_train.xyz"],
        val_inputs=[tmp_path / "hme21_val.xyz"],
        test_inputs=[tmp_path / "hme21_test.xyz"],
    )
    assert summary.written == 4
    store = StructureStore(tmp_path / "hme21.lmdb")
    assert store.split.tolist() == [0, 0, 1, 2]
    assert store.info["split_policy"] == "official" and store.info["functional"] == "PBE"


def test_reference_energies_turn_adsorption_into_total(tmp_path):
    slab = B.labeled_slab(0)
    objects = [
        B.fairchem_data(slab, 5, 0, naming="is2re", relaxed_energy=-0.75),
        B.fairchem_data(slab, 6, 0, naming="is2re", relaxed_energy=-0.5),
    ]
    path = B.write_fairchem_lmdb(tmp_path / "data.lmdb", objects)
    source = load_source("oc20_is2re")
    adsorption = convert(source, tmp_path / "ads.lmdb", train_inputs=[path])
    assert (
        StructureStore(tmp_path / "ads.lmdb").energy_kind == "adsorption"
        and adsorption.written == 2
    )
    ref = tmp_path / "oc20_ref.pkl"
    ref.write_bytes(pickle.dumps({"random5": -310.25}))
    total = convert(source, tmp_path / "total.lmdb", train_inputs=[path], reference_energies=ref)
    store = StructureStore(tmp_path / "total.lmdb")
    assert store.energy_kind == "total"
    assert store.get_record(0).energy == -0.75 + -310.25
    assert total.skipped == {"missing_reference_energy": 1}
    with pytest.raises(ValueError, match="fairchem LMDB sources only"):
        convert(
            load_source("hme21"), tmp_path / "x.lmdb", train_inputs=[path], reference_energies=ref
        )


def test_cli_summary_mlflow_run_and_a_corrupt_file(tmp_path, capsys):
    molecules = {str(i): {f"Geom-m{i}-i1-c1-opt": B.qm7x_conformer(i)} for i in range(1, 4)}
    B.write_qm7x(tmp_path / "1000.xz", molecules, xz=True)
    status, lines, _ = run_cli(
        capsys,
        "qm7x",
        "--input",
        str(tmp_path / "1000.xz"),
        "--out",
        str(tmp_path / "s" / "qm7x.lmdb"),
    )
    assert status == 0
    assert json.loads(lines[-1]) == {"source": "qm7x", "read": 3, "written": 3, "skipped": {}}
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == [
        "qm7x.lmdb"
    ]  # no decompressed leftovers
    from mlflow.tracking import MlflowClient

    (run,) = MlflowClient(os.environ["MLFLOW_TRACKING_URI"]).search_runs(
        ["0", "1"], filter_string="tags.stage = 'data'"
    )
    assert run.info.run_name == "convert-qm7x" and run.info.status == "FINISHED"
    assert (
        run.data.metrics["written"] == 3
        and run.data.metrics["read"] == 3
        and run.data.metrics["skipped"] == 0
    )

    pubchem = tmp_path / "pubchem"
    pubchem.mkdir()
    B.write_pubchem_sdf_gz(pubchem / "00000001_00025000.sdf.gz", [(1, "CCO"), (2, "CC")])
    bad = pubchem / "00025001_00050000.sdf.gz"
    B.write_pubchem_sdf_gz(bad, [(25001, "CCN"), (25002, "CCCl")])
    bad.write_bytes(bad.read_bytes()[:-30])
    out = tmp_path / "out" / "pubchem3d.lmdb"
    status, lines, err = run_cli(capsys, "pubchem3d", "--input", str(pubchem), "--out", str(out))
    assert status == 1
    assert str(bad) in err and "cannot be read" in err
    assert list(out.parent.iterdir()) == []


def test_qmugs_tree_energy_only(tmp_path):
    B.write_qmugs_tree(
        tmp_path / "qmugs", {"CHEMBL1": [("CCO", -154.5)], "CHEMBL2": [("CCC", -118.0)]}
    )
    summary = convert(
        load_source("qmugs"), tmp_path / "q.lmdb", train_inputs=[tmp_path / "qmugs" / "structures"]
    )
    assert summary.as_json() == {"source": "qmugs", "read": 2, "written": 2, "skipped": {}}
    store = StructureStore(tmp_path / "q.lmdb")
    assert store.info["with_forces"] == 0 and store.get_record(0).energy == -154.5 * B.HARTREE


def test_interrupted_conversion_leaves_no_store(tmp_path):
    """Ctrl-C (or SIGTERM, which `lamm data convert` turns into the same unwinding)
    mid-conversion."""
    fifo = tmp_path / "stream.sdf"
    os.mkfifo(fifo)
    out = tmp_path / "out" / "pubchem3d.lmdb"
    block, _ = B.conformer_block("CCO", 1, {"PUBCHEM_COMPOUND_CID": "702"})
    main_thread = threading.get_ident()

    def feed() -> None:
        with open(fifo, "w") as pipe:  # blocks until the converter opens the pipe
            pipe.write(block * 50)
            pipe.flush()
            deadline = time.monotonic() + 30
            while not list(out.parent.glob("pubchem3d.lmdb.tmp-*")) and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(0.2)  # the converter has consumed the records and waits for more
            signal.pthread_kill(main_thread, signal.SIGINT)

    feeder = threading.Thread(target=feed)
    feeder.start()
    with pytest.raises(KeyboardInterrupt):
        convert(load_source("pubchem3d"), out, train_inputs=[fifo])
    feeder.join()
    assert list(out.parent.iterdir()) == []  # neither the store nor its temporary file
