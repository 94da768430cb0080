"""One-line command errors: `lamm <command>: error: <message>` on stderr and exit status 1.

Expected failures (a missing or unreadable file, a store without a needed split, an unknown head,
a config error) are user errors, not bugs: they get one argparse-style line instead of a
traceback. `-v` logs the traceback as well (debug level).
"""

from __future__ import annotations

import logging
import sys

log = logging.getLogger(__name__)

# What the commands catch: ValueError (ConfigError, bad stores, unknown heads, missing splits),
# FileNotFoundError and other OSErrors (paths), KeyError (a checkpoint without a needed entry).
USER_ERRORS = (ValueError, OSError, KeyError)


def one_line(err: BaseException) -> str:
    """The message of `err` on one line (a multi-line config error joined with '; ')."""
    text = str(err.args[0] if isinstance(err, KeyError) and err.args else err)
    cause = str(err.__cause__ or "")
    if (
        cause and cause in text and (len(cause) > 120 or "\n" in cause)
    ):  # torch.load's page-long advice
        text = text.replace(cause, type(err.__cause__).__name__)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines) or type(err).__name__


def fail(command: str, err: BaseException, status: int = 1) -> int:
    """Print `lamm <command>: error: ...` and return the exit status."""
    log.debug("lamm %s failed", command, exc_info=err)
    print(f"lamm {command}: error: {one_line(err)}", file=sys.stderr)
    return status
