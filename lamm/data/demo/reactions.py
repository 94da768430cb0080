"""Transition1x-like structures: C/H/N/O molecules along reaction-like paths, GFN2-xTB labels.

Transition1x samples geometries along nudged-elastic-band paths of GDB7 reactions, so most
structures are far from equilibrium, up to transition states. Here each sample is one image
on one of three kinds of path from an MMFF94 minimum (ETKDG conformer) of a C/H/N/O molecule
with at most 7 heavy atoms:
- hydrogen transfer: an H moves from its heavy atom to a heavy atom one or two bonds away
  (1,2- and 1,3-shifts, keto-enol-like tautomerization), along an arc that bulges away from
  the donor-acceptor bond;
- bond stretch: the two sides of a non-ring bond (X-H included) pulled apart by up to 1.5 A
  (dissociation);
- torsion: one side of a non-ring single bond rotated about it (conformer interconversion).
Every atom then gets 0.02 A of Gaussian noise. Geometries with atoms closer than 0.75 A, and
SCF failures, are counted as failures.
"""

from __future__ import annotations

import numpy as np

from lamm.data.demo.labelers import DemoFailure, xtb_energy_forces
from lamm.data.demo.molecules import conformer, molecule_record, pick
from lamm.data.demo.smiles import SMALL_CHNO
from lamm.data.demo.systems import SystemRequest, SystemResult

BOND_TO_H = {6: 1.09, 7: 1.01, 8: 0.97}  # Angstrom, the product's new X-H bond
MIN_DISTANCE = 0.75  # Angstrom; closer pairs give forces far beyond Transition1x's


def _side(neighbours: list[list[int]], start: int, blocked: int) -> np.ndarray:
    """Atoms reachable from `start` without crossing the bond to `blocked`."""
    seen, stack = {start}, [start]
    while stack:
        for j in neighbours[stack.pop()]:
            if j not in seen and j != blocked:
                seen.add(j)
                stack.append(j)
    return np.array(sorted(seen))


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


def hydrogen_transfer(molecule, numbers, positions, rng) -> tuple[np.ndarray, str] | None:
    neighbours = [[n.GetIdx() for n in a.GetNeighbors()] for a in molecule.GetAtoms()]
    moves = []
    for h in np.flatnonzero(numbers == 1):
        donor = neighbours[h][0]
        near = set(neighbours[donor]) | {k for j in neighbours[donor] for k in neighbours[j]}
        moves += [(h, donor, a) for a in near if a != donor and numbers[a] in BOND_TO_H]
    if not moves:
        return None
    h, donor, acceptor = moves[int(rng.integers(len(moves)))]
    others = [j for j in neighbours[acceptor] if j != h]
    away = _unit(positions[acceptor] - positions[others].mean(axis=0)) if others else np.zeros(3)
    direction = _unit(away + _unit(positions[h] - positions[acceptor]))
    start, end = positions[h], positions[acceptor] + BOND_TO_H[numbers[acceptor]] * direction
    bulge = _unit(0.5 * (start + end) - 0.5 * (positions[donor] + positions[acceptor]))
    t = rng.uniform(0.0, 1.0)
    moved = positions.copy()
    moved[h] = (1 - t) * start + t * end + 4 * t * (1 - t) * 0.4 * bulge
    return moved, f"H{h}:{donor}->{acceptor}@{t:.2f}"


def _chain_bonds(molecule, single_only: bool, with_hydrogen: bool) -> list[tuple[int, int]]:
    """Non-ring bonds (i, j), j on the side that moves (the hydrogen of an X-H bond)."""
    bonds = []
    for bond in molecule.GetBonds():
        if bond.IsInRing() or (single_only and bond.GetBondTypeAsDouble() != 1.0):
            continue
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        if molecule.GetAtomWithIdx(i).GetAtomicNum() == 1:
            i, j = j, i
        if with_hydrogen or molecule.GetAtomWithIdx(j).GetAtomicNum() > 1:
            bonds.append((i, j))
    return bonds


def bond_stretch(molecule, numbers, positions, rng) -> tuple[np.ndarray, str] | None:
    bonds = _chain_bonds(molecule, single_only=False, with_hydrogen=True)
    if not bonds:
        return None
    i, j = bonds[int(rng.integers(len(bonds)))]
    neighbours = [[n.GetIdx() for n in a.GetNeighbors()] for a in molecule.GetAtoms()]
    side = _side(neighbours, j, blocked=i)
    stretch = rng.uniform(0.0, 1.5)
    moved = positions.copy()
    moved[side] += stretch * _unit(positions[j] - positions[i])
    return moved, f"stretch{i}-{j}+{stretch:.2f}"


def torsion(molecule, numbers, positions, rng) -> tuple[np.ndarray, str] | None:
    bonds = [
        (i, j)
        for i, j in _chain_bonds(molecule, single_only=True, with_hydrogen=False)
        if molecule.GetAtomWithIdx(i).GetDegree() > 1 and molecule.GetAtomWithIdx(j).GetDegree() > 1
    ]
    if not bonds:
        return None
    i, j = bonds[int(rng.integers(len(bonds)))]
    neighbours = [[n.GetIdx() for n in a.GetNeighbors()] for a in molecule.GetAtoms()]
    side = _side(neighbours, j, blocked=i)
    angle = rng.uniform(0.0, 2 * np.pi)
    axis = _unit(positions[j] - positions[i])
    # Rodrigues rotation of the side about the i-j axis through atom j
    r = positions[side] - positions[j]
    rotated = (
        r * np.cos(angle)
        + np.cross(axis, r) * np.sin(angle)
        + np.outer(r @ axis, axis) * (1 - np.cos(angle))
    )
    moved = positions.copy()
    moved[side] = positions[j] + rotated
    return moved, f"torsion{i}-{j}@{np.degrees(angle):.0f}"


PATHS = (hydrogen_transfer, bond_stretch, torsion)


def transition1x_system(request: SystemRequest, rng: np.random.Generator) -> SystemResult:
    smiles = pick(SMALL_CHNO, rng, power=1.0)
    molecule, numbers, positions = conformer(smiles, rng, force_field="MMFF94")
    for k in rng.permutation(len(PATHS)):  # a random kind of path this molecule allows
        image = PATHS[k](molecule, numbers, positions, rng)
        if image is not None:
            break
    else:
        raise DemoFailure("molecule admits no reaction-like path", smiles)  # a lone atom
    moved, path = image
    moved = moved + rng.normal(0.0, 0.02, size=moved.shape)
    distances = np.linalg.norm(moved[:, None] - moved[None], axis=-1) + np.eye(len(moved)) * 9.0
    if distances.min() < MIN_DISTANCE:
        raise DemoFailure(f"atoms closer than {MIN_DISTANCE} A on the path")
    energy, forces = xtb_energy_forces(numbers, moved, method="GFN2-xTB")
    source = f"transition1x/{request.index:06d}/{smiles}/{path}"
    return SystemResult(
        records={"transition1x": [molecule_record(numbers, moved, source, energy, forces)]}
    )
