"""Readers of the real releases, one module per file format.

Every reader is a generator of `SourceItem`s: a `StructureRecord` in eV / Angstrom / eV/A (or
None with the reason when one input record cannot be parsed), plus the group key that keeps
near-duplicate frames (one relaxation, one reaction, one molecule) on one side of a split.
A file that cannot be read at all raises `CorruptInputError` naming it. Physical checks (finite
values, shapes, distances, atom counts) belong to `lamm.data.checks`, not to the readers.
"""

from __future__ import annotations

import contextlib
import lzma
import pickle
import sqlite3
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import lmdb

from lamm.data.record import StructureRecord

# Why a reader could not build a record (the checks of lamm.data.checks add their own reasons).
UNPARSABLE_RECORD = "unparsable_record"
MISSING_REFERENCE = "missing_reference_energy"


@dataclass(frozen=True)
class SourceItem:
    """One input record: the structure, its split group, or the reason it could not be built."""

    record: StructureRecord | None
    group: str
    skip_reason: str | None = None


class CorruptInputError(ValueError):
    """An input file that cannot be read; the message starts with the file's path."""


# Errors that mean "this file is damaged or not what it claims to be".
_FILE_ERRORS = (
    OSError,
    EOFError,
    ValueError,
    KeyError,
    TypeError,
    IndexError,
    AttributeError,
    lzma.LZMAError,
    zlib.error,
    pickle.UnpicklingError,
    lmdb.Error,
    sqlite3.Error,
)


@contextlib.contextmanager
def reading(path: Path, what: str = "") -> Iterator[None]:
    """Turn any error while reading `path` into a CorruptInputError that names it."""
    try:
        yield
    except CorruptInputError:
        raise
    except _FILE_ERRORS as err:
        where = f"{path}{f' ({what})' if what else ''}"
        raise CorruptInputError(f"{where}: cannot be read: {type(err).__name__}: {err}") from err


def input_files(path: str | Path, suffixes: Sequence[str]) -> list[Path]:
    """`path` itself if it is not a directory, else the files in it (not recursive) ending with a
    suffix, sorted. (A named pipe counts as a file: a conversion can read from a stream.)"""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"input {path} does not exist")
    if not path.is_dir():
        return [path]
    files = sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(tuple(suffixes)))
    if not files:
        raise FileNotFoundError(f"no {' or '.join(suffixes)} files in {path}")
    return files
