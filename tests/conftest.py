"""Shared fixtures. Every test gets its own MLflow store, so nothing lands in results/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lamm.training.stop import restore_default_signals

ROOT = Path(__file__).resolve().parents[1]

# `make test &`: a background shell starts pytest with SIGINT ignored, so the tests that interrupt
# something with SIGINT (in this process or in the children it starts) would see nothing happen.
restore_default_signals()


@pytest.fixture(autouse=True)
def _isolated_tracking(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    monkeypatch.setenv("LAMM_PROGRESS", "0")
    monkeypatch.delenv("LAMM_RUN_TAGS", raising=False)
    return db


@pytest.fixture
def tracking_db() -> Path:
    """The SQLite file of this test's MLflow store."""
    return Path(os.environ["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///"))
