"""The model inputs of one structure, built directly for repeated calls (the ASE calculator's MD).

The training path (`structure_to_graph` + `collate`) builds a torch_geometric `Batch` with every
label field and collates it: about 1.3 ms per call on a 22-atom alloy cell (0.45 ms graph with
its neighbor list, 0.85 ms `Batch.from_data_list`), as much as the whole student model of
`config/distill/demo.yaml` (2.1 ms). Here the same `lamm.keys` fields of a batch of one are
built as a plain dict, which `Potential.forward`/`predict` accept:

- edges from the same `lamm.data.graph.neighbor_list`, so a model sees identical edges, in the
  same order, as in training and in the batched path;
- the tensors that depend only on the atomic numbers, pbc, head and device (ATOMIC_NUMBERS,
  BATCH, NATOMS, PBC, DATASET_INDEX) are made once and reused while those stay the same (an MD
  run); positions, cell and edges are new every call;
- no label tensors (energy, forces, stress, masks, fixed, tags): a prediction does not read them.
"""

from __future__ import annotations

import numpy as np
import torch

from lamm import keys as K
from lamm.data.graph import neighbor_list


class SingleGraphBuilder:
    """Turns (atomic numbers, positions, cell, pbc) of one structure into the model's input dict.

    `cutoff` and `max_neighbors` are the model's (`Potential.cutoff`, `.max_neighbors`). The head
    channel (`dataset_index`: gradient forces and stress differentiate that head,
    `lamm.models.potential`), the float dtype and the device are the caller's at each call (a
    calculator's model may be cast after it was made).
    """

    def __init__(self, cutoff: float, max_neighbors: int | None = None) -> None:
        if cutoff <= 0:
            raise ValueError(f"cutoff must be positive, got {cutoff}")
        self.cutoff = float(cutoff)
        self.max_neighbors = max_neighbors
        self._key: tuple[bytes, tuple[bool, ...], int, torch.device] | None = (
            None  # what the constants were made for
        )
        self._constants: dict[str, torch.Tensor] = {}

    def _constant_fields(
        self, atomic_numbers: np.ndarray, pbc: np.ndarray, dataset_index: int, device: torch.device
    ) -> dict[str, torch.Tensor]:
        """The fields fixed by the atomic numbers, pbc and head, rebuilt only when one of them
        changes."""
        key = (atomic_numbers.tobytes(), tuple(bool(p) for p in pbc), dataset_index, device)
        if key != self._key:
            n = len(atomic_numbers)
            self._constants = {
                K.ATOMIC_NUMBERS: torch.tensor(
                    atomic_numbers, dtype=torch.long, device=device
                ),  # [N]
                K.BATCH: torch.zeros(n, dtype=torch.long, device=device),  # [N], one structure
                K.NATOMS: torch.tensor([n], dtype=torch.long, device=device),  # [1]
                K.PBC: torch.tensor([key[1]], dtype=torch.bool, device=device),  # [1, 3]
                K.DATASET_INDEX: torch.tensor(
                    [dataset_index], dtype=torch.long, device=device
                ),  # [1]
            }
            self._key = key
        return self._constants

    def __call__(
        self,
        atomic_numbers: np.ndarray,
        positions: np.ndarray,
        cell: np.ndarray,
        pbc: np.ndarray,
        dataset_index: int = 0,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> dict[str, torch.Tensor]:
        """The `lamm.keys` input fields of a batch holding this one structure, floats in `dtype`
        (new position, cell and edge tensors every call; the rest shared between calls: do not
        modify them)."""
        atomic_numbers = np.asarray(atomic_numbers, dtype=np.int64)
        positions = np.asarray(positions, dtype=np.float64)
        cell = np.asarray(cell, dtype=np.float64)
        pbc = np.asarray(pbc, dtype=bool)
        if positions.shape != (len(atomic_numbers), 3):
            raise ValueError(f"positions must be [{len(atomic_numbers)}, 3], got {positions.shape}")
        edge_index, offsets = neighbor_list(positions, cell, pbc, self.cutoff, self.max_neighbors)
        device = torch.device(device)
        # the same conversions as structure_to_graph (float64 numpy -> model dtype) for equal inputs
        return {
            **self._constant_fields(atomic_numbers, pbc, int(dataset_index), device),
            K.POSITIONS: torch.tensor(positions, dtype=dtype, device=device),  # [N, 3]
            K.CELL: torch.tensor(cell, dtype=dtype, device=device).view(1, 3, 3),  # [1, 3, 3]
            K.EDGE_INDEX: torch.from_numpy(edge_index).to(device),  # [2, M]
            K.CELL_OFFSETS: torch.from_numpy(offsets).to(device=device, dtype=dtype),  # [M, 3]
        }
