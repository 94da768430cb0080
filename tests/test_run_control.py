"""Runs own their folder, and stop cleanly: locks, SIGTERM -> checkpoint -> exit, resume after a
kill."""

import json
import logging
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from lamm.cli import main
from lamm.launch import LaunchSettings, launch
from lamm.models.checkpoint import load_checkpoint
from lamm.run_lock import LAUNCHER, LOCK_DIR, RunFolderInUse, hold_run_folder
from lamm.training import stop
from tests.conftest import ROOT
from tests.helpers.distributed_targets import sleep_and_report_pid
from tests.helpers.training_data import tiny_trainer_config, write_training_stores
from tests.test_training_parts import _alive, start_launcher, wait_gone


def test_a_second_run_on_a_live_folder_is_refused(tmp_path):
    run = tmp_path / "run"
    launcher, ranks = start_launcher(tmp_path, run_dir=run)
    try:
        with pytest.raises(
            RunFolderInUse,
            match=rf"{run} is in use by a live run: launcher pid {launcher.pid} on .*kill "
            rf"{launcher.pid}",
        ):
            launch(
                sleep_and_report_pid,
                {"pid_dir": str(tmp_path)},
                LaunchSettings(executor="none", ranks_per_node=1),
                folder=tmp_path / "jobs2",
                run_dir=run,
            )
        # the command line says the same, before it looks at last.pt
        config = tmp_path / "unit.yaml"
        config.write_text(yaml.safe_dump(tiny_trainer_config()))
        with pytest.raises(
            SystemExit,
            match=rf"lamm pretrain: error: {run} is in use by a live run: launcher pid "
            rf"{launcher.pid}",
        ):
            main(["pretrain", "--config", str(config), "--out", str(run), "--resume"])
        ranks_info = [json.loads((run / LOCK_DIR / f"rank-{r}.lock").read_text()) for r in (0, 1)]
        assert sorted(info["pid"] for info in ranks_info) == sorted(ranks)
    finally:
        launcher.send_signal(signal.SIGTERM)
        launcher.communicate(timeout=60)
    assert wait_gone(ranks, 10)
    with hold_run_folder(run):  # free again
        pass


def test_a_stale_lock_is_taken_over(tmp_path, caplog):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    lock = tmp_path / "run" / LOCK_DIR / LAUNCHER
    lock.parent.mkdir(parents=True)
    lock.write_text(
        json.dumps(
            {"role": "launcher", "pid": gone.pid, "host": os.uname().nodename, "started": "then"}
        )
    )
    with caplog.at_level(logging.INFO, logger="lamm.run_lock"):
        with hold_run_folder(tmp_path / "run") as held:
            assert json.loads(lock.read_text())["pid"] == os.getpid() == held.info["pid"]
            with hold_run_folder(
                tmp_path / "run"
            ):  # re-entrant in one process (the command, then launch)
                pass
    assert f"taking over the lock of launcher pid {gone.pid}" in caplog.text
    assert lock.read_text() == ""  # released: names nobody


def test_ranks_of_a_killed_launcher_stop_and_free_the_folder(tmp_path):
    run = tmp_path / "run"
    launcher, ranks = start_launcher(tmp_path, run_dir=run)
    launcher.send_signal(signal.SIGKILL)
    launcher.communicate(timeout=30)
    started = time.monotonic()
    with hold_run_folder(
        run, rank_wait_s=30
    ):  # waits for the ranks' own locks, then owns the folder
        assert not any(_alive(pid) for pid in ranks)
    assert time.monotonic() - started < 10


def test_restore_default_signals_undoes_a_background_shell():
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        stop.restore_default_signals()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


# --- a real training run: SIGKILL of its launcher, then --resume
# ------------------------------------


def _pretrain(tmp_path, stores, out, *extra, background=False):
    config = tmp_path / "unit.yaml"
    if not config.exists():
        settings = tiny_trainer_config(
            train={
                "epochs": 4.0,
                "checkpoint_epochs": [0, 4.0],
                "val_every_steps": 1000,
                "log_every_steps": 1,
                "save_every_minutes": 60,
            }
        )
        config.write_text(yaml.safe_dump(settings))
    command = [
        sys.executable,
        "-m",
        "lamm",
        "pretrain",
        "--config",
        str(config),
        "--data",
        str(stores),
        "--out",
        str(out),
        "--world-size",
        "2",
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    ignore_sigint = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if background else None
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ignore_sigint,
    )


def _steps_logged(out):
    path = out / "metrics.csv"
    return len(path.read_text().splitlines()) - 1 if path.is_file() else 0


def _final(out):
    payload = load_checkpoint(out / "checkpoints" / "last.pt")
    return payload["training"]["step"], payload["model"], payload["ema"]


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return write_training_stores(tmp_path_factory.mktemp("stores"))


def _wait_for_steps(launcher, run, steps):
    deadline = time.monotonic() + 300
    while _steps_logged(run) < steps:
        assert launcher.poll() is None and time.monotonic() < deadline, launcher.communicate()[1]
        time.sleep(0.1)
    return [json.loads((run / LOCK_DIR / f"rank-{r}.lock").read_text())["pid"] for r in (0, 1)]


def _stopped_step(run):
    stopped_at, _, _ = _final(run)
    rank_log = "".join(p.read_text() for p in (run / "submitit").glob("*_0_log.err"))
    assert f"stopped by SIGTERM after step {stopped_at}; last.pt holds that step" in rank_log
    return stopped_at


@pytest.mark.slow
def test_killed_launcher_ranks_save_and_a_resume_goes_on_from_there(tmp_path, stores):
    # (that such a resume ends with an uninterrupted run's weights: test_pretrain, and on SLURM
    # tests/test_cluster.py, which compares them after two preemptions)
    run = tmp_path / "b"
    launcher = _pretrain(tmp_path, stores, run)
    ranks = _wait_for_steps(launcher, run, 3)
    launcher.send_signal(signal.SIGKILL)  # the OOM killer or a scheduler: no cancel, no handler
    launcher.communicate(timeout=60)
    assert wait_gone(ranks, 10), "ranks kept training without their launcher"
    stopped_at = _stopped_step(run)  # the step they stopped after, not an older periodic save
    assert stopped_at >= 3

    resumed = _pretrain(tmp_path, stores, run, "--resume")
    out, stderr = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, stderr
    total = json.loads(out.strip().splitlines()[-1])["steps"]
    assert stopped_at < total == _final(run)[0]
    with open(
        run / "metrics.csv"
    ) as handle:  # one row per step: the resumed run went on from stopped_at
        assert [int(line.split(",")[0]) for line in list(handle)[1:]] == list(range(1, total + 1))


@pytest.mark.slow
def test_sigterm_to_one_rank_stops_both_after_the_same_step_in_the_background(tmp_path, stores):
    run = tmp_path / "run"
    launcher = _pretrain(
        tmp_path, stores, run, background=True
    )  # SIGINT ignored, as `lamm pretrain &`
    ranks = _wait_for_steps(launcher, run, 3)
    os.kill(ranks[1], signal.SIGTERM)
    _, stderr = launcher.communicate(timeout=120)
    assert wait_gone(ranks, 10)
    assert launcher.returncode != 0, stderr
    stopped_at = _stopped_step(run)
    rank_1 = "".join(p.read_text() for p in (run / "submitit").glob("*_1_log.err"))
    assert f"rank 1: stopped by SIGTERM after step {stopped_at}" in rank_1
    assert (run / "locks" / "launcher.lock").read_text() == ""  # released
