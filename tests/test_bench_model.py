"""`lamm bench model` end to end on a tiny store: a worker per case, CSV table, JSON last line,
and a failed peer case reported with its reason instead of aborting the run."""

import json
import sys

import pandas as pd
from model_support import ethanol, rocksalt

from lamm.cli import main
from lamm.data.record import StructureRecord
from lamm.data.store import StructureStoreWriter


def test_bench_model_on_a_store(tmp_path, capsys):
    store = tmp_path / "tiny.lmdb"
    with StructureStoreWriter(store, subset="tiny", source="test") as writer:
        for atoms in (ethanol(), rocksalt()):
            writer.add(StructureRecord.from_atoms(atoms))
    config = tmp_path / "model.yaml"
    config.write_text(
        "model:\n  encoder: painn\n  cutoff: 4.0\n  painn: {hidden_channels: 8, "
        "num_layers: 1, num_rbf: 4}\n"
    )
    out = tmp_path / "throughput.csv"
    status = main(
        [
            "bench",
            "model",
            "--model-config",
            str(config),
            "--store",
            str(store),
            "--batch-size",
            "2",
            "--modes",
            "gradient",
            "--warmup",
            "0",
            "--repeats",
            "1",
            "--threads",
            "1",
            "--out",
            str(out),
            # this interpreter has no schnetpack: the peer case must fail with its reason, ours
            # still run
            "--schnetpack-python",
            sys.executable,
        ]
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    table = pd.read_csv(out)
    assert status == 1  # a case failed
    assert list(table["impl"]) == ["lamm", "schnetpack"]
    ours, peer = table.iloc[0], table.iloc[1]
    assert ours["status"] == "ok" and ours["atoms"] == 17 and ours["force_mode"] == "gradient"
    assert ours["atoms_per_s"] > 0 and ours["peak_memory_gb"] > 0.05 and ours["params"] > 0
    assert peer["status"].startswith("failed") and "schnetpack" in peer["status"]
    assert (
        summary["table"] == str(out)
        and summary["atoms"] == 17
        and summary["cases"][0]["status"] == "ok"
    )
    assert summary["lamm_over_schnetpack_throughput"] == {}


def test_rounds_keep_the_fastest_and_the_largest_memory():
    from lamm.bench.model import combine_rounds

    rounds = [
        {"status": "ok", "step_s_median": 2.0, "atoms_per_s": 50.0, "peak_memory_gb": 1.5},
        {"status": "ok", "step_s_median": 1.0, "atoms_per_s": 100.0, "peak_memory_gb": 1.2},
    ]
    best = combine_rounds(rounds)
    assert (
        best["atoms_per_s"] == 100.0
        and best["peak_memory_gb"] == 1.5
        and json.loads(best["round_step_s"]) == [2.0, 1.0]
    )
    failed = combine_rounds(rounds + [{"status": "failed: killed by signal 9 (out of memory?)"}])
    assert failed["status"].startswith("failed: killed")
