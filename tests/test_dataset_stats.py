"""lamm data stats: Table 2 from metadata with hand-computed counts, the figures, and error
paths."""

from __future__ import annotations

import json
import shutil

import lmdb
import numpy as np
import pandas as pd
import pytest

from lamm.analysis.dataset_figures import write_dataset_stats
from lamm.analysis.dataset_stats import summarize_store, table2
from lamm.analysis.figures import periodic_table_position
from lamm.cli import main
from lamm.data.record import StructureRecord
from lamm.data.store import StructureStoreWriter


def record(
    numbers, *, periodic: bool, energy: float | None = None, forces: bool = False
) -> StructureRecord:
    n = len(numbers)
    positions = np.arange(3 * n, dtype=np.float64).reshape(n, 3) * 1.1
    return StructureRecord(
        atomic_numbers=np.asarray(numbers),
        positions=positions,
        cell=np.eye(3) * 12.0 if periodic else np.zeros((3, 3)),
        pbc=np.full(3, periodic),
        energy=energy,
        forces=np.zeros((n, 3)) if forces else None,
    )


def write(path, subset, records, splits, info=None, energy_kind="total"):
    with StructureStoreWriter(
        path, subset=subset, source="test", energy_kind=energy_kind, extra_info=info
    ) as writer:
        for r, split in zip(records, splits, strict=True):
            writer.add(r, split)
    return path


@pytest.fixture
def stores(tmp_path):
    """Four stores with known contents (subset, natoms, elements, labels, splits)."""
    s2ef = write(
        tmp_path / "a.lmdb",
        "oc20_s2ef",
        [
            record([29, 29], periodic=True, energy=1.0, forces=True),
            record([29, 29, 8], periodic=True, energy=2.0, forces=True),
            record([78, 29, 8, 1], periodic=True, energy=3.0, forces=True),
        ],
        ["train", "train", "val"],
        {"task": "s2ef", "periodic": True, "role": "pretrain", "functional": "EMT"},
    )
    denoise = write(
        tmp_path / "b.lmdb",
        "pubchem3d",
        [record([6, 1, 1, 1, 1], periodic=False), record([6, 6, 8, 1, 1, 1, 1, 9], periodic=False)],
        ["train", "val"],
        {"task": "denoising", "periodic": False, "role": "pretrain"},
    )
    is2re = write(
        tmp_path / "c.lmdb",
        "oc20_is2re",
        [record([29, 29, 8, 6], periodic=True, energy=-0.5)],
        ["train"],
        {"task": "is2re", "periodic": True, "role": "pretrain"},
        energy_kind="adsorption",
    )
    downstream = write(
        tmp_path / "d.lmdb",
        "hme21",
        [record([13, 28, 8], periodic=True, energy=1.0, forces=True)] * 3,
        ["train", "val", "test"],
        {"task": "s2ef", "periodic": True, "role": "downstream"},
    )
    return [s2ef, denoise, is2re, downstream]


def test_table2_counts_by_hand(stores):
    table = table2([summarize_store(p) for p in stores], temperature=2.0).set_index("subset")
    assert list(table.index) == ["oc20_s2ef", "pubchem3d", "oc20_is2re", "total", "hme21"]
    a = table.loc["oc20_s2ef"]
    assert (a.task, a.labels, a.periodic, a.samples, a.samples_train, a.samples_val) == (
        "s2ef",
        "E, F",
        "yes",
        3,
        2,
        1,
    )
    assert a.avg_atoms == pytest.approx(3.0) and (a.min_atoms, a.max_atoms, a.elements) == (
        2,
        4,
        4,
    )  # Cu O Pt H
    b = table.loc["pubchem3d"]
    assert (b.task, b.labels, b.periodic, b.samples, b.avg_atoms, b.elements) == (
        "denoising",
        "N",
        "no",
        2,
        6.5,
        4,
    )
    c = table.loc["oc20_is2re"]
    assert (c.labels, c.energy_kind, c.samples) == ("E", "adsorption", 1)
    # temperature sampling, T = 2: v = 3 * sqrt(n / 3) -> 3, 2.449 -> 2, 1.732 -> 2
    assert [a.samples_ts, b.samples_ts, c.samples_ts] == [3, 2, 2]
    total = table.loc["total"]
    assert (total.samples, total.samples_ts, total.samples_train, total.samples_val) == (6, 7, 4, 2)
    assert total.avg_atoms == pytest.approx((2 + 3 + 4 + 5 + 8 + 4) / 6, abs=0.005)  # 2 decimals
    assert total.elements == 6  # H C O F Cu Pt
    d = table.loc["hme21"]
    assert (
        d.role == "downstream" and pd.isna(d.samples_ts) and (d.samples_test, d.elements) == (1, 3)
    )


def test_missing_info_falls_back_to_table2_and_labels_come_from_counts(tmp_path):
    path = write(
        tmp_path / "q.lmdb",
        "qm7x",
        [
            record([6, 1], periodic=False, energy=1.0),
            record([8, 1], periodic=False, energy=1.0, forces=True),
        ],
        ["train"] * 2,
    )
    summary = summarize_store(path)
    assert (summary.task, summary.periodic, summary.role) == ("s2ef", False, "pretrain")
    assert summary.labels == "E, F (partial F)"


def test_statistics_never_decode_a_sample(stores, tmp_path):
    """Overwrite every record with garbage: metadata-only statistics do not notice."""
    corrupt = tmp_path / "corrupt.lmdb"  # a copy: the original is already open in this process
    shutil.copyfile(stores[0], corrupt)
    env = lmdb.open(str(corrupt), subdir=False, max_dbs=2, lock=False)
    records_db = env.open_db(b"records")
    with env.begin(write=True, db=records_db) as txn:
        for key, _ in list(txn.cursor()):
            txn.put(key, b"\xff" * 7)
    env.close()
    summary = summarize_store(corrupt)  # all that the table and both figures read
    assert summary.natoms.tolist() == [2, 3, 4] and summary.elements.tolist() == [1, 8, 29, 78]
    table = table2([summary, *map(summarize_store, stores[1:])]).set_index("subset")
    assert int(table.loc["oc20_s2ef", "samples"]) == 3


def test_cli_writes_table_and_figures_and_logs_them(stores, tmp_path, capsys, tracking_db):
    from mlflow.tracking import MlflowClient

    out = tmp_path / "results"
    assert main(["data", "stats", *map(str, stores), "--out", str(out)]) == 0
    outputs = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    table = pd.read_csv(out / "tables" / "table2_datasets.csv")
    assert list(table["subset"]) == ["oc20_s2ef", "pubchem3d", "oc20_is2re", "total", "hme21"]
    for name in ("fig2", "fig4"):
        data = open(outputs[name], "rb").read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert not list(out.rglob("*.tmp*"))
    client = MlflowClient(tracking_uri=f"sqlite:///{tracking_db}")
    (run,) = client.search_runs(client.get_experiment_by_name("lamm").experiment_id)
    assert run.info.run_name == "data-stats" and run.data.tags["stage"] == "data"
    assert (
        run.data.metrics["samples.oc20_s2ef"] == 3
        and run.data.metrics["avg_atoms.pubchem3d"] == 6.5
    )
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == {
        "table2_datasets.csv",
        "fig2_elements.png",
        "fig4_natoms.png",
    }


def test_figures_show_pretraining_subsets_without_is2re(stores):
    shown = [s.subset for s in map(summarize_store, stores) if s.in_figures]
    assert shown == ["oc20_s2ef", "pubchem3d"]


def test_bad_inputs_fail_clearly(stores, tmp_path):
    with pytest.raises(ValueError, match="subsets given more than once: oc20_s2ef"):
        write_dataset_stats([stores[0], stores[0]], tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="nope.lmdb"):
        write_dataset_stats([tmp_path / "nope.lmdb"], tmp_path / "out")
    with pytest.raises(ValueError, match="no stores"):
        write_dataset_stats([], tmp_path / "out")


@pytest.mark.parametrize(
    "z, position",
    [
        (1, (0, 0)),
        (2, (0, 17)),
        (3, (1, 0)),
        (10, (1, 17)),
        (13, (2, 12)),
        (26, (3, 7)),
        (54, (4, 17)),
        (56, (5, 1)),
        (57, (7, 2)),
        (71, (7, 16)),
        (72, (5, 3)),
        (86, (5, 17)),
        (89, (8, 2)),
        (104, (6, 3)),
        (118, (6, 17)),
    ],
)
def test_periodic_table_positions(z, position):
    assert periodic_table_position(z) == position
