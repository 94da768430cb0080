"""Shared fixtures. Every test gets its own MLflow store, so nothing lands in results/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from lamm.training.stop import restore_default_signals

ROOT = Path(__file__).resolve().parents[1]

# `make test &`: a background shell starts pytest with SIGINT ignored, so the tests that interrupt
# something with SIGINT (in this process or in the children it starts) would see nothing happen.
restore_default_signals()

# UMAP's numba kernels compile on first use: 60-120 s of the suite on 2 cores, for tests that
# check our seeding and wiring, not numba's compiler. Interpreted, the same Python runs in seconds
# on the tests' few dozen points. The cluster tests keep the compiled path (their workflow embeds
# hundreds of atoms, as users do).
if os.environ.get("LAMM_TEST_CLUSTER") != "1":
    os.environ.setdefault("NUMBA_DISABLE_JIT", "1")


@pytest.fixture(scope="session")
def _empty_mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite store, its schema created once per session.

    MLflow builds a new SQLite store by running every one of its alembic migrations: 5-10 s on 2
    cores (profiled), which each test that tracked a run paid again, a large part of the suite's
    time. Each test starts from a copy of this file instead: the same schema at the same version
    and no experiments but MLflow's "Default". Tests about a store that does not exist yet ask
    for `absent_tracking_db`."""
    from mlflow.tracking import MlflowClient

    db = tmp_path_factory.mktemp("mlflow-empty") / "mlflow.db"
    MlflowClient(
        tracking_uri=f"sqlite:///{db}"
    ).search_experiments()  # creates and migrates the schema
    return db


@pytest.fixture(autouse=True)
def _isolated_tracking(
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    _empty_mlflow_store: Path,
) -> Path:
    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    shutil.copyfile(_empty_mlflow_store, db)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    monkeypatch.setenv("LAMM_PROGRESS", "0")
    monkeypatch.delenv("LAMM_RUN_TAGS", raising=False)
    return db


@pytest.fixture
def tracking_db() -> Path:
    """The SQLite file of this test's MLflow store."""
    return Path(os.environ["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///"))


@pytest.fixture
def absent_tracking_db(tracking_db: Path) -> Path:
    """This test's MLflow store path, with no file there yet (the first writer creates it)."""
    tracking_db.unlink()
    return tracking_db
