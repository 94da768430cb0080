"""Process-group setup for one rank: gloo on CPU, NCCL on GPU, `env://` rendezvous.

The launcher (`lamm.launch`, through submitit) or `torchrun` sets RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR and MASTER_PORT; a plain single process needs none of them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from lamm.training.cpu_memory import retain_freed_memory

T = TypeVar("T")


@dataclass(frozen=True)
class DistributedContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(
    device: str = "auto", threads_per_rank: int | None = None
) -> DistributedContext:
    """Join the process group described by the environment (or run alone).

    `device`: "auto" (a GPU per local rank when CUDA is available, else CPU), "cpu" or "cuda".
    `threads_per_rank` caps torch's intra-op threads, so that ranks sharing a CPU do not
    oversubscribe it (2 ranks x 2 threads on 2 cores is slower than 2 x 1).
    """
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    rank = int(os.environ.get("RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    use_cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but CUDA is not available")
    if use_cuda:
        torch.cuda.set_device(local_rank)
        target = torch.device("cuda", local_rank)
    else:
        target = torch.device("cpu")
        retain_freed_memory()  # CPU steps reuse their large tensors (lamm.training.cpu_memory)
    if threads_per_rank is not None:
        torch.set_num_threads(threads_per_rank)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(
            "nccl" if use_cuda else "gloo",
            init_method="env://",
            rank=rank,
            world_size=world_size,
            device_id=target if use_cuda else None,
        )
    return DistributedContext(
        rank=rank, world_size=world_size, local_rank=local_rank, device=target
    )


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def main_rank_first(compute: Callable[[], T], context: DistributedContext) -> T:
    """`compute()` on rank 0, then (after a barrier) on the other ranks.

    For work that caches its result on disk (dataset statistics): rank 0 computes and writes
    the cache, the others then read it instead of computing the same thing at the same time.
    """
    if context.is_main:
        result = compute()
    if context.distributed:
        dist.barrier()
    if not context.is_main:
        result = compute()
    return result


def all_gather_rows(row: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """[k] on every rank -> [world_size, k] on every rank (the row itself when alone)."""
    if not context.distributed:
        return row.unsqueeze(0)
    row = row.to(context.device)
    rows = [torch.empty_like(row) for _ in range(context.world_size)]
    dist.all_gather(rows, row)
    return torch.stack(rows).cpu()


def all_reduce_sum(values: torch.Tensor, context: DistributedContext) -> torch.Tensor:
    """Sum a tensor over ranks (returned on the CPU)."""
    if not context.distributed:
        return values
    values = values.to(context.device)
    dist.all_reduce(values)
    return values.cpu()
