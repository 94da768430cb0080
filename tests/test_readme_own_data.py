"""The README's "Fine-tune on your own data" commands run as written, in a fresh folder.

The test makes what the section assumes exists: `my_data.xyz` (EMT-labeled alloy cells, the
energy as `REF_energy=` in kcal/mol, the forces as a `REF_forces` column in kcal/mol/A); the
pre-trained model it names is the one shipped in `models/`. Then it runs each command of the
section with the project's `.venv` first on PATH, as a user who activated it would.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.io import read, write

from lamm.data.store import StructureStore
from lamm.data.units import ENERGY_UNITS

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(
        r"<!-- own-data:begin -->\s*```bash\n(.*?)```\s*<!-- own-data:end -->", text, re.S
    )
    assert block, "README.md lost its own-data section markers"
    return [line for line in block.group(1).splitlines() if line.strip()]


def write_user_file(path: Path, count: int = 40) -> None:
    rng = np.random.default_rng(7)
    kcal = ENERGY_UNITS["kcal/mol"]
    frames = []
    for _ in range(count):
        atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((1, 1, 2))
        atoms.numbers[rng.choice(len(atoms), 3, replace=False)] = [28, 13, 28]
        atoms.positions += rng.normal(0, 0.1, atoms.positions.shape)
        atoms.calc = EMT()
        energy, forces = atoms.get_potential_energy(), atoms.get_forces()
        atoms.calc = None
        atoms.info["REF_energy"] = energy / kcal
        atoms.arrays["REF_forces"] = forces / kcal
        frames.append(atoms)
    write(path, frames, format="extxyz")


@pytest.mark.slow
def test_readme_own_data_commands_run_as_written(tmp_path):
    commands = readme_commands()
    assert 1 <= len(commands) <= 5, "the section promises at most five commands"
    write_user_file(tmp_path / "my_data.xyz")

    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "CI": "true",
    }
    for command in commands:
        result = subprocess.run(
            command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, (
            f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
        )
        last_line = result.stdout.strip().splitlines()[-1]

    store = StructureStore(tmp_path / "results/data/my_set.lmdb")
    assert len(store) == 40 and store.info["units"]["converted_from"]["energy"] == "kcal/mol"
    assert all(len(store.indices(split)) > 0 for split in ("train", "val", "test"))
    metrics = json.loads((tmp_path / "results/finetune/my_set/test_metrics.json").read_text())
    assert np.isfinite(metrics["energy_mae_mev_per_atom"]) and np.isfinite(
        metrics["forces_mae_mev_per_a"]
    )
    assert (tmp_path / "results/evaluate/my_set/parity.png").is_file()
    trajectory = read(tmp_path / "md.traj", index=":")
    assert len(trajectory) > 1 and np.isfinite(
        float(last_line)
    )  # the MD ran and printed an energy in eV
