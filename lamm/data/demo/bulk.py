"""OMat24-like bulk data: rattled, strained and MD snapshots of crystals across the periodic table.

OMat24 (Barroso-Luque et al. 2024) holds non-equilibrium bulk structures of 89 elements:
Boltzmann-rattled and strained cells, and ab initio MD at 1000-3000 K, labeled with PBE/PBE+U
energies, forces and stresses. Users' training sets add equations of state: the same crystal
compressed and expanded far beyond thermal strains (SNAP's Ta and InP sets span 0.6-2.8 times the
equilibrium volume). In miniature, one system is one crystal (`crystals.py`) at the labeler's
equilibrium volume, made into a supercell of MIN_ATOMS-MAX_ATOMS atoms, in a third of the systems
with a point defect (vacancies, an antisite pair or an interstitial), then one of
- rattled (the rest): `request.frames` snapshots, each with its own volume strain
  (VOLUME_FACTOR), shear (up to SHEAR) and temperature T in TEMPERATURE_K, the atoms displaced by
  N(0, kT/k) per coordinate, the classical thermal spread of an Einstein solid with spring
  constant k drawn from SPRING (independent of the atoms' masses);
- an equation of state (EOS_FRACTION): `request.frames` cells at linear scales drawn from
  EOS_SCALE (sorted), each lightly rattled (EOS_RATTLE) so that forces are not zero;
- MD (MD_FRACTION): Langevin NVT at T driven by the labeler itself, from a rattled start,
  `request.frames` snapshots MD_EVERY steps apart after MD_BURN_IN steps.
Every snapshot is labeled with energy, forces and stress. Snapshots of one system share a
split (`generate`). A snapshot that goes wrong (atoms closer than MIN_BOND of their covalent
bond, forces above the labeler's limit, a runaway MD) is a counted `DemoFailure`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from ase import Atoms, units
from ase.data import covalent_radii
from ase.md.langevin import Langevin
from ase.md.velocitydistribution import Stationary

from lamm.data.demo import universal
from lamm.data.demo.crystals import decorate, fit_volume, random_crystal
from lamm.data.demo.labelers import DemoFailure
from lamm.data.demo.systems import SystemRequest, SystemResult, pick_by_size, to_record

try:  # ASE >= 3.29; the same draw as MaxwellBoltzmannDistribution, which it deprecates
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # pragma: no cover - older ASE
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution as thermalize_momenta

LABELER = "chgnet-0.3.0"
MIN_ATOMS, MAX_ATOMS, MEAN_ATOMS = 8, 64, 28
DEFECT_FRACTION = 1 / 3
MD_FRACTION = 0.15
EOS_FRACTION = 0.3
EOS_SCALE = (0.84, 1.42)  # linear: 0.6-2.9 times the equilibrium volume
EOS_RATTLE = 0.03  # Angstrom
TEMPERATURE_K = (300.0, 2000.0)
SPRING = (4.0, 12.0)  # eV/A^2: sqrt(kT/k) = 0.05-0.22 A over TEMPERATURE_K
VOLUME_FACTOR = (0.9, 1.1)
SHEAR = 0.03
MD_BURN_IN, MD_EVERY = 10, 6  # steps
FRICTION = 0.02  # 1/fs
MIN_BOND = 0.6  # fraction of the covalent bond below which two atoms have collided
MAX_TEMPERATURE_RATIO = 3.0


def supercell(atoms: Atoms, rng: np.random.Generator, mean_atoms: float = MEAN_ATOMS) -> Atoms:
    """A repeat of `atoms` with MIN_ATOMS-MAX_ATOMS atoms, its size drawn around `mean_atoms`,
    among repeats whose cell lengths differ by at most a factor 2 (no needle cells)."""
    lengths = atoms.cell.lengths()
    options = []
    for i in range(1, 7):
        for j in range(1, 7):
            for k in range(1, 7):
                n = len(atoms) * i * j * k
                repeated = lengths * (i, j, k)
                if MIN_ATOMS <= n <= MAX_ATOMS and repeated.max() <= 2 * repeated.min():
                    options.append((i, j, k))
    if not options:  # a cell too large or too flat already: at most MAX_ATOMS of it
        if len(atoms) > MAX_ATOMS:
            raise DemoFailure("crystal cell above MAX_ATOMS")
        return atoms.copy()
    counts = [len(atoms) * int(np.prod(o)) for o in options]
    return atoms.repeat(options[pick_by_size(counts, rng, mean_atoms, 0.5 * mean_atoms)])


def add_defect(atoms: Atoms, rng: np.random.Generator) -> str:
    """A vacancy pair or single vacancy, an antisite pair, or an interstitial (in place)."""
    kind = str(rng.choice(["vacancy", "antisite", "interstitial"]))
    species = np.unique(atoms.numbers)
    if kind == "antisite" and len(species) > 1:
        a = int(rng.choice(np.flatnonzero(atoms.numbers == species[0])))
        b = int(rng.choice(np.flatnonzero(atoms.numbers != species[0])))
        atoms.numbers[[a, b]] = atoms.numbers[[b, a]]
        return "antisite"
    if kind == "interstitial":
        # The emptiest of 64 random points (largest distance to its nearest atom).
        points = rng.random((64, 3)) @ atoms.cell.array
        distances = [_nearest(atoms, point) for point in points]
        position = points[int(np.argmax(distances))]
        atoms += Atoms([int(rng.choice(atoms.numbers))], positions=[position])
        return "interstitial"
    count = 1 if len(atoms) <= MIN_ATOMS + 1 else int(rng.integers(1, 3))
    del atoms[[int(i) for i in rng.choice(len(atoms), size=count, replace=False)]]
    return f"vacancy{count}"


def _nearest(atoms: Atoms, point: np.ndarray) -> float:
    probe = atoms + Atoms("X", positions=[point])
    return float(probe.get_distances(len(atoms), np.arange(len(atoms)), mic=True).min())


def strain(atoms: Atoms, rng: np.random.Generator) -> None:
    """A random volume factor and symmetric shear applied to the cell (atoms follow)."""
    volume = rng.uniform(*VOLUME_FACTOR)
    shear = np.triu(rng.uniform(-SHEAR, SHEAR, size=(3, 3)), 1)
    deformation = np.eye(3) * volume ** (1 / 3) + shear + shear.T
    atoms.set_cell(atoms.cell.array @ deformation, scale_atoms=True)


def check_geometry(atoms: Atoms) -> None:
    """Raise a counted DemoFailure when two atoms sit closer than MIN_BOND of their bond."""
    distances = atoms.get_all_distances(mic=True)
    bonds = covalent_radii[atoms.numbers][:, None] + covalent_radii[atoms.numbers][None, :]
    np.fill_diagonal(distances, np.inf)
    if (distances < MIN_BOND * bonds).any():
        raise DemoFailure(f"atoms closer than {MIN_BOND} of their covalent bond")


def _record(atoms: Atoms, energy: float, forces, stress, source_id: str):
    record = to_record(
        atoms, energy=energy, forces=forces, keep_fixed_and_tags=False, source_id=source_id
    )
    return dataclasses.replace(record, stress=stress)


def _rattled(base: Atoms, request: SystemRequest, rng, source: str, labeler: str) -> list:
    records = []
    for frame in range(request.frames):
        atoms = base.copy()
        strain(atoms, rng)
        temperature = float(rng.uniform(*TEMPERATURE_K))
        sigma = np.sqrt(units.kB * temperature / rng.uniform(*SPRING))
        atoms.positions += rng.normal(0.0, sigma, size=atoms.positions.shape)
        check_geometry(atoms)
        energy, forces, stress = universal.label(atoms, labeler)
        records.append(
            _record(atoms, energy, forces, stress, f"{source}/rattled{frame}/{temperature:.0f}K")
        )
    return records


def _eos(base: Atoms, request: SystemRequest, rng, source: str, labeler: str) -> list:
    records = []
    for scale in np.sort(rng.uniform(*EOS_SCALE, size=request.frames)):
        atoms = base.copy()
        atoms.set_cell(atoms.cell.array * scale, scale_atoms=True)
        atoms.positions += rng.normal(0.0, EOS_RATTLE, size=atoms.positions.shape)
        check_geometry(atoms)
        energy, forces, stress = universal.label(atoms, labeler)
        records.append(_record(atoms, energy, forces, stress, f"{source}/eos{scale:.3f}"))
    return records


def _md(base: Atoms, request: SystemRequest, rng, source: str, labeler: str) -> list:
    atoms = base.copy()
    strain(atoms, rng)
    temperature = float(rng.uniform(*TEMPERATURE_K))
    atoms.positions += rng.normal(0.0, np.sqrt(units.kB * temperature / SPRING[1]), (len(atoms), 3))
    check_geometry(atoms)
    atoms.calc = universal.calculator(labeler)
    thermalize_momenta(atoms, temperature_K=temperature, rng=rng)
    Stationary(atoms)
    timestep = 1.0 if atoms.get_masses().min() < 10.0 else 2.0  # fs: H, Li, Be, B need 1 fs
    dynamics = Langevin(
        atoms, timestep * units.fs, temperature_K=temperature, friction=FRICTION / units.fs,
        fixcm=False, rng=rng,
    )  # fmt: skip
    dynamics.run(MD_BURN_IN - MD_EVERY)
    records = []
    for frame in range(request.frames):
        dynamics.run(MD_EVERY)
        if atoms.get_temperature() > MAX_TEMPERATURE_RATIO * temperature:
            raise DemoFailure(f"MD temperature above {MAX_TEMPERATURE_RATIO}x the target")
        check_geometry(atoms)
        energy, forces, stress = universal.label(atoms, labeler)
        step = MD_BURN_IN + frame * MD_EVERY
        records.append(
            _record(atoms, energy, forces, stress, f"{source}/md{step:03d}/{temperature:.0f}K")
        )
    return records


def omat24_system(request: SystemRequest, rng: np.random.Generator) -> SystemResult:
    """One crystal; `request.frames` rattled or MD snapshots with energy, forces and stress."""
    base, kind = random_crystal(rng)
    probe = decorate(base.repeat(2) if "alloy" in base.info else base.copy(), rng)
    scale = fit_volume(probe, lambda atoms: universal.label(atoms, LABELER))
    base.set_cell(base.cell.array * scale, scale_atoms=True)
    cell = decorate(supercell(base, rng), rng)
    cell.info.clear()
    if rng.random() < DEFECT_FRACTION:
        kind = f"{kind}/{add_defect(cell, rng)}"
    draw = rng.random()
    mode = _md if draw < MD_FRACTION else _eos if draw < MD_FRACTION + EOS_FRACTION else _rattled
    source = f"omat24/{request.index:06d}/{kind}/{cell.get_chemical_formula()}"
    return SystemResult(records={"omat24": mode(cell, request, rng, source, LABELER)})
