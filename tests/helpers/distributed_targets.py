"""Module-level functions that submitit can pickle by reference and run on every rank."""

import torch

from lamm.training.distributed import (
    all_gather_rows,
    all_reduce_sum,
    init_distributed,
    main_rank_first,
    shutdown,
)


def sum_of_ranks(offset: float, resume: bool = False) -> dict:
    context = init_distributed("cpu", threads_per_rank=1)
    total = all_reduce_sum(torch.tensor([offset + context.rank], dtype=torch.float64), context)
    rows = all_gather_rows(torch.tensor([float(context.rank), 2.0 * context.rank]), context)
    shutdown()
    return {
        "rank": context.rank,
        "world_size": context.world_size,
        "total": total.item(),
        "rows": rows.tolist(),
        "resume": resume,
    }


def sleep_and_report_pid(pid_dir: str, seconds: float = 120.0, resume: bool = False) -> None:
    """A rank that only writes its pid to `pid_dir/rank_<RANK>.pid` and then sleeps."""
    import os
    import time
    from pathlib import Path

    path = Path(pid_dir) / f"rank_{os.environ['RANK']}.pid"
    path.with_suffix(".tmp").write_text(str(os.getpid()))
    path.with_suffix(".tmp").replace(path)
    time.sleep(seconds)


def cache_seen_by_ranks(cache: str, resume: bool = False) -> list:
    """Every rank runs the same compute-or-read-the-cache function under `main_rank_first`.

    Rank 0 computes slowly and writes the cache; if the other rank did not wait for it, it would
    find no cache and compute too. Returns, per rank, whether it computed or read.
    """
    import time
    from pathlib import Path

    context = init_distributed("cpu", threads_per_rank=1)
    path = Path(cache)

    def compute_or_read() -> str:
        if path.is_file():
            return "read " + path.read_text()
        time.sleep(1.0)
        path.write_text(f"written by rank {context.rank}")
        return "computed"

    seen = main_rank_first(compute_or_read, context)
    rows = all_gather_rows(torch.tensor([1.0 if seen == "computed" else 0.0]), context)
    shutdown()
    return [seen, rows[:, 0].tolist()]


def check_run_folders(folders: list, timeout_s: float, resume: bool = False) -> str:
    """Rank r checks `folders[r]` as its run folder: different folders stand for node-local
    disks."""
    from lamm.training.shared_folder import check_shared_folder

    context = init_distributed("cpu", threads_per_rank=1)
    check_shared_folder(folders[context.rank], context, timeout_s=timeout_s)
    shutdown()
    return "shared"
