"""Slabs cut from crystals across the periodic table, for the universal OC20/OC22 stand-ins.

OC20's slabs come from 11,000 Materials Project bulks of up to three elements (metals,
intermetallics and compounds with non-metals), OC22's from oxides; their surfaces are low-index
facets, a few layers thick, the bottom layers fixed. Here: a crystal from `crystals.py` (at the
labeler's equilibrium volume), a facet among FACETS (Miller indices of the crystal's cell), a
slab of MIN_LAYERS or more unit layers and a lateral repeat with surface vectors of at least
MIN_SURFACE_VECTOR, sized around a mean atom count; atoms within FREE_DEPTH of the top are free
(tag 1), the rest fixed (tag 0), as OC20 fixes its sub-surface.
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.build import surface
from ase.constraints import FixAtoms

from lamm.data.demo import universal
from lamm.data.demo.crystals import decorate, fit_volume, random_crystal
from lamm.data.demo.labelers import DemoFailure
from lamm.data.demo.systems import pick_by_size

FACETS = ((1, 0, 0), (1, 1, 0), (1, 1, 1), (0, 0, 1))
VACUUM = 7.0  # Angstrom each side, as slabs.VACUUM
MIN_LAYERS, MAX_LAYERS = 2, 8
MIN_SURFACE_VECTOR = 5.0  # Angstrom: an adsorbate meets its periodic image no closer than this
MIN_THICKNESS = 5.0  # Angstrom of material below the vacuum
FREE_DEPTH = 2.5  # Angstrom below the topmost atom that relax (about two layers)
OC20_CLASSES = {"metal": 0.45, "intermetallic": 0.3, "compound": 0.15, "semiconductor": 0.1}
OC22_CLASSES = {"oxide": 1.0}


def _slab_options(
    base: Atoms, unit: Atoms, min_atoms: int, max_atoms: int
) -> list[tuple[int, int, int]]:
    """(layers, repeat a, repeat b) whose slab has min..max atoms and meets the size limits."""
    a, b = unit.cell.lengths()[:2]
    area = np.linalg.norm(np.cross(unit.cell.array[0], unit.cell.array[1]))
    thickness = abs(base.get_volume()) * len(unit) / len(base) / area  # one unit layer
    options = []
    for layers in range(MIN_LAYERS, MAX_LAYERS + 1):
        if layers * thickness < MIN_THICKNESS:
            continue
        for i in range(1, 6):
            for j in range(1, 6):
                n = len(unit) * layers * i * j
                if min(a * i, b * j) >= MIN_SURFACE_VECTOR and min_atoms <= n <= max_atoms:
                    options.append((layers, i, j))
    return options


def crystal_slab(
    rng: np.random.Generator,
    labeler: str,
    classes: dict[str, float],
    *,
    mean_atoms: float,
    min_atoms: int = 16,
    max_atoms: int = 64,
) -> tuple[Atoms, str]:
    """(a tagged, constrained slab periodic in 3-D with vacuum along c, its name)."""
    base, kind = random_crystal(rng, classes)
    probe = decorate(base.repeat(2) if "alloy" in base.info else base.copy(), rng)
    scale = fit_volume(probe, lambda atoms: universal.label(atoms, labeler))
    base.set_cell(base.cell.array * scale, scale_atoms=True)
    facet = FACETS[int(rng.integers(len(FACETS)))]
    unit = surface(base, facet, 1, periodic=True)
    options = _slab_options(base, unit, min_atoms, max_atoms)
    if not options:
        raise DemoFailure("no slab of this crystal and facet fits the size limits")
    sizes = [len(unit) * int(np.prod(o)) for o in options]
    layers, i, j = options[pick_by_size(sizes, rng, mean_atoms, 0.4 * mean_atoms)]
    slab = surface(base, facet, layers, vacuum=VACUUM, periodic=True).repeat((i, j, 1))
    slab.info.clear()
    decorate_info = base.info.get("alloy")
    if decorate_info is not None:
        symbols, fractions = decorate_info
        slab.symbols = rng.choice(list(symbols), size=len(slab), p=list(fractions))
    z = slab.positions[:, 2]
    fixed = z < z.max() - FREE_DEPTH
    slab.set_tags(np.where(fixed, 0, 1))
    slab.set_constraint(FixAtoms(mask=fixed))
    slab.pbc = True
    name = f"{kind}/{''.join(map(str, facet))}/{slab.get_chemical_formula()}"
    return slab, name
