"""Shared helpers of the model tests: tiny float64 potentials and ASE structures."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.build import bulk, molecule

from lamm import keys as K
from lamm.data.graph import collate, structure_to_graph
from lamm.data.record import StructureRecord
from lamm.models.build import build_potential
from lamm.models.potential import Potential


@pytest.fixture(autouse=True)
def single_thread():
    """Tiny models on one thread: on a shared 2-core machine, thread hand-offs for 16-channel
    matrices cost more than the work (10x slower tests under load). Import into a test module
    to use it; restores the previous setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


# Small enough for 2 cores, deep enough (2 layers) that vector features feed the second message.
TINY_CONFIG = {
    "encoder": "painn",
    "cutoff": 4.0,
    "max_neighbors": None,
    "painn": {"hidden_channels": 16, "num_layers": 2, "num_rbf": 8},
    "heads": {"hidden_channels": 8},
}
STATS = [
    {
        "element_references": {"1": -13.6, "6": -1030.0, "8": -2040.0},
        "energy_mean": 0.3,
        "energy_std": 2.5,
        "force_rms": 0.7,
    },
    {
        "element_references": {"11": -1300.0, "17": -12500.0},
        "energy_mean": -1.0,
        "energy_std": 0.5,
        "force_rms": 1.9,
    },
]


# The same heads on a small EquiformerV2; a fine sphere grid makes it equivariant to float64
# noise (the paper's 18x18 grid is not: see lamm/models/equiformer_v2/grid.py).
TINY_EQUIFORMER_CONFIG = {
    "encoder": "equiformer_v2",
    "cutoff": 4.0,
    "max_neighbors": None,
    "equiformer_v2": {
        "lmax": 3,
        "mmax": 2,
        "num_layers": 2,
        "sphere_channels": 8,
        "attn_hidden_channels": 8,
        "num_heads": 2,
        "attn_alpha_channels": 8,
        "attn_value_channels": 4,
        "ffn_hidden_channels": 8,
        "num_distance_basis": 16,
        "edge_channels": 8,
        "grid_resolution": 96,
        "edge_grid_resolution": 48,
    },
    "heads": {"hidden_channels": 8},
}


def tiny_potential(
    force_mode: str = "direct",
    heads: tuple[str, ...] = ("a", "b"),
    seed: int = 0,
    stats: bool = False,
    encoder: str = "painn",
) -> Potential:
    config = TINY_EQUIFORMER_CONFIG if encoder == "equiformer_v2" else TINY_CONFIG
    potential = build_potential(
        {**config, "force_mode": force_mode}, list(heads), seed=seed
    ).double()
    if stats:
        for head, entry in enumerate(STATS[: len(heads)]):
            potential.normalizer.set_head(head, entry)
    return potential


def ethanol(seed: int = 0) -> Atoms:
    atoms = molecule("CH3CH2OH")
    atoms.rattle(0.05, seed=seed)
    return atoms


def rocksalt(seed: int = 0) -> Atoms:
    """NaCl, conventional cubic cell (8 atoms, a = 5.64 A), rattled: periodic, two elements."""
    atoms = bulk("NaCl", "rocksalt", a=5.64, cubic=True)
    atoms.rattle(0.1, seed=seed)
    return atoms


def graph_of(atoms: Atoms, cutoff: float = 4.0, dataset_index: int = 0):
    record = StructureRecord(
        atomic_numbers=atoms.get_atomic_numbers().astype(np.int64),
        positions=np.asarray(atoms.get_positions(), dtype=np.float64),
        cell=np.asarray(atoms.cell.array, dtype=np.float64),
        pbc=np.asarray(atoms.pbc, dtype=bool),
    )
    return structure_to_graph(
        record, cutoff=cutoff, dataset_index=dataset_index, dtype=torch.float64
    )


def batch_of(*structures: Atoms, dataset_index: int = 0):
    return collate([graph_of(atoms, dataset_index=dataset_index) for atoms in structures])


def predict(
    potential: Potential, atoms: Atoms, dataset_index: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(energies [D] in eV, forces [N, 3, D] in eV/A) of one structure."""
    out = potential.predict(batch_of(atoms, dataset_index=dataset_index))
    return out[K.PRED_ENERGY][0].detach().numpy(), out[K.PRED_FORCES].detach().numpy()


def random_rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q
