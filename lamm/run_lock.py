"""A run owns its output folder: `<out>/locks/launcher.lock` and `<out>/locks/rank-<r>.lock`.

The launcher of a pre-training or fine-tuning run (`lamm.launch.launch`) takes an exclusive
`flock` on `launcher.lock` before any rank starts, and every rank takes one on its own
`rank-<r>.lock`. Each file holds who holds it (pid, host, start, command, job), so a second run
on the same folder is refused with a message naming the other process:

    results/pretrain/demo is in use by a live run: launcher pid 4242 on node7 since
    2025-06-01T10:00:00 (lamm pretrain ... --resume); stop it first (kill 4242), or choose another
    --out

The kernel drops a `flock` when its process ends, however it ends (SIGKILL included): the
lock of a run that is gone is stale by construction and is simply taken over. A new launcher
also waits (`rank_wait_s`) for the ranks of an earlier run to release their files, because
ranks outlive a SIGKILLed launcher by the moment they need to notice and stop; ranks of a
SLURM job whose launcher was killed keep theirs until the job ends, and the refusal then names
the job to cancel. On a file system without working `flock` (some NFS and Lustre mounts) the
lock falls back to the pid written in the file: a live pid on this host, or any pid on another
host, refuses (delete the lock file when you know that run is gone).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from lamm.training.stop import alive, process_start_time

log = logging.getLogger(__name__)

LOCK_DIR = "locks"
LAUNCHER = "launcher.lock"


class RunFolderInUse(OSError):
    """Another live run holds the output folder (a one-line user error: an OSError)."""


def _describe(info: Mapping[str, Any]) -> str:
    if not info:
        return "a process that has not written its details yet"
    what = info.get("role", "process")
    text = f"{what} pid {info.get('pid')} on {info.get('host')} since {info.get('started')}"
    if info.get("job"):
        text += f", job {info['job']}"
    if info.get("command"):
        text += f" ({info['command']})"
    return text


def _advice(info: Mapping[str, Any]) -> str:
    if info.get("executor") == "slurm" and info.get("job"):
        return f"wait for it to end, or cancel it (scancel {str(info['job']).split('_')[0]})"
    if info.get("pid") and info.get("host") == socket.gethostname():
        return f"wait for it to end, or stop it (kill {info['pid']})"
    return "wait for it to end, or stop it"


class FileLock:
    """An exclusive flock on one file that records its holder as JSON."""

    def __init__(self, path: Path, info: Mapping[str, Any]) -> None:
        self.path = Path(path)
        self.info = dict(info)
        self._handle: Any = None

    def read(self) -> dict[str, Any]:
        try:
            text = self.path.read_text()
            return json.loads(text) if text.strip() else {}
        except (OSError, json.JSONDecodeError):
            return {}

    def try_acquire(self) -> bool:
        """Take the lock if free (or stale); False if a live process holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        except OSError as err:
            if err.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                handle.close()
                raise
            if self._held_by_pid():  # no flock here: trust the pid in the file
                handle.close()
                return False
            log.warning(
                "%s: this file system has no flock (%s); the lock relies on the pid it records",
                self.path,
                err,
            )
        previous = self.read()
        if previous and previous.get("pid") != os.getpid():
            log.info("%s: taking over the lock of %s (gone)", self.path, _describe(previous))
        self._handle = handle
        self.write()
        return True

    def _held_by_pid(self) -> bool:
        info = self.read()
        if not info or info.get("pid") == os.getpid():
            return False
        if info.get("host") != socket.gethostname():
            return True
        return alive(int(info["pid"]), info.get("pid_start"))

    def write(self, **update: Any) -> None:
        self.info.update(update)
        handle = self._handle
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(self.info))
        handle.flush()
        os.fsync(handle.fileno())

    def release(self) -> None:
        if self._handle is None:
            return
        try:
            self._handle.seek(0)
            self._handle.truncate()  # a released lock names nobody
        finally:
            self._handle.close()  # drops the flock
            self._handle = None


def _identity(role: str, **extra: Any) -> dict[str, Any]:
    return {
        "role": role,
        "pid": os.getpid(),
        "pid_start": process_start_time(os.getpid()),
        "host": socket.gethostname(),
        "started": datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(
            Path(sys.argv[0]).name if i == 0 else arg for i, arg in enumerate(sys.argv)
        )[:300],
        **extra,
    }


# Folders this process holds, so that nested holds (the command, then `launch`) are re-entrant.
_HELD: dict[Path, tuple[FileLock, int]] = {}


@contextlib.contextmanager
def hold_run_folder(
    folder: str | os.PathLike, *, executor: str = "none", rank_wait_s: float = 60.0
) -> Iterator[FileLock]:
    """Own `folder` for the duration: refuse (RunFolderInUse) if a live run holds it, wait up to
    `rank_wait_s` for ranks of an earlier run that are still stopping, take over stale locks."""
    folder = Path(folder).resolve()
    held = _HELD.get(folder)
    if held is not None:
        _HELD[folder] = (held[0], held[1] + 1)
        try:
            yield held[0]
        finally:
            lock, count = _HELD[folder]
            _HELD[folder] = (lock, count - 1)
        return
    lock = FileLock(folder / LOCK_DIR / LAUNCHER, _identity("launcher", executor=executor))
    if not lock.try_acquire():
        info = lock.read()
        raise RunFolderInUse(
            f"{folder} is in use by a live run: {_describe(info)}; {_advice(info)}, or "
            "choose another --out"
        )
    try:
        _wait_for_earlier_ranks(folder, rank_wait_s)
        _HELD[folder] = (lock, 1)
        yield lock
    finally:
        _HELD.pop(folder, None)
        lock.release()


def _wait_for_earlier_ranks(folder: Path, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    announced = False
    for path in sorted((folder / LOCK_DIR).glob("rank-*.lock")):
        probe = FileLock(path, {})
        while not probe.try_acquire():
            info = probe.read()
            if time.monotonic() > deadline:
                raise RunFolderInUse(
                    f"{folder} is in use by a live run: {_describe(info)} still runs there; "
                    f"{_advice(info)}, or choose another --out"
                )
            if not announced:
                log.warning(
                    "waiting up to %.0f s for %s of an earlier run to stop", wait_s, _describe(info)
                )
                announced = True
            time.sleep(0.5)
        probe.release()


@contextlib.contextmanager
def hold_rank(
    folder: str | os.PathLike,
    rank: int,
    *,
    job: str | None = None,
    executor: str | None = None,
    wait_s: float = 60.0,
) -> Iterator[FileLock]:
    """A rank's claim on the run folder, held while it trains (see the module doc)."""
    lock = FileLock(
        Path(folder) / LOCK_DIR / f"rank-{rank}.lock",
        _identity(f"rank {rank}", job=job, executor=executor),
    )
    deadline = time.monotonic() + wait_s
    while not lock.try_acquire():
        if time.monotonic() > deadline:
            info = lock.read()
            raise RunFolderInUse(
                f"{folder}: {_describe(info)} still holds rank {rank}; {_advice(info)}"
            )
        time.sleep(0.5)
    try:
        yield lock
    finally:
        lock.release()
