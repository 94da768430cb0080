"""The MLflow helper: what lands in a real SQLite store, and concurrent writers."""

import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest
from mlflow.tracking import MlflowClient

from lamm.tracking import RunTracker, fingerprint, flatten, tracking_uri
from tests.conftest import ROOT


def client() -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri())


def test_params_metrics_tags_and_artifacts_land_in_sqlite(tracking_db, tmp_path, monkeypatch):
    data = tmp_path / "input.bin"
    data.write_bytes(b"abc")
    artifact = tmp_path / "table.csv"
    artifact.write_text("a,b\n1,2\n")
    monkeypatch.setenv("LAMM_RUN_TAGS", json.dumps({"snakemake_rule": "data_demo"}))
    config = {"model": {"hidden": 64, "layers": [1, 2]}, "lr": 1e-3}
    with RunTracker(
        "pretrain", "unit", params=config, inputs=[data], tags={"extra": "x"}
    ) as tracker:
        for step in range(5):
            tracker.log_metrics({"loss": 1.0 / (step + 1), "lr": 0.1}, step=step)
        tracker.log_artifact(artifact, "tables")
        run_id = tracker.run_id
    # the run is in this test's SQLite file, read without MLflow
    with sqlite3.connect(tracking_db) as connection:
        assert connection.execute(
            "SELECT name, status FROM runs WHERE run_uuid = ?", (run_id,)
        ).fetchall() == [("unit", "FINISHED")]
    run = client().get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"model.hidden": "64", "model.layers": "[1, 2]", "lr": "0.001"}
    tags = run.data.tags
    assert tags["stage"] == "pretrain"
    assert tags["snakemake_rule"] == "data_demo"
    assert tags["extra"] == "x"
    assert tags["data_fingerprint"] == fingerprint([data])
    assert tags["git_commit"]
    history = client().get_metric_history(run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(s, 1.0 / (s + 1)) for s in range(5)]
    artifacts = [a.path for a in client().list_artifacts(run_id, "tables")]
    assert artifacts == ["tables/table.csv"]


def test_failed_job_marks_the_run_failed():
    with pytest.raises(RuntimeError):
        with RunTracker("data", "boom") as tracker:
            raise RuntimeError("conversion failed")
    assert client().get_run(tracker.run_id).info.status == "FAILED"


def test_other_ranks_write_nothing(absent_tracking_db):
    with RunTracker("pretrain", "rank1", params={"a": 1}, enabled=False) as tracker:
        tracker.log_metrics({"loss": 1.0}, step=0)
        tracker.log_artifact("/does/not/matter")
    assert tracker.run_id is None
    assert not absent_tracking_db.exists()


def test_nested_and_resumed_runs():
    with RunTracker("finetune", "sweep") as parent:
        pass
    with RunTracker("finetune", "child", parent_run_id=parent.run_id) as child:
        child.log_metrics({"mae": 2.0}, step=0)
    assert client().get_run(child.run_id).data.tags["mlflow.parentRunId"] == parent.run_id
    with RunTracker("finetune", "child", resume_run_id=child.run_id) as resumed:
        resumed.log_metrics({"mae": 1.0}, step=1)
    assert resumed.run_id == child.run_id
    history = client().get_metric_history(child.run_id, "mae")
    assert [(m.step, m.value) for m in history] == [(0, 2.0), (1, 1.0)]


def test_flatten_truncates_long_values():
    flat = flatten({"a": {"b": {"c": 1}}, "empty": {}, "long": "x" * 7000})
    assert flat["a.b.c"] == "1"
    assert flat["empty"] == "{}"
    assert len(flat["long"]) == 6000 and flat["long"].endswith("...")


def test_fingerprint_follows_content_and_names(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    (folder / "a.txt").write_text("1")
    first = fingerprint([folder])
    assert fingerprint([folder]) == first
    (folder / "a.txt").write_text("2")
    assert fingerprint([folder]) != first
    (folder / "a.txt").write_text("1")
    (folder / "a.txt").rename(folder / "b.txt")
    assert fingerprint([folder]) != first


def test_fingerprint_of_a_large_file_reads_its_size_and_ends(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(b"\0" * 3 * 2**20)
    first = fingerprint([big], full_hash_limit=2**20, edge_bytes=1024)
    with open(big, "r+b") as handle:
        handle.seek(3 * 2**20 - 1)
        handle.write(b"\1")
    changed_tail = fingerprint([big], full_hash_limit=2**20, edge_bytes=1024)
    assert changed_tail != first
    with open(big, "ab") as handle:
        handle.write(b"\0")
    assert fingerprint([big], full_hash_limit=2**20, edge_bytes=1024) != changed_tail
    # the middle of a large file is not read (that is the point of the limit)
    with open(big, "r+b") as handle:
        handle.seek(2**20)
        handle.write(b"\7")
    before = fingerprint([big], full_hash_limit=2**20, edge_bytes=1024)
    with open(big, "r+b") as handle:
        handle.seek(2**20)
        handle.write(b"\x08")
    assert fingerprint([big], full_hash_limit=2**20, edge_bytes=1024) == before


WRITER = textwrap.dedent(
    """
    import sys
    from lamm.tracking import RunTracker
    worker = int(sys.argv[1])
    params = {"worker": worker}
    with RunTracker("bench", f"worker-{worker}", params=params, experiment="race") as tracker:
        for step in range(300):
            tracker.log_metrics({"value": worker * 1000 + step}, step=step)
            if step % 50 == 0:
                tracker.flush()  # many small transactions, interleaved with the other writers
        tracker.set_tags({"done": "yes"})
    """
)


def test_concurrent_writers_on_a_fresh_store(absent_tracking_db):
    """Eight processes create the same experiment on a store that does not exist yet."""
    tracking_db = absent_tracking_db
    assert not tracking_db.exists()
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(worker)], cwd=ROOT, stderr=subprocess.PIPE, text=True
        )
        for worker in range(8)
    ]
    errors = [(p.wait(timeout=300), p.stderr.read()) for p in processes]
    assert all(code == 0 for code, _ in errors), [err for code, err in errors if code]
    experiment = client().get_experiment_by_name("race")
    runs = client().search_runs([experiment.experiment_id])
    assert len(runs) == 8
    for run in runs:
        worker = int(run.data.params["worker"])
        assert run.data.tags["done"] == "yes"
        history = client().get_metric_history(run.info.run_id, "value")
        assert sorted(m.value for m in history) == [worker * 1000 + s for s in range(300)]
