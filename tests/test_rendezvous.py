"""The ranks meet or fail fast: device binding, the rendezvous' one-line errors and deadline,
SIGTERM while waiting, an unresolvable MASTER_ADDR through the launcher, sbatch refusals."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from lamm.launch import FAILURE_MARK, LaunchError, LaunchSettings, launch
from lamm.training.distributed import choose_device
from lamm.training.rendezvous import RendezvousError, rendezvous, timeout_from_env
from tests.conftest import ROOT
from tests.helpers.distributed_targets import sum_of_ranks

BOGUS = "lamm-no-such-host.invalid"  # .invalid never resolves (RFC 2606)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- device binding ----------------------------------------------------------------------------
def test_all_node_gpus_visible_binds_gpu_local_rank():
    env = {"LOCAL_RANK": "3", "LOCAL_WORLD_SIZE": "4", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    assert choose_device("auto", env, 4) == torch.device("cuda", 3)
    assert choose_device("cuda", {"LOCAL_RANK": "1", "SLURM_NTASKS_PER_NODE": "2"}, 2) == (
        torch.device("cuda", 1)
    )
    assert choose_device("auto", {}, 8) == torch.device("cuda", 0)  # one process, many GPUs


def test_one_gpu_per_task_binds_its_only_gpu():
    # SLURM --gpus-per-task=1: task 3 of 4 sees one GPU, its own, as device 0
    env = {"LOCAL_RANK": "3", "LOCAL_WORLD_SIZE": "4", "CUDA_VISIBLE_DEVICES": "3"}
    assert choose_device("auto", env, 1) == torch.device("cuda", 0)
    # --gpus-per-task=2: every task sees two, its own; it trains on the first
    env = {"LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2", "SLURM_GPUS_PER_TASK": "2"}
    assert choose_device("cuda", env, 2) == torch.device("cuda", 0)


def test_no_gpu_or_too_few_gpus():
    assert choose_device("auto", {"LOCAL_RANK": "1"}, 0) == torch.device("cpu")
    assert choose_device("cpu", {"LOCAL_RANK": "1"}, 4) == torch.device("cpu")
    with pytest.raises(RuntimeError, match=r"sees no GPU \(CUDA_VISIBLE_DEVICES=''\)"):
        choose_device("cuda", {"CUDA_VISIBLE_DEVICES": ""}, 0)
    with pytest.raises(RuntimeError, match="local rank 2 of 4 ranks on this node, but 2 GPUs"):
        choose_device("auto", {"LOCAL_RANK": "2", "LOCAL_WORLD_SIZE": "4"}, 2)
    with pytest.raises(ValueError, match="device must be"):
        choose_device("gpu", {}, 1)


# --- the rendezvous' errors --------------------------------------------------------------------
def env_for(rank: int, port: int, address: str = "127.0.0.1", **extra: str) -> dict:
    return {
        "RANK": str(rank),
        "WORLD_SIZE": "2",
        "LOCAL_WORLD_SIZE": "2",
        "MASTER_ADDR": address,
        "MASTER_PORT": str(port),
        **extra,
    }


def one_line_error(**kwargs) -> str:
    with pytest.raises(RendezvousError) as caught:
        rendezvous("gloo", **kwargs)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_an_unresolvable_address_fails_at_once_naming_it():
    started = time.monotonic()
    message = one_line_error(rank=1, world_size=2, env=env_for(1, 29411, BOGUS))
    assert time.monotonic() - started < 30
    assert f"MASTER_ADDR={BOGUS} MASTER_PORT=29411" in message
    assert "does not resolve" in message and "--master-addr" in message


def test_a_rank_without_rank_0_times_out_naming_address_port_and_setting():
    port = free_port()
    started = time.monotonic()
    message = one_line_error(rank=1, world_size=2, timeout_s=1.5, env=env_for(1, port))
    assert 1.5 <= time.monotonic() - started < 10
    assert f"rank 1/2 on {socket.gethostname()}: MASTER_ADDR=127.0.0.1 MASTER_PORT={port}" in (
        message
    )
    assert "rank 0 did not answer within 2 s" in message and "--rendezvous-timeout-min" in message
    assert "--master-port" in message


def test_rank_0_alone_times_out_counting_the_ranks_that_joined():
    message = one_line_error(rank=0, world_size=2, timeout_s=1.0, env=env_for(0, free_port()))
    assert "only 1 of 2 ranks joined within 1 s" in message


def test_rank_0_refuses_a_taken_port_and_an_address_of_another_host():
    with socket.socket() as taken:
        taken.bind(("", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        message = one_line_error(rank=0, world_size=2, timeout_s=5, env=env_for(0, port))
    assert f"MASTER_PORT={port}: the port is taken on this node" in message
    assert "--master-port" in message
    message = one_line_error(rank=0, world_size=2, env=env_for(0, free_port(), "203.0.113.7"))
    assert "does not own that address" in message


def test_a_loopback_address_fails_on_the_other_nodes_only():
    env = env_for(1, free_port(), LOCAL_WORLD_SIZE="1")  # rank 1 on the second node
    message = one_line_error(rank=1, world_size=2, env=env)
    assert "a loopback address, which other nodes cannot reach" in message


def test_missing_or_bad_settings():
    assert "both must be set" in one_line_error(rank=1, world_size=2, env={"MASTER_ADDR": "x"})
    assert timeout_from_env({}) == 600.0 and timeout_from_env({"LAMM_RENDEZVOUS_TIMEOUT_S": "90"})
    with pytest.raises(RendezvousError, match="not a number"):
        timeout_from_env({"LAMM_RENDEZVOUS_TIMEOUT_S": "ten"})


# --- SIGTERM while waiting ---------------------------------------------------------------------
RANK = """
import logging
logging.basicConfig(level=logging.INFO)
from lamm.training import stop
stop.install_stop_handlers()  # as DistributedJob does: SIGTERM asks for a stop
from lamm.training.distributed import init_distributed
init_distributed("cpu")
"""


@pytest.mark.slow
def test_sigterm_during_the_rendezvous_ends_the_rank_within_10_s(tmp_path):
    """Rank 0 waiting for rank 1 to join, and rank 1 waiting for rank 0's port: both stop."""
    port = free_port()
    base = {**os.environ, "PYTHONPATH": str(ROOT), "LAMM_RENDEZVOUS_TIMEOUT_S": "600"}
    ranks = []
    for rank, rank_port in ((0, port), (1, free_port())):  # rank 1 looks where nobody listens
        log = tmp_path / f"rank{rank}.log"
        process = subprocess.Popen(
            [sys.executable, "-c", RANK],
            env={**base, **env_for(rank, rank_port)},
            stderr=open(log, "w"),
        )
        ranks.append((process, log))
    deadline = time.monotonic() + 120
    for process, log in ranks:
        while "rendezvous:" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    time.sleep(1.0)  # inside the wait loops now
    for process, log in ranks:
        assert process.poll() is None, log.read_text()
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        try:
            status = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            pytest.fail(f"still running 10 s after SIGTERM: {log.read_text()[-2000:]}")
        assert status == 128 + signal.SIGTERM, log.read_text()
        assert time.monotonic() - sent < 10


# --- through the launcher ----------------------------------------------------------------------
@pytest.mark.slow
def test_an_unresolvable_master_addr_fails_every_rank_with_one_line(tmp_path):
    started = time.monotonic()
    with pytest.raises(LaunchError) as caught:
        launch(
            sum_of_ranks,
            {"offset": 1.0},
            LaunchSettings(executor="local", ranks_per_node=2, master_addr=BOGUS),
            folder=tmp_path,
            poll_s=0.2,
        )
    elapsed = time.monotonic() - started
    assert elapsed < 120
    message = str(caught.value)
    assert "\n" not in message and "failed: rendezvous failed: rank 0/2" in message
    assert f"MASTER_ADDR={BOGUS} MASTER_PORT=" in message and "--master-addr" in message
    logs = sorted(tmp_path.glob("*_log.err"))
    assert len(logs) == 2
    for log in logs:  # every rank stopped with its own line, no traceback
        text = log.read_text()
        assert text.count(FAILURE_MARK) == 1 and "Traceback" not in text, text


def test_launch_settings_reach_the_ranks_environment():
    settings = LaunchSettings(
        executor="slurm", nodes=2, rendezvous_timeout_min=1.5, network_interface="ib0"
    )
    assert settings.rank_environment() == {
        "LAMM_RENDEZVOUS_TIMEOUT_S": "90",
        "GLOO_SOCKET_IFNAME": "ib0",
        "NCCL_SOCKET_IFNAME": "ib0",
    }
    assert "the partition's default memory" in settings.describe()
    assert "16 GB per node" in LaunchSettings(executor="slurm", mem_gb=16).describe()
    with pytest.raises(ValueError, match="not both"):
        LaunchSettings(executor="slurm", gpus_per_node=4, gpus_per_task=1)
    with pytest.raises(ValueError, match="rendezvous_timeout_min"):
        LaunchSettings(rendezvous_timeout_min=0)
    with pytest.raises(ValueError, match="master_port"):
        LaunchSettings(master_port=70000)


def test_an_sbatch_refusal_is_one_clear_line(tmp_path, monkeypatch):
    """A fake sbatch answers as SLURM does when no node has the memory asked for."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text(
        "#!/bin/sh\necho 'sbatch: error: Memory specification can not be satisfied' >&2\n"
        "echo 'sbatch: error: Batch job submission failed: Requested node configuration is "
        "not available' >&2\nexit 1\n"
    )
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 0\n")
    for tool in bin_dir.iterdir():
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    settings = LaunchSettings(executor="slurm", nodes=2, ranks_per_node=1, mem_gb=64)
    with pytest.raises(LaunchError) as caught:
        launch(sum_of_ranks, {"offset": 1.0}, settings, folder=tmp_path / "jobs")
    message = str(caught.value)
    assert message.startswith("sbatch refused the job (2 nodes x 1 tasks, 1 CPUs per task")
    assert "64 GB per node" in message and "Requested node configuration is not available" in (
        message
    )
    assert "\n" not in message and "--mem-gb" in message
    assert Path(tmp_path / "jobs").is_dir()
