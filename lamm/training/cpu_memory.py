"""Keep freed memory inside a CPU training process instead of handing it back to the OS.

glibc's malloc serves blocks above a threshold (128 KiB to start with) with fresh `mmap`s and
gives them back with `munmap` when freed, and trims the top of the heap when more than a
threshold is free there. A training step allocates and frees the same large tensors (edge
messages: edges x channels) every step, so with the defaults every step pays page faults on
memory it had a moment ago, and the larger the batch the larger its share of fresh pages: the
cost per edge rises with the batch size, so a sampler that groups the large structures into the
same steps (as LaMM's does) pays more for the same structures (docs/results.md has the
numbers). The settings below make freed blocks stay in the heap for reuse: blocks up to 32 MiB
come from the heap, and up to 1 GiB of free heap is kept. The price is that the process keeps
its peak memory, which a training process reaches every step anyway.

GPU training allocates through PyTorch's caching allocator and does not need this. On
platforms without glibc (macOS, musl) nothing changes. `LAMM_MALLOC_TUNING=0` turns it off.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import sys

log = logging.getLogger(__name__)

# mallopt parameters (glibc malloc.h)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 << 20  # the largest glibc accepts (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 1 << 30
TOP_PAD = 64 << 20  # grow the heap in large steps: fewer brk calls while a step's tensors grow
OPT_OUT_ENV = "LAMM_MALLOC_TUNING"


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "gnu_get_libc_version") else None


def retain_freed_memory() -> bool:
    """Apply the malloc settings above to this process; True when they were applied."""
    if os.environ.get(OPT_OUT_ENV, "1") == "0":
        return False
    libc = _glibc()
    if libc is None:
        return False
    settings = (
        (M_MMAP_THRESHOLD, MMAP_THRESHOLD),
        (M_TRIM_THRESHOLD, TRIM_THRESHOLD),
        (M_TOP_PAD, TOP_PAD),
    )
    applied = all(libc.mallopt(parameter, value) == 1 for parameter, value in settings)
    if not applied:
        log.warning("glibc refused the malloc settings; CPU training runs with the defaults")
    return applied
