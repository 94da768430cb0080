"""Module-level functions that submitit can pickle by reference and run on every rank."""

import torch

from lamm.training.distributed import all_gather_rows, all_reduce_sum, init_distributed, shutdown


def sum_of_ranks(offset: float, resume: bool = False) -> dict:
    context = init_distributed("cpu", threads_per_rank=1)
    total = all_reduce_sum(torch.tensor([offset + context.rank], dtype=torch.float64), context)
    rows = all_gather_rows(torch.tensor([float(context.rank), 2.0 * context.rank]), context)
    shutdown()
    return {"rank": context.rank, "world_size": context.world_size, "total": total.item(), "rows": rows.tolist(), "resume": resume}


def sleep_and_report_pid(pid_dir: str, seconds: float = 120.0, resume: bool = False) -> None:
    """A rank that only writes its pid to `pid_dir/rank_<RANK>.pid` and then sleeps."""
    import os
    import time
    from pathlib import Path

    path = Path(pid_dir) / f"rank_{os.environ['RANK']}.pid"
    path.with_suffix(".tmp").write_text(str(os.getpid()))
    path.with_suffix(".tmp").replace(path)
    time.sleep(seconds)
