"""`lamm bench balance` and `lamm bench batching` on real stores and natoms files."""

import json

import numpy as np
import pandas as pd
import pytest

from lamm.bench.balance import (
    Workload,
    simulate,
    summarize,
    synthetic_natoms,
    workload_from_file,
    workload_from_stores,
)
from lamm.cli import main
from lamm.data.cost import CostModel, edge_counts
from tests.store_factory import demo_like_stores


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return demo_like_stores(
        tmp_path_factory.mktemp("bench-stores"), slabs=9, molecules=12, conformers=10
    )


@pytest.fixture(scope="module")
def tracking_uri(tmp_path_factory):
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(autouse=True)
def _one_tracking_store_for_this_module(tracking_uri, monkeypatch):
    # Creating an MLflow database takes seconds; the commands here share one (still not results/).
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_uri)


def last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_bench_balance_on_stores(stores, tmp_path, capsys):
    out = tmp_path / "balance.csv"
    paths = [str(s.path) for s in stores]
    argv = [
        "bench",
        "balance",
        "--stores",
        *paths,
        "--world-sizes",
        "2",
        "4",
        "--batch-per-rank",
        "1",
        "2",
        "--num-splits",
        "2",
        "--epochs",
        "2",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    summary = last_json(capsys)
    table = pd.read_csv(out)
    assert len(table) == 2 * 2 * 3 and set(table["strategy"]) == {"random", "greedy", "lamm"}
    assert summary["samples"] == {"oc20_s2ef": 8, "transition1x": 10, "pubchem3d": 8}
    for _, row in table.iterrows():
        assert (
            0 < row["efficiency"] <= 1
            and row["peak_atoms_per_rank"] >= row["mean_max_atoms_per_rank"]
        )
        assert summary["efficiency"][row["strategy"]][
            f"W{row['world_size']}_B{row['batch_per_rank']}"
        ] == pytest.approx(row["efficiency"], abs=1e-4)
    random_rows = table[table["strategy"] == "random"]
    assert (random_rows["speedup_vs_random"] == 1.0).all()
    lamm = table[table["strategy"] == "lamm"].set_index(["world_size", "batch_per_rank"])[
        "efficiency"
    ]
    rand = random_rows.set_index(["world_size", "batch_per_rank"])["efficiency"]
    assert (lamm > rand).all()
    # edges as work: counted once from the radius graphs, cached beside each store
    assert (
        main(
            [*argv[:-2], "--work", "edges", "--cutoff", "4.0", "--out", str(tmp_path / "edges.csv")]
        )
        == 0
    )
    assert all((s.path.parent / f"{s.path.name}.edges.npz").exists() for s in stores)


def test_edge_counts_and_cost_model(stores):
    store = stores[0]
    edges = edge_counts(store, 4.0)
    from lamm.data.graph import neighbor_list

    record = store.get_record(3)
    assert edges[3] == neighbor_list(record.positions, record.cell, record.pbc, 4.0)[0].shape[1]
    assert np.array_equal(edge_counts(store, 4.0), edges)  # from the cache
    assert not np.array_equal(edge_counts(store, 3.0), edges)  # another cutoff: recounted
    # a fitted cost model recovers the coefficients of exact synthetic timings
    rng = np.random.default_rng(0)
    structures, atoms, edge = (
        rng.integers(1, 8, 50),
        rng.integers(20, 900, 50),
        rng.integers(100, 20000, 50),
    )
    model = CostModel.fit(structures, atoms, 0.5 * structures + 0.01 * atoms + 0.002 * edge, edge)
    assert (model.per_structure, model.per_atom, model.per_edge) == pytest.approx(
        (0.5, 0.01, 0.002)
    )
    assert (
        CostModel.fit(structures, atoms, 0.03 * atoms - 0.1 * structures).per_structure == 0.0
    )  # kept non-negative
    with_cost = workload_from_stores(
        [s.path for s in stores], work="cost", cutoff=4.0, cost_model=CostModel(1.0, 0.1, 0.01)
    )
    assert np.allclose(
        with_cost.work[0], 1.0 + 0.1 * with_cost.natoms[0] + 0.01 * edges[store.indices("train")]
    )


def test_balance_simulation_of_a_natoms_file(tmp_path):
    workload = synthetic_natoms(scale=2e-5, seed=1)
    csv = tmp_path / "natoms.csv"
    pd.DataFrame(
        {
            "subset": np.repeat(workload.names, [len(n) for n in workload.natoms]),
            "natoms": np.concatenate(workload.natoms),
        }
    ).to_csv(csv, index=False)
    loaded = workload_from_file(csv)
    assert loaded.names == workload.names and all(
        np.array_equal(a, b) for a, b in zip(loaded.natoms, workload.natoms, strict=True)
    )
    np.save(tmp_path / "one.npy", workload.natoms[0])
    assert np.array_equal(workload_from_file(tmp_path / "one.npy").natoms[0], workload.natoms[0])
    summary = summarize(simulate(loaded, world_sizes=[16], batches_per_rank=[1], num_splits=1))
    eff = summary["efficiency"]  # ten subsets, temperature-sampled together
    assert eff["lamm"]["W16_B1"] > 0.9 and eff["lamm"]["W16_B1"] > 2 * eff["random"]["W16_B1"]
    assert eff["greedy"]["W16_B1"] == pytest.approx(
        eff["random"]["W16_B1"], abs=2e-3
    )  # LPT only acts on the tail step
    with pytest.raises(ValueError, match="natoms"):
        pd.DataFrame({"atoms": [1, 2]}).to_csv(tmp_path / "bad.csv", index=False)
        workload_from_file(tmp_path / "bad.csv")


def test_memory_cap_in_the_simulation():
    workload = synthetic_natoms(scale=1e-5, seed=2)
    rows = simulate(
        workload, world_sizes=[8], batches_per_rank=[4], num_splits=2, max_atoms_per_rank=500
    )
    by_strategy = {row["strategy"]: row for row in rows}
    assert by_strategy["lamm"]["peak_atoms_per_rank"] <= 500 and by_strategy["lamm"]["skipped"] == 0
    assert by_strategy["random"]["max_atoms_per_rank"] is None


def test_bench_batching_with_workers(stores, tmp_path, capsys):
    out = tmp_path / "batching.csv"
    argv = [
        "bench",
        "batching",
        "--stores",
        *[str(s.path) for s in stores],
        "--workers",
        "0",
        "2",
        "--batches",
        "6",
        "--warmup",
        "1",
        "--batch-size",
        "4",
        "--cutoff",
        "5.0",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    summary = last_json(capsys)
    table = pd.read_csv(out)
    assert table["workers"].tolist() == [0, 2]
    assert (table["structures"] >= 6).all() and (table["structures_per_s"] > 0).all()
    assert set(summary["structures_per_s"]) == {"workers_0", "workers_2"}


def test_world_sizes_larger_than_the_epoch_are_skipped_not_fatal(caplog):
    # the tiny demo has about 50 samples an epoch: 64 ranks cannot each get one
    workload = Workload(
        names=["a", "b"], natoms=[np.arange(10, 40), np.arange(5, 25)], source="test"
    )
    rows = simulate(
        workload,
        world_sizes=[4, 64],
        batches_per_rank=[1, 2],
        temperature=None,
        num_splits=1,
        epochs=1,
    )
    assert {row["world_size"] for row in rows} == {4}
    assert (
        "world size 64 skipped: 50 schedulable samples cannot give each of 64 ranks one sample"
        in caplog.text
    )


def test_a_structure_without_edges_still_has_work_under_an_edges_only_cost_model(tmp_path):
    from ase import Atoms
    from ase.build import bulk

    from lamm.data.balance import plan_lamm
    from lamm.data.record import StructureRecord
    from tests.store_factory import write_store

    dense = bulk("Cu", "fcc", a=3.6, cubic=True)  # 4 atoms, 12 + 6 neighbors each within 4 A
    stretched = Atoms("Cu2", positions=[[0, 0, 0], [5, 5, 5]], cell=[10, 10, 10], pbc=True)
    records = [StructureRecord.from_atoms(a) for a in (dense, stretched, dense, dense)]
    store = write_store(tmp_path / "s.lmdb", records, subset="s", task="s2ef", val_every=0)
    assert list(edge_counts(store, 4.0)) == [72, 0, 72, 72]
    # a fit on few rank-steps can keep the edge term alone (the throughput benchmark's on 2 cores)
    workload = workload_from_stores(
        [store.path], work="cost", cutoff=4.0, cost_model=CostModel(0.0, 0.0, 0.01)
    )
    assert workload.work[0] == pytest.approx([0.72, 0.01, 0.72, 0.72])  # one edge's worth
    edges = workload_from_stores([store.path], work="edges", cutoff=4.0)
    assert list(edges.work[0]) == [72, 1, 72, 72]
    plan = plan_lamm(workload.natoms[0], 2, 2, 1, 0, work=workload.work[0])
    assert sorted(np.concatenate([i for step in plan.steps for i in step])) == [0, 1, 2, 3]
