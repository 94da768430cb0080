"""How fast the data path turns stored structures into `Batch`es (`lamm bench batching`).

The whole training data path is timed: temperature-sampled lamm batches of the train split,
record decoding, denoising noise, vesin neighbor lists, collation, and the DataLoader's
worker processes. The first batches (worker start-up) are excluded; the clock runs until
`batches` further batches were delivered (over as many epochs as needed).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from lamm import keys as K
from lamm.data.dataset import MultiStoreDataset
from lamm.data.loader import build_loader
from lamm.data.sampler import DistributedBatchSampler


def measure_batching(
    paths: Sequence[str | os.PathLike],
    *,
    workers: Sequence[int] = (0, 2),
    batch_size: int = 8,
    batches: int = 100,
    warmup: int = 3,
    cutoff: float = 6.0,
    max_neighbors: int | None = 50,
    temperature: float | None = 2.0,
    seed: int = 0,
) -> list[dict]:
    """One row per worker count: structures, atoms and edges per second into batches."""
    if batches < 1 or warmup < 0 or batch_size < 1:
        raise ValueError(
            f"need batches >= 1, warmup >= 0, batch_size >= 1; got {batches}, {warmup}, "
            f"{batch_size}"
        )
    dataset = MultiStoreDataset(
        paths, "train", cutoff=cutoff, max_neighbors=max_neighbors, seed=seed
    )
    rows = []
    for num_workers in workers:
        sampler = DistributedBatchSampler(
            dataset.natoms,
            dataset.sizes,
            batch_per_rank=batch_size,
            temperature=temperature,
            num_splits=1,
            seed=seed,
        )
        loader = build_loader(dataset, sampler, num_workers=num_workers)
        structures = atoms = edges = delivered = epoch = 0
        start = time.perf_counter()
        while delivered < warmup + batches:
            loader.set_epoch(epoch)
            for batch in loader:
                delivered += 1
                if delivered <= warmup:  # worker start-up: restart the clock
                    start = time.perf_counter()
                    continue
                structures += batch.num_graphs
                atoms += batch.num_nodes
                edges += batch[K.EDGE_INDEX].shape[1]
                if delivered == warmup + batches:
                    break
            epoch += 1
        seconds = time.perf_counter() - start
        del loader  # stops the workers
        rows.append(
            {
                "workers": num_workers,
                "batch_size": batch_size,
                "batches": batches,
                "structures": structures,
                "seconds": seconds,
                "structures_per_s": structures / seconds,
                "atoms_per_s": atoms / seconds,
                "edges_per_s": edges / seconds,
                "cutoff": cutoff,
                "max_neighbors": max_neighbors,
            }
        )
    return rows
