"""What every figure of the project shares: markers, the periodic-table layout, atomic saving.

Colour-blind-safe colours throughout (seaborn's "colorblind" palette for subsets, cividis for
the heatmap), markers that differ in shape as well as colour, fonts of 9 pt or more at the
saved size. Figures are written to a temporary file and renamed, like every output.
"""

from __future__ import annotations

import os
from pathlib import Path

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h", "p")
_PERIOD_STARTS = (1, 3, 11, 19, 37, 55, 87, 119)


def periodic_table_position(z: int) -> tuple[int, int]:
    """0-based (row, column) of element `z` in the 18-column table: rows 0-6 are the periods,
    lanthanides and actinides go to rows 7 and 8 under groups 3-17, as usually drawn."""
    if not 1 <= z <= 118:
        raise ValueError(f"atomic number {z} outside 1..118")
    period = next(p for p in range(7) if _PERIOD_STARTS[p] <= z < _PERIOD_STARTS[p + 1])
    offset = z - _PERIOD_STARTS[period]
    if period == 0:
        return 0, 0 if z == 1 else 17
    if period in (1, 2):
        return period, offset if offset < 2 else offset + 10
    if period in (3, 4):
        return period, offset
    # periods 6 and 7: s block, f block (own row), then d and p blocks from group 4
    if offset < 2:
        return period, offset
    if offset < 17:
        return period + 2, offset  # La..Lu / Ac..Lr in their own rows, under groups 3..17
    return period, offset - 14


def save_figure(figure, path: str | os.PathLike) -> Path:
    """Write a figure atomically (a temporary name, then rename) at 200 dpi, close it, return the
    path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    figure.savefig(tmp, dpi=200, bbox_inches="tight")
    tmp.replace(path)
    plt.close(figure)
    return path
