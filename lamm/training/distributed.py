"""Process-group setup for one rank: gloo on CPU, NCCL on GPU, rank 0's TCPStore.

The launcher (`lamm.launch`, through submitit) or `torchrun` sets RANK, WORLD_SIZE,
LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT; a plain single process needs none
of them. The ranks meet through `lamm.training.rendezvous`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist

from lamm.training import stop
from lamm.training.cpu_memory import retain_freed_memory
from lamm.training.rendezvous import rendezvous

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


def choose_device(requested: str, env: Mapping[str, str], visible_gpus: int) -> torch.device:
    """The device of this rank, from the environment and the number of GPUs it sees.

    - all of a node's GPUs visible to each task (`--gpus-per-node`, torchrun): GPU LOCAL_RANK;
    - one GPU per task (`--gpus-per-task`, CUDA_VISIBLE_DEVICES with one entry): its first GPU;
    - no GPU: the CPU for "auto", an error for "cuda".
    """
    if requested not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, got {requested!r}")
    visible = env.get("CUDA_VISIBLE_DEVICES")
    shown = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
    if requested == "cpu" or (requested == "auto" and visible_gpus == 0):
        return torch.device("cpu")
    if visible_gpus == 0:
        raise RuntimeError(f"device 'cuda' was requested but this rank sees no GPU{shown}")
    local_rank = int(env.get("LOCAL_RANK", 0))
    ranks_here = int(env.get("LOCAL_WORLD_SIZE") or env.get("SLURM_NTASKS_PER_NODE") or 1)
    if env.get("SLURM_GPUS_PER_TASK") or visible_gpus == 1:
        return torch.device("cuda", 0)  # this task's own GPU(s)
    if local_rank < visible_gpus and ranks_here <= visible_gpus:
        return torch.device("cuda", local_rank)  # the node's GPUs, one per local rank
    raise RuntimeError(
        f"local rank {local_rank} of {ranks_here} ranks on this node, but {visible_gpus} GPUs "
        f"visible{shown}: ask for one GPU per rank (gpus_per_node = ranks_per_node, or "
        "gpus_per_task: 1)"
    )


def init_distributed(
    device: str = "auto", threads_per_rank: int | None = None
) -> DistributedContext:
    """Join the process group described by the environment (or run alone).

    `device`: "auto" (a GPU per rank when CUDA is available, else CPU; `choose_device`), "cpu"
    or "cuda". `threads_per_rank` caps torch's intra-op threads, so that ranks sharing a CPU do
    not oversubscribe it (2 ranks x 2 threads on 2 cores is slower than 2 x 1). Several ranks
    meet through `lamm.training.rendezvous` (a deadline, a stop signal honoured, one-line errors).
    """
    rank = int(os.environ.get("RANK", 0))
    world_size = int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    visible_gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    target = choose_device(device, os.environ, visible_gpus)
    if target.type == "cuda":
        torch.cuda.set_device(target)
    else:
        retain_freed_memory()  # CPU steps reuse their large tensors (lamm.training.cpu_memory)
    if threads_per_rank is not None:
        torch.set_num_threads(threads_per_rank)
    if world_size > 1 and not dist.is_initialized():
        with stop.prompt_exit():
            rendezvous(
                "nccl" if target.type == "cuda" else "gloo",
                rank,
                world_size,
                device_id=target if target.type == "cuda" else None,
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
