"""The student in use: MD speed against the teacher, and energy conservation in NVE.

Speed: atoms x steps / second of velocity-Verlet MD with `LaMMCalculator`, teacher and student
in the same process on the same structure, after `warmup` untimed steps; the two alternate
`repeats` times and each keeps its best repeat (the least disturbed by other work on the host).
`min_atoms` repeats a periodic structure along its periodic axes first (production MD runs on
larger cells than the training configurations; a molecule stays as it is).

Drift: an NVE run of the student (`lamm.analysis.dynamics.run_nve`); the drift of the total
energy over the run (slope of a least-squares line x duration, per atom) compared with the
potential energy's fluctuation (its standard deviation per atom): `drift_over_epot_std`. The
largest excursion of E_tot from its start (`max_drift_over_epot_std`) also includes the
integrator's bounded O(dt^2) oscillation.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator


def speed_structure(atoms: Atoms, min_atoms: int) -> Atoms:
    """`atoms` repeated along its periodic axes (round-robin) until it has at least `min_atoms`."""
    atoms = atoms.copy()
    atoms.set_constraint()
    if min_atoms <= len(atoms) or not atoms.pbc.any():
        return atoms
    reps = [1, 1, 1]
    axes = [a for a in range(3) if atoms.pbc[a]]
    k = 0
    while len(atoms) * reps[0] * reps[1] * reps[2] < min_atoms:
        reps[axes[k % len(axes)]] += 1
        k += 1
    return atoms.repeat(reps)


def md_atoms_per_second(atoms: Atoms, calculator: Calculator, *, steps: int, warmup: int, timestep_fs: float = 0.5,
                        seed: int = 0) -> float:
    """atoms x steps / s of velocity-Verlet MD from 300 K velocities (warm-up steps not timed)."""
    from ase.md.velocitydistribution import thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    atoms = atoms.copy()
    atoms.calc = calculator
    thermalize_momenta(atoms, 300.0, rng=np.random.default_rng(seed))  # Maxwell-Boltzmann
    dynamics = VelocityVerlet(atoms, timestep=timestep_fs * units.fs, logfile=None)
    if warmup:
        dynamics.run(warmup)
    start = time.perf_counter()
    dynamics.run(steps)
    return len(atoms) * steps / (time.perf_counter() - start)


def compare_speed(atoms: Atoms, calculators: Mapping[str, Calculator], *, steps: int, warmup: int, repeats: int,
                  timestep_fs: float = 0.5) -> dict[str, Any]:
    """Best atoms/s of each calculator over `repeats` alternating runs, and the natoms measured."""
    best = {name: 0.0 for name in calculators}
    runs: dict[str, list[float]] = {name: [] for name in calculators}
    for _ in range(repeats):
        for name, calculator in calculators.items():
            value = md_atoms_per_second(atoms, calculator, steps=steps, warmup=warmup, timestep_fs=timestep_fs)
            runs[name].append(value)
            best[name] = max(best[name], value)
    out: dict[str, Any] = {"speed_natoms": len(atoms), "speed_steps": steps, "speed_repeats": repeats}
    for name in calculators:
        out[f"{name}_atoms_per_s"] = best[name]
        out[f"{name}_atoms_per_s_runs"] = runs[name]
    return out


def nve_drift(atoms: Atoms, calculator: Calculator, *, steps: int, timestep_fs: float, temperature_k: float, seed: int = 0
              ) -> dict[str, float]:
    """NVE of `atoms` with `calculator`: lamm.analysis.dynamics.energy_drift plus the ratios of
    the module docstring."""
    from lamm.analysis.dynamics import DynamicsSettings, energy_drift, run_nve

    atoms = atoms.copy()
    atoms.set_constraint()
    atoms.calc = calculator
    settings = DynamicsSettings(steps=steps, timestep_fs=timestep_fs, temperature_k=temperature_k, seed=seed)
    frames = run_nve(atoms, settings)
    drift = energy_drift(frames, len(atoms))
    linear = abs(drift["drift_ev_per_atom_per_ps"]) * drift["simulated_ps"]  # eV/atom over the run
    scale = drift["epot_std_ev_per_atom"]
    return {
        "nve_natoms": len(atoms), "nve_steps": steps, "nve_timestep_fs": timestep_fs,
        **{f"nve_{k}": v for k, v in drift.items()},
        "nve_linear_drift_ev_per_atom": linear,
        "drift_over_epot_std": linear / scale if scale > 0 else math.nan,
        "max_drift_over_epot_std": drift["max_abs_drift_ev_per_atom"] / scale if scale > 0 else math.nan,
    }
