"""Per-step, per-rank timing: the raw material of the paper's Fig. 6.

A step on one rank is split into
    data       waiting for the next batch from the DataLoader
    forward    forward pass and this rank's loss terms
    backward   the loss all-reduce (global label counts) and the backward pass including DDP's
               gradient all-reduce (so it contains the waits for the slowest rank)
    optimizer  clipping, optimizer, scheduler and EMA update
and `compute` = forward + the backward from the end of the loss all-reduce up to the moment
this rank's last gradient bucket was ready (recorded by a DDP communication hook), i.e. the
work of this rank alone. The idle time of a rank in a step is max over ranks of compute minus
its own compute: what load balancing removes.

On a GPU the clock is synchronized at each mark (`synchronize=True`), which costs a little
overlap but measures the kernels rather than their launch.
"""

# No `from __future__ import annotations`: DDP checks the hook's annotations at runtime.
import time
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

COLUMNS = ("data_s", "forward_s", "backward_s", "optimizer_s", "compute_s", "atoms", "structures")


@dataclass
class BucketClock:
    """Time at which DDP handed the last gradient bucket of the current backward to the hook."""

    last_ready: float | None = None
    synchronize: bool = False


def timed_allreduce_hook(
    state: BucketClock, bucket: dist.GradBucket
) -> torch.futures.Future[torch.Tensor]:
    """DDP comm hook: note when this bucket's gradients are ready, then all-reduce as usual."""
    if state.synchronize and bucket.buffer().is_cuda:
        torch.cuda.synchronize(bucket.buffer().device)
    state.last_ready = time.perf_counter()
    return default_hooks.allreduce_hook(None, bucket)


@dataclass
class StepClock:
    """Marks the boundaries of one step on this rank."""

    device: torch.device
    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.marks[name] = time.perf_counter()

    def row(self, bucket_clock: BucketClock | None, atoms: int, structures: int) -> list[Any]:
        """[data, forward, backward, optimizer, compute, atoms, structures] in seconds/counts."""
        m = self.marks
        forward = m["forward"] - m["batch"]
        backward = m["backward"] - m["forward"]
        compute_end = (
            bucket_clock.last_ready if bucket_clock and bucket_clock.last_ready else m["backward"]
        )
        backward_start = m.get("reduced", m["forward"])
        compute = forward + max(0.0, min(compute_end, m["backward"]) - backward_start)
        return [
            m["batch"] - m["start"],
            forward,
            backward,
            m["optimizer"] - m["backward"],
            compute,
            atoms,
            structures,
        ]
