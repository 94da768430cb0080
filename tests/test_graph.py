"""Radius graphs from vesin against ASE's neighbor_list, and structure -> Data -> Batch."""

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, fcc111, molecule
from ase.neighborlist import neighbor_list as ase_neighbor_list

from lamm import keys as K
from lamm.data.graph import collate, neighbor_list, structure_to_graph
from lamm.data.record import StructureRecord


def edge_set(edge_index, shifts):
    return {(int(j), int(i), *map(int, s)) for (j, i), s in zip(edge_index.T, shifts, strict=True)}


def ase_edge_set(atoms, cutoff):
    i, j, shifts = ase_neighbor_list("ijS", atoms, cutoff)
    return {(int(b), int(a), *map(int, s)) for a, b, s in zip(i, j, shifts, strict=True)}


def rattled(atoms, seed=0, scale=0.1):
    atoms = atoms.copy()
    atoms.positions += np.random.default_rng(seed).normal(0, scale, atoms.positions.shape)
    return atoms


STRUCTURES = {
    # a cell smaller than the cutoff: many periodic images of every atom
    "bulk-cu-small-cell": (rattled(bulk("Cu", "fcc", a=3.6)), 6.0),
    "bulk-triclinic": (rattled(bulk("NaCl", "rocksalt", a=5.6) * (2, 1, 1)), 5.0),
    "slab-mixed-pbc": (rattled(fcc111("Pt", size=(3, 3, 3), vacuum=8.0)), 6.0),
    "molecule": (rattled(molecule("C6H6")), 3.0),
}


@pytest.mark.parametrize("name", list(STRUCTURES))
def test_vesin_agrees_with_ase(name):
    atoms, cutoff = STRUCTURES[name]
    edge_index, shifts = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    assert edge_set(edge_index, shifts) == ase_edge_set(atoms, cutoff)
    assert len(edge_set(edge_index, shifts)) == edge_index.shape[1]  # no duplicates
    # the edge vector convention of lamm.keys
    j, i = edge_index
    vectors = atoms.positions[j] - atoms.positions[i] + shifts @ atoms.cell.array
    assert np.linalg.norm(vectors, axis=1).max() < cutoff


def test_max_neighbors_keeps_the_nearest():
    atoms = rattled(bulk("Cu", "fcc", a=3.6) * (2, 2, 2), seed=1)
    full, full_shifts = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, 6.0)
    capped, capped_shifts = neighbor_list(
        atoms.positions, atoms.cell.array, atoms.pbc, 6.0, max_neighbors=12
    )

    def distances(edge_index, shifts):
        j, i = edge_index
        return np.linalg.norm(
            atoms.positions[j] - atoms.positions[i] + shifts @ atoms.cell.array, axis=1
        )

    d_full, d_capped = distances(full, full_shifts), distances(capped, capped_shifts)
    for center in range(len(atoms)):
        nearest = np.sort(d_full[full[1] == center])[:12]
        assert np.allclose(np.sort(d_capped[capped[1] == center]), nearest)


def test_edge_order_is_deterministic():
    atoms, cutoff = STRUCTURES["slab-mixed-pbc"]
    first = neighbor_list(atoms.positions, atoms.cell.array, atoms.pbc, cutoff)
    second = neighbor_list(atoms.positions.copy(), atoms.cell.array.copy(), atoms.pbc, cutoff)
    assert all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.mark.parametrize(
    "cell, pbc, message",
    [
        (np.zeros((3, 3)), [True, False, False], "zero cell vector"),
        (np.diag([3.0, 3.0, 0.0]), [True, False, True], "zero cell vector"),
        (
            np.array([[3.0, 0, 0], [6.0, 0, 0], [0, 0, 3.0]]),
            [True, True, False],
            "linearly dependent",
        ),
    ],
)
def test_bad_cells_raise_instead_of_crashing(cell, pbc, message):
    with pytest.raises(ValueError, match=message):
        neighbor_list(np.random.default_rng(0).random((4, 3)), cell, np.array(pbc), 2.0)


def test_graph_fields_and_masks():
    atoms = molecule("H2O")
    record = StructureRecord.from_atoms(atoms)  # no labels
    data = structure_to_graph(record, cutoff=5.0, dataset_index=6, sample_index=42)
    assert data.num_nodes == 3
    assert data[K.EDGE_INDEX].shape == (2, 6)
    assert not bool(data[K.ENERGY_MASK]) and not bool(data[K.FORCE_MASK])
    assert torch.all(data[K.FORCES] == 0)
    assert data[K.DATASET_INDEX].item() == 6 and data[K.SAMPLE_INDEX].item() == 42
    assert data[K.TAGS].tolist() == [-1, -1, -1]


def test_collate_offsets_edges_and_keeps_targets():
    slab = fcc111("Cu", size=(2, 2, 2), vacuum=5.0)
    mol = molecule("CH4")
    records = [
        StructureRecord(
            **{
                **StructureRecord.from_atoms(slab).__dict__,
                "energy": -1.5,
                "forces": np.ones((8, 3)),
            }
        ),
        StructureRecord.from_atoms(mol),
    ]
    graphs = [
        structure_to_graph(r, cutoff=4.0, dataset_index=3 + d, sample_index=10 + d)
        for d, r in enumerate(records)
    ]
    batch = collate(graphs)
    assert batch.num_graphs == 2
    assert batch[K.NATOMS].tolist() == [8, 5]
    assert batch[K.CELL].shape == (2, 3, 3)
    assert batch[K.BATCH].tolist() == [0] * 8 + [1] * 5
    n0 = graphs[0][K.EDGE_INDEX].shape[1]
    assert torch.equal(batch[K.EDGE_INDEX][:, n0:], graphs[1][K.EDGE_INDEX] + 8)
    assert batch[K.ENERGY].tolist() == [-1.5, 0.0]
    assert batch[K.ENERGY_MASK].tolist() == [True, False]
    assert batch[K.FORCE_MASK].tolist() == [True, False]
    # labels, not node indices: torch_geometric must not offset them
    assert batch[K.DATASET_INDEX].tolist() == [3, 4]
    assert batch[K.SAMPLE_INDEX].tolist() == [10, 11]


def test_isolated_atom_has_no_edges():
    data = structure_to_graph(StructureRecord.from_atoms(Atoms("Ar")), cutoff=5.0)
    assert data[K.EDGE_INDEX].shape == (2, 0)
