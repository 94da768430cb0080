"""Tracking against an MLflow server (as on a cluster): several jobs log over HTTP at once, nothing
is lost."""

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lamm.tracking import RunTracker, _StoreLock, sqlite_path, tracking_uri
from tests.conftest import ROOT

WRITERS = 4
STEPS = 300  # x 3 metrics per writer: several batched writes each

WRITER = """
import sys
from pathlib import Path
from lamm.tracking import RunTracker
index, artifact = int(sys.argv[1]), Path(sys.argv[2])
artifact.write_text(f"table of job {index}\\n")
params = {"job": index, "model": {"width": 8 * index, "layers": [1, 2, index]}}
with RunTracker("pretrain", f"job-{index}", params=params, tags={"writer": str(index)}) as run:
    for step in range(1, STEPS + 1):
        metrics = {"loss": 1.0 / step + index, "lr": 1e-3 * index, "step_id": step}
        run.log_metrics(metrics, step=step)
    run.log_artifact(artifact)
print(run.run_id)
""".replace("STEPS", str(STEPS))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(folder: Path, port: int, workers: int = 2) -> subprocess.Popen:
    """`mlflow server` on loopback with a SQLite store in `folder`; returns once it listens.
    Without its job runner (huey consumers: a third of its start-up, unused here)."""
    mlflow = Path(sys.executable).with_name("mlflow")
    process = subprocess.Popen(
        [
            str(mlflow),
            "server",
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "server.log", "a"),
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            assert process.poll() is None, (folder / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.3)


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)  # the server and its workers
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@pytest.fixture
def server(tmp_path):
    port = free_port()
    process = start_server(tmp_path, port)
    yield f"http://127.0.0.1:{port}"
    stop_server(process)


def test_a_server_uri_takes_no_file_lock(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking_uri() == "http://mlflow.example:5000"
    assert sqlite_path(tracking_uri()) is None and _StoreLock(tracking_uri()).lock_path is None


@pytest.mark.slow
def test_concurrent_jobs_log_everything_to_a_server(server, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    jobs_dir = tmp_path / "jobs"
    jobs_dir.mkdir()
    jobs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(i), str(jobs_dir / f"table_{i}.csv")],
            cwd=jobs_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(1, WRITERS + 1)
    ]
    run_ids = []
    for job in jobs:
        out, err = job.communicate(timeout=300)
        assert job.returncode == 0, err[-3000:]
        run_ids.append(out.strip().splitlines()[-1])
    assert sorted(p.name for p in jobs_dir.iterdir()) == [
        f"table_{i}.csv" for i in range(1, WRITERS + 1)
    ]  # no local store

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=server)
    experiment = client.get_experiment_by_name("lamm")
    assert (
        len(client.search_runs([experiment.experiment_id], max_results=100)) == WRITERS
    )  # one experiment, created once
    for index, run_id in enumerate(run_ids, start=1):
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED" and run.data.tags["writer"] == str(index)
        assert (
            run.data.params["model.width"] == str(8 * index)
            and run.data.params["model.layers"] == f"[1, 2, {index}]"
        )
        for key in ("loss", "lr", "step_id"):
            history = client.get_metric_history(run_id, key)
            assert sorted(m.step for m in history) == list(range(1, STEPS + 1)), (run_id, key)
        assert [
            m.value
            for m in sorted(client.get_metric_history(run_id, "step_id"), key=lambda m: m.step)
        ] == list(range(1, STEPS + 1))
        assert [a.path for a in client.list_artifacts(run_id)] == [f"table_{index}.csv"]
        local = client.download_artifacts(
            run_id, f"table_{index}.csv", str(tmp_path / f"download_{index}")
        )
        assert Path(local).read_text() == f"table of job {index}\n"


@pytest.mark.slow
def test_a_run_outlives_a_server_outage_and_every_metric_arrives(tmp_path, monkeypatch, caplog):
    """The server goes away mid-run and comes back: logging never blocks or raises, one
    warning, and after the run every metric value is in the server's store."""
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr("lamm.tracking.METRIC_FLUSH_EVERY", 10)
    caplog.set_level(logging.INFO, logger="lamm")
    process = start_server(tmp_path, port, workers=1)
    try:
        with RunTracker("pretrain", "outage") as run:
            for step in range(1, 21):
                run.log_metrics({"loss": 1.0 / step}, step=step)
            assert run._writer.drain(60)  # delivered while the server is up
            stop_server(process)
            slowest = 0.0
            for step in range(21, 61):  # training goes on while the server is away
                started = time.monotonic()
                run.log_metrics({"loss": 1.0 / step}, step=step)
                slowest = max(slowest, time.monotonic() - started)
            deadline = time.monotonic() + 30
            while "does not answer" not in caplog.text:
                assert time.monotonic() < deadline, caplog.text
                time.sleep(0.2)
            assert run._writer.backlog() == 40 and slowest < 0.5
            process = start_server(tmp_path, port, workers=1)
        # leaving the block waited for the kept metrics and closed the run
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=uri)
        history = client.get_metric_history(run.run_id, "loss")
        assert sorted((m.step, m.value) for m in history) == [(s, 1.0 / s) for s in range(1, 61)]
        assert client.get_run(run.run_id).info.status == "FINISHED"
    finally:
        stop_server(process)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "training goes on" in warnings[0].getMessage()
    assert "answers again" in caplog.text
