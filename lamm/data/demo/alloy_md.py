"""The demo's downstream set `hme21`: snapshots of hot Langevin MD of alloy cells.

Sized so it is learnable at the demo's fine-tuning budget (issue 15: scratch energy MAE at
most ~25% of a composition-only fit's). Measured (small scale, config/finetune/demo.yaml, 576
steps): with 5 snapshots per trajectory and volumes scaled by 0.9-1.1, scratch reached 45
meV/atom against the composition fit's 117 (38%): the per-trajectory volume set an energy
offset that no force label carries (a 10% compression costs ~50 meV/atom), learned from only
38 training trajectories. Volumes within 3% gave 39 vs 102 (38%); 2 snapshots per trajectory
(96 training trajectories for the same 240 samples) 22 vs 88 (25%).

HME21 (Takamoto et al. 2022) holds high-temperature MD snapshots of multi-element periodic
systems labeled with PBE, a functional close to (not equal to) OC20's RPBE. In miniature:
- a system is one trajectory: a periodic cell of 12-32 atoms of 2-5 of the EMT metals
  Ni Cu Pd Ag Pt Au (random fractions) on an fcc, bcc or hcp lattice, or an fcc cell molten
  for `MELT_STEPS` steps at `MELT_K` first ("melt"); 0-2 vacancies; its volume scaled by
  0.97-1.03 (thermal expansion) and sheared by up to 2%;
- Langevin MD (NVT, fixed cell) at a temperature drawn from 600-2000 K, driven by the labeler
  itself; `request.frames` snapshots, `SNAPSHOT_EVERY` steps apart, the first one
  `SNAPSHOT_EVERY` steps after the start (burn-in). Snapshots of one trajectory are one
  system, so they always share a split (`generate`); their source ids share the prefix
  `hme21/<index>/<kind>/<formula>/<T>K`;
- labels: `VariantEMT`, EMT with every element's parameters changed by a few percent
  (`labelers.EMT_VARIANT_FACTORS`): the pre-training slabs' EMT physics with a slightly
  different "functional", as PBE is to RPBE. No pre-training subset holds bulk alloys or
  melts, and none is labeled with this variant.
Left out after measuring: Al (its EMT alloy energies gave the largest errors), C/N/O
interstitials (EMT's C/N/O parameters are a toy: single interstitials moved cell energies by
hundreds of meV/atom, unlearnable from a few samples), and liquids packed at random and
quenched (they stop in high-energy glassy minima, up to 0.5 eV/atom above the crystal).

An MD that goes wrong is a counted `DemoFailure`, its snapshots unused: non-finite energy or
forces, atoms closer than `MIN_DISTANCE`, forces above `MAX_FORCE`, the kinetic temperature
above `MAX_TEMPERATURE_RATIO` times the target.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms, units
from ase.build import bulk
from ase.data import atomic_numbers, reference_states
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary

from lamm.data.demo.labelers import EMT_VARIANT_FACTORS, DemoFailure, VariantEMT
from lamm.data.demo.systems import SystemRequest, SystemResult, to_record

try:  # ASE >= 3.29; the same draw as MaxwellBoltzmannDistribution, which it deprecates
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # pragma: no cover - older ASE
    from ase.md.velocitydistribution import (
        MaxwellBoltzmannDistribution as thermalize_momenta,
    )

METALS = ("Ni", "Cu", "Pd", "Ag", "Pt", "Au")
MAX_METALS = 5  # elements per cell, at least 2
LATTICES = ("fcc", "bcc", "hcp", "melt")
MIN_ATOMS, MAX_ATOMS = 12, 32
MAX_VACANCIES = 2
VOLUME_FACTOR = (0.97, 1.03)
TEMPERATURE_K = (600.0, 2000.0)
MELT_K, MELT_STEPS = 4000.0, 40
TIMESTEP_FS = 4.0  # metals only, the lightest is Ni (58.7 u)
FRICTION = 0.02  # 1/fs: the thermostat equilibrates within a few tens of fs
SNAPSHOT_EVERY = 20  # steps (80 fs) between snapshots, and burn-in before the first
# An MD that crosses any of these is a counted failure, its snapshots are not used.
MIN_DISTANCE = 1.2  # Angstrom
MAX_FORCE = 30.0  # eV/Angstrom
MAX_TEMPERATURE_RATIO = 3.0


def _lattice_constant(symbols: list[str], fractions: np.ndarray) -> float:
    """Vegard's law on the experimental fcc lattice constants (EMT's fit), stretched by the
    variant's s0 factor (its equilibrium bonds are that much longer)."""
    a = sum(
        f * reference_states[atomic_numbers[s]]["a"]
        for s, f in zip(symbols, fractions, strict=True)
    )
    return float(a) * EMT_VARIANT_FACTORS.get("s0", 1.0)


def crystal(lattice: str, a_fcc: float, rng: np.random.Generator) -> Atoms:
    """An fcc, bcc or hcp supercell of MIN_ATOMS-MAX_ATOMS sites at the fcc volume per atom."""
    if lattice == "fcc":
        cell = bulk("X", "fcc", a=a_fcc, cubic=True)
    elif lattice == "bcc":
        cell = bulk("X", "bcc", a=a_fcc / 2 ** (1 / 3), cubic=True)
    elif lattice == "hcp":
        cell = bulk("X", "hcp", a=a_fcc / 2**0.5, c=a_fcc / 2**0.5 * (8 / 3) ** 0.5)
    else:
        raise ValueError(f"unknown lattice {lattice!r}")
    options = [
        (i, j, k)
        for i in range(1, 5)
        for j in range(1, 5)
        for k in range(1, 5)
        if i >= j >= k and MIN_ATOMS <= i * j * k * len(cell) <= MAX_ATOMS
    ]
    return cell.repeat(options[int(rng.integers(len(options)))])


def alloy_cell(rng: np.random.Generator) -> tuple[Atoms, str]:
    """(a random multi-element cell before MD, its kind: lattice or melt, `-v<n>` with n
    vacancies)."""
    count = int(rng.integers(2, min(MAX_METALS, len(METALS)) + 1))
    symbols = [str(s) for s in rng.choice(METALS, size=count, replace=False)]
    fractions = rng.dirichlet(np.ones(len(symbols)))
    kind = str(rng.choice(LATTICES))
    atoms = crystal("fcc" if kind == "melt" else kind, _lattice_constant(symbols, fractions), rng)
    vacancies = min(int(rng.integers(0, MAX_VACANCIES + 1)), len(atoms) - MIN_ATOMS)
    if vacancies > 0:
        del atoms[[int(i) for i in rng.choice(len(atoms), size=vacancies, replace=False)]]
        kind = f"{kind}-v{vacancies}"
    atoms.symbols = rng.choice(symbols, size=len(atoms), p=fractions)
    atoms.pbc = True
    strain = np.eye(3) * rng.uniform(*VOLUME_FACTOR) ** (1 / 3) + np.triu(
        rng.uniform(-0.02, 0.02, size=(3, 3)), 1
    )
    atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
    return atoms, kind


def check_snapshot(atoms: Atoms, energy: float, forces: np.ndarray, temperature: float) -> None:
    """Raise a counted DemoFailure if the MD went wrong (see the module docstring)."""
    if not (np.isfinite(energy) and np.isfinite(forces).all()):
        raise DemoFailure("MD non-finite energy or forces")
    distances = atoms.get_all_distances(mic=True) + np.eye(len(atoms)) * 99
    if distances.min() < MIN_DISTANCE:
        raise DemoFailure(f"MD atoms closer than {MIN_DISTANCE} A")
    if np.abs(forces).max() > MAX_FORCE:
        raise DemoFailure(f"MD forces above {MAX_FORCE} eV/A")
    if atoms.get_temperature() > MAX_TEMPERATURE_RATIO * temperature:
        raise DemoFailure(f"MD temperature above {MAX_TEMPERATURE_RATIO}x the target")


def _langevin(
    atoms: Atoms, temperature: float, rng: np.random.Generator, timestep_fs: float = TIMESTEP_FS
) -> Langevin:
    return Langevin(
        atoms,
        timestep_fs * units.fs,
        temperature_K=temperature,
        friction=FRICTION / units.fs,
        fixcm=False,
        rng=rng,
    )


def hme21_md_system(request: SystemRequest, rng: np.random.Generator) -> SystemResult:
    """One Langevin trajectory of a random alloy cell; `request.frames` labeled snapshots."""
    atoms, kind = alloy_cell(rng)
    temperature = float(rng.uniform(*TEMPERATURE_K))
    atoms.calc = VariantEMT()
    atoms.rattle(0.05, rng=rng)
    if kind.startswith("melt"):  # molten at MELT_K, then cooled by the thermostat at T
        thermalize_momenta(atoms, temperature_K=MELT_K, rng=rng)
        _langevin(atoms, MELT_K, rng).run(MELT_STEPS)
    else:
        thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    dynamics = _langevin(atoms, temperature, rng)
    source = f"hme21/{request.index:06d}/{kind}/{atoms.get_chemical_formula()}/{temperature:.0f}K"
    records = []
    for snapshot in range(1, request.frames + 1):
        dynamics.run(SNAPSHOT_EVERY)
        energy = float(atoms.get_potential_energy())
        forces = np.array(atoms.get_forces(), dtype=np.float64)
        check_snapshot(atoms, energy, forces, temperature)
        records.append(
            to_record(
                atoms,
                energy=energy,
                forces=forces,
                keep_fixed_and_tags=False,
                source_id=f"{source}/frame{snapshot * SNAPSHOT_EVERY:04d}",
            )
        )
    return SystemResult(records={"hme21": records})


# --- the universal labels' hme21: more metals, MD driven by one potential, labeled by another --

# Metals of HME21's alloys and high-entropy cells (Takamoto et al. 2022 list 37 elements).
UNIVERSAL_METALS = (
    "Al", "Mg", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Zr", "Nb", "Mo",
    "Ru", "Rh", "Pd", "Ag", "Sn", "Ir", "Pt", "Au",
)  # fmt: skip
# The MD runs on DRIVER (cheap); the snapshots are labeled by LABELER, a model that no
# pre-training subset uses, as HME21's PBE settings are not those of any pre-training set.
DRIVER, LABELER = "chgnet-0.3.0", "sevennet-l3i5"
UNIVERSAL_TIMESTEP_FS = 2.0  # Al and Mg are the lightest (24-27 u)


def universal_alloy_cell(rng: np.random.Generator) -> tuple[Atoms, str]:
    """A random 2-5-metal cell (as `alloy_cell`) on the mean covalent-radius lattice."""
    from lamm.data.demo.crystals import radius

    count = int(rng.integers(2, MAX_METALS + 1))
    symbols = [str(s) for s in rng.choice(UNIVERSAL_METALS, size=count, replace=False)]
    fractions = rng.dirichlet(np.ones(len(symbols)))
    kind = str(rng.choice(LATTICES))
    a_fcc = 2 * float(sum(f * radius(s) for s, f in zip(symbols, fractions, strict=True))) * 2**0.5
    atoms = crystal("fcc" if kind == "melt" else kind, a_fcc, rng)
    vacancies = min(int(rng.integers(0, MAX_VACANCIES + 1)), len(atoms) - MIN_ATOMS)
    if vacancies > 0:
        del atoms[[int(i) for i in rng.choice(len(atoms), size=vacancies, replace=False)]]
        kind = f"{kind}-v{vacancies}"
    atoms.symbols = rng.choice(symbols, size=len(atoms), p=fractions)
    atoms.pbc = True
    return atoms, kind


def hme21_universal_system(request: SystemRequest, rng: np.random.Generator) -> SystemResult:
    """One Langevin trajectory (DRIVER) of a random alloy cell at the driver's zero pressure,
    then thermal expansion and shear as `alloy_cell`; `request.frames` snapshots labeled by
    LABELER with energy, forces and stress."""
    import dataclasses

    from lamm.data.demo import universal
    from lamm.data.demo.crystals import fit_volume

    atoms, kind = universal_alloy_cell(rng)
    fit_volume(atoms, lambda probe: universal.label(probe, DRIVER))
    strain = np.eye(3) * rng.uniform(*VOLUME_FACTOR) ** (1 / 3) + np.triu(
        rng.uniform(-0.02, 0.02, size=(3, 3)), 1
    )
    atoms.set_cell(atoms.cell.array @ strain, scale_atoms=True)
    temperature = float(rng.uniform(*TEMPERATURE_K))
    atoms.calc = universal.calculator(DRIVER)
    atoms.rattle(0.05, rng=rng)
    melt = kind.startswith("melt")
    thermalize_momenta(atoms, temperature_K=MELT_K if melt else temperature, rng=rng)
    Stationary(atoms)
    if melt:
        _langevin(atoms, MELT_K, rng, UNIVERSAL_TIMESTEP_FS).run(MELT_STEPS)
    dynamics = _langevin(atoms, temperature, rng, UNIVERSAL_TIMESTEP_FS)
    source = f"hme21/{request.index:06d}/{kind}/{atoms.get_chemical_formula()}/{temperature:.0f}K"
    records = []
    for snapshot in range(1, request.frames + 1):
        dynamics.run(SNAPSHOT_EVERY)
        energy, forces, stress = universal.label(atoms, LABELER)
        check_snapshot(atoms, energy, forces, temperature)
        record = to_record(
            atoms, energy=energy, forces=forces, keep_fixed_and_tags=False,
            source_id=f"{source}/frame{snapshot * SNAPSHOT_EVERY:04d}",
        )  # fmt: skip
        records.append(dataclasses.replace(record, stress=stress))
    return SystemResult(records={"hme21": records})
