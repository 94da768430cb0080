"""How a rank (or a launcher) stops: on SIGTERM, on SIGINT, and when its launcher dies.

- SIGTERM (SLURM's scancel, preemption and `scontrol requeue`, the submitit controller passing on
  a cancel, a watchdog below): while a training loop runs (`checked_at_step_ends`), the signal
  only asks for a stop. Every rank shares the request in its per-step all-gather, so all ranks
  finish the same step, rank 0 writes `last.pt`, and each raises `TrainingStopped`. Outside a
  training loop it exits at once (SystemExit 143, finally-blocks run). Further SIGTERMs change
  nothing; a stop not done within `grace_s` (a rank stuck in a collective) ends the process hard.
- The preemption signal of submitit (SIGUSR2; SLURM sends it `slurm_signal_delay_s` before the
  time limit) is treated the same, then handed to submitit, which requeues the job.
- SIGINT raises KeyboardInterrupt as usual.
- Background shells start their jobs with SIGINT (and SIGQUIT) ignored, and Python keeps an
  ignored SIGINT ignored: `make test &` or `nohup lamm pretrain &` could then not be stopped
  by SIGINT, and a launcher's cancel (SIGINT to submitit's controller) would not reach its ranks.
  `restore_default_signals` puts the defaults back; the CLI, `launch` and every rank call it.
- A rank started by the local launcher dies with it: the kernel sends it SIGTERM when its
  parent (submitit's controller) dies (PR_SET_PDEATHSIG), and a watchdog thread sends the same
  when the launcher process itself is gone (SIGKILL, the OOM killer), so no rank trains on
  as an orphan and races a rerun for the output folder.

Only the standard library here: the CLI imports this before torch.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEFAULT_GRACE_S = (
    90.0  # a stop not honoured by then (a rank stuck in a collective) ends the process hard
)
_PR_SET_PDEATHSIG = 1


class TrainingStopped(Exception):
    """A training loop stopped on a signal after saving `last.pt` (rank 0)."""

    def __init__(self, signum: int, step: int) -> None:
        super().__init__(
            f"stopped by {signal.Signals(signum).name} after step {step}; last.pt holds that step"
        )
        self.signum, self.step = signum, step


class _State:
    requested: int = 0  # the signal number of a pending stop request, 0 when none
    stopping: bool = (
        False  # a stop is under way (honoured, or exiting): later signals change nothing
    )
    listening: int = 0  # training loops that check for requests at their step ends
    grace_s: float = DEFAULT_GRACE_S
    timer: threading.Timer | None = None
    delegate: dict[
        int, Any
    ] = {}  # handlers we replaced (submitit's SIGUSR2) to call when not listening


def restore_default_signals() -> None:
    """Undo what a background shell did: SIGINT ignored -> KeyboardInterrupt, SIGTERM ignored ->
    default. Only in the main thread (signals are set there), only where the handler is SIG_IGN."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def pending() -> int:
    """The signal number of a stop request not yet honoured (0: none)."""
    return _State.requested


def _hard_exit(signum: int) -> None:
    log.error(
        "stop on %s not done within %.0f s: exiting now",
        signal.Signals(signum).name,
        _State.grace_s,
    )
    logging.shutdown()
    os._exit(128 + signum)


def _start_grace_timer(signum: int) -> None:
    if _State.timer is None:
        _State.timer = threading.Timer(_State.grace_s, _hard_exit, (signum,))
        _State.timer.daemon = True
        _State.timer.start()


def _on_stop_signal(signum: int, frame: Any) -> None:
    if (
        _State.requested or _State.stopping
    ):  # one stop is enough (SIGTERM may come from several sides)
        log.info("%s: already stopping", signal.Signals(signum).name)
        return
    if not _State.listening:
        delegate = _State.delegate.get(signum)
        if callable(delegate):  # submitit's preemption handler: checkpoint() and requeue
            delegate(signum, frame)
            return
        _State.stopping = True
        _start_grace_timer(signum)
        raise SystemExit(128 + signum)
    _State.requested = signum
    log.warning("%s: stopping after this step (writing last.pt)", signal.Signals(signum).name)
    _start_grace_timer(signum)


def honour(signum: int, step: int) -> TrainingStopped:
    """The exception a training loop raises once it stopped on `signum` (this rank's signal or
    another rank's, shared in the per-step all-gather) and saved its checkpoint."""
    _State.stopping = True
    _State.requested = 0
    _start_grace_timer(signum)
    return TrainingStopped(signum, step)


def install_stop_handlers(
    signals: tuple[int, ...] = (signal.SIGTERM,), grace_s: float = DEFAULT_GRACE_S
) -> None:
    """SIGTERM (and e.g. submitit's SIGUSR2) ask for a stop; main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return
    restore_default_signals()
    _State.grace_s = grace_s
    for signum in signals:
        previous = signal.getsignal(signum)
        if previous is not _on_stop_signal and callable(previous) and signum != signal.SIGTERM:
            _State.delegate[signum] = previous
        signal.signal(signum, _on_stop_signal)


def hand_over(signum: int) -> None:
    """After a stop on `signum` was honoured: call the handler we replaced for it (submitit's
    checkpoint-and-requeue for its preemption signal); it may exit this process."""
    delegate = _State.delegate.get(signum)
    if callable(delegate):
        delegate(signum, None)


@contextlib.contextmanager
def checked_at_step_ends() -> Iterator[None]:
    """Within this block a stop signal only sets `pending()`; the loop must honour it."""
    _State.listening += 1
    try:
        if _State.requested:  # arrived before the loop started listening
            log.warning("a stop was requested before training started")
        yield
    finally:
        _State.listening -= 1


@contextlib.contextmanager
def prompt_exit(grace_s: float = 5.0) -> Iterator[None]:
    """Within this block (a rendezvous: nothing to save yet) a stop signal ends the process
    within `grace_s`, even when unwinding would wait on a thread blocked in C++."""
    previous = _State.grace_s
    _State.grace_s = min(previous, grace_s)
    try:
        yield
    finally:
        _State.grace_s = previous


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Ask the kernel to send `signum` to this process when its parent exits (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
    except (OSError, AttributeError) as err:  # not Linux: the watchdog still covers the launcher
        log.debug("no parent-death signal: %s", err)


def process_start_time(pid: int) -> str | None:
    """The start time of process `pid` (clock ticks since boot, /proc/<pid>/stat field 22), or
    None when it is gone or a zombie. With the pid it identifies a process across pid reuse."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    if fields[0] == "Z":
        return None
    return fields[19]


def alive(pid: int, start_time: str | None = None) -> bool:
    """Whether `pid` runs (and, given its start time, is still the same process)."""
    if not Path("/proc").is_dir():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    now = process_start_time(pid)
    return now is not None and (start_time is None or now == start_time)


def watch_process(
    pid: int, start_time: str | None, on_gone: Callable[[], None], interval_s: float = 0.5
) -> threading.Thread:
    """A daemon thread that calls `on_gone()` once when process `pid` has ended."""

    def watch() -> None:
        while alive(pid, start_time):
            time.sleep(interval_s)
        on_gone()

    thread = threading.Thread(target=watch, name=f"watch-{pid}", daemon=True)
    thread.start()
    return thread


def stop_when_gone(pid: int, start_time: str | None) -> threading.Thread:
    """Send ourselves SIGTERM (a clean stop) when the launcher `pid` is gone."""

    def gone() -> None:
        log.warning("the launcher (pid %d) is gone: stopping this rank", pid)
        os.kill(os.getpid(), signal.SIGTERM)

    return watch_process(pid, start_time, gone)
