"""CPU training keeps freed memory for reuse (glibc malloc settings), or leaves malloc alone."""

import subprocess
import sys
import textwrap

import pytest

from lamm.training.cpu_memory import _glibc

# In a fresh interpreter: is a 16 MiB block served by mmap (hblks counts mmapped blocks), and is
# the heap trimmed after it is freed (fordblks: free bytes kept in the heap)?
PROBE = textwrap.dedent("""
    import ctypes, json, sys
    from lamm.training.cpu_memory import retain_freed_memory

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost")]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    applied = retain_freed_memory() if sys.argv[1] == "tuned" else None
    size = 16 << 20
    before = libc.mallinfo2()
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)  # touch it, as a tensor would be
    during = libc.mallinfo2()
    libc.free(block)
    after = libc.mallinfo2()
    mmapped = during.hblks - before.hblks
    print(json.dumps({"applied": applied, "mmapped": mmapped, "kept_free": after.fordblks}))
""")


def _probe(mode: str, **env) -> dict:
    import json
    import os

    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    return json.loads(out.stdout)


@pytest.mark.skipif(_glibc() is None, reason="needs glibc (Linux)")
def test_tuned_malloc_keeps_large_blocks_in_the_heap():
    default = _probe("default")
    assert (
        default["mmapped"] == 1 and default["kept_free"] < 16 << 20
    )  # fresh mmap, unmapped on free
    tuned = _probe("tuned")
    assert tuned["applied"] is True
    assert (
        tuned["mmapped"] == 0 and tuned["kept_free"] >= 16 << 20
    )  # from the heap, kept for the next step
    opted_out = _probe("tuned", LAMM_MALLOC_TUNING="0")
    assert opted_out["applied"] is False and opted_out["mmapped"] == 1
