"""What every demo generator receives and returns, and helpers to turn relaxations into records.

A generator builds one *system* from its own random generator: a relaxation (which yields
frames for an S2EF subset and one initial structure for an IS2RE subset) or a single
labeled structure. It returns `SystemResult`; a failure that spoils the whole system raises
`DemoFailure`, a failure of one subset only (an IS2RE relaxation that ran out of steps while
its frames are still good S2EF samples) goes into `SystemResult.failures`.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np
from ase import Atoms

from lamm.data.demo.labelers import Frame
from lamm.data.record import StructureRecord


@dataclass(frozen=True)
class SystemRequest:
    """Which system to build: `index` within its family, S2EF frames wanted per relaxation."""

    family: str
    index: int
    frames: int = 1


@dataclass
class SystemResult:
    records: dict[str, list[StructureRecord]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)  # subset -> reason


def system_rng(seed: int, family: str, index: int) -> np.random.Generator:
    """The generator of one system: a pure function of (seed, family, index), independent of
    which process builds it and in which order."""
    sequence = np.random.SeedSequence(entropy=seed, spawn_key=(zlib.crc32(family.encode()), index))
    return np.random.default_rng(sequence)


def spread(frames: list[Frame], count: int) -> list[Frame]:
    """`count` frames evenly spaced along a trajectory, first and last included (fewer if short)."""
    if count <= 0 or not frames:
        return []
    picks = np.unique(
        np.round(np.linspace(0, len(frames) - 1, min(count, len(frames)))).astype(int)
    )
    return [frames[i] for i in picks]


def to_record(
    atoms: Atoms,
    *,
    source_id: str,
    positions: np.ndarray | None = None,
    energy: float | None = None,
    forces: np.ndarray | None = None,
    keep_fixed_and_tags: bool = True,
) -> StructureRecord:
    """A record of `atoms` (or of its geometry at `positions`) with the given labels."""
    fixed = tags = None
    if keep_fixed_and_tags:
        fixed = np.zeros(len(atoms), dtype=bool)
        for constraint in atoms.constraints:
            fixed[constraint.get_indices()] = True
        tags = np.asarray(atoms.get_tags(), dtype=np.int64)
    return StructureRecord(
        atomic_numbers=np.asarray(atoms.numbers, dtype=np.int64),
        positions=np.array(atoms.positions if positions is None else positions, dtype=np.float64),
        cell=np.array(atoms.cell.array, dtype=np.float64),
        pbc=np.array(atoms.pbc, dtype=bool),
        energy=energy,
        forces=None if forces is None else np.array(forces, dtype=np.float64),
        fixed=fixed,
        tags=tags,
        source_id=source_id,
    )


def relaxation_records(
    atoms: Atoms, frames: list[Frame], count: int, source_id: str
) -> list[StructureRecord]:
    """S2EF-T records: `count` frames of a relaxation with total energy and forces."""
    picked = spread(frames, count)
    index_of = {id(frame): i for i, frame in enumerate(frames)}
    return [
        to_record(
            atoms,
            positions=f.positions,
            energy=f.energy,
            forces=f.forces,
            source_id=f"{source_id}/frame{index_of[id(f)]:03d}",
        )
        for f in picked
    ]


def pick_by_size(counts: list[int], rng: np.random.Generator, mean: float, spread: float) -> int:
    """Index of one option, drawn with Gaussian weights on its atom count: the atom-count
    distribution of a subset then peaks near `mean` (LaMM Table 2's average) like Fig. 4."""
    sizes = np.asarray(counts, dtype=np.float64)
    weights = np.exp(-0.5 * ((sizes - mean) / spread) ** 2) + 1e-12
    return int(rng.choice(len(sizes), p=weights / weights.sum()))
