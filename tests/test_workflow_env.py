"""The workflow's software definition: lint-clean, and the conda env is the pip install's twin."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = None

ROOT = Path(__file__).resolve().parents[1]
# pip name -> conda-forge name, where they differ
CONDA_NAMES = {"torch": "pytorch", "lmdb": "python-lmdb", "tblite": "tblite-python"}


def _requirement(spec: str) -> tuple[str, str]:
    name, bound = re.fullmatch(r"([A-Za-z0-9_.-]+)\s*>=\s*([0-9.]+)", spec.strip()).groups()
    return name.lower(), bound


def _version(bound: str) -> tuple[int, ...]:
    return tuple(int(part) for part in bound.split("."))


@pytest.mark.parametrize("env_file", ["workflow/envs/lamm.yaml", "environment.yml"])
def test_conda_env_holds_every_pip_dependency_at_the_same_lower_bound(env_file):
    # workflow/envs/lamm.yaml: Snakemake's --use-conda; environment.yml: conda users by hand
    if tomllib is None:
        pytest.skip("tomllib needs Python 3.11")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = dict(
        _requirement(s) for s in project["dependencies"] + project["optional-dependencies"]["test"]
    )
    env = yaml.safe_load((ROOT / env_file).read_text())
    conda_specs = [s for s in env["dependencies"] if isinstance(s, str) and ">=" in s]
    pip_specs = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    have = {name: bound for name, bound in map(_requirement, conda_specs + pip_specs)}
    for name, bound in wanted.items():
        conda_name = CONDA_NAMES.get(name, name)
        assert conda_name in have, f"{env_file} lacks {conda_name} (pyproject: {name}>={bound})"
        assert _version(have[conda_name]) == _version(bound), (
            f"{conda_name}: env >={have[conda_name]}, pyproject >={bound}"
        )
    # the package itself comes from the post-deploy script: a relative path in the env file
    # would point into .snakemake/conda/, where Snakemake copies it
    assert not any(spec.startswith("-e") for spec in pip_specs)
    assert os.access(ROOT / "workflow" / "envs" / "lamm.post-deploy.sh", os.X_OK)


def test_snakemake_lint_is_clean():
    # every rule declares its software (the conda env) and follows Snakemake's best practices
    bin_dir = str(Path(sys.executable).parent)
    result = subprocess.run(
        ["snakemake", "--lint"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "Congratulations" in output, output[-3000:]
