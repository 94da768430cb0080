"""Start the ranks of a distributed job through submitit: here, or on a SLURM cluster.

- `executor="none"`: run in this process (a single rank, or under `torchrun`).
- `executor="local"`: submitit's LocalExecutor starts `ranks_per_node` processes on this machine
  (the embedded default: 2 CPU ranks with gloo).
- `executor="slurm"`: one SLURM job of `nodes` x `ranks_per_node` tasks. SLURM signals the job
  before its time limit (and on preemption); submitit then calls `DistributedJob.checkpoint`,
  which requeues the same job with `resume=True`. The training code writes its `last` checkpoint
  atomically every few minutes, so the requeued job continues from it exactly.

The launching process waits for the job and forwards rank 0's log lines, so a Snakemake rule
that calls `lamm pretrain` runs locally, submits once, and sees the training progress. If the
launching process is interrupted (Ctrl-C, or SIGTERM when Snakemake cancels the rule), it cancels
the job before it exits: the ranks would otherwise outlive it (submitit's local controller and a
SLURM job are not its children's process group), keep training, and race the rerun for the same
checkpoint folder. The rerun resumes from the last checkpoint.
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import submitit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LaunchSettings:
    """Where and how the ranks run (the `pretrain.launcher` section of the workflow config)."""

    executor: str = "local"  # none | local | slurm
    nodes: int = 1
    ranks_per_node: int = 2
    gpus_per_node: int = 0
    cpus_per_rank: int = 1
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: int = 1440
    mem_gb: int = 64

    def __post_init__(self) -> None:
        if self.executor not in ("none", "local", "slurm"):
            raise ValueError(f"executor must be none, local or slurm, got {self.executor!r}")
        if self.nodes < 1 or self.ranks_per_node < 1 or self.cpus_per_rank < 1:
            raise ValueError("nodes, ranks_per_node and cpus_per_rank must be at least 1")
        if self.executor == "local" and self.nodes != 1:
            raise ValueError("the local executor runs on one node; set nodes: 1")
        if self.executor == "none" and self.nodes * self.ranks_per_node != 1:
            raise ValueError("executor 'none' runs one rank in this process; use local or slurm for more")

    @property
    def world_size(self) -> int:
        return self.nodes * self.ranks_per_node


class DistributedJob(submitit.helpers.Checkpointable):
    """The picklable callable every rank runs: sets up the rendezvous, then `target(**kwargs)`.

    On timeout or preemption (SLURM), `checkpoint()` requeues the same job with `resume=True`.
    """

    def __init__(self, target: Callable[..., Any], kwargs: Mapping[str, Any], master_port: int | None = None) -> None:
        self.target = target
        self.kwargs = dict(kwargs)
        self.master_port = master_port

    def __call__(self) -> Any:
        import os

        if self.master_port is not None:
            os.environ["MASTER_PORT"] = str(self.master_port)
        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
        return self.target(**self.kwargs)

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        resumed = DistributedJob(self.target, {**self.kwargs, "resume": True}, self.master_port)
        return submitit.helpers.DelayedSubmission(resumed)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(
    target: Callable[..., Any],
    kwargs: Mapping[str, Any],
    settings: LaunchSettings,
    *,
    folder: str | Path,
    name: str = "lamm",
    poll_s: float = 2.0,
) -> Any:
    """Run `target(**kwargs)` on every rank and return rank 0's result."""
    if settings.executor == "none":
        return target(**kwargs)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if settings.executor == "local":
        executor: submitit.Executor = submitit.LocalExecutor(folder=folder)
        executor.update_parameters(
            tasks_per_node=settings.ranks_per_node,
            gpus_per_node=settings.gpus_per_node,
            timeout_min=settings.time_min,
        )
        job_callable = DistributedJob(target, kwargs, master_port=free_port())
    else:
        executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
        extra: dict[str, Any] = {}
        if settings.partition:
            extra["slurm_partition"] = settings.partition
        if settings.account:
            extra["slurm_account"] = settings.account
        if settings.qos:
            extra["slurm_qos"] = settings.qos
        executor.update_parameters(
            name=name,
            nodes=settings.nodes,
            tasks_per_node=settings.ranks_per_node,
            gpus_per_node=settings.gpus_per_node,
            cpus_per_task=settings.cpus_per_rank,
            timeout_min=settings.time_min,
            mem_gb=settings.mem_gb,
            slurm_signal_delay_s=180,  # time to finish the step in flight before the limit
            **extra,
        )
        job_callable = DistributedJob(target, kwargs)
    job = executor.submit(job_callable)
    log.info("submitted %s job %s (%d ranks), logs in %s", settings.executor, job.job_id, settings.world_size, folder)
    _follow_or_cancel(job, poll_s)
    return job.results()[0]


class _Terminated(Exception):
    """SIGTERM arrived while the launcher was following its job."""


def _follow_or_cancel(job: submitit.Job, poll_s: float, grace_s: float = 10.0) -> None:
    """`_follow`, but an interrupt (SIGINT, SIGTERM) cancels the job and waits up to `grace_s` for
    it to end before the launcher exits: a launcher never leaves its ranks running behind it.
    SIGTERM exits with status 143 (128 + 15), as the default handler would."""
    in_main_thread = threading.current_thread() is threading.main_thread()  # signals only there
    previous = signal.getsignal(signal.SIGTERM) if in_main_thread else None

    def on_sigterm(signum: int, frame: Any) -> None:
        raise _Terminated()

    if in_main_thread:
        signal.signal(signal.SIGTERM, on_sigterm)
    try:
        _follow(job, poll_s)
    except KeyboardInterrupt:
        _cancel(job, grace_s)
        raise
    except _Terminated:
        _cancel(job, grace_s)
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _cancel(job: submitit.Job, grace_s: float) -> None:
    log.warning("interrupted: cancelling job %s so that its ranks stop too", job.job_id)
    job.cancel(check=False)
    deadline = time.monotonic() + grace_s
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.2)


def _follow(job: submitit.Job, poll_s: float) -> None:
    """Forward new lines of rank 0's stderr to ours until the job ends."""
    position = 0
    while True:
        done = job.done()
        path = Path(job.paths.stderr)
        if path.is_file():
            with open(path, errors="replace") as handle:
                handle.seek(position)
                chunk = handle.read()
                position = handle.tell()
            if chunk:
                sys.stderr.write(chunk)
                sys.stderr.flush()
        if done:
            return
        time.sleep(poll_s)
