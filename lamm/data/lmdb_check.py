"""Check an LMDB file against its own header before it is memory-mapped.

LMDB maps the whole file and follows page numbers into it. A file cut short (an interrupted
copy to scratch, a full disk) still has a valid header, and reading a page past its end kills
the process with SIGBUS: no exception, no message. So before opening a store we read the two
meta pages with plain file reads and compare the size they promise with the file's size.

Layout of a meta page (LMDB 0.9, 64-bit; py-lmdb bundles it), offsets from the page start:
    0   page header (pgno u64, pad u16, flags u16, lower u16, upper u16)
    16  mm_magic u32 = 0xBEEFC0DE, 20 mm_version u32
    24  mm_address ptr, 32 mm_mapsize u64
    40  mm_dbs[0] (the free list; its md_pad u32 holds the page size), 88 mm_dbs[1] (main db)
    136 mm_last_pg u64 (last page in use), 144 mm_txnid u64
Pages 0 and 1 are the two meta pages; the one with the larger txnid is current. The file holds
at least (mm_last_pg + 1) pages.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

MAGIC = 0xBEEFC0DE
DATA_VERSION = 1
_HEADER = 16  # page header before the meta
_MAGIC_AT, _PSIZE_AT, _LAST_PG_AT, _TXNID_AT = _HEADER, _HEADER + 24, _HEADER + 120, _HEADER + 128
_META_END = _TXNID_AT + 8
_MIN_PAGE, _MAX_PAGE = 512, 1 << 16


class LmdbFileError(ValueError):
    """An LMDB file that is not one, or does not hold what its header says."""


def _meta(raw: bytes, offset: int) -> tuple[int, int, int, int] | None:
    """(magic, page size, last page, txnid) of the meta at `offset`, or None if out of range."""
    if len(raw) < offset + _META_END:
        return None
    (magic,) = struct.unpack_from("=I", raw, offset + _MAGIC_AT)
    (psize,) = struct.unpack_from("=I", raw, offset + _PSIZE_AT)
    (last_pg, txnid) = struct.unpack_from("=QQ", raw, offset + _LAST_PG_AT)
    return magic, psize, last_pg, txnid


def expected_size(path: str | os.PathLike) -> tuple[int, int, int]:
    """(bytes the header says the file holds, page size, the file's size); raises LmdbFileError."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        first = handle.read(_META_END)
        meta0 = _meta(first, 0)
        if meta0 is None or meta0[0] != MAGIC:
            raise LmdbFileError(
                f"{path} is not a readable structure store: not an LMDB file (no LMDB "
                f"header in its first bytes; {size} bytes)"
            )
        psize = meta0[1]
        if not (_MIN_PAGE <= psize <= _MAX_PAGE) or psize & (psize - 1):
            raise LmdbFileError(
                f"{path} is not a readable structure store: corrupted LMDB header (page "
                f"size {psize})"
            )
        handle.seek(psize)
        second = handle.read(_META_END)
    (version,) = struct.unpack_from("=I", first, _MAGIC_AT + 4)
    if version != DATA_VERSION:
        raise LmdbFileError(
            f"{path} is not a readable structure store: LMDB data version {version}, "
            f"expected {DATA_VERSION}"
        )
    metas = [meta0]
    meta1 = _meta(second, 0)
    if meta1 is None:
        raise LmdbFileError(
            f"{path} is not a readable structure store: truncated LMDB file: {size} bytes, "
            f"less than its two header pages ({2 * psize} bytes)"
        )
    if meta1[0] == MAGIC:
        metas.append(meta1)
    current = max(metas, key=lambda meta: meta[3])  # the meta of the latest transaction
    return (current[2] + 1) * psize, psize, size


def check_lmdb_file(path: str | os.PathLike) -> None:
    """Raise LmdbFileError (naming the file, the expected and the actual size) if `path` is not
    a whole LMDB file; never touches it through mmap."""
    expected, psize, size = expected_size(path)
    if size < expected:
        raise LmdbFileError(
            f"{path} is not a readable structure store: truncated LMDB file: its header "
            f"says {expected} bytes ({expected // psize} pages of "
            f"{psize}), the file has {size} bytes ({100 * size / expected:.0f}%); an "
            "interrupted copy? "
            "Copy or convert it again"
        )
