"""Tracking that outlives an MLflow server going away: buffer, retry, one warning, never a dead run.

A multi-day run logs to an MLflow server that may restart, move or drop off the network. Metric
batches go to a `MetricWriter`, whose daemon thread delivers them in order: a batch that fails
with an outage (no connection, a timeout, a 5xx answer, a locked or unreadable SQLite file) is
kept and retried with backoff, while training goes on; the first failure of an outage logs one
warning, the recovery one info line. A batch the store refuses for good (a 4xx answer: bad
input) is dropped with an error line, since sending it again cannot help. At the end the run
waits up to `LAMM_MLFLOW_WAIT_S` (default 120 s) for the backlog, then says what was not sent
(the run's metrics.csv has every value) and ends normally.

Before each call to a server, a TCP connection to it is tried (`reachability_check`): a server
that is down or cut off counts as an outage at once, instead of after MLflow's own HTTP retries
(MLFLOW_HTTP_REQUEST_MAX_RETRIES: minutes of backoff, a urllib3 warning each).
"""

from __future__ import annotations

import collections
import logging
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

WAIT_ENV = "LAMM_MLFLOW_WAIT_S"
DEFAULT_WAIT_S = 120.0
MAX_BACKOFF_S = 10.0


def wait_s() -> float:
    """How long the end of a run waits for an unreachable tracking store."""
    return float(os.environ.get(WAIT_ENV) or DEFAULT_WAIT_S)


def is_outage(err: BaseException) -> bool:
    """Whether `err` says the store is unreachable for now (retry) rather than that the call is
    wrong (do not)."""
    from mlflow.exceptions import MlflowException

    if isinstance(err, MlflowException):
        status = err.get_http_status_code()
        return status >= 500 or status in (408, 429)
    if isinstance(err, (ConnectionError, TimeoutError)):
        return True
    names = {cls.__name__ for cls in type(err).__mro__}
    return bool(names & {"RequestException", "OperationalError"})  # requests, sqlalchemy


def reachability_check(uri: str, timeout_s: float = 5.0) -> Callable[[], None]:
    """A check that raises ConnectionError when the server of an http(s) `uri` does not accept
    a connection (a no-op for other stores)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return lambda: None
    address = (parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))

    def check() -> None:
        try:
            with socket.create_connection(address, timeout=timeout_s):
                pass
        except OSError as err:
            raise ConnectionError(f"{address[0]}:{address[1]}: {err.strerror or err}") from None

    return check


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0][:300]}" if text else type(err).__name__


def retry_outages(call: Callable[[], T], what: str, deadline: float) -> tuple[bool, T | None]:
    """`call()` until it succeeds or `deadline` (monotonic) passes while the store is out:
    (True, result), or (False, None) after one warning. Other errors are raised."""
    backoff, warned = 1.0, False
    while True:
        try:
            return True, call()
        except Exception as err:
            if not is_outage(err):
                raise
            if not warned:
                log.warning("MLflow: %s failed (%s); retrying", what, first_line(err))
                warned = True
            if time.monotonic() + backoff > deadline:
                log.warning("MLflow: gave up on %s: the store did not answer in time", what)
                return False, None
            time.sleep(backoff)
            backoff = min(2 * backoff, MAX_BACKOFF_S)


class MetricWriter:
    """Delivers metric batches in order from a daemon thread (see the module docstring)."""

    def __init__(self, send: Callable[[Sequence[Any]], None], store: str) -> None:
        self._send, self._store = send, store
        self._pending: collections.deque[Sequence[Any]] = collections.deque()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self.dropped = 0

    def put(self, batch: Sequence[Any]) -> None:
        with self._changed:
            self._pending.append(batch)
            self._closing = False
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="mlflow", daemon=True)
                self._thread.start()
            self._changed.notify_all()

    def backlog(self) -> int:
        """Metric values not yet delivered."""
        with self._changed:
            return sum(len(batch) for batch in self._pending)

    def drain(self, timeout_s: float) -> bool:
        """Wait until every batch is delivered (True) or `timeout_s` is up (False)."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while self._pending and time.monotonic() < deadline:
                self._changed.wait(min(1.0, max(deadline - time.monotonic(), 0.0)))
            self._closing = not self._pending
            self._changed.notify_all()
            return not self._pending

    def _next(self) -> Sequence[Any] | None:
        with self._changed:
            while not self._pending and not self._closing:
                self._changed.wait()
            return self._pending[0] if self._pending else None

    def _delivered(self) -> None:
        with self._changed:
            self._pending.popleft()
            self._changed.notify_all()

    def _run(self) -> None:
        backoff, down_since = 1.0, None
        while (batch := self._next()) is not None:
            try:
                self._send(batch)
            except Exception as err:
                if is_outage(err):
                    if down_since is None:
                        down_since = time.monotonic()
                        log.warning(
                            "MLflow at %s does not answer (%s): training goes on, metrics are "
                            "kept and sent when it answers again",
                            self._store,
                            first_line(err),
                        )
                    with self._changed:
                        self._changed.wait(backoff)  # a drain() may end the wait early
                    backoff = min(2 * backoff, MAX_BACKOFF_S)
                    continue
                self.dropped += len(batch)
                log.error("MLflow refused %d metric values: %s", len(batch), first_line(err))
            if down_since is not None:
                log.info(
                    "MLflow at %s answers again after %.0f s; sending the kept metrics",
                    self._store,
                    time.monotonic() - down_since,
                )
                down_since, backoff = None, 1.0
            self._delivered()
