"""Crystal prototypes across the periodic table, at the labeler's own equilibrium volume.

A crystal is drawn in three steps (`random_crystal`):
1. a class, in roughly the proportions of users' materials data: elemental metals and
   random alloys, ordered intermetallics, oxides, other ionic compounds (nitrides, carbides,
   chalcogenides, halides, pnictides, hydrides), tetrahedral semiconductors;
2. its elements (`elements.py`) and a charge-balanced formula, then the prototype that holds
   that formula: rock salt, CsCl, zinc blende, wurtzite (AX), fluorite, rutile (AX2),
   anti-fluorite (A2X), corundum (A2X3), ReO3 (AX3), cubic perovskite (ABX3), fcc/bcc/hcp
   and diamond (elements), B2, L1_2, L1_0 (intermetallics);
3. a first volume from covalent radii (nearest-neighbour distance = sum of the radii), then
   the volume at which the labeler's pressure vanishes (`fit_volume`: a few secant steps on
   the pressure, internal coordinates fixed), so that strain and temperature are applied
   around the labeler's equilibrium, not around a guess that may be 15% off.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.data import atomic_numbers, covalent_radii
from ase.spacegroup import crystal as spacegroup_crystal
from ase.units import GPa

from lamm.data.demo.elements import (
    ANIONS,
    CATIONS,
    II_VI,
    III_V,
    METALS,
    OXIDE_CATIONS,
    TETRAHEDRAL_ELEMENTS,
)
from lamm.data.demo.labelers import DemoFailure

# Classes and their weights: metals and oxides dominate users' periodic DFT data.
CLASS_WEIGHTS = {
    "metal": 0.22,
    "intermetallic": 0.14,
    "oxide": 0.22,
    "compound": 0.27,
    "semiconductor": 0.15,
}
BULK_MODULUS_GUESS = 100.0 * GPa  # eV/A^3, the first secant step only
MAX_VOLUME_STEPS = 5
PRESSURE_TOLERANCE = 0.5 * GPa  # eV/A^3: stop here
FAILED_PRESSURE = 5.0 * GPa  # eV/A^3: a fit that ends above this is a counted failure
SCALE_LIMITS = (0.7, 1.45)  # linear scale of the radii guess the fit may reach

Labeler = Callable[[Atoms], tuple[float, np.ndarray, np.ndarray | None]]


def radius(symbol: str) -> float:
    return float(covalent_radii[atomic_numbers[symbol]])


def _bond(a: str, b: str) -> float:
    return radius(a) + radius(b)


# --- prototypes: each returns a cell whose nearest A-X (or A-A) distance is about `d` ---------


def elemental(symbol: str, lattice: str) -> Atoms:
    d = 2 * radius(symbol)
    if lattice == "fcc":
        return bulk(symbol, "fcc", a=d * 2**0.5, cubic=False)
    if lattice == "bcc":
        return bulk(symbol, "bcc", a=d * 2 / 3**0.5, cubic=False)
    if lattice == "hcp":
        return bulk(symbol, "hcp", a=d, c=d * (8 / 3) ** 0.5)
    if lattice == "diamond":
        return bulk(symbol, "diamond", a=d * 4 / 3**0.5)
    raise ValueError(f"unknown elemental lattice {lattice!r}")


def binary_ax(a: str, x: str, prototype: str) -> Atoms:
    d = _bond(a, x)
    if prototype == "rocksalt":
        return bulk(f"{a}{x}", "rocksalt", a=2 * d)
    if prototype == "cesiumchloride":
        return bulk(f"{a}{x}", "cesiumchloride", a=2 * d / 3**0.5)
    if prototype == "zincblende":
        return bulk(f"{a}{x}", "zincblende", a=4 * d / 3**0.5)
    if prototype == "wurtzite":
        a_hex = d * (8 / 3) ** 0.5
        return bulk(f"{a}{x}", "wurtzite", a=a_hex, c=a_hex * (8 / 3) ** 0.5, u=0.375)
    raise ValueError(f"unknown AX prototype {prototype!r}")


def fluorite(a: str, x: str, anti: bool = False) -> Atoms:
    """CaF2 (A at the fcc sites, X in the tetrahedral holes); anti-fluorite swaps the roles."""
    lattice = 4 * _bond(a, x) / 3**0.5
    cation, anion = (x, a) if anti else (a, x)
    return spacegroup_crystal(
        [cation, anion], [(0, 0, 0), (0.25, 0.25, 0.25)], spacegroup=225, cellpar=[lattice] * 3
    )


def rutile(a: str, x: str) -> Atoms:
    d = _bond(a, x)
    lattice, c, u = d / 0.43, d / 0.43 * 0.64, 0.305  # TiO2: a 4.59, c 2.96, d 1.96 A
    return spacegroup_crystal(
        [a, x], [(0, 0, 0), (u, u, 0)], spacegroup=136, cellpar=[lattice, lattice, c, 90, 90, 90]
    )


def corundum(a: str, x: str) -> Atoms:
    d = _bond(a, x)
    scale = d / 1.91  # Al2O3: a 4.76, c 13.0, mean Al-O 1.91 A
    return spacegroup_crystal(
        [a, x],
        [(0, 0, 0.352), (0.306, 0, 0.25)],
        spacegroup=167,
        cellpar=[4.76 * scale, 4.76 * scale, 13.0 * scale, 90, 90, 120],
        primitive_cell=True,
    )


def reo3(a: str, x: str) -> Atoms:
    lattice = 2 * _bond(a, x)
    return Atoms(
        [a, x, x, x],
        scaled_positions=[(0, 0, 0), (0.5, 0, 0), (0, 0.5, 0), (0, 0, 0.5)],
        cell=[lattice] * 3,
        pbc=True,
    )


def perovskite(a: str, b: str, x: str) -> Atoms:
    """Cubic ABX3: B octahedrally coordinated by X at the face centres, A at the cube centre."""
    lattice = 2 * _bond(b, x)
    return Atoms(
        [a, b, x, x, x],
        scaled_positions=[(0.5, 0.5, 0.5), (0, 0, 0), (0.5, 0, 0), (0, 0.5, 0), (0, 0, 0.5)],
        cell=[lattice] * 3,
        pbc=True,
    )


def intermetallic(a: str, b: str, prototype: str) -> Atoms:
    d = _bond(a, b)
    if prototype == "B2":
        return bulk(f"{a}{b}", "cesiumchloride", a=2 * d / 3**0.5)
    if prototype == "L12":  # A3B: B at the cube corner, A at the face centres
        lattice = d * 2**0.5
        return Atoms(
            [b, a, a, a],
            scaled_positions=[(0, 0, 0), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)],
            cell=[lattice] * 3,
            pbc=True,
        )
    if prototype == "L10":  # AB layered along c
        lattice = d * 2**0.5
        return Atoms(
            [a, a, b, b],
            scaled_positions=[(0, 0, 0), (0.5, 0.5, 0), (0.5, 0, 0.5), (0, 0.5, 0.5)],
            cell=[lattice] * 3,
            pbc=True,
        )
    raise ValueError(f"unknown intermetallic prototype {prototype!r}")


# --- drawing a crystal ------------------------------------------------------------------------


def _pick(rng: np.random.Generator, options) -> str:
    return str(options[int(rng.integers(len(options)))])


def _metal_crystal(rng: np.random.Generator) -> tuple[Atoms, str]:
    """An elemental metal or a random substitutional alloy of 2-4 metals on fcc/bcc/hcp."""
    lattice = _pick(rng, ("fcc", "bcc", "hcp"))
    count = int(rng.choice([1, 1, 2, 2, 3, 4]))
    symbols = [str(s) for s in rng.choice(METALS, size=count, replace=False)]
    atoms = elemental(symbols[0], lattice)
    if count == 1:
        return atoms, f"{lattice}"
    # Random occupation is drawn on every supercell (`decorate`); the mean radius sets the
    # volume, and fractions come from a flat Dirichlet draw.
    mean_d = 2 * np.mean([radius(s) for s in symbols])
    atoms.set_cell(atoms.cell.array * mean_d / (2 * radius(symbols[0])), scale_atoms=True)
    atoms.info["alloy"] = (tuple(symbols), tuple(float(f) for f in rng.dirichlet(np.ones(count))))
    return atoms, f"{lattice}-alloy"


def decorate(atoms: Atoms, rng: np.random.Generator) -> Atoms:
    """A random alloy's sites filled by its metals (in place); other crystals are unchanged."""
    if "alloy" in atoms.info:
        symbols, fractions = atoms.info["alloy"]
        atoms.symbols = rng.choice(list(symbols), size=len(atoms), p=list(fractions))
    return atoms


# Formula ratios (cations, anions) with a prototype here.
_RATIOS = ((1, 1), (1, 2), (2, 1), (2, 3), (3, 2), (1, 3), (3, 1))


def _charge_balanced(cation: str, anion: str, rng: np.random.Generator) -> tuple[int, int]:
    """(cations, anions) per formula unit for one of the cation's oxidation states, preferring
    states whose ratio has a prototype here; (1, 1) when none has."""
    qx = -ANIONS[anion]
    ratios = []
    for q in CATIONS[cation]:
        g = int(np.gcd(q, qx))
        ratios.append((qx // g, q // g))
    supported = [r for r in ratios if r in _RATIOS]
    if not supported:
        return (1, 1)
    return supported[int(rng.integers(len(supported)))]


def _ionic(cation: str, anion: str, rng: np.random.Generator) -> tuple[Atoms, str]:
    n_a, n_x = _charge_balanced(cation, anion, rng)
    if (n_a, n_x) == (1, 1):
        prototype = _pick(rng, ("rocksalt", "rocksalt", "cesiumchloride", "zincblende", "wurtzite"))
        return binary_ax(cation, anion, prototype), prototype
    if (n_a, n_x) == (1, 2):
        prototype = _pick(rng, ("fluorite", "rutile"))
        builder = fluorite if prototype == "fluorite" else rutile
        return builder(cation, anion), prototype
    if (n_a, n_x) == (2, 1):
        return fluorite(cation, anion, anti=True), "antifluorite"
    if (n_a, n_x) == (2, 3):
        return corundum(cation, anion), "corundum"
    if (n_a, n_x) == (3, 2):  # the corundum sites with the roles swapped (Mg3N2-like)
        return corundum(anion, cation), "anticorundum"
    if (n_a, n_x) == (1, 3):
        return reo3(cation, anion), "ReO3"
    return reo3(anion, cation), "antiReO3"  # (3, 1): Cu3N, Li3P-like


def _oxide_crystal(rng: np.random.Generator) -> tuple[Atoms, str]:
    if rng.random() < 0.25:  # ABO3 perovskite: a large A (s block, La), a small B
        a = _pick(rng, ("Ca", "Sr", "Ba", "La", "K", "Na", "Pb", "Bi"))
        b = _pick(rng, ("Ti", "Zr", "Nb", "Ta", "Mn", "Fe", "Co", "Ni", "Cr", "V", "Al", "Sn"))
        return perovskite(a, b, "O"), "perovskite"
    return _ionic(_pick(rng, OXIDE_CATIONS), "O", rng)


def _compound_crystal(rng: np.random.Generator) -> tuple[Atoms, str]:
    anion = _pick(rng, tuple(x for x in ANIONS if x != "O"))
    if anion in ("F", "Cl", "Br", "I") and rng.random() < 0.2:
        a = _pick(rng, ("K", "Rb", "Cs", "Na"))
        b = _pick(rng, ("Mg", "Ca", "Mn", "Fe", "Co", "Ni", "Zn", "Cd", "Pb"))
        return perovskite(a, b, anion), "perovskite"
    cation = _pick(rng, tuple(c for c in CATIONS if c != anion))
    return _ionic(cation, anion, rng)


def _semiconductor_crystal(rng: np.random.Generator) -> tuple[Atoms, str]:
    family = _pick(rng, ("IV", "III-V", "III-V", "II-VI"))
    if family == "IV":
        return elemental(_pick(rng, TETRAHEDRAL_ELEMENTS), "diamond"), "diamond"
    cations, anions = III_V if family == "III-V" else II_VI
    prototype = _pick(rng, ("zincblende", "zincblende", "wurtzite", "rocksalt"))
    return binary_ax(_pick(rng, cations), _pick(rng, anions), prototype), prototype


def _intermetallic_crystal(rng: np.random.Generator) -> tuple[Atoms, str]:
    a, b = (str(s) for s in rng.choice(METALS, size=2, replace=False))
    prototype = _pick(rng, ("B2", "L12", "L10"))
    return intermetallic(a, b, prototype), prototype


_BUILDERS = {
    "metal": _metal_crystal,
    "intermetallic": _intermetallic_crystal,
    "oxide": _oxide_crystal,
    "compound": _compound_crystal,
    "semiconductor": _semiconductor_crystal,
}


def random_crystal(
    rng: np.random.Generator, classes: dict[str, float] | None = None
) -> tuple[Atoms, str]:
    """(a small periodic cell at the radii volume, its kind "<class>/<prototype>")."""
    weights = CLASS_WEIGHTS if classes is None else classes
    names = list(weights)
    p = np.array([weights[n] for n in names], dtype=np.float64)
    kind = names[int(rng.choice(len(names), p=p / p.sum()))]
    atoms, prototype = _BUILDERS[kind](rng)
    atoms.pbc = True
    return atoms, f"{kind}/{prototype}"


def pressure(stress: np.ndarray) -> float:
    """eV/A^3; positive when the cell is compressed (ASE's stress is minus the pressure)."""
    return float(-np.trace(stress) / 3.0)


def fit_volume(atoms: Atoms, label: Labeler) -> float:
    """Scale the cell of `atoms` in place (positions follow) to the labeler's zero pressure.

    Secant steps on P(ln V), the first with BULK_MODULUS_GUESS; stops within
    PRESSURE_TOLERANCE or after MAX_VOLUME_STEPS evaluations. Returns the linear scale applied.
    Raises a counted DemoFailure when the pressure is still above FAILED_PRESSURE or the scale
    left SCALE_LIMITS."""
    reference = atoms.cell.array.copy()
    fractional = atoms.get_scaled_positions()

    def p_at(log_scale: float) -> float:
        atoms.set_cell(reference * np.exp(log_scale))
        atoms.set_scaled_positions(fractional)
        return pressure(label(atoms)[2])

    x0, p0 = 0.0, p_at(0.0)
    # dV/V = P/B, its volume factor kept positive (a labeler may report any pressure)
    x1 = np.log(max(1.0 + p0 / BULK_MODULUS_GUESS, 0.1)) / 3.0
    for _ in range(MAX_VOLUME_STEPS - 1):
        if not np.isfinite(p0) or abs(p0) < PRESSURE_TOLERANCE:
            break
        x1 = float(np.clip(x1, *np.log(SCALE_LIMITS)))
        p1 = p_at(x1)
        if not np.isfinite(p1) or abs(p1) < PRESSURE_TOLERANCE or p1 == p0:
            x0, p0 = x1, p1
            break
        x0, p0, x1 = x1, p1, x1 - p1 * (x1 - x0) / (p1 - p0)
    scale = float(np.exp(x0))
    if not SCALE_LIMITS[0] <= scale <= SCALE_LIMITS[1] or not abs(p0) < FAILED_PRESSURE:
        raise DemoFailure("volume fit did not reach zero pressure within range")
    atoms.set_cell(reference * scale)
    atoms.set_scaled_positions(fractional)
    return scale
