"""The one place that talks to MLflow.

Every job opens one run: params (the resolved config, flattened), tags (stage, git commit, the
Snakemake rule and wildcards when the CLI was given them, a fingerprint of the input data),
metrics with steps, and artifacts. Only rank 0 writes; other ranks get a tracker whose calls do
nothing, so training code never branches on the rank.

Tracking URI: `MLFLOW_TRACKING_URI` if set (an MLflow server on a cluster), else
`sqlite:///results/mlflow.db` (relative to the working directory, made absolute so that
submitit workers and Snakemake jobs in other directories write to the same store).

SQLite and many writers: several Snakemake jobs (and the ranks' parent processes) write at
once. SQLite allows one writer at a time and MLflow's first use of a fresh file runs schema
migrations, which break when two processes run them together. Every call on a SQLite store
therefore takes an exclusive `flock` on `<db>.lock` (cheap: metrics are buffered and written in
batches), and experiment creation is get-or-create under that lock, so two jobs creating the
same experiment never race.

A store that stops answering mid-run (a server restarting, a network outage) does not end the
run: metrics are kept and retried from a writer thread, artifacts and the run's end are
retried for a while (`lamm.tracking_retry`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from lamm.tracking_retry import MetricWriter, reachability_check, retry_outages, wait_s

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TRACKING_URI = "sqlite:///results/mlflow.db"
DEFAULT_EXPERIMENT = "lamm"
# JSON object of extra tags, set by `lamm --tag K=V` and inherited by child processes
TAGS_ENV = "LAMM_RUN_TAGS"
MAX_PARAM_LENGTH = 6000  # MLflow's limit on a param value
METRIC_FLUSH_EVERY = 200  # buffered metric values before a write


def tracking_uri() -> str:
    """The tracking URI this process uses, with a SQLite path made absolute."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    path = sqlite_path(uri)
    if path is not None:
        return "sqlite:///" + str(path)
    return uri


def sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (absolute), or None for other stores."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return Path(uri[len(prefix) :]).resolve()


def extra_tags_from_env() -> dict[str, str]:
    """Tags handed down by `lamm --tag KEY=VALUE` (e.g. the Snakemake rule and wildcards)."""
    raw = os.environ.get(TAGS_ENV)
    if not raw:
        return {}
    try:
        tags = json.loads(raw)
    except json.JSONDecodeError as err:
        raise ValueError(f"{TAGS_ENV} is not a JSON object: {err}") from err
    return {str(k): str(v) for k, v in tags.items()}


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> {"a.b.c": "value"} with values as MLflow param strings."""
    flat: dict[str, str] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, prefix=name + "."))
        else:
            text = json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)
            flat[name] = (
                text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."
            )
    return flat


def fingerprint(
    paths: Iterable[str | os.PathLike], *, full_hash_limit: int = 2**20, edge_bytes: int = 2**16
) -> str:
    """A short, stable digest of input files or directories (their relative names and bytes).

    Files up to `full_hash_limit` bytes are hashed whole; larger ones by their size plus their
    first and last `edge_bytes`. A real release is tens of thousands of multi-megabyte files
    (OC20: ~27,000 files, 225 GB): reading them whole again for a tag would cost as much as
    the conversion, while size and edges still catch a changed or truncated download.
    """
    digest = hashlib.sha256()
    for root in sorted(Path(p) for p in paths):
        files = sorted(f for f in root.rglob("*") if f.is_file()) if root.is_dir() else [root]
        for file in files:
            name = file.relative_to(root) if root.is_dir() else Path(file.name)
            digest.update(str(name).encode())
            if not file.exists():
                digest.update(b"<missing>")
                continue
            size = file.stat().st_size
            digest.update(size.to_bytes(8, "little"))
            with open(file, "rb") as handle:
                if size <= full_hash_limit:
                    for block in iter(lambda: handle.read(2**20), b""):
                        digest.update(block)
                else:
                    digest.update(handle.read(edge_bytes))
                    handle.seek(size - edge_bytes)
                    digest.update(handle.read(edge_bytes))
    return digest.hexdigest()[:16]


def git_commit() -> str:
    """The commit of the lamm checkout (with `-dirty` when modified), or `unknown`."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def _experiment_id(client: Any, name: str, db: Path | None) -> str:
    """Get or create the experiment `name` (call under the store lock)."""
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    # Artifacts beside the SQLite file (results/mlartifacts), not in ./mlruns of whatever
    # directory the job happened to start in.
    location = None if db is None else (db.parent / "mlartifacts" / name).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except Exception as err:  # a server store: another client created it first
        experiment = client.get_experiment_by_name(name)
        if experiment is None:
            raise err
        return experiment.experiment_id


PARENT_TAG = "lamm.parent_run"  # value: the name of the sweep the parent run groups


def find_or_create_parent_run(
    name: str, stage: str, *, experiment: str = DEFAULT_EXPERIMENT, attempts: int = 8
) -> str:
    """The id of the parent run `name` of `stage` (e.g. one fine-tuning sweep), created once.

    Several jobs of a sweep start at once and each asks for the parent: on a SQLite store the
    search and the creation happen under one exclusive lock, so exactly one parent is created.
    (On an MLflow server there is no such lock; two simultaneous first jobs may then create two
    parents, and later jobs join the older one.) The parent holds no metrics: it groups the
    nested runs (`RunTracker(parent_run_id=...)`).
    """
    from mlflow.tracking import MlflowClient

    uri = tracking_uri()
    db = sqlite_path(uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    lock = _StoreLock(uri)
    query = f"tags.`{PARENT_TAG}` = '{name}' and tags.stage = '{stage}'"
    for attempt in range(attempts):
        try:
            with lock.held():
                client = MlflowClient(tracking_uri=uri)
                experiment_id = _experiment_id(client, experiment, db)
                found = client.search_runs(
                    [experiment_id],
                    filter_string=query,
                    order_by=["attributes.start_time ASC"],
                    max_results=1,
                )
                if found:
                    return found[0].info.run_id
                tags = {PARENT_TAG: name, "stage": stage, "git_commit": git_commit()}
                run = client.create_run(experiment_id, tags=tags, run_name=name)
                client.set_terminated(run.info.run_id, status="FINISHED")
                return run.info.run_id
        except Exception as err:  # MLflow wraps sqlite errors in several exception types
            if not _is_transient(err) or attempt == attempts - 1:
                raise
            time.sleep(0.2 * 2**attempt)
    raise AssertionError("unreachable")


class _StoreLock:
    """Serializes calls on a SQLite tracking store across processes; a no-op for servers."""

    def __init__(self, uri: str) -> None:
        db = sqlite_path(uri)
        self.lock_path = None if db is None else db.with_name(db.name + ".lock")
        if self.lock_path is not None:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self.lock_path is None:
            yield
            return
        with open(self.lock_path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _is_transient(err: Exception) -> bool:
    text = str(err).lower()
    return "database is locked" in text or "database table is locked" in text


class RunTracker:
    """One MLflow run of one job. Use as a context manager; on an exception the run is FAILED.

    Args:
        stage: pipeline stage (`data`, `pretrain`, `finetune`, `bench`, `analysis`, ...).
        run_name: a readable name (e.g. `pretrain-demo`).
        params: the resolved config of the job (nested mappings are flattened to `a.b.c`).
        inputs: files or directories the job reads; their fingerprint becomes the
            `data_fingerprint` tag.
        tags: extra tags; those of `lamm --tag` (environment) are added automatically.
        experiment: MLflow experiment name.
        parent_run_id: makes this a nested run (e.g. one fine-tuning run of a sweep).
        resume_run_id: reopen this run instead of creating one (a resumed training job).
        enabled: False on ranks other than 0: every call does nothing.
    """

    def __init__(
        self,
        stage: str,
        run_name: str,
        *,
        params: Mapping[str, Any] | None = None,
        inputs: Iterable[str | os.PathLike] = (),
        tags: Mapping[str, str] | None = None,
        experiment: str = DEFAULT_EXPERIMENT,
        parent_run_id: str | None = None,
        resume_run_id: str | None = None,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        self.run_id: str | None = None
        self._metrics: list[Any] = []
        if not enabled:
            return
        from mlflow.tracking import MlflowClient

        self.uri = tracking_uri()
        self._writer = MetricWriter(self._send_metrics, self.uri)
        self._reachable = reachability_check(self.uri)
        db = sqlite_path(self.uri)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        self._lock = _StoreLock(self.uri)
        self._client = self._call(lambda: MlflowClient(tracking_uri=self.uri))
        all_tags = {
            "stage": stage,
            "git_commit": git_commit(),
            **extra_tags_from_env(),
            **(dict(tags) if tags else {}),
        }
        inputs = list(inputs)
        if inputs:
            all_tags["data_fingerprint"] = fingerprint(inputs)
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        if resume_run_id:
            self.run_id = resume_run_id
            self._call(lambda: self._client.update_run(resume_run_id, status="RUNNING"))
        else:
            experiment_id = self._call(lambda: self._experiment_id(experiment, db))
            run = self._call(
                lambda: self._client.create_run(experiment_id, tags=all_tags, run_name=run_name)
            )
            self.run_id = run.info.run_id
        if resume_run_id:
            self.set_tags(all_tags)
        if params:
            self.log_params(params)

    def _call(self, fn: Callable[[], T], attempts: int = 8) -> T:
        """Run one MLflow call under the store lock, retrying if another program holds the DB."""
        for attempt in range(attempts):
            try:
                with self._lock.held():
                    return fn()
            except Exception as err:  # MLflow wraps sqlite errors in several exception types
                if not _is_transient(err) or attempt == attempts - 1:
                    raise
                time.sleep(0.2 * 2**attempt)
        raise AssertionError("unreachable")

    def _experiment_id(self, name: str, db: Path | None) -> str:
        return _experiment_id(self._client, name, db)

    def log_params(self, params: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in flatten(params).items()]
        for start in range(0, len(items), 100):  # MLflow's batch limit is 100 params
            chunk = items[start : start + 100]
            self._call(lambda chunk=chunk: self._client.log_batch(self.run_id, params=chunk))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        if not self.enabled:
            return
        from mlflow.entities import RunTag

        items = [RunTag(str(k), str(v)) for k, v in tags.items()]
        self._call(lambda: self._client.log_batch(self.run_id, tags=items))

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        """Buffer metric values at `step`; written every METRIC_FLUSH_EVERY values and at the
        end."""
        if not self.enabled:
            return
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self._metrics.extend(Metric(str(k), float(v), now, int(step)) for k, v in metrics.items())
        if len(self._metrics) >= METRIC_FLUSH_EVERY:
            self.flush()

    def flush(self) -> None:
        """Hand the buffered values to the writer thread (`lamm.tracking_retry`); returns at
        once."""
        if not self.enabled or not self._metrics:
            return
        pending, self._metrics = self._metrics, []
        for start in range(0, len(pending), 1000):  # MLflow's batch limit is 1000 metrics
            self._writer.put(pending[start : start + 1000])

    def _deliver(self, fn: Callable[[], T]) -> T:
        """A call made mid-run or at its end: a server that does not accept a connection is an
        outage at once (lamm.tracking_retry), not minutes of MLflow's HTTP retries."""
        self._reachable()
        return self._call(fn)

    def _send_metrics(self, chunk: Sequence[Any]) -> None:
        self._deliver(lambda: self._client.log_batch(self.run_id, metrics=list(chunk)))

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Copy a file (figure, table, small checkpoint) into the run's artifacts; a store that
        does not answer is retried up to LAMM_MLFLOW_WAIT_S, then skipped with a warning."""
        if not self.enabled:
            return
        retry_outages(
            lambda: self._deliver(
                lambda: self._client.log_artifact(self.run_id, str(path), artifact_path)
            ),
            f"artifact {Path(path).name}",
            time.monotonic() + wait_s(),
        )

    def finish(self, status: str = "FINISHED", wait_for_s: float | None = None) -> None:
        """Send what is buffered and close the run, waiting up to `wait_for_s` (default
        LAMM_MLFLOW_WAIT_S) for a store that does not answer; never raises for an outage."""
        if not self.enabled or self.run_id is None:
            return
        deadline = time.monotonic() + (wait_s() if wait_for_s is None else wait_for_s)
        self.flush()
        if not self._writer.drain(max(deadline - time.monotonic(), 0.0)):
            log.warning(
                "MLflow run %s: %d metric values not sent (%s did not answer in time); the "
                "run folder's metrics.csv has them",
                self.run_id,
                self._writer.backlog(),
                self.uri,
            )
        retry_outages(
            lambda: self._deliver(lambda: self._client.set_terminated(self.run_id, status=status)),
            f"closing run {self.run_id} as {status}",
            deadline,
        )

    def __enter__(self) -> RunTracker:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        from lamm.training.stop import TrainingStopped

        stopped = exc_type is not None and issubclass(
            exc_type, (KeyboardInterrupt, TrainingStopped)
        )
        status = "FINISHED" if exc_type is None else "KILLED" if stopped else "FAILED"
        try:  # a stopped rank has a grace period to keep (lamm.training.stop)
            self.finish(status, wait_for_s=min(wait_s(), 30.0) if stopped else None)
        except Exception:  # never hide the job's own exception behind a tracking error
            if exc_type is None:
                raise
            log.exception("could not close MLflow run %s", self.run_id)
