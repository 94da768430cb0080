"""The student in use: MD speed against the teacher, and energy conservation in NVE.

Speed: atoms x steps / second of velocity-Verlet MD with `LaMMCalculator`, teacher and student
in the same process on the same structures (every seed structure), after `warmup` untimed steps; the two alternate
`repeats` times and each keeps its best repeat (the least disturbed by other work on the host);
atoms per CPU second of the process is reported beside atoms per wall-clock second.
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
from collections.abc import Mapping, Sequence
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
    """atoms x steps / s (wall clock) of velocity-Verlet MD from 300 K velocities (warm-up not timed)."""
    return md_speed(atoms, calculator, steps=steps, warmup=warmup, timestep_fs=timestep_fs, seed=seed)[0]


def md_speed(atoms: Atoms, calculator: Calculator, *, steps: int, warmup: int, timestep_fs: float = 0.5,
             seed: int = 0) -> tuple[float, float]:
    """(atoms x steps per wall-clock second, per CPU second of this process) of velocity-Verlet
    MD from 300 K velocities, warm-up not timed. On a shared host the CPU-time rate moves less
    with the other processes' load (with one torch thread it is the work the steps need)."""
    from ase.md.velocitydistribution import thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    atoms = atoms.copy()
    atoms.calc = calculator
    thermalize_momenta(atoms, 300.0, rng=np.random.default_rng(seed))  # Maxwell-Boltzmann
    dynamics = VelocityVerlet(atoms, timestep=timestep_fs * units.fs, logfile=None)
    if warmup:
        dynamics.run(warmup)
    start, cpu = time.perf_counter(), time.process_time()
    dynamics.run(steps)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return len(atoms) * steps / wall, len(atoms) * steps / max(cpu, 1e-9)


def compare_speed(structures: Sequence[Atoms], calculators: Mapping[str, Calculator], *, steps: int, warmup: int,
                  repeats: int, timestep_fs: float = 0.5) -> dict[str, Any]:
    """Atoms/s (wall clock, and per CPU second) of each calculator on all `structures` together
    (atoms x steps summed over them, over the time of all their runs), best of `repeats`
    alternating repeats; every repeat's wall-clock value, and the atoms measured."""
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in calculators}
    for _ in range(repeats):
        for name, calculator in calculators.items():
            wall = cpu = 0.0
            for atoms in structures:
                rate_wall, rate_cpu = md_speed(atoms, calculator, steps=steps, warmup=warmup, timestep_fs=timestep_fs)
                wall += len(atoms) * steps / rate_wall
                cpu += len(atoms) * steps / rate_cpu
            work = sum(len(atoms) for atoms in structures) * steps
            runs[name].append((work / wall, work / cpu))
    out: dict[str, Any] = {"speed_natoms": [len(atoms) for atoms in structures], "speed_steps": steps, "speed_repeats": repeats}
    for name in calculators:
        out[f"{name}_atoms_per_s"] = max(wall for wall, _ in runs[name])
        out[f"{name}_atoms_per_cpu_s"] = max(cpu for _, cpu in runs[name])
        out[f"{name}_atoms_per_s_runs"] = [wall for wall, _ in runs[name]]
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
