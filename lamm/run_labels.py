"""The `epoch_<e>` run-label convention, in one place for the library and the workflow's rules.

A pre-training checkpoint kept at fractional epoch e is `checkpoints/epoch_<e>.pt`, and a
fine-tuning run that starts from it lives in a folder labelled `epoch_<e>` (then `_frac<f>`,
`_gradient`, `_seed<k>` as the workflow adds them). `<e>` is `epoch_label(e)`: the shortest
decimal that names the epoch, so 2.0 and 2 are one file. Imports nothing heavy: the Snakefile
reads it while it parses.
"""

from __future__ import annotations

import re
from pathlib import Path

SCRATCH = "scratch"
EPOCH_PREFIX = "epoch_"
# an epoch label in a run label or file name (regex; no group names, for Snakemake constraints)
EPOCH_VALUE_PATTERN = r"[0-9]+(?:\.[0-9]+)?"


def epoch_label(epoch: float) -> str:
    """File-name form of a fractional epoch: 0 -> '0', 0.1 -> '0.1', 2.0 -> '2'."""
    text = f"{float(epoch):.6f}".rstrip("0").rstrip(".")
    return text or "0"


def epoch_run_label(epoch: float | str) -> str:
    """`epoch_<e>` for an epoch (a number) or an epoch label (a string, taken as it is)."""
    return EPOCH_PREFIX + (epoch if isinstance(epoch, str) else epoch_label(epoch))


def checkpoint_file(epoch: float | str) -> str:
    """The file name of the pre-training checkpoint at `epoch`: `epoch_<e>.pt`."""
    return f"{epoch_run_label(epoch)}.pt"


def epoch_of_checkpoint(path: str | Path) -> str | None:
    """The epoch label of an `epoch_<e>.pt` file name (`epoch_0.1.pt` -> '0.1'), else None."""
    match = re.fullmatch(rf"{EPOCH_PREFIX}(.+)\.pt", Path(path).name)
    return match.group(1) if match else None


def run_label_of_checkpoint(path: str | Path) -> str:
    """The fine-tuning run label of a checkpoint file: `epoch_<e>` for `epoch_<e>.pt`, and
    `epoch_<stem>` for any other file (`last.pt` -> `epoch_last`)."""
    return EPOCH_PREFIX + Path(path).stem.removeprefix(EPOCH_PREFIX)
