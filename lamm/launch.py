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

A cancel asks politely first: SIGTERM to the ranks (through submitit's controller, or SLURM's
scancel), on which a training loop finishes its step, writes `last.pt` and exits
(`lamm.training.stop`); what is still running after `grace_s` is interrupted and killed.
A run owns its output folder (`lamm.run_lock`): the launcher holds `<out>/locks/launcher.lock`
from before the ranks start until they are gone, each rank holds `rank-<r>.lock`, and a second
run on the folder is refused while either is held. Local ranks stop when their launcher dies,
however it dies (parent-death signal and a watchdog on the launcher's pid). A SLURM job that
SLURM requeues by itself (`scontrol requeue`, preemption, a node failure) restarts with
`resume=True` (SLURM_RESTART_COUNT > 0), so it continues from `last.pt`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
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

from lamm.run_lock import hold_rank, hold_run_folder
from lamm.training import stop
from lamm.training.rendezvous import TIMEOUT_ENV as RENDEZVOUS_TIMEOUT_ENV

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LaunchSettings:
    """Where and how the ranks run (the `pretrain.launcher` section of the workflow config).

    `mem_gb` None asks SLURM for no memory: the partition's default applies. GPUs come per
    node (every task sees them all; rank r uses GPU LOCAL_RANK) or per task (`gpus_per_task`:
    each task sees its own). `rendezvous_timeout_min`, `master_addr` (a name or address, or a
    pattern on the first node's name such as "{node}-ib"), `master_port` and
    `network_interface` (GLOO_SOCKET_IFNAME and NCCL_SOCKET_IFNAME of every rank) decide how
    the ranks meet (`lamm.training.rendezvous`).
    """

    executor: str = "local"  # none | local | slurm
    nodes: int = 1
    ranks_per_node: int = 2
    gpus_per_node: int = 0
    gpus_per_task: int = 0
    cpus_per_rank: int = 1
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_min: int = 1440
    mem_gb: int | None = None
    rendezvous_timeout_min: float = 10.0
    master_addr: str | None = None
    master_port: int | None = None
    network_interface: str | None = None

    def __post_init__(self) -> None:
        if self.executor not in ("none", "local", "slurm"):
            raise ValueError(f"executor must be none, local or slurm, got {self.executor!r}")
        if self.nodes < 1 or self.ranks_per_node < 1 or self.cpus_per_rank < 1:
            raise ValueError("nodes, ranks_per_node and cpus_per_rank must be at least 1")
        if self.executor == "local" and self.nodes != 1:
            raise ValueError("the local executor runs on one node; set nodes: 1")
        if self.executor == "none" and self.nodes * self.ranks_per_node != 1:
            raise ValueError(
                "executor 'none' runs one rank in this process; use local or slurm for more"
            )
        if self.gpus_per_node and self.gpus_per_task:
            raise ValueError("set gpus_per_node or gpus_per_task, not both")
        if self.mem_gb is not None and self.mem_gb < 1:
            raise ValueError(f"mem_gb must be at least 1 (or unset), got {self.mem_gb}")
        if not self.rendezvous_timeout_min > 0:
            raise ValueError(
                f"rendezvous_timeout_min must be positive, got {self.rendezvous_timeout_min}"
            )
        if self.master_port is not None and not 0 < self.master_port < 65536:
            raise ValueError(f"master_port must be 1-65535, got {self.master_port}")

    @property
    def world_size(self) -> int:
        return self.nodes * self.ranks_per_node

    def rank_environment(self) -> dict[str, str]:
        """What every rank exports before the rendezvous."""
        env = {RENDEZVOUS_TIMEOUT_ENV: f"{60 * self.rendezvous_timeout_min:g}"}
        if self.network_interface:
            env["GLOO_SOCKET_IFNAME"] = env["NCCL_SOCKET_IFNAME"] = self.network_interface
        return env

    def describe(self) -> str:
        """The SLURM request in words (for a refusal)."""
        gpus = (
            f"{self.gpus_per_task} GPUs per task"
            if self.gpus_per_task
            else f"{self.gpus_per_node} GPUs per node"
        )
        memory = f"{self.mem_gb} GB per node" if self.mem_gb else "the partition's default memory"
        return (
            f"{self.nodes} nodes x {self.ranks_per_node} tasks, {self.cpus_per_rank} CPUs per "
            f"task, {gpus}, {memory}, {self.time_min} min, partition "
            f"{self.partition or '(default)'}"
        )


class LaunchError(ValueError):
    """A launch the cluster refused, or ranks that stopped with a one-line reason (a rendezvous
    that failed, a run folder the nodes do not share): what to change, not a traceback."""


FAILURE_MARK = "rank stopped: "  # the line a rank logs before it exits on a LaunchError reason


@dataclasses.dataclass
class DistributedJob(submitit.helpers.Checkpointable):
    """The picklable callable every rank runs: sets up the rendezvous, then `target(**kwargs)`.

    `run_dir`: the run's output folder; each rank holds `run_dir/locks/rank-<r>.lock`.
    `launcher`: (pid, start time) of a local launcher; the rank stops when that process is gone.
    `environment`: exported first (`LaunchSettings.rank_environment`); `master_addr` replaces
    submitit's MASTER_ADDR (the first node's name), "{node}" standing for that name.
    On timeout or preemption (SLURM), `checkpoint()` requeues the same job with `resume=True`.
    """

    target: Callable[..., Any]
    kwargs: Mapping[str, Any]
    master_port: int | None = None
    run_dir: str | None = None
    launcher: tuple[int, str | None] | None = None
    environment: Mapping[str, str] = dataclasses.field(default_factory=dict)
    master_addr: str | None = None

    def __call__(self) -> Any:
        stop.restore_default_signals()
        stop.die_with_parent()  # submitit's controller (local) or slurmstepd
        if self.launcher is not None:
            stop.stop_when_gone(*self.launcher)
        environment = submitit.JobEnvironment()
        # SIGTERM (cancel, requeue) and submitit's preemption signal: finish the step, save, stop
        stop.install_stop_handlers((signal.SIGTERM, environment._usr_sig()))
        self._export()
        kwargs = dict(self.kwargs)
        if "resume" in kwargs and int(os.environ.get("SLURM_RESTART_COUNT") or 0) > 0:
            kwargs["resume"] = True  # SLURM requeued this job by itself: continue from last.pt
        held = (
            hold_rank(
                self.run_dir,
                environment.global_rank,
                job=environment.job_id,
                executor=environment.cluster,
            )
            if self.run_dir is not None
            else contextlib.nullcontext()
        )
        try:
            with held:
                return self.target(**kwargs)
        except stop.TrainingStopped as stopped:
            log.warning("rank %d: %s", environment.global_rank, stopped)
            stop.hand_over(
                stopped.signum
            )  # submitit's preemption signal: requeue (rank 0 exits there)
            raise SystemExit(128 + stopped.signum) from None
        except Exception as err:
            _exit_if_explained(err)
            raise

    def _export(self) -> None:
        """MASTER_ADDR/PORT, RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE and the settings."""
        os.environ.update(self.environment)
        if self.master_port is not None:
            os.environ["MASTER_PORT"] = str(self.master_port)  # submitit reads it
        exported = submitit.helpers.TorchDistributedEnvironment().export(
            set_cuda_visible_devices=False, overwrite=True
        )
        if self.master_addr:
            os.environ["MASTER_ADDR"] = self.master_addr.replace("{node}", exported.master_addr)

    def checkpoint(self, *args: Any, **kwargs: Any) -> submitit.helpers.DelayedSubmission:
        resumed = dataclasses.replace(self, kwargs={**self.kwargs, "resume": True})
        return submitit.helpers.DelayedSubmission(resumed)


def _exit_if_explained(err: Exception) -> None:
    """A rendezvous that failed, a run folder not shared, a checkpoint that could not be written
    (a full disk): one line (which the launcher repeats), exit status 1, no traceback. A
    rendezvous may leave a thread blocked in C++ that a normal exit would wait on: the process
    ends at once."""
    from lamm.models.checkpoint import CheckpointWriteError
    from lamm.training.rendezvous import RendezvousError
    from lamm.training.shared_folder import SharedFolderError

    if not isinstance(err, (RendezvousError, SharedFolderError, CheckpointWriteError)):
        return
    log.error("%s%s", FAILURE_MARK, err)
    logging.shutdown()
    sys.stderr.flush()
    os._exit(1)


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
    run_dir: str | Path | None = None,
) -> Any:
    """Run `target(**kwargs)` on every rank and return rank 0's result.

    `run_dir` (default: `kwargs["out_dir"]` when the target has one) is the run's output folder,
    held for the whole run (`lamm.run_lock`); a live run there makes this raise RunFolderInUse.
    """
    stop.restore_default_signals()  # a background shell's ignored SIGINT must not reach the ranks
    if run_dir is None and kwargs.get("out_dir") is not None:
        run_dir = kwargs["out_dir"]
    held = (
        hold_run_folder(run_dir, executor=settings.executor)
        if run_dir is not None
        else contextlib.nullcontext()
    )
    with held as lock:
        if settings.executor == "none":
            return _run_here(target, kwargs)
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if settings.executor == "local":
            executor, job_callable = _local_executor(target, kwargs, settings, folder, run_dir)
        else:
            executor = _slurm_executor(settings, folder, name)
            job_callable = DistributedJob(
                target,
                kwargs,
                master_port=settings.master_port,
                run_dir=_str(run_dir),
                environment=settings.rank_environment(),
                master_addr=settings.master_addr,
            )
        try:
            job = executor.submit(job_callable)
        except submitit.core.utils.FailedJobError as err:  # sbatch said no
            refusal = "; ".join(line for line in str(err).splitlines() if line.strip())
            raise LaunchError(
                f"sbatch refused the job ({settings.describe()}): {refusal}; compare with what "
                "the partition offers (sinfo -o '%P %D %c %m %G') and change the request "
                "(--nodes, --cpus-per-rank, --mem-gb, --gpus-per-node, --partition)"
            ) from None
        if lock is not None:
            lock.write(job=job.job_id)
        log.info(
            "submitted %s job %s (%d ranks), logs in %s",
            settings.executor,
            job.job_id,
            settings.world_size,
            folder,
        )
        _follow_or_cancel(job, poll_s)
        reason = _rank_failure(folder, job.job_id)
        if reason is not None and not Path(job.paths.result_pickle).exists():
            # no need for submitit's wait for a result file (up to 30 s a task)
            raise LaunchError(f"job {job.job_id} failed: {reason}")
        return job.results()[0]


def _local_executor(
    target: Callable[..., Any],
    kwargs: Mapping[str, Any],
    settings: LaunchSettings,
    folder: Path,
    run_dir: str | Path | None,
) -> tuple[submitit.Executor, DistributedJob]:
    executor = submitit.LocalExecutor(folder=folder)
    executor.update_parameters(
        tasks_per_node=settings.ranks_per_node,
        gpus_per_node=settings.gpus_per_node,
        timeout_min=settings.time_min,
    )
    me = os.getpid()
    job = DistributedJob(
        target,
        kwargs,
        master_port=settings.master_port or free_port(),
        run_dir=_str(run_dir),
        launcher=(me, stop.process_start_time(me)),
        environment=settings.rank_environment(),
        master_addr=settings.master_addr,
    )
    return executor, job


def _slurm_executor(settings: LaunchSettings, folder: Path, name: str) -> submitit.Executor:
    executor = submitit.AutoExecutor(folder=folder, cluster="slurm")
    extra: dict[str, Any] = {}
    for key in ("partition", "account", "qos"):
        if getattr(settings, key):
            extra[f"slurm_{key}"] = getattr(settings, key)
    if settings.mem_gb is not None:
        extra["mem_gb"] = settings.mem_gb  # else nothing: the partition's default memory
    if settings.gpus_per_task:
        extra["slurm_gpus_per_task"] = settings.gpus_per_task
    else:
        extra["gpus_per_node"] = settings.gpus_per_node
    executor.update_parameters(
        name=name,
        nodes=settings.nodes,
        tasks_per_node=settings.ranks_per_node,
        cpus_per_task=settings.cpus_per_rank,
        timeout_min=settings.time_min,
        slurm_signal_delay_s=180,  # time to finish the step in flight before the limit
        **extra,
    )
    return executor


def _rank_failure(folder: Path, job_id: str) -> str | None:
    """The one-line reason a rank of the job logged before it stopped (rank 0's first)."""
    for path in sorted(folder.glob(f"{job_id}_*_log.err"), key=_task_number):
        with open(path, errors="replace") as handle:
            for line in handle:
                if FAILURE_MARK in line:
                    return line.split(FAILURE_MARK, 1)[1].strip()
    return None


def _task_number(path: Path) -> int:
    part = path.name.split("_")[-2]
    return int(part) if part.isdigit() else 0


def _str(path: str | Path | None) -> str | None:
    return None if path is None else str(Path(path).resolve())


def _run_here(target: Callable[..., Any], kwargs: Mapping[str, Any]) -> Any:
    """Executor "none": this process is the one rank; SIGTERM stops it after a step and a save."""
    stop.install_stop_handlers((signal.SIGTERM,))
    try:
        return target(**kwargs)
    except stop.TrainingStopped as stopped:
        log.warning("%s", stopped)
        raise SystemExit(128 + stopped.signum) from None


class _Terminated(Exception):
    """SIGTERM arrived while the launcher was following its job."""


def _follow_or_cancel(job: submitit.Job, poll_s: float, grace_s: float = 60.0) -> None:
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
    """SIGTERM first (the ranks finish their step and save `last.pt`), then interrupt and kill."""
    log.warning(
        "interrupted: cancelling job %s so that its ranks stop too (they save last.pt first)",
        job.job_id,
    )
    process = getattr(job, "_process", None)  # the local controller passes SIGTERM on to the ranks
    if process is not None:
        process.send_signal(signal.SIGTERM)
    else:
        job.cancel(check=False)  # scancel: SLURM sends SIGTERM, then SIGKILL after its KillWait
    if _wait_done(job, grace_s) or process is None:
        return
    log.warning(
        "job %s did not stop within %.0f s of SIGTERM: interrupting it", job.job_id, grace_s
    )
    job.cancel(check=False)  # SIGINT to the controller: it interrupts, then kills, the ranks
    if not _wait_done(job, 10.0):
        process.kill()


def _wait_done(job: submitit.Job, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not job.done() and time.monotonic() < deadline:
        time.sleep(0.2)
    return job.done()


def _follow(job: submitit.Job, poll_s: float, force_every_s: float = 30.0) -> None:
    """Forward new lines of rank 0's stderr to ours until the job ends; log its state changes.

    submitit asks SLURM (sacct) at most every 10 minutes once a job has run a while; a job
    that ends without a result (failed, cancelled) is seen within `force_every_s` instead."""
    position = 0
    state, last_forced = None, time.monotonic()
    while True:
        force = time.monotonic() - last_forced > force_every_s
        if force:
            last_forced = time.monotonic()
        done = job.done(force_check=force)
        now = job.state
        if now != state:
            log.info("job %s: %s", job.job_id, now)
            state = now
        path = Path(job.paths.stderr)
        if path.is_file():
            with open(path, errors="replace") as handle:
                handle.seek(position)
                chunk = handle.read()
                position = handle.tell()
            if chunk:
                sys.stderr.write(chunk)
                sys.stderr.flush()
                if FAILURE_MARK in chunk:  # rank 0 stopped: see the job's end at once
                    force_every_s = poll_s
        if done:
            return
        time.sleep(poll_s)
