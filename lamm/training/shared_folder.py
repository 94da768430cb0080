"""Check at start that the ranks share the run folder (one file system, the same path).

Rank 0 writes the checkpoints, CSV logs and run inputs; the requeued job reads `last.pt`; the
launcher holds its lock there and reads the ranks' logs. Ranks on nodes that see different
folders under the same path (a node-local /tmp, a scratch disk mounted on one node only) would
train, and the checkpoint would land where the next attempt does not look. So every rank
writes a marker into `<run folder>/.shared-check/<token>/`, rank 0 waits until it sees all of
them (NFS may show another client's file only after its attribute cache expires: up to a
minute), and every rank stops with the same reason when it does not.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import time
from pathlib import Path

import torch.distributed as dist

from lamm.training.distributed import DistributedContext

log = logging.getLogger(__name__)

TIMEOUT_ENV = "LAMM_SHARED_CHECK_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 120.0
FOLDER = ".shared-check"


class SharedFolderError(RuntimeError):
    """The ranks do not share the run folder."""


def _timeout_s() -> float:
    return float(os.environ.get(TIMEOUT_ENV) or DEFAULT_TIMEOUT_S)


def _missing_after(folder: Path, world_size: int, timeout_s: float) -> list[int]:
    """The ranks whose marker rank 0 has not seen when all are there or `timeout_s` is up."""
    deadline = time.monotonic() + timeout_s
    while True:
        present = {p.name for p in folder.iterdir()} if folder.is_dir() else set()
        missing = [r for r in range(world_size) if f"rank-{r}" not in present]
        if not missing or time.monotonic() > deadline:
            return missing
        time.sleep(0.2)


def check_shared_folder(
    run_dir: str | os.PathLike, context: DistributedContext, timeout_s: float | None = None
) -> None:
    """Raise SharedFolderError on every rank unless rank 0 sees every rank's marker in time."""
    if not context.distributed:
        return
    run_dir = Path(run_dir).resolve()
    timeout_s = _timeout_s() if timeout_s is None else timeout_s
    token = [f"{os.getpid()}-{time.time_ns()}" if context.is_main else None]
    dist.broadcast_object_list(token)  # one folder per attempt: old markers prove nothing
    folder = run_dir / FOLDER / str(token[0])
    folder.mkdir(parents=True, exist_ok=True)
    marker = {"rank": context.rank, "host": socket.gethostname(), "path": str(run_dir)}
    partial = folder / f".rank-{context.rank}.partial"
    partial.write_text(json.dumps(marker))
    partial.replace(folder / f"rank-{context.rank}")
    hosts: list[str | None] = [None] * context.world_size
    dist.all_gather_object(hosts, marker["host"])
    verdict = [""]
    if context.is_main:
        missing = _missing_after(folder, context.world_size, timeout_s)
        if missing:
            seen_on = ", ".join(f"rank {r} on {hosts[r]}" for r in missing)
            verdict[0] = (
                f"the run folder {run_dir} is not shared: rank 0 on {hosts[0]} did not see the "
                f"markers that {seen_on} wrote there within {timeout_s:.0f} s; put the run folder "
                "(and the stores, the MLflow store) on a file system every node mounts at the same "
                f"path (docs/cluster.md), or raise {TIMEOUT_ENV} for a slow one"
            )
        shutil.rmtree(run_dir / FOLDER, ignore_errors=True)
    dist.broadcast_object_list(verdict)
    if verdict[0]:
        raise SharedFolderError(verdict[0])
    log.debug("run folder %s shared by %d ranks", run_dir, context.world_size)
