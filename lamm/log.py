"""One logging setup and one progress-bar helper for the whole package.

Progress bars are drawn only when stderr is a terminal: a redirected log (Snakemake's, SLURM's,
`2> run.log`) gets none, its lines are the log records. `LAMM_PROGRESS=0` (or CI) switches them
off on a terminal too, `LAMM_PROGRESS=1` forces them on.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
_NOISY_LIBRARIES = ("mlflow", "alembic", "urllib3", "matplotlib", "numba", "PIL", "h5py", "git")


def setup_logging(verbosity: int = 0) -> None:
    """Configure the root logger once: -1 quiet (warnings), 0 info, 1+ debug.

    Third-party libraries that log chattily at INFO (MLflow's schema migrations, numba's
    compiler) are held at WARNING unless verbosity is 2 or more.
    """
    level = logging.WARNING if verbosity < 0 else logging.INFO if verbosity == 0 else logging.DEBUG
    # MLflow installs its own handler and level when imported (later, lazily), overriding ours;
    # it reads this variable, which child processes (ranks, workers) inherit too.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "INFO" if verbosity >= 2 else "WARNING")
    logging.basicConfig(
        level=level, format=_FORMAT, datefmt="%H:%M:%S", stream=sys.stderr, force=True
    )
    for name in _NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)


def progress_enabled() -> bool:
    """Whether progress bars should be drawn in this process (module docstring)."""
    setting = os.environ.get("LAMM_PROGRESS", "").lower()
    if setting in ("0", "false", "no", "off"):
        return False
    if setting in ("1", "true", "yes", "on"):
        return True
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return False
    return sys.stderr.isatty()


def progress_bar(*, desc: str, total: int | None = None, unit: str = "it") -> tqdm:
    """A progress bar to `update()` by hand (an optimizer's or an MD integrator's callback)."""
    return tqdm(
        desc=desc,
        total=total,
        unit=unit,
        disable=not progress_enabled(),
        mininterval=0.5,
        dynamic_ncols=True,
        file=sys.stderr,
    )


def progress(
    iterable: Iterable[T], *, desc: str, total: int | None = None, unit: str = "it"
) -> Iterator[T]:
    """Wrap an iterable in a progress bar (see the module docstring for when it shows)."""
    yield from tqdm(
        iterable,
        desc=desc,
        total=total,
        unit=unit,
        disable=not progress_enabled(),
        mininterval=0.5,
        dynamic_ncols=True,
        file=sys.stderr,
    )
