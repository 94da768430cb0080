"""Checkpoint files, EMA, learning-rate schedule and the submitit launcher."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch import nn

from lamm.launch import DistributedJob, LaunchSettings, launch
from lamm.models.checkpoint import load_checkpoint, save_checkpoint
from lamm.run_labels import epoch_label
from lamm.training.distributed import DistributedContext, main_rank_first
from lamm.training.ema import ExponentialMovingAverage
from lamm.training.schedule import warmup_cosine
from lamm.training.timing import BucketClock, StepClock
from tests.conftest import ROOT
from tests.helpers.distributed_targets import cache_seen_by_ranks, sum_of_ranks


def test_schedule_hand_computed():
    kwargs = dict(total_steps=110, warmup_steps=10, min_lr_ratio=0.1)
    assert warmup_cosine(0, **kwargs) == pytest.approx(0.1)
    assert warmup_cosine(9, **kwargs) == pytest.approx(1.0)
    assert warmup_cosine(10, **kwargs) == pytest.approx(1.0)
    assert warmup_cosine(60, **kwargs) == pytest.approx(0.1 + 0.9 * 0.5)  # half way: cos(pi/2) = 0
    assert warmup_cosine(110, **kwargs) == pytest.approx(0.1)
    assert warmup_cosine(500, **kwargs) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        warmup_cosine(0, total_steps=0, warmup_steps=0, min_lr_ratio=0.1)


def test_ema_follows_the_formula_and_restores_weights():
    model = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    ema = ExponentialMovingAverage(model, decay=0.5)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema.update(model)  # ramp: min(0.5, 2/11) = 2/11
    expected = 0.0 * (2 / 11) + 1.0 * (9 / 11)
    assert ema.shadow["weight"][0, 0].item() == pytest.approx(expected)
    ema.update(model)  # min(0.5, 3/12) = 0.25
    expected = expected * 0.25 + 1.0 * 0.75
    assert ema.shadow["weight"][0, 0].item() == pytest.approx(expected)
    with ema.applied_to(model):
        assert model.weight[0, 0].item() == pytest.approx(expected)
    assert model.weight[0, 0].item() == 1.0
    clone = ExponentialMovingAverage(model, decay=0.9)
    clone.load_state_dict(ema.state_dict())
    assert clone.updates == 2 and clone.decay == 0.5
    assert torch.equal(clone.shadow["weight"], ema.shadow["weight"])
    with pytest.raises(ValueError):
        ExponentialMovingAverage(model, decay=1.0)


def test_checkpoint_round_trip_and_errors(tmp_path):
    state = {
        "model_config": {"encoder": "painn"},
        "heads": ["a", "b"],
        "model": {"w": torch.arange(3.0)},
        "training": {"step": 7},
    }
    path = save_checkpoint(tmp_path / "ckpt" / "last.pt", state)
    loaded = load_checkpoint(path)
    assert loaded["heads"] == ["a", "b"] and loaded["training"]["step"] == 7
    assert torch.equal(loaded["model"]["w"], torch.arange(3.0))
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary left
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a lamm checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match="junk.pt: not a readable lamm checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_refuses_pickled_objects(tmp_path):
    path = save_checkpoint(
        tmp_path / "bad.pt", {"model_config": {}, "heads": [], "model": nn.Linear(1, 1)}
    )
    with pytest.raises(ValueError, match="not a readable lamm checkpoint"):
        load_checkpoint(path)


def test_epoch_labels():
    assert [epoch_label(e) for e in (0, 0.1, 2.0, 0.25, 1e-7)] == ["0", "0.1", "2", "0.25", "0"]


def test_launch_settings_validation():
    with pytest.raises(ValueError, match="executor"):
        LaunchSettings(executor="kubernetes")
    with pytest.raises(ValueError, match="one node"):
        LaunchSettings(executor="local", nodes=2)
    assert LaunchSettings(executor="slurm", nodes=16, ranks_per_node=4).world_size == 64


def test_requeued_job_resumes():
    job = DistributedJob(sum_of_ranks, {"offset": 1.0}, master_port=12345)
    delayed = job.checkpoint()
    assert delayed.function.kwargs == {"offset": 1.0, "resume": True}
    assert delayed.function.master_port == 12345


def test_local_launch_runs_two_gloo_ranks(tmp_path):
    result = launch(
        sum_of_ranks,
        {"offset": 10.0},
        LaunchSettings(executor="local", ranks_per_node=2),
        folder=tmp_path,
        poll_s=0.2,
    )
    assert result["rank"] == 0 and result["world_size"] == 2
    assert result["total"] == 21.0  # (10 + 0) + (10 + 1)
    assert result["rows"] == [[0.0, 0.0], [1.0, 2.0]]
    assert not result["resume"]


def test_main_rank_first_lets_the_other_ranks_read_what_rank_0_wrote(tmp_path):
    cache = tmp_path / "statistics.txt"
    seen, computed_per_rank = launch(
        cache_seen_by_ranks,
        {"cache": str(cache)},
        LaunchSettings(executor="local", ranks_per_node=2),
        folder=tmp_path / "job",
        poll_s=0.2,
    )
    assert seen == "computed" and computed_per_rank == [
        1.0,
        0.0,
    ]  # rank 1 waited and read the cache
    assert cache.read_text() == "written by rank 0"
    # alone: computes once
    calls = []
    context = DistributedContext(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"))
    assert main_rank_first(lambda: calls.append(1) or len(calls), context) == 1 and calls == [1]


def test_step_clock_excludes_waits_for_other_ranks_from_compute():
    clock = StepClock(torch.device("cpu"))
    # data 1 s, forward 2 s, then 5 s waiting in the loss all-reduce, backward: last gradient
    # bucket ready 3 s after the all-reduce, 4 s more waiting in DDP's all-reduce, optimizer 0.5 s
    clock.marks = {
        "start": 0.0,
        "batch": 1.0,
        "forward": 3.0,
        "reduced": 8.0,
        "backward": 15.0,
        "optimizer": 15.5,
    }
    row = clock.row(BucketClock(last_ready=11.0), atoms=40, structures=3)
    assert row == [1.0, 2.0, 12.0, 0.5, 5.0, 40, 3]
    # without a DDP hook (one rank) compute runs to the end of the backward
    assert clock.row(None, atoms=40, structures=3)[4] == 2.0 + 7.0


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def start_launcher(
    tmp_path: Path, *, background: bool = False, run_dir: Path | None = None, seconds: float = 120.0
):
    """`launch` of two sleeping local ranks in a child process; returns (process, rank pids).
    `background`: started as a shell starts `cmd &` (SIGINT ignored, which children inherit)."""
    pids = tmp_path / "pids"
    pids.mkdir(exist_ok=True)
    driver = (
        "import logging; logging.basicConfig(level=logging.INFO)\n"
        "from lamm.launch import LaunchSettings, launch\n"
        "from tests.helpers.distributed_targets import sleep_and_report_pid\n"
        f"launch(sleep_and_report_pid, {{'pid_dir': {str(pids)!r}, 'seconds': {seconds}}}, "
        "LaunchSettings(executor='local', ranks_per_node=2),"
        f" folder={str(tmp_path / 'jobs')!r}, poll_s=0.2, "
        f"run_dir={str(run_dir) if run_dir else None!r})\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    ignore_sigint = (lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if background else None
    launcher = subprocess.Popen(
        [sys.executable, "-c", driver],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ignore_sigint,
    )
    deadline = time.monotonic() + 120
    while len(list(pids.glob("*.pid"))) < 2:
        assert launcher.poll() is None, launcher.stderr.read()
        assert time.monotonic() < deadline, "the ranks never started"
        time.sleep(0.2)
    ranks = [int(path.read_text()) for path in pids.glob("*.pid")]
    assert all(_alive(pid) for pid in ranks)
    return launcher, ranks


def wait_gone(pids, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not any(_alive(pid) for pid in pids)


@pytest.mark.parametrize(
    "signum, background",
    [
        (signal.SIGTERM, False),
        (signal.SIGINT, False),
        (signal.SIGKILL, False),
        (signal.SIGTERM, True),
        (signal.SIGINT, True),  # started like `cmd &`: SIGINT ignored
    ],
    ids=["SIGTERM", "SIGINT", "SIGKILL", "SIGTERM-background", "SIGINT-background"],
)
def test_interrupted_launcher_stops_its_ranks(tmp_path, signum, background):
    # the launcher alone is signalled (Snakemake cancelling the rule, the OOM killer): its local
    # ranks must not outlive it, or they keep training and race the rerun for the same folder
    launcher, ranks = start_launcher(tmp_path, background=background)
    launcher.send_signal(signum)
    _, stderr = launcher.communicate(timeout=60)
    expected = {
        signal.SIGTERM: 143,
        signal.SIGINT: -signal.SIGINT,
        signal.SIGKILL: -signal.SIGKILL,
    }[signum]
    assert launcher.returncode == expected, stderr
    if signum != signal.SIGKILL:
        assert "cancelling job" in stderr
    # SIGKILL: nobody cancels; the ranks' watchdog sees the launcher gone
    controller = int(stderr.split("submitted local job ")[1].split()[0])
    assert wait_gone(ranks, 5 if signum == signal.SIGKILL else 10), "ranks outlived their launcher"
    assert wait_gone([controller], 5), "submitit's controller outlived its ranks"
