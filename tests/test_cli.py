import subprocess
import sys

import pytest

from lamm import __version__
from lamm.cli import main
from tests.conftest import ROOT


def run_lamm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lamm", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_version_from_the_installed_command():
    result = run_lamm("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"lamm {__version__}"


def test_help_lists_global_options():
    result = run_lamm("--help")
    assert result.returncode == 0
    for option in ("--version", "--verbose", "--quiet", "--tag"):
        assert option in result.stdout


def test_no_subcommand_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: lamm" in capsys.readouterr().err


def test_tag_must_be_key_value():
    result = run_lamm("--tag", "novalue", "--version")
    assert result.returncode == 2
    assert "expected KEY=VALUE" in result.stderr


def test_tags_are_handed_to_child_processes(monkeypatch):
    import json
    import os

    from lamm import cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ())
    monkeypatch.setenv("LAMM_RUN_TAGS", json.dumps({"inherited": "1"}))
    with pytest.raises(SystemExit):
        main(["--tag", "snakemake_rule=all", "--tag", "x=a=b", "--version"])
    # --version exits during parsing, before tags are exported: nothing changed
    assert json.loads(os.environ["LAMM_RUN_TAGS"]) == {"inherited": "1"}
    assert main(["--tag", "snakemake_rule=all", "--tag", "x=a=b"]) == 2
    assert json.loads(os.environ["LAMM_RUN_TAGS"]) == {"inherited": "1", "snakemake_rule": "all", "x": "a=b"}
