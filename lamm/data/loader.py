"""The training DataLoader: workers build graphs ahead of the model; steps are counted for resume.

Workers (processes) decode records, add noise, build vesin neighbor lists and collate
`Batch`es while the model trains; `prefetch_factor` batches per worker wait in a queue. The
batch sampler runs in the main process and only hands out small `SampleKey`s. Each worker uses
one torch thread (the graph building is numpy and small tensors; more threads only contend with
the training process for cores).
"""

from __future__ import annotations

import atexit
import multiprocessing
import signal
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DataLoader
from torch_geometric.data import Batch

from lamm.data.dataset import MultiStoreDataset
from lamm.data.graph import collate
from lamm.data.sampler import DistributedBatchSampler


def _one_thread(_worker_id: int) -> None:
    torch.set_num_threads(1)
    # SLURM signals every process of a job step (scancel, requeue, the time-limit signal), workers
    # included: a worker killed by SIGTERM or SIGUSR2 would fail the rank before it can save.
    # The rank stops its workers itself (lamm.training.stop); they also exit when it dies.
    for signum in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, signal.SIG_IGN)


def _kill_workers() -> None:
    """At exit, multiprocessing terminates daemonic children with SIGTERM and waits for them;
    workers ignore SIGTERM, so kill them first (atexit runs handlers registered later first)."""
    for child in multiprocessing.active_children():
        if child.daemon:
            child.kill()


_KILL_AT_EXIT: list[bool] = []


class EpochLoader:
    """Iterates `Batch`es of one epoch; `state_dict()` counts the steps delivered to the caller.

    A DataLoader asks its batch sampler for keys ahead of time, so the sampler cannot know how
    many steps were trained; this wrapper does, and its state resumes at the next untrained
    step (`set_epoch`, `len`, `state_dict`, `load_state_dict` as on the sampler).
    """

    def __init__(
        self,
        dataset: MultiStoreDataset,
        sampler: DistributedBatchSampler,
        *,
        num_workers: int = 2,
        prefetch_factor: int = 4,
        pin_memory: bool = False,
        persistent_workers: bool = True,
    ) -> None:
        if num_workers < 0:
            raise ValueError(f"num_workers must be non-negative, got {num_workers}")
        if len(sampler.natoms) != len(dataset):
            raise ValueError(
                f"the sampler covers {len(sampler.natoms)} samples, the dataset has {len(dataset)}"
            )
        self.dataset, self.sampler = dataset, sampler
        if num_workers and not _KILL_AT_EXIT:
            atexit.register(_kill_workers)
            _KILL_AT_EXIT.append(True)
        self.loader = DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=num_workers,
            prefetch_factor=prefetch_factor if num_workers else None,
            persistent_workers=persistent_workers and num_workers > 0,
            pin_memory=pin_memory,
            worker_init_fn=_one_thread if num_workers else None,
        )
        self._steps_done = 0

    def __len__(self) -> int:
        return len(self.sampler)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.sampler.epoch:
            self._steps_done = 0
        self.sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[Batch]:
        self._steps_done = self.sampler.start_step
        for batch in self.loader:
            self._steps_done += 1
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return self.sampler.state_dict(steps_done=self._steps_done)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state)
        self._steps_done = self.sampler.start_step

    def close(self) -> None:
        """Stop the workers now. Persistent workers otherwise live until the loader is garbage
        collected, at some later point of the process: workers forked for a later run in the same
        process (tests, a notebook) inherit the old loader and trip over it, and a run's first
        steps stalled by 10 s at such a collection."""
        iterator = getattr(self.loader, "_iterator", None)
        shutdown = getattr(iterator, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        self.loader._iterator = None


def build_loader(
    dataset: MultiStoreDataset,
    sampler: DistributedBatchSampler,
    *,
    num_workers: int = 2,
    prefetch_factor: int = 4,
    pin_memory: bool = False,
) -> EpochLoader:
    """The training loader of one rank (see `EpochLoader`)."""
    return EpochLoader(
        dataset,
        sampler,
        num_workers=num_workers,
        prefetch_factor=prefetch_factor,
        pin_memory=pin_memory,
    )
