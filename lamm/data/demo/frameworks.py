"""ODAC23-like systems: CO2 and H2O in porous periodic metal-organic frameworks, 100-300 atoms.

Frameworks are pillared paddlewheel MOFs of the DMOF-1 family (pcu net, e.g. Cu2(bdc)2(dabco)):
an M2 paddlewheel (M = Cu or Ni) at each cell corner, dicarboxylate linkers along a and b
bonded through their carboxylate oxygens, an N-donor pillar along c. Linker geometries come
from RDKit (ETKDG + MMFF94s, fixed seed, so a framework type always has the same geometry);
the cell follows from the linker lengths. Supercells are chosen to give 100-300 atoms (ODAC23
keeps structures of at most 300 atoms in LaMM).

Each supercell misses one pillar (a common defect), which opens the axial sites of two
paddlewheel metals; the adsorbates (one or two of CO2, H2O) start at these open metal sites,
where real MOFs bind CO2 and water most strongly.

Labels are EMT, the only labeler here fast enough for hundreds of 100-300-atom relaxations
(periodic GFN1-xTB needs about 2 s for one 108-atom single point). EMT's C/H/N/O parameters
are not meant for organic chemistry: relaxing the whole framework destroys it, so the
framework is held fixed (tag 0) and only the adsorbates relax (tag 2), the way OC20 fixes
its sub-surface. Forces on framework atoms are kept in the labels, like OC20's fixed atoms.
EMT has no physisorption to speak of (its C/H/N/O interactions die off within about 2 A),
which is one more reason to start at the metal sites rather than in the middle of a pore.

ODAC23 adsorption energy: E_ads = E(MOF + adsorbates, relaxed) - E(empty MOF) - sum E(gas),
with each gas molecule relaxed alone in EMT.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms

from lamm.data.demo.adsorbates import gas_energy, relaxed_adsorbate
from lamm.data.demo.labelers import DemoFailure
from lamm.data.demo.systems import (
    SystemRequest,
    SystemResult,
    pick_by_size,
    relaxation_records,
    to_record,
)
from lamm.data.demo.universal import energy_forces_with, relax_with

METALS = ("Cu", "Ni")
# Paddlewheel metals of real DMOF-type frameworks, for the universal labels (EMT knows Cu, Ni).
UNIVERSAL_METALS = ("Cu", "Ni", "Zn", "Co", "Fe", "Cr", "Mo", "Ru")
UNIVERSAL_MEAN_ATOMS = 120  # smaller cells: a universal-potential step costs 10-100x EMT's
UNIVERSAL_MAX_STEPS = 40
# Dicarboxylates (in-plane linkers) and N-donor pillars, as SMILES of the bound forms.
LINKERS = {
    "fumarate": "[O-]C(=O)/C=C/C(=O)[O-]",
    "acetylenedicarboxylate": "[O-]C(=O)C#CC(=O)[O-]",
    "bdc": "[O-]C(=O)c1ccc(cc1)C(=O)[O-]",
    "nh2-bdc": "[O-]C(=O)c1ccc(c(N)c1)C(=O)[O-]",
    "ndc": "[O-]C(=O)c1ccc(C(=O)[O-])c2ccccc12",
    "bpdc": "[O-]C(=O)c1ccc(cc1)-c1ccc(cc1)C(=O)[O-]",
}
PILLARS = {
    "dabco": "C1CN2CCN1CC2",
    "pyrazine": "c1cnccn1",
    "bipyridine": "c1cc(ccn1)-c1ccncc1",
}
ADSORBATE_SETS = (("CO2",), ("H2O",), ("CO2", "H2O"), ("H2O", "H2O"), ("CO2", "CO2"))
MIN_ATOMS, MAX_ATOMS = 100, 300
MEAN_ATOMS = 160  # supercells drawn around Table 2's average
METAL_METAL = 2.6  # Angstrom, paddlewheel M-M
CARBOXYLATE_C = 2.575  # node centre to carboxylate carbon (M-O 1.95 A, O-C-O 120 deg)
METAL_N = 2.05  # axial M-N
MIN_GAP = 1.8  # Angstrom between a non-binding adsorbate atom and the framework
FMAX, MAX_STEPS = 0.05, 200  # an adsorbate drifting in a flat EMT landscape rarely settles later
_GEOMETRY_SEED = 20230517  # one geometry per framework type


def _embedded(smiles: str) -> tuple[np.ndarray, np.ndarray, object]:
    from rdkit import Chem
    from rdkit.Chem import AllChem

    molecule = Chem.AddHs(Chem.MolFromSmiles(smiles))
    if AllChem.EmbedMolecule(molecule, randomSeed=_GEOMETRY_SEED) != 0:
        raise RuntimeError(f"RDKit cannot embed framework part {smiles}")
    AllChem.MMFFOptimizeMolecule(molecule, mmffVariant="MMFF94s", maxIters=2000)
    numbers = np.array([atom.GetAtomicNum() for atom in molecule.GetAtoms()])
    return numbers, molecule.GetConformer().GetPositions(), molecule


def _frame(axis: np.ndarray, hint: np.ndarray) -> np.ndarray:
    """Rows: unit x along `axis`, unit y along the part of `hint` normal to it, z = x cross y."""
    x = axis / np.linalg.norm(axis)
    y = hint - hint @ x * x
    y /= np.linalg.norm(y)
    return np.stack([x, y, np.cross(x, y)])


@lru_cache(maxsize=None)
def linker_local(name: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(numbers, positions, C...C length): carboxylate carbons on the x axis at 0 and length,
    the first carboxylate's O-O vector along y."""
    from rdkit import Chem

    numbers, positions, molecule = _embedded(LINKERS[name])
    groups = molecule.GetSubstructMatches(Chem.MolFromSmarts("[CX3](=O)[O-]"))
    (c1, o1, o2), (c2, _, _) = groups[0], groups[1]
    rotation = _frame(positions[c2] - positions[c1], positions[o1] - positions[o2])
    local = (positions - positions[c1]) @ rotation.T
    return numbers, local, float(local[c2, 0])


@lru_cache(maxsize=None)
def pillar_local(name: str) -> tuple[np.ndarray, np.ndarray, float]:
    """(numbers, positions, N...N length): the two donor nitrogens on the x axis."""
    numbers, positions, _ = _embedded(PILLARS[name])
    n1, n2 = np.flatnonzero(numbers == 7)[:2]
    rotation = _frame(positions[n2] - positions[n1], np.array([0.3, 1.0, 0.2]))
    local = (positions - positions[n1]) @ rotation.T
    return numbers, local, float(local[n2, 0])


@lru_cache(maxsize=None)
def unit_cell(metal: str, linker_a: str, linker_b: str, pillar: str) -> Atoms:
    """One pcu cell: paddlewheel at the origin, linkers along a and b, pillar along c."""
    za, pa, la = linker_local(linker_a)
    zb, pb, lb = linker_local(linker_b)
    zp, pp, lp = pillar_local(pillar)
    half = METAL_METAL / 2
    numbers = [metal, metal]
    positions = [np.array([0.0, 0.0, half]), np.array([0.0, 0.0, -half])]
    # local (x along the linker, y along O-O, z normal) -> cell axes with O-O along c
    along_a = np.stack([pa[:, 0] + CARBOXYLATE_C, pa[:, 2], pa[:, 1]], axis=1)
    along_b = np.stack([pb[:, 2], pb[:, 0] + CARBOXYLATE_C, pb[:, 1]], axis=1)
    along_c = np.stack([pp[:, 1], pp[:, 2], pp[:, 0] + half + METAL_N], axis=1)
    cell = [la + 2 * CARBOXYLATE_C, lb + 2 * CARBOXYLATE_C, lp + 2 * (half + METAL_N)]
    atoms = Atoms(numbers, positions=positions, cell=cell, pbc=True)
    for z, p in ((za, along_a), (zb, along_b), (zp, along_c)):
        atoms += Atoms(z, positions=p)
    return atoms  # not wrapped: each molecule stays whole, so its copies in a supercell are too


def framework(
    rng: np.random.Generator, metals: tuple[str, ...] = METALS, mean_atoms: float = MEAN_ATOMS
) -> tuple[Atoms, np.ndarray, str]:
    """A random framework type and supercell (MIN_ATOMS..MAX_ATOMS atoms) without the pillar of
    its first cell; returns it, the two open sites ([2, 3]: where the pillar's nitrogens were,
    binding direction +z for the first, -z for the second) and a readable name."""
    metal = str(rng.choice(metals))
    linker_a = str(rng.choice(list(LINKERS)))
    linker_b = linker_a if rng.random() < 0.6 else str(rng.choice(list(LINKERS)))
    pillar = str(rng.choice(list(PILLARS)))
    cell = unit_cell(metal, linker_a, linker_b, pillar)
    n_pillar = len(pillar_local(pillar)[0])
    options = [
        (i, j, k)
        for i in range(1, 5)
        for j in range(1, 5)
        for k in range(1, 4)
        if MIN_ATOMS <= i * j * k * len(cell) - n_pillar <= MAX_ATOMS - 6
    ]
    if not options:
        raise AssertionError(f"no supercell of {len(cell)} atoms fits {MIN_ATOMS}..{MAX_ATOMS}")
    repeat = options[
        pick_by_size([int(np.prod(o)) * len(cell) for o in options], rng, mean_atoms, 60.0)
    ]
    supercell = cell.repeat(repeat)  # image-major: the first len(cell) atoms are the first cell
    pillar_atoms = np.arange(len(cell) - n_pillar, len(cell))
    nitrogens = pillar_atoms[supercell.numbers[pillar_atoms] == 7][:2]
    sites = supercell.positions[nitrogens].copy()
    if sites[0, 2] > sites[1, 2]:
        sites = sites[::-1]
    del supercell[pillar_atoms]
    supercell.wrap()
    name = f"{metal}2({linker_a})({linker_b})({pillar})x{repeat[0]}{repeat[1]}{repeat[2]}-pillar"
    return supercell, sites, name


def bind(
    host: Atoms,
    molecule: Atoms,
    site: np.ndarray,
    upward: bool,
    rng: np.random.Generator,
    tries: int = 50,
) -> Atoms:
    """`host` plus `molecule` (binding atom first, pointing +z) with its binding atom at `site`,
    pointing away from the metal, turned about the axis until it clears the framework."""
    for _ in range(tries):
        placed = molecule.copy()
        if not upward:
            placed.rotate(180, "x", center=(0, 0, 0))
        placed.rotate(float(rng.uniform(0, 360)), "z", center=(0, 0, 0))
        placed.rotate(float(rng.normal(0, 20)), "x", center=(0, 0, 0))
        placed.translate(site)
        combined = host + placed
        n = len(host)
        gaps = [
            combined.get_distances(n + i, np.arange(n), mic=True).min()
            for i in range(1, len(placed))
        ]
        if not gaps or min(gaps) >= MIN_GAP:
            return combined
    raise DemoFailure("adsorbate clashes with the framework at the open metal site")


def odac_system(
    request: SystemRequest, rng: np.random.Generator, labeler: str | None = None
) -> SystemResult:
    """Adsorbates relaxed at open metal sites of a fixed framework: S2EF-T frames and an IS2RE
    adsorption energy; EMT when `labeler` is None, else that universal potential (and more
    paddlewheel metals, smaller cells, shorter relaxations)."""
    if labeler is None:
        host, sites, name = framework(rng)
        max_steps = MAX_STEPS
    else:
        host, sites, name = framework(rng, UNIVERSAL_METALS, UNIVERSAL_MEAN_ATOMS)
        max_steps = UNIVERSAL_MAX_STEPS
    # Two molecules face each other across the missing pillar: only where that gap is wide.
    choices = [
        a for a in ADSORBATE_SETS if len(a) == 1 or np.linalg.norm(sites[1] - sites[0]) > 5.0
    ]
    adsorbates = choices[int(rng.integers(len(choices)))]
    system = host.copy()
    for k, adsorbate in enumerate(adsorbates):
        molecule = relaxed_adsorbate(adsorbate, labeler)
        system = bind(system, molecule, sites[k], upward=k == 0, rng=rng)
    system.set_tags(np.where(np.arange(len(system)) < len(host), 0, 2))
    system.set_constraint(FixAtoms(indices=np.arange(len(host))))
    initial = system.copy()
    initial.positions[len(host) :] += rng.normal(0.0, 0.03, size=(len(system) - len(host), 3))
    system.positions[:] = initial.positions
    source = f"odac23/{request.index:06d}/{name}+{'+'.join(adsorbates)}"
    frames, converged = relax_with(system, labeler, fmax=FMAX, max_steps=max_steps)
    result = SystemResult(
        records={"odac23_s2ef": relaxation_records(initial, frames, request.frames, source)}
    )
    if not converged:
        result.failures["odac23_is2re"] = (
            f"{labeler or 'EMT'} relaxation not converged in {max_steps} steps"
        )
        return result
    empty_energy, _ = energy_forces_with(host, labeler)
    gas = sum(gas_energy(a, labeler) for a in adsorbates)
    e_ads = frames[-1].energy - empty_energy - gas
    result.records["odac23_is2re"] = [
        to_record(initial, energy=e_ads, source_id=f"{source}/initial")
    ]
    return result
