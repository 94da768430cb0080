"""Radius graphs from `vesin` and the conversion of one structure into a torch_geometric `Data`.

The same `structure_to_graph` serves training batches and the ASE calculator, so a model sees
identical inputs in both.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch_geometric.data import Batch, Data
from vesin import NeighborList

from lamm import keys as K
from lamm.data.record import StructureRecord


def neighbor_list(
    positions: np.ndarray,
    cell: np.ndarray,
    pbc: np.ndarray,
    cutoff: float,
    max_neighbors: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """All pairs closer than `cutoff` (full list, both directions, periodic images included).

    Returns `edge_index` [2, M] int64 as (source j, target i) and `cell_offsets` [M, 3] int64
    such that r_ij = positions[j] - positions[i] + cell_offsets @ cell.

    `max_neighbors` keeps only the nearest neighbors of each center (fairchem's OC20 setting is
    50). The cut makes the energy discontinuous where two neighbors swap rank, so leave it
    None where smooth gradient forces matter (MD).
    """
    if cutoff <= 0:
        raise ValueError(f"cutoff must be positive, got {cutoff}")
    positions = np.ascontiguousarray(positions, dtype=np.float64)
    cell = np.ascontiguousarray(cell, dtype=np.float64)
    pbc = np.asarray(pbc, dtype=bool)
    _check_cell(cell, pbc)
    if len(positions) == 0:
        return np.zeros((2, 0), dtype=np.int64), np.zeros((0, 3), dtype=np.int64)
    calculator = NeighborList(cutoff=float(cutoff), full_list=True)
    # vesin's pair order is a deterministic function of its input, so sums over edges are
    # reproducible without sorting; only the max_neighbors cut needs edges ordered by distance.
    quantities = "ijSd" if max_neighbors is not None else "ijS"
    i, j, shifts, *rest = calculator.compute(
        positions, cell, pbc.tolist(), quantities=quantities, copy=False
    )
    i = i.astype(np.int64)
    j = j.astype(np.int64)
    shifts = shifts.astype(np.int64)
    if max_neighbors is not None:
        # by center, then distance: one argsort of center * (2 cutoff) + distance (distances <
        # cutoff)
        order = np.argsort(i * (2.0 * cutoff) + rest[0], kind="stable")
        i, j, shifts = i[order], j[order], shifts[order]
        starts = np.searchsorted(i, i, side="left")  # first edge of each edge's center
        keep = np.arange(len(i)) - starts < max_neighbors
        i, j, shifts = i[keep], j[keep], shifts[keep]
    return np.stack([j, i]), shifts


def _check_cell(cell: np.ndarray, pbc: np.ndarray) -> None:
    # vesin aborts the whole process (SIGFPE) on a periodic axis with a zero cell vector, so
    # reject such input here with a message instead.
    if cell.shape != (3, 3):
        raise ValueError(f"cell must be 3x3, got shape {cell.shape}")
    if pbc.shape != (3,):
        raise ValueError(f"pbc must have 3 entries, got shape {pbc.shape}")
    periodic = cell[pbc]
    if len(periodic) and (np.linalg.norm(periodic, axis=1) < 1e-8).any():
        raise ValueError(
            f"a periodic axis has a zero cell vector (pbc={pbc.tolist()}, cell={cell.tolist()})"
        )
    if len(periodic) and np.linalg.matrix_rank(periodic) < len(periodic):
        raise ValueError(f"the periodic cell vectors are linearly dependent (cell={cell.tolist()})")


class AtomicGraph(Data):
    """A `Data` whose per-structure labels named `*_index` are not shifted when batched.

    torch_geometric offsets every attribute whose name contains "index" by the number of
    nodes (right for `edge_index`); `dataset_index` and `sample_index` are labels, not node
    indices, and must stay as they are.
    """

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key in (K.DATASET_INDEX, K.SAMPLE_INDEX):
            return 0
        return super().__inc__(key, value, *args, **kwargs)


def structure_to_graph(
    record: StructureRecord,
    *,
    cutoff: float,
    max_neighbors: int | None = None,
    dataset_index: int = 0,
    sample_index: int = -1,
    dtype: torch.dtype = torch.float32,
) -> AtomicGraph:
    """One structure with its labels as a `Data` (see `lamm.keys` for fields, shapes, units).

    Missing labels become zeros with their mask False, as the universal loss expects.
    """
    n = record.natoms
    edge_index, offsets = neighbor_list(
        record.positions, record.cell, record.pbc, cutoff, max_neighbors
    )
    energy = 0.0 if record.energy is None else record.energy
    forces = np.zeros((n, 3)) if record.forces is None else record.forces
    stress = np.zeros((3, 3)) if record.stress is None else record.stress
    data = AtomicGraph(
        **{
            K.ATOMIC_NUMBERS: torch.tensor(np.asarray(record.atomic_numbers), dtype=torch.long),
            K.POSITIONS: torch.tensor(record.positions, dtype=dtype),
            K.CELL: torch.tensor(record.cell, dtype=dtype).view(1, 3, 3),
            K.PBC: torch.tensor(np.asarray(record.pbc), dtype=torch.bool).view(1, 3),
            K.NATOMS: torch.tensor([n], dtype=torch.long),
            K.EDGE_INDEX: torch.from_numpy(edge_index),
            K.CELL_OFFSETS: torch.from_numpy(offsets).to(dtype),
            K.ENERGY: torch.tensor([energy], dtype=torch.float64),
            K.FORCES: torch.tensor(forces, dtype=dtype),
            K.ENERGY_MASK: torch.tensor([record.energy is not None]),
            K.FORCE_MASK: torch.tensor([record.forces is not None]),
            K.STRESS: torch.tensor(stress, dtype=dtype).view(1, 3, 3),
            K.STRESS_MASK: torch.tensor([record.stress is not None]),
            K.DATASET_INDEX: torch.tensor([dataset_index], dtype=torch.long),
            K.FIXED: torch.zeros(n, dtype=torch.bool)
            if record.fixed is None
            else torch.tensor(np.asarray(record.fixed), dtype=torch.bool),
            K.TAGS: torch.full((n,), -1, dtype=torch.long)
            if record.tags is None
            else torch.tensor(np.asarray(record.tags), dtype=torch.long),
            K.SAMPLE_INDEX: torch.tensor([sample_index], dtype=torch.long),
        }
    )
    data.num_nodes = n
    return data


def collate(graphs: list[AtomicGraph]) -> Batch:
    """Join graphs into one batch (edge indices offset, per-structure fields concatenated)."""
    return Batch.from_data_list(graphs)
