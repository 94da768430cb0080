"""Exploration: Langevin MD (ASE) from the seed structures, at each temperature, driven by a
calculator (the teacher in round 0, then the current student), sampling configurations.

One trajectory per (seed structure, temperature): Maxwell-Boltzmann velocities at T, then
`steps` Langevin steps of `timestep_fs` with friction `friction_per_fs`; every `sample_every`
steps the configuration is kept. Periodic cells and molecules alike (ASE handles both).

A student early in distillation can blow a structure apart. A trajectory stops at the first
step whose forces are not finite or exceed `max_force_ev_per_a`, or (checked at each sample)
whose closest pair of atoms is nearer than `min_distance_a`; the configuration it stopped at is
kept as a sample when its positions are finite (selection's trust window rejects it if the
committee disagrees beyond `hi`), and the trajectory is counted as aborted with its reason.

Random numbers: one numpy Generator per trajectory, seeded by (seed, stream, structure,
temperature), so a round explores the same configurations when it is run again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator

from lamm.data.record import StructureRecord


@dataclass(frozen=True)
class ExploreSettings:
    temperatures_k: tuple[float, ...] = (300.0,)
    steps: int = 100
    timestep_fs: float = 1.0
    friction_per_fs: float = 0.01
    sample_every: int = 10
    max_force_ev_per_a: float = 50.0
    min_distance_a: float = 0.5

    def __post_init__(self) -> None:
        if not self.temperatures_k or any(t < 0 for t in self.temperatures_k):
            raise ValueError(
                "explore.temperatures_k must be a non-empty list of temperatures >= 0, got "
                f"{self.temperatures_k}"
            )
        if self.steps < 1 or self.sample_every < 1:
            raise ValueError(
                "explore.steps and explore.sample_every must be positive, got "
                f"{self.steps}, {self.sample_every}"
            )
        if not (
            self.timestep_fs > 0
            and self.friction_per_fs >= 0
            and self.max_force_ev_per_a > 0
            and self.min_distance_a >= 0
        ):
            raise ValueError(
                "explore: timestep_fs and max_force_ev_per_a must be positive, friction "
                f"and min_distance >= 0: {self}"
            )


@dataclass
class Exploration:
    """The sampled configurations (unlabeled records) and what the trajectories did."""

    records: list[StructureRecord] = field(default_factory=list)
    temperatures: list[float] = field(
        default_factory=list
    )  # [frames] K, of each record's trajectory
    trajectories: int = 0
    aborted: dict[str, int] = field(default_factory=dict)  # reason -> trajectories
    atom_steps: int = 0  # sum over trajectories of atoms x steps run
    md_seconds: float = 0.0

    @property
    def atoms_per_second(self) -> float:
        return self.atom_steps / self.md_seconds if self.md_seconds > 0 else float("nan")


class _Stop(Exception):
    """A trajectory leaves the physical region; the message is the reason."""


def min_distance(atoms: Atoms) -> float:
    """The closest pair of atoms (Angstrom; minimum image in periodic directions)."""
    if len(atoms) < 2:
        return float("inf")
    distances = atoms.get_all_distances(mic=bool(atoms.pbc.any()))  # [n, n]
    return float(distances[~np.eye(len(atoms), dtype=bool)].min())


def _record(atoms: Atoms, source_id: str) -> StructureRecord:
    unlabeled = atoms.copy()  # no calculator: positions, cell, pbc, constraints, tags only
    return StructureRecord.from_atoms(unlabeled, source_id=source_id)


def run_trajectory(
    atoms: Atoms,
    calculator: Calculator,
    temperature_k: float,
    settings: ExploreSettings,
    rng: np.random.Generator,
    label: str,
    out: Exploration,
) -> None:
    """One Langevin trajectory from `atoms` (not modified); its samples are appended to `out`."""
    from ase.md.langevin import Langevin
    from ase.md.velocitydistribution import Stationary, thermalize_momenta

    atoms = atoms.copy()
    atoms.calc = calculator
    thermalize_momenta(atoms, temperature_k, rng=rng)  # Maxwell-Boltzmann
    Stationary(atoms)
    dynamics = Langevin(
        atoms,
        settings.timestep_fs * units.fs,
        temperature_K=temperature_k,
        friction=settings.friction_per_fs / units.fs,
        fixcm=False,
        rng=rng,
    )

    def check() -> None:
        forces = atoms.get_forces()  # cached: the step just computed them
        if not np.isfinite(forces).all():
            raise _Stop("non-finite forces")
        if np.linalg.norm(forces, axis=1).max() > settings.max_force_ev_per_a:
            raise _Stop("force above max_force_ev_per_a")
        if dynamics.nsteps > 0 and dynamics.nsteps % settings.sample_every == 0:
            if min_distance(atoms) < settings.min_distance_a:
                raise _Stop("atoms closer than min_distance_a")
            out.records.append(_record(atoms, f"{label}/step{dynamics.nsteps}"))
            out.temperatures.append(float(temperature_k))

    dynamics.attach(check, interval=1)
    out.trajectories += 1
    start = time.perf_counter()
    try:
        dynamics.run(settings.steps)
    except _Stop as stop:
        out.aborted[str(stop)] = out.aborted.get(str(stop), 0) + 1
        if np.isfinite(atoms.positions).all():
            out.records.append(_record(atoms, f"{label}/step{dynamics.nsteps}/aborted"))
            out.temperatures.append(float(temperature_k))
    except (ValueError, RuntimeError) as err:  # the calculator cannot handle the configuration
        reason = f"calculator error: {type(err).__name__}"
        out.aborted[reason] = out.aborted.get(reason, 0) + 1
    out.md_seconds += time.perf_counter() - start
    out.atom_steps += len(atoms) * dynamics.nsteps


def explore(
    seeds: Sequence[Atoms],
    calculator: Calculator,
    settings: ExploreSettings,
    *,
    seed: int,
    stream: int,
    prefix: str = "",
) -> Exploration:
    """Every seed structure at every temperature; samples in (structure, temperature, step)
    order."""
    out = Exploration()
    for s, atoms in enumerate(seeds):
        for t, temperature in enumerate(settings.temperatures_k):
            rng = np.random.default_rng([seed, stream, s, t])
            run_trajectory(
                atoms,
                calculator,
                temperature,
                settings,
                rng,
                f"{prefix}seed{s}/T{temperature:g}",
                out,
            )
    return out
