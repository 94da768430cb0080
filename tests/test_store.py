"""StructureStore: exact round trips, metadata without decoding, atomic writes, workers."""

import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from ase.build import fcc111, molecule
from ase.calculators.emt import EMT
from ase.constraints import FixAtoms

from lamm.data.record import StructureRecord
from lamm.data.store import StructureStore, StructureStoreWriter
from tests.conftest import ROOT


def slab_record(seed: int = 0) -> StructureRecord:
    rng = np.random.default_rng(seed)
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=6.0)
    slab.positions += rng.normal(0, 0.05, slab.positions.shape)
    slab.set_constraint(FixAtoms(indices=[0, 1, 2, 3]))
    slab.set_tags([0] * 4 + [1] * 8)
    slab.calc = EMT()
    slab.get_potential_energy()
    return StructureRecord.from_atoms(slab, source_id=f"slab-{seed}")


def unlabeled_molecule() -> StructureRecord:
    return StructureRecord.from_atoms(molecule("CH3CH2OH"), source_id="ethanol")


def energy_only_record() -> StructureRecord:
    record = unlabeled_molecule()
    return StructureRecord(
        **{**record.__dict__, "energy": -123.456789012345, "source_id": "CHEMBL1/conf_00"}
    )


def write_store(path, records, splits=None, **kwargs):
    kwargs.setdefault("subset", "unit")
    kwargs.setdefault("source", "test")
    with StructureStoreWriter(path, **kwargs) as writer:
        for index, record in enumerate(records):
            writer.add(record, split=(splits[index] if splits else "train"))
    return StructureStore(path)


def assert_same(a: StructureRecord, b: StructureRecord) -> None:
    np.testing.assert_array_equal(a.atomic_numbers, b.atomic_numbers)
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.cell, b.cell)
    np.testing.assert_array_equal(a.pbc, b.pbc)
    assert a.energy == b.energy
    for name in ("forces", "fixed", "tags"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    assert a.source_id == b.source_id


def test_records_round_trip_exactly(tmp_path):
    records = [slab_record(0), unlabeled_molecule(), energy_only_record(), slab_record(1)]
    store = write_store(tmp_path / "s.lmdb", records, splits=["train", "val", "train", "test"])
    assert len(store) == 4
    for index, record in enumerate(records):
        assert_same(store.get_record(index), record)
    np.testing.assert_array_equal(store.natoms, [12, 9, 9, 12])
    np.testing.assert_array_equal(store.indices("train"), [0, 2])
    np.testing.assert_array_equal(store.indices("val"), [1])
    np.testing.assert_array_equal(store.indices("test"), [3])
    assert [r.source_id for r in store] == ["slab-0", "ethanol", "CHEMBL1/conf_00", "slab-1"]


def test_metadata_counts_without_decoding(tmp_path):
    store = write_store(
        tmp_path / "s.lmdb",
        [slab_record(0), unlabeled_molecule(), energy_only_record()],
        energy_kind="adsorption",
    )
    assert store.info["with_energy"] == 2
    assert store.info["with_forces"] == 1
    assert store.info["atoms_total"] == 30
    assert store.energy_kind == "adsorption"
    counts = store.element_counts
    assert counts[29] == 12  # Cu
    assert counts[6] == 4 and counts[8] == 2 and counts[1] == 12
    assert store.info["element_structures"][1] == 2


def test_get_atoms_carries_only_the_labels_the_source_has(tmp_path):
    slab, mol, energy_only = slab_record(0), unlabeled_molecule(), energy_only_record()
    store = write_store(tmp_path / "s.lmdb", [slab, mol, energy_only], subset="oc20_s2ef")
    atoms = store.get_atoms(0)
    assert atoms.info["subset"] == "oc20_s2ef"
    assert atoms.get_potential_energy() == slab.energy
    # raw labels; ASE zeroes the forces of FixAtoms atoms only when asked to apply constraints
    np.testing.assert_array_equal(atoms.get_forces(apply_constraint=False), slab.forces)
    assert atoms.constraints[0].index.tolist() == [0, 1, 2, 3]
    assert atoms.get_tags().tolist() == [0] * 4 + [1] * 8
    assert atoms.pbc.tolist() == [True, True, False]
    assert store.get_atoms(1).calc is None
    results = store.get_atoms(2).calc.results
    assert set(results) == {"energy"}


def test_index_errors(tmp_path):
    store = write_store(tmp_path / "s.lmdb", [unlabeled_molecule()])
    with pytest.raises(IndexError, match="out of range"):
        store.get_record(1)


def test_inconsistent_record_is_refused(tmp_path):
    record = slab_record(0)
    bad = StructureRecord(**{**record.__dict__, "forces": record.forces[:-1]})
    with StructureStoreWriter(tmp_path / "s.lmdb", subset="u", source="t") as writer:
        with pytest.raises(ValueError, match=r"forces must have shape \(12, 3\)"):
            writer.add(bad)
        with pytest.raises(ValueError, match="atomic numbers must lie in"):
            writer.add(StructureRecord(**{**record.__dict__, "atomic_numbers": np.full(12, 200)}))


def test_interrupted_write_leaves_no_store(tmp_path):
    path = tmp_path / "s.lmdb"
    with pytest.raises(KeyboardInterrupt):
        with StructureStoreWriter(path, subset="u", source="t") as writer:
            writer.add(slab_record(0))
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_killed_writer_leaves_only_a_temporary_that_the_next_writer_removes(tmp_path):
    path = tmp_path / "s.lmdb"
    script = textwrap.dedent(
        f"""
        import os
        from lamm.data.store import StructureStoreWriter
        from tests.test_store import slab_record
        writer = StructureStoreWriter({str(path)!r}, subset="u", source="t", commit_every=1)
        writer.add(slab_record(0))
        os._exit(9)  # dies without closing
        """
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT)
    assert result.returncode == 9
    assert not path.exists()
    leftovers = list(tmp_path.glob("s.lmdb.tmp-*"))
    assert len(leftovers) == 1
    write_store(path, [slab_record(1)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.lmdb"]


def test_same_records_same_bytes(tmp_path):
    records = [slab_record(0), energy_only_record()]
    write_store(tmp_path / "a.lmdb", records)
    write_store(tmp_path / "b.lmdb", records)
    assert (tmp_path / "a.lmdb").read_bytes() == (tmp_path / "b.lmdb").read_bytes()


def test_not_a_store(tmp_path):
    junk = tmp_path / "junk.lmdb"
    junk.write_bytes(b"not an lmdb file" * 100)
    with pytest.raises(ValueError, match="junk.lmdb"):
        StructureStore(junk)
    with pytest.raises(FileNotFoundError, match="no structure store"):
        StructureStore(tmp_path / "missing.lmdb")


class PidAndEnergy:
    """A map-style dataset reporting which process decoded each record."""

    def __init__(self, store: StructureStore) -> None:
        self.store = store

    def __len__(self) -> int:
        return len(self.store)

    def __getitem__(self, index: int) -> tuple[int, float]:
        return os.getpid(), self.store.get_record(index).energy


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_store_reopens_in_each_dataloader_worker(tmp_path, context):
    import torch

    records = [slab_record(seed) for seed in range(6)]
    store = write_store(tmp_path / "s.lmdb", records)
    store.get_record(0)  # opened in the parent: forked workers must not reuse this handle
    assert pickle.loads(pickle.dumps(store)).get_record(5).energy == records[5].energy
    loader = torch.utils.data.DataLoader(
        PidAndEnergy(store), batch_size=None, num_workers=2, multiprocessing_context=context
    )
    seen = list(loader)
    assert [energy for _, energy in seen] == [r.energy for r in records]
    assert len({pid for pid, _ in seen} - {os.getpid()}) == 2


def test_two_views_of_one_file_and_a_rewritten_file(tmp_path):
    path = tmp_path / "s.lmdb"
    first = write_store(path, [slab_record(0)])
    second = StructureStore(path)  # e.g. the train and val datasets of one store
    assert first.get_record(0).energy == second.get_record(0).energy
    write_store(path, [slab_record(1), slab_record(2)])  # converted again while `first` lives
    third = StructureStore(path)
    assert len(third) == 2
    assert third.get_record(0).energy == slab_record(1).energy


def test_unlabeled_store_refuses_energies(tmp_path):
    store = write_store(tmp_path / "p.lmdb", [unlabeled_molecule()], energy_kind="none")
    assert store.energy_kind == "none"
    with StructureStoreWriter(
        tmp_path / "q.lmdb", subset="u", source="t", energy_kind="none"
    ) as writer:
        with pytest.raises(ValueError, match="energy_kind is 'none'"):
            writer.add(energy_only_record())
