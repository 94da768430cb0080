"""The seed structures of the exploration: from a store (one split) or an extended-XYZ file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from ase import Atoms

from lamm.distill.select import evenly_spaced

XYZ_SUFFIXES = (".xyz", ".extxyz")


def load_seed_structures(
    path: str | os.PathLike, *, split: str = "train", max_structures: int = 4
) -> list[Atoms]:
    """At most `max_structures` structures, evenly spread over the store's `split` (`all`: every
    record) or over the frames of an extended-XYZ file; labels and calculators dropped."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"--seed-structures {path} does not exist")
    if path.suffix.lower() in XYZ_SUFFIXES:
        from ase.io import read

        frames = read(path, index=":")
        frames = frames if isinstance(frames, list) else [frames]
    else:
        from lamm.data.store import StructureStore

        if path.is_dir():
            raise ValueError(
                f"--seed-structures {path} is a folder; pass a store (.lmdb) or an "
                "extended-XYZ file"
            )
        store = StructureStore(path)
        indices = np.arange(len(store)) if split == "all" else store.indices(split)
        if len(indices) == 0:
            raise ValueError(f"--seed-structures {path}: split {split!r} is empty")
        frames = [
            store.get_atoms(int(indices[i])) for i in evenly_spaced(len(indices), max_structures)
        ]
    if not frames:
        raise ValueError(f"--seed-structures {path} holds no structure")
    chosen = [frames[i] for i in evenly_spaced(len(frames), max_structures)]
    seeds = []
    for atoms in chosen:
        clean = Atoms(
            numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell, pbc=atoms.pbc
        )
        if atoms.constraints:
            clean.set_constraint([c.copy() for c in atoms.constraints])
        seeds.append(clean)
    return seeds
