"""Tracking against an MLflow server (as on a cluster): several jobs log over HTTP at once, nothing
is lost."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lamm.tracking import _StoreLock, sqlite_path, tracking_uri
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


@pytest.fixture
def server(tmp_path):
    port = free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    process = subprocess.Popen(
        [
            str(mlflow),
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "server.log", "w"),
        start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            assert process.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "mlflow server did not start"
            time.sleep(0.3)
    yield uri
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


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
