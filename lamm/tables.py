"""Result tables: rows of dicts written as CSV atomically (a temp file renamed into place)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pandas as pd


def write_csv(rows: Sequence[dict], path: str | os.PathLike) -> Path:
    """Write `rows` (one dict per row, same keys) to `path`; an interrupted write leaves nothing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        pd.DataFrame(list(rows)).to_csv(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
