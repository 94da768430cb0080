"""`lamm bench data`: its inputs are what it claims, both readers decode the same structures."""

import numpy as np
import pytest
import torch

from lamm.bench.store_reads import (
    PickleLmdb,
    _StoreAsData,
    benchmark,
    emt_slab,
    fairchem_data,
    rows,
    write_pickle_lmdb,
)
from lamm.cli import build_parser
from lamm.data.store import StructureStore, StructureStoreWriter


def test_emt_slabs_look_like_oc20():
    for seed in range(3):
        record = emt_slab(seed)
        assert 73 <= record.natoms <= 78
        assert record.pbc.tolist() == [True, True, False]
        assert record.fixed[:36].all() and not record.fixed[36:].any()  # bottom three layers fixed
        assert record.tags.tolist() == [0] * 36 + [1] * 36 + [2] * (record.natoms - 72)
        assert np.isfinite(record.energy) and record.forces.shape == (record.natoms, 3)
    assert emt_slab(5).energy == emt_slab(5).energy  # seeded


def test_both_readers_return_the_same_structures_and_rows_compare_them(tmp_path):
    records = [emt_slab(seed) for seed in range(6)]
    with StructureStoreWriter(tmp_path / "s.lmdb", subset="bench", source="test") as writer:
        for record in records:
            writer.add(record)
    store = StructureStore(tmp_path / "s.lmdb")
    write_pickle_lmdb(tmp_path / "p.lmdb", store, len(records))
    pickled = PickleLmdb(tmp_path / "p.lmdb")
    for index, record in enumerate(records):
        data = pickled.get(index)
        np.testing.assert_array_equal(data.pos.numpy(), record.positions.astype(np.float32))
        np.testing.assert_array_equal(data.force.numpy(), record.forces.astype(np.float32))
        assert data.y == record.energy and data.natoms == record.natoms
        assert data.atomic_numbers.tolist() == record.atomic_numbers.tolist()
    assert fairchem_data(records[0], 0).fixed.sum().item() == 36
    # the 'data' decode: the store's side ends as the very object the pickled side unpickles
    converted, unpickled = _StoreAsData(store)(3), pickled.get(3)
    assert sorted(converted.keys()) == sorted(unpickled.keys())
    for key in unpickled.keys():
        value = unpickled[key]
        if isinstance(value, torch.Tensor):
            assert converted[key].dtype == value.dtype and torch.equal(converted[key], value)
        else:
            assert converted[key] == value

    results, count = benchmark(
        tmp_path / "work", store_path=tmp_path / "s.lmdb", count=100, reads=600, repeats=1
    )
    assert count == 6
    table = rows(results, count, 600)
    assert [(r["reader"], r["decode"], r["mode"]) for r in table] == [
        (reader, decode, mode)
        for decode in ("data", "native")
        for mode in ("1_process", "2_workers")
        for reader in ("lamm_store", "pickle_lmdb")
    ]
    assert all(r["reads_per_s_min"] <= r["reads_per_s"] <= r["reads_per_s_max"] for r in table)
    assert all(r["reads_per_s"] > 0 and r["repeats"] == 1 for r in table)
    for row in table:
        pickle_rate = next(
            r["reads_per_s"]
            for r in table
            if r["reader"] == "pickle_lmdb"
            and (r["mode"], r["decode"]) == (row["mode"], row["decode"])
        )
        assert row["speedup_vs_pickle"] == pytest.approx(row["reads_per_s"] / pickle_rate, rel=1e-2)
    assert table[0]["bytes_per_record"] == pytest.approx(
        np.mean([len(r.encode()) for r in records]), abs=0.05
    )  # rounded to 0.1


def test_bench_is_a_command_group():
    args = build_parser().parse_args(["bench", "data", "--count", "10", "--out", "x.csv"])
    assert args.count == 10 and args.func.__module__ == "lamm.commands.bench_data"
