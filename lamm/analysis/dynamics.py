"""The calculator in use: relax one structure (ASE BFGS), then a short NVE run (velocity Verlet).

    relax:  BFGS until max_i |F_i| < fmax or `max_relax_steps`; records the steps taken, the
            final fmax and the energy before and after.
    NVE:    Maxwell-Boltzmann velocities at `temperature_k` (seeded numpy Generator, centre of
            mass momentum removed), then `steps` velocity-Verlet steps of `timestep_fs`.

Energy conservation, per atom (N atoms, E_tot = E_pot + E_kin, t in ps):
    max_abs_drift_ev_per_atom = max_t |E_tot(t) - E_tot(0)| / N
    drift_ev_per_atom_per_ps  = slope of a least-squares line through E_tot(t) / N
Only a conservative force field conserves E_tot: with gradient forces (F = -dE/dx) velocity
Verlet keeps E_tot within O(dt^2) fluctuations and no systematic drift; with direct
(non-conservative) forces the work done by the forces is not -dE_pot, and E_tot drifts. The
summary says which kind of forces the run used.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.calculators.calculator import Calculator

from lamm.log import progress_bar
from lamm.tables import write_csv

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DynamicsSettings:
    steps: int = 200
    timestep_fs: float = 0.5
    temperature_k: float = 300.0
    seed: int = 0
    fmax: float = 0.05  # eV/Angstrom
    max_relax_steps: int = 100
    log_every: int = 1  # MD steps between recorded frames

    def __post_init__(self) -> None:
        if self.steps < 1 or self.max_relax_steps < 0 or self.log_every < 1:
            raise ValueError(f"steps and log_every must be positive, max_relax_steps >= 0: {self}")
        if not self.timestep_fs > 0 or not self.fmax > 0 or self.temperature_k < 0:
            raise ValueError(f"timestep_fs and fmax must be positive, temperature_k >= 0: {self}")


def max_force(atoms: Atoms) -> float:
    """max_i |F_i| in eV/Angstrom."""
    return float(np.linalg.norm(atoms.get_forces(), axis=1).max())


def relax(
    atoms: Atoms, fmax: float, max_steps: int, trajectory: str | os.PathLike | None = None
) -> dict[str, Any]:
    """BFGS in place; returns steps, converged, initial/final energy (eV) and fmax (eV/A).
    A relaxation that stops at `max_steps` above `fmax` is logged as a warning."""
    from ase.optimize import BFGS

    energy_start, fmax_start = float(atoms.get_potential_energy()), max_force(atoms)
    optimizer = BFGS(
        atoms, logfile=None, trajectory=None if trajectory is None else str(trajectory)
    )
    with progress_bar(desc="relax (BFGS)", total=max_steps, unit="step") as bar:
        optimizer.attach(lambda: bar.update(1) if optimizer.nsteps else None)
        converged = (
            bool(optimizer.run(fmax=fmax, steps=max_steps)) if max_steps > 0 else fmax_start < fmax
        )
    if not converged:
        log.warning(
            "the relaxation did not converge: max force %.3g eV/A after %d steps (fmax %.3g); "
            "the MD starts from there (raise --max-relax-steps, or check the structure)",
            max_force(atoms),
            optimizer.nsteps,
            fmax,
        )
    return {
        "relax_steps": int(optimizer.nsteps),
        "relax_converged": converged,
        "relax_energy_start_ev": energy_start,
        "relax_energy_end_ev": float(atoms.get_potential_energy()),
        "relax_fmax_start_ev_per_a": fmax_start,
        "relax_fmax_end_ev_per_a": max_force(atoms),
    }


def run_nve(
    atoms: Atoms, settings: DynamicsSettings, trajectory: str | os.PathLike | None = None
) -> dict[str, np.ndarray]:
    """Velocity Verlet in place; returns time_ps, epot, ekin, etot (eV) per recorded frame."""
    from ase.io.trajectory import Trajectory
    from ase.md.velocitydistribution import Stationary, thermalize_momenta
    from ase.md.verlet import VelocityVerlet

    thermalize_momenta(
        atoms, settings.temperature_k, rng=np.random.default_rng(settings.seed)
    )  # Maxwell-Boltzmann
    Stationary(atoms)  # no drift of the centre of mass
    dynamics = VelocityVerlet(atoms, timestep=settings.timestep_fs * units.fs, logfile=None)
    frames: dict[str, list[float]] = {"time_ps": [], "epot": [], "ekin": [], "etot": []}
    writer = None if trajectory is None else Trajectory(str(trajectory), "w", atoms)

    def record() -> None:
        epot, ekin = float(atoms.get_potential_energy()), float(atoms.get_kinetic_energy())
        frames["time_ps"].append(dynamics.nsteps * settings.timestep_fs / 1000.0)
        frames["epot"].append(epot)
        frames["ekin"].append(ekin)
        frames["etot"].append(epot + ekin)
        if writer is not None:
            writer.write(atoms)

    dynamics.attach(record, interval=settings.log_every)
    bar = progress_bar(desc="NVE", total=settings.steps, unit="step")
    dynamics.attach(lambda: bar.update(1) if dynamics.nsteps else None, interval=1)
    try:
        dynamics.run(settings.steps)  # also calls `record` at step 0
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    return {key: np.asarray(values, dtype=np.float64) for key, values in frames.items()}


def energy_drift(frames: dict[str, np.ndarray], natoms: int) -> dict[str, float]:
    """Drift statistics of E_tot per atom (module docstring), with E_pot and E_kin fluctuation
    scales to compare them with."""
    etot = frames["etot"] / natoms
    time_ps = frames["time_ps"]
    slope = float(np.polyfit(time_ps, etot, 1)[0]) if len(time_ps) > 1 else float("nan")
    return {
        "max_abs_drift_ev_per_atom": float(np.abs(etot - etot[0]).max()),
        "drift_ev_per_atom_per_ps": slope,
        "etot_std_ev_per_atom": float(etot.std()),
        "epot_std_ev_per_atom": float((frames["epot"] / natoms).std()),
        "ekin_mean_ev_per_atom": float((frames["ekin"] / natoms).mean()),
        "simulated_ps": float(time_ps[-1] - time_ps[0]) if len(time_ps) else 0.0,
    }


def plot_energies(
    frames: dict[str, np.ndarray], natoms: int, path: str | os.PathLike, title: str = ""
) -> Path:
    """E_pot, E_kin and E_tot per atom (shifted by their first value) against time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lamm.analysis.figures import save_figure

    figure, axis = plt.subplots(figsize=(6.0, 3.5))
    styles = {
        "epot": ("#0173b2", "-", "E_pot"),
        "ekin": ("#de8f05", "--", "E_kin"),
        "etot": ("#029e73", "-", "E_tot"),
    }
    for key, (color, line, label) in styles.items():
        values = 1000.0 * (frames[key] - frames[key][0]) / natoms
        axis.plot(
            1000.0 * frames["time_ps"],
            values,
            color=color,
            ls=line,
            lw=1.5 if key == "etot" else 1.0,
            label=label,
        )
    axis.set_xlabel("time (fs)", fontsize=9)
    axis.set_ylabel("energy - value at t=0 (meV/atom)", fontsize=9)
    axis.tick_params(labelsize=9)
    axis.legend(fontsize=9, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        axis.set_title(title, fontsize=9)
    figure.tight_layout()
    return save_figure(figure, path)


def relax_and_run(
    atoms: Atoms,
    calculator: Calculator,
    settings: DynamicsSettings,
    out_dir: str | os.PathLike,
    *,
    force_mode: str,
    title: str = "",
) -> dict[str, Any]:
    """Relax, run NVE, write <out_dir>/{relax.traj, nve.traj, energies.csv, energies.png}; returns
    the summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atoms = atoms.copy()
    atoms.calc = calculator
    summary: dict[str, Any] = {
        "natoms": len(atoms),
        "formula": atoms.get_chemical_formula(),
        "force_mode": force_mode,
    }
    # trajectories are written under temporary names and renamed when complete
    partial = {
        name: out_dir / f".{name}.partial-{os.getpid()}" for name in ("relax.traj", "nve.traj")
    }
    try:
        summary.update(
            relax(atoms, settings.fmax, settings.max_relax_steps, trajectory=partial["relax.traj"])
        )
        atoms.set_constraint()  # NVE on every atom
        frames = run_nve(atoms, settings, trajectory=partial["nve.traj"])
        for name, path in partial.items():
            if path.exists():
                os.replace(path, out_dir / name)
    finally:
        for path in partial.values():
            path.unlink(missing_ok=True)
    summary.update(energy_drift(frames, len(atoms)))
    summary.update({f"settings_{k}": v for k, v in settings.__dict__.items()})
    summary["energy_conserving"] = force_mode == "gradient"
    summary["note"] = (
        "gradient forces (F = -dE/dx): total energy is conserved up to integration error"
        if force_mode == "gradient"
        else "direct forces are not the gradient of the energy: total energy is not conserved"
    )
    write_csv(
        [dict(zip(frames, values, strict=True)) for values in zip(*frames.values(), strict=True)],
        out_dir / "energies.csv",
    )
    plot_energies(
        frames,
        len(atoms),
        out_dir / "energies.png",
        title=title or f"NVE {summary['formula']} ({force_mode} forces)",
    )
    return summary
