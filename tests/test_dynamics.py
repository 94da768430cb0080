"""The calculator in use: BFGS lowers the energy, NVE with gradient forces conserves the total
energy (direct forces do not), the drift statistics, and `lamm dynamics`."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from ase.cluster import Icosahedron
from ase.io import read

from lamm.analysis.dynamics import DynamicsSettings, energy_drift, relax_and_run, run_nve
from lamm.calculator import LaMMCalculator
from lamm.cli import main
from lamm.data.record import StructureRecord
from lamm.data.store import StructureStoreWriter
from lamm.models.build import build_potential
from lamm.models.checkpoint import checkpoint_dict, save_checkpoint
from tests.model_support import single_thread  # noqa: F401

SMALL_PAINN = {"painn": {"hidden_channels": 16, "num_layers": 2}, "cutoff": 4.0}
# An untrained head with energy_std 0.1 eV gives forces of about 1 eV/A on this cluster: a
# landscape as rugged as a real one, so NVE at 300 K exchanges meV/atom between E_kin and E_pot.
ENERGY_SCALE = {"energy_std": 0.1, "force_rms": 1.0}


def calculator(force_mode: str) -> LaMMCalculator:
    calc = LaMMCalculator.untrained(
        "painn", heads=["x"], force_mode=force_mode, model_config=SMALL_PAINN
    )
    calc.potential.normalizer.set_head(0, ENERGY_SCALE)
    return calc


def cluster():
    atoms = Icosahedron("Cu", 2)  # 13 atoms, no periodic images
    atoms.rattle(0.05, seed=1)
    return atoms


def test_bfgs_lowers_the_energy_and_nve_with_gradient_forces_conserves_it(tmp_path):
    settings = DynamicsSettings(
        steps=200, timestep_fs=0.5, temperature_k=300.0, seed=0, fmax=0.05, max_relax_steps=40
    )
    summary = relax_and_run(
        cluster(), calculator("gradient"), settings, tmp_path, force_mode="gradient"
    )

    assert summary["relax_steps"] > 0
    assert summary["relax_energy_end_ev"] < summary["relax_energy_start_ev"]
    # The run is not trivial: E_pot fluctuates by more than 1 meV/atom ...
    assert summary["epot_std_ev_per_atom"] > 1e-3
    # ... and E_tot stays within 1% of that. Velocity Verlet's energy error is O((omega dt)^2):
    # with 0.5 fs and vibrations of ~100 fs period (omega dt ~ 0.03) the error is ~1e-3 of the
    # exchanged energy; a non-conservative or mis-scaled force (a wrong energy_std/force_rms
    # factor) breaks the bound by orders of magnitude (see the direct-force test).
    assert summary["max_abs_drift_ev_per_atom"] < 0.01 * summary["epot_std_ev_per_atom"]
    assert summary["energy_conserving"] is True and "conserved" in summary["note"]

    frames = pd.read_csv(tmp_path / "energies.csv")
    assert len(frames) == settings.steps + 1
    np.testing.assert_allclose(frames["etot"], frames["epot"] + frames["ekin"])
    np.testing.assert_allclose(
        frames["time_ps"].iloc[-1], settings.steps * settings.timestep_fs / 1000
    )
    trajectory = read(tmp_path / "nve.traj", index=":")
    assert len(trajectory) == settings.steps + 1 and len(trajectory[0]) == 13
    assert len(read(tmp_path / "relax.traj", index=":")) == summary["relax_steps"] + 1
    assert (tmp_path / "energies.png").stat().st_size > 1000
    assert not list(tmp_path.glob(".*partial*"))


def test_direct_forces_do_not_conserve_the_total_energy(tmp_path):
    settings = DynamicsSettings(
        steps=200, timestep_fs=0.5, temperature_k=300.0, seed=0, max_relax_steps=0
    )
    summary = relax_and_run(
        cluster(), calculator("direct"), settings, tmp_path, force_mode="direct"
    )
    # forces that are not -dE/dx do work unrelated to E_pot: E_tot wanders like E_pot does
    assert summary["max_abs_drift_ev_per_atom"] > 0.1 * summary["epot_std_ev_per_atom"]
    assert summary["energy_conserving"] is False and "not conserved" in summary["note"]


def test_energy_drift_statistics_and_seeded_velocities():
    time_ps = np.linspace(0.0, 0.2, 11)
    frames = {
        "time_ps": time_ps,
        "epot": -np.cos(time_ps),
        "ekin": np.cos(time_ps) + 0.3 * 4 * time_ps,
    }
    frames["etot"] = frames["epot"] + frames["ekin"]
    drift = energy_drift(frames, natoms=4)
    assert drift["drift_ev_per_atom_per_ps"] == pytest.approx(0.3)
    assert drift["max_abs_drift_ev_per_atom"] == pytest.approx(0.3 * 0.2)
    assert drift["simulated_ps"] == pytest.approx(0.2)

    settings = DynamicsSettings(steps=5, seed=3)
    runs = []
    for _ in range(2):
        atoms = cluster()
        atoms.calc = calculator("gradient")
        runs.append(run_nve(atoms, settings)["ekin"])
    np.testing.assert_array_equal(runs[0], runs[1])
    with pytest.raises(ValueError, match="timestep_fs"):
        DynamicsSettings(timestep_fs=0.0)


def test_cli_dynamics_writes_summary_and_table(tmp_path, capsys):
    potential = build_potential(
        {**SMALL_PAINN, "encoder": "painn", "force_mode": "gradient"}, ["hme21"], seed=0
    )
    potential.normalizer.set_head(0, ENERGY_SCALE)
    checkpoint = save_checkpoint(
        tmp_path / "ft.pt",
        checkpoint_dict(potential, {**SMALL_PAINN, "encoder": "painn", "force_mode": "gradient"}),
    )
    store = tmp_path / "down.lmdb"
    with StructureStoreWriter(store, subset="hme21", source="test") as writer:
        writer.add(StructureRecord.from_atoms(cluster()), "test")
    out, table = tmp_path / "md", tmp_path / "nve_drift.csv"
    args = [
        "dynamics",
        str(checkpoint),
        "--store",
        str(store),
        "--out",
        str(out),
        "--steps",
        "10",
        "--max-relax-steps",
        "3",
    ]
    assert main([*args, "--table", str(table)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (
        summary["force_mode"] == "gradient"
        and summary["head"] == "hme21"
        and summary["relax_steps"] <= 3
    )
    assert (
        json.loads((out / "summary.json").read_text())["max_abs_drift_ev_per_atom"]
        == summary["max_abs_drift_ev_per_atom"]
    )
    row = pd.read_csv(table).iloc[0]
    assert row["checkpoint"] == "ft" and row["natoms"] == 13
    with pytest.raises(
        SystemExit, match="--index 5 out of range for split 'test' with 1 structures"
    ):
        main([*args, "--index", "5"])
    capsys.readouterr()
    assert main([*args, "--head", "oc20"]) == 1  # one line, not a traceback
    assert (
        "lamm dynamics: error: " in (err := capsys.readouterr().err)
        and "unknown head 'oc20'" in err
    )
