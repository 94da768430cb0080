"""The student in use: MD speed against the teacher, and energy conservation in NVE.

Speed: atoms x steps / second of velocity-Verlet MD with `LaMMCalculator`, teacher and student
in the same process on the same structures (every seed structure). Per structure each
calculator runs its own MD (same start, same velocities), `warmup` steps untimed; then the
calculators take turns, `repeats` rounds of `steps` steps each, and each keeps its fastest
block per structure (the least disturbed by other work on the host). Blocks a fraction of a
second apart see the same load, where whole runs one after the other see whatever the host was
doing at the time, which moves their ratio by tens of percent on a loaded host. Atoms per CPU
second of the process is reported beside atoms per wall-clock second.
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


def md_atoms_per_second(
    atoms: Atoms,
    calculator: Calculator,
    *,
    steps: int,
    warmup: int,
    timestep_fs: float = 0.5,
    seed: int = 0,
) -> float:
    """atoms x steps / s (wall clock) of velocity-Verlet MD from 300 K velocities (warm-up not
    timed)."""
    return md_speed(
        atoms, calculator, steps=steps, warmup=warmup, timestep_fs=timestep_fs, seed=seed
    )[0]


def md_speed(
    atoms: Atoms,
    calculator: Calculator,
    *,
    steps: int,
    warmup: int,
    timestep_fs: float = 0.5,
    seed: int = 0,
) -> tuple[float, float]:
    """(atoms x steps per wall-clock second, per CPU second of this process) of velocity-Verlet
    MD from 300 K velocities, warm-up not timed. On a shared host the CPU-time rate moves less
    with the other processes' load (with one torch thread it is the work the steps need)."""
    dynamics = _dynamics(atoms, calculator, timestep_fs, seed)
    if warmup:
        dynamics.run(warmup)
    wall, cpu = _timed(dynamics, steps)
    return len(atoms) * steps / wall, len(atoms) * steps / cpu


def _dynamics(atoms: Atoms, calculator: Calculator, timestep_fs: float, seed: int) -> Any:
    """Velocity-Verlet MD of a copy of `atoms` from Maxwell-Boltzmann velocities at 300 K."""
    from ase.md.velocitydistribution import thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    atoms = atoms.copy()
    atoms.calc = calculator
    thermalize_momenta(atoms, 300.0, rng=np.random.default_rng(seed))
    return VelocityVerlet(atoms, timestep=timestep_fs * units.fs, logfile=None)


def _timed(dynamics: Any, steps: int) -> tuple[float, float]:
    """(wall-clock, CPU) seconds of `steps` MD steps."""
    start, cpu = time.perf_counter(), time.process_time()
    dynamics.run(steps)
    return max(time.perf_counter() - start, 1e-9), max(time.process_time() - cpu, 1e-9)


def compare_speed(
    structures: Sequence[Atoms],
    calculators: Mapping[str, Calculator],
    *,
    steps: int,
    warmup: int,
    repeats: int,
    timestep_fs: float = 0.5,
) -> dict[str, Any]:
    """Atoms/s (wall clock, and per CPU second) of each calculator on all `structures` together:
    atoms x steps summed over them over the summed time of each one's fastest block of `steps`
    steps, the calculators taking turns block by block (module docstring); per round, the
    wall-clock rate of that round's blocks (`_runs`), and the atoms measured."""
    names = list(calculators)
    blocks = {
        name: np.zeros((repeats, len(structures), 2)) for name in names
    }  # [round, structure, (wall, cpu)] s
    for k, atoms in enumerate(structures):
        dynamics = {
            name: _dynamics(atoms, calculators[name], timestep_fs, seed=0) for name in names
        }
        for name in names:
            if warmup:
                dynamics[name].run(warmup)
        for r in range(repeats):
            for name in names:
                blocks[name][r, k] = _timed(dynamics[name], steps)
    work = sum(len(atoms) for atoms in structures) * steps
    out: dict[str, Any] = {
        "speed_natoms": [len(atoms) for atoms in structures],
        "speed_steps": steps,
        "speed_repeats": repeats,
    }
    for name in names:
        fastest = (
            blocks[name].min(axis=0).sum(axis=0)
        )  # (wall, cpu) s: each structure's fastest block
        out[f"{name}_atoms_per_s"] = float(work / fastest[0])  # plain floats: final.json
        out[f"{name}_atoms_per_cpu_s"] = float(work / fastest[1])
        out[f"{name}_atoms_per_s_runs"] = [
            work / float(wall) for wall in blocks[name][:, :, 0].sum(axis=1)
        ]
    return out


def nve_drift(
    atoms: Atoms,
    calculator: Calculator,
    *,
    steps: int,
    timestep_fs: float,
    temperature_k: float,
    seed: int = 0,
) -> dict[str, float]:
    """NVE of `atoms` with `calculator`: lamm.analysis.dynamics.energy_drift plus the ratios of
    the module docstring."""
    from lamm.analysis.dynamics import DynamicsSettings, energy_drift, run_nve

    atoms = atoms.copy()
    atoms.set_constraint()
    atoms.calc = calculator
    settings = DynamicsSettings(
        steps=steps, timestep_fs=timestep_fs, temperature_k=temperature_k, seed=seed
    )
    frames = run_nve(atoms, settings)
    drift = energy_drift(frames, len(atoms))
    linear = abs(drift["drift_ev_per_atom_per_ps"]) * drift["simulated_ps"]  # eV/atom over the run
    scale = drift["epot_std_ev_per_atom"]
    return {
        "nve_natoms": len(atoms),
        "nve_steps": steps,
        "nve_timestep_fs": timestep_fs,
        **{f"nve_{k}": v for k, v in drift.items()},
        "nve_linear_drift_ev_per_atom": linear,
        "drift_over_epot_std": linear / scale if scale > 0 else math.nan,
        "max_drift_over_epot_std": drift["max_abs_drift_ev_per_atom"] / scale
        if scale > 0
        else math.nan,
    }
