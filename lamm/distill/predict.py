"""Batched energies and forces of one head of a potential on configurations (eV, eV/Angstrom).

The calculator's path (`structure_to_graph` -> `collate` -> `Potential.predict`) for many
configurations at once: the teacher labels a round's selection, the committee predicts every
explored configuration. Gradient-force potentials differentiate the head in `dataset_index`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import torch

from lamm import keys as K
from lamm.data.graph import collate, structure_to_graph
from lamm.data.record import StructureRecord
from lamm.models.potential import Potential


@dataclass(frozen=True)
class Labels:
    """Predictions on a list of configurations."""

    energy: np.ndarray  # [B] float64, eV
    forces: list[np.ndarray]  # B arrays [n_b, 3] float64, eV/Angstrom


def head_index(potential: Potential, head: str | None, source: str = "checkpoint") -> int:
    """The channel of `head` (None: the first head); an unknown name is an error naming `source`."""
    if head is None:
        return 0
    if head not in potential.heads:
        raise ValueError(
            f"{source}: unknown head {head!r}; its heads are {', '.join(potential.heads)}"
        )
    return potential.heads.index(head)


def predict(
    potential: Potential, records: Sequence[StructureRecord], *, head: int = 0, batch_size: int = 16
) -> Labels:
    """Energy and forces of channel `head` for each record, `batch_size` structures per pass."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    parameter = next(potential.parameters())
    potential.eval()
    energies: list[np.ndarray] = []
    forces: list[np.ndarray] = []
    for start in range(0, len(records), batch_size):
        chunk = records[start : start + batch_size]
        graphs = [
            structure_to_graph(
                r,
                cutoff=potential.cutoff,
                max_neighbors=potential.max_neighbors,
                dataset_index=head,
                dtype=parameter.dtype,
            )
            for r in chunk
        ]
        batch = collate(graphs).to(parameter.device)
        with torch.no_grad():  # the potential enables autograd itself for gradient forces
            out = potential.predict(batch)
        energies.append(out[K.PRED_ENERGY][:, head].detach().cpu().double().numpy())  # [b]
        flat = out[K.PRED_FORCES][:, :, head].detach().cpu().double().numpy()  # [n, 3]
        bounds = np.cumsum([0] + [r.natoms for r in chunk])
        forces += [flat[a:b] for a, b in pairwise(bounds)]
    energy = np.concatenate(energies) if energies else np.zeros(0, dtype=np.float64)
    return Labels(energy=energy, forces=forces)
