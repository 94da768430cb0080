"""Transition1x HDF5 (`Transition1x.h5`).

Layout (DATASETS.md section 5, the Transition1x dataloader): `/<split>/<formula>/<rxn>/` holds
`atomic_numbers` [N], `positions` [T, N, 3] (Angstrom), `wB97x_6-31G(d).energy` [T] (total
energy, eV) and `wB97x_6-31G(d).forces` [T, N, 3] (eV/A) for the T frames of one reaction path.
Its subgroups `reactant`, `product` and `transition_state` repeat frames of that path (the
official loader drops path frames whose energy equals an endpoint's to avoid duplicates), so
only the reaction group's own datasets are read. The split group is the reaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from lamm.data.readers import CorruptInputError, SourceItem, reading
from lamm.data.record import StructureRecord

ENERGY = "wB97x_6-31G(d).energy"
FORCES = "wB97x_6-31G(d).forces"


def read_transition1x(
    path: str | Path,
    *,
    split_group: str = "data",
    energy_field: str = ENERGY,
    forces_field: str = FORCES,
) -> Iterator[SourceItem]:
    """Every frame of every reaction path under `/<split_group>/` (default `data`: all
    reactions)."""
    path = Path(path)
    if path.is_dir():
        raise FileNotFoundError(f"input {path} is a directory; expected the Transition1x .h5 file")
    if not path.exists():
        raise FileNotFoundError(f"input {path} does not exist")
    with reading(path), h5py.File(path, "r") as handle:
        if split_group not in handle:
            raise CorruptInputError(
                f"{path}: no group /{split_group} (groups: {', '.join(handle)})"
            )
        for formula, reactions in handle[split_group].items():
            for rxn, group in reactions.items():
                where = f"/{split_group}/{formula}/{rxn}"
                with reading(path, where):
                    numbers = np.asarray(group["atomic_numbers"][()], dtype=np.int64)
                    positions = np.asarray(group["positions"][()], dtype=np.float64)
                    energies = np.asarray(group[energy_field][()], dtype=np.float64).reshape(-1)
                    forces = np.asarray(group[forces_field][()], dtype=np.float64)
                frames = positions.shape[0] if positions.ndim == 3 else -1
                if frames < 0 or len(energies) != frames or len(forces) != frames:
                    raise CorruptInputError(
                        f"{path} ({where}): positions {positions.shape}, energies "
                        f"{energies.shape} and "
                        f"forces {forces.shape} disagree on the number of frames"
                    )
                reaction = f"{formula}/{rxn}"
                for t in range(frames):
                    record = StructureRecord(
                        atomic_numbers=numbers,
                        positions=positions[t],
                        cell=np.zeros((3, 3)),
                        pbc=np.zeros(3, dtype=bool),
                        energy=float(energies[t]),
                        forces=forces[t],
                        source_id=f"{reaction}/{t}",
                    )
                    yield SourceItem(record, reaction)
