"""workflow/own_data.smk: a user's dataset alone is three jobs (convert, finetune, evaluate),
nothing of the demo pipeline (a Snakemake dry run)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    shutil.which("snakemake") is None and not (Path(sys.executable).parent / "snakemake").exists(),
    reason="snakemake not installed",
)
def test_own_data_workflow_plans_three_jobs(tmp_path):
    (tmp_path / "md.xyz").write_text("1\nenergy=-1.0\nH 0 0 0\n")
    description = tmp_path / "my_set.yaml"
    description.write_text(
        yaml.safe_dump({"name": "my_set", "format": "auto", "files": {"train": "md.xyz"}})
    )
    snakemake = shutil.which("snakemake") or str(Path(sys.executable).parent / "snakemake")
    result = subprocess.run(
        [
            snakemake, "-s", str(ROOT / "workflow" / "own_data.smk"), "-n", "--cores", "1",
            "--directory", str(tmp_path), "--config", f"dataset={description}",
            f"results={tmp_path / 'results'}",
        ],
        capture_output=True, text=True, cwd=ROOT, timeout=900,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    planned = result.stdout + result.stderr
    for rule in ("convert", "finetune", "evaluate"):
        assert rule in planned
    assert "pretrain" not in planned and "data_demo" not in planned
