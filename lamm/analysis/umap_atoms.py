"""Atom representations of a pre-trained model and their UMAP map (LaMM Fig. 8).

Representations: the encoder's rotation-invariant per-atom features (PaiNN s_i, 512 dims in
LaMM-S; `Potential.atom_representations`), computed on the stored structures without noise.

Sampling (seeded): for each subset, structures are drawn in a random order until they hold at
least `pool_factor` x N atoms, and N atoms are drawn uniformly from that pool. The paper draws
1000 atoms per subset; drawing each atom from its own structure would run the encoder on
hundreds of structures per subset, while a pool of a few times N atoms from random structures
keeps the cost at a few dozen structures and still mixes many environments.

Embedding: umap-learn with a fixed `random_state` (deterministic, single-threaded). The k
nearest neighbors are computed exactly (scikit-learn) and handed to UMAP as `precomputed_knn`:
for a few thousand points this is exact, faster than pynndescent, and avoids its numba
compilation (tens of seconds on a cold cache), the bulk of UMAP's start-up time here.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lamm.data.graph import collate, structure_to_graph
from lamm.data.store import StructureStore
from lamm.models.potential import Potential

ORGANIC = (1, 6, 7, 8)  # H, C, N, O: the dense organic clusters, left out of panel (c)


@dataclass
class AtomSample:
    """Sampled atoms: features [n, F] and, per atom, subset name, atomic number, structure, atom."""

    features: np.ndarray
    subset: np.ndarray  # [n] str
    atomic_number: np.ndarray  # [n] int
    sample_index: np.ndarray  # [n] int, record index in the subset's store
    atom_index: np.ndarray  # [n] int, index of the atom in its structure


def sample_atoms(
    natoms: np.ndarray, n_atoms: int, rng: np.random.Generator, pool_factor: float = 4.0
) -> dict[int, np.ndarray]:
    """{structure index: sorted atom indices} of `n_atoms` atoms (all atoms if fewer exist)."""
    if n_atoms < 1:
        raise ValueError(f"atoms per subset must be positive, got {n_atoms}")
    order = rng.permutation(len(natoms))
    cumulative = np.cumsum(natoms[order])  # [S]
    needed = min(int(math.ceil(pool_factor * n_atoms)), int(cumulative[-1]))
    chosen = order[: int(np.searchsorted(cumulative, needed)) + 1]
    pool = np.array(
        [(s, a) for s in chosen for a in range(int(natoms[s]))], dtype=np.int64
    )  # [P, 2]
    picked = pool[rng.choice(len(pool), size=min(n_atoms, len(pool)), replace=False)]
    by_structure: dict[int, np.ndarray] = {}
    for structure in np.unique(picked[:, 0]):
        by_structure[int(structure)] = np.sort(picked[picked[:, 0] == structure, 1])
    return by_structure


@torch.no_grad()
def atom_representations(
    potential: Potential,
    stores: Mapping[str, StructureStore],
    atoms_per_subset: int,
    seed: int,
    *,
    batch_size: int = 16,
    pool_factor: float = 4.0,
) -> AtomSample:
    """Representations of `atoms_per_subset` seeded atoms of each store (in the given order)."""
    potential.eval()
    device = next(potential.parameters()).device
    parts: dict[str, list] = {"features": [], "subset": [], "z": [], "sample": [], "atom": []}
    for offset, (name, store) in enumerate(stores.items()):
        if len(store) == 0:
            raise ValueError(f"{store.path}: the store of subset {name!r} is empty")
        rng = np.random.default_rng([seed, offset])
        chosen = sample_atoms(np.asarray(store.natoms), atoms_per_subset, rng, pool_factor)
        structures = list(chosen)
        for start in range(0, len(structures), batch_size):
            records = [(s, store.get_record(s)) for s in structures[start : start + batch_size]]
            graphs = [
                structure_to_graph(
                    record,
                    cutoff=potential.cutoff,
                    max_neighbors=potential.max_neighbors,
                    sample_index=s,
                )
                for s, record in records
            ]
            features = (
                potential.atom_representations(collate(graphs).to(device)).double().cpu().numpy()
            )  # [N, F]
            first = np.concatenate([[0], np.cumsum([record.natoms for _, record in records])])
            for k, (s, record) in enumerate(records):
                atoms = chosen[s]
                parts["features"].append(features[first[k] + atoms])
                parts["z"].append(np.asarray(record.atomic_numbers)[atoms])
                parts["subset"].append(np.full(len(atoms), name, dtype=object))
                parts["sample"].append(np.full(len(atoms), s))
                parts["atom"].append(atoms)
    return AtomSample(
        features=np.concatenate(parts["features"]),
        subset=np.concatenate(parts["subset"]).astype(str),
        atomic_number=np.concatenate(parts["z"]).astype(np.int64),
        sample_index=np.concatenate(parts["sample"]).astype(np.int64),
        atom_index=np.concatenate(parts["atom"]).astype(np.int64),
    )


def embed(
    features: np.ndarray,
    seed: int,
    *,
    n_neighbors: int = 15,
    n_epochs: int = 200,
    min_dist: float = 0.1,
) -> np.ndarray:
    """[n, 2] UMAP embedding of features [n, F] (exact kNN, seeded, reproducible)."""
    import umap
    from sklearn.neighbors import NearestNeighbors

    n = len(features)
    if n <= n_neighbors:
        raise ValueError(
            f"UMAP with n_neighbors={n_neighbors} needs more than {n_neighbors} atoms, got {n}"
        )
    features = np.asarray(features, dtype=np.float32)
    distances, indices = (
        NearestNeighbors(n_neighbors=n_neighbors).fit(features).kneighbors(features)
    )  # [n, k]
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=n_neighbors,
        n_epochs=n_epochs,
        min_dist=min_dist,
        random_state=seed,
        init="pca",
        precomputed_knn=(indices, distances.astype(np.float32), None),
        n_jobs=1,
    )
    import warnings

    with warnings.catch_warnings():
        # "transform unavailable without an NNDescent index": we never transform new data.
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        warnings.filterwarnings("ignore", message=".*n_jobs value.*")
        return np.asarray(reducer.fit_transform(features), dtype=np.float64)


def periodic_group(z: int) -> int:
    """IUPAC group 1-18 of element `z`; lanthanides and actinides count as group 3 (La, Ac)."""
    from lamm.analysis.figures import periodic_table_position

    row, column = periodic_table_position(z)
    return 3 if row >= 7 else column + 1


def covariance_ellipse(
    points: np.ndarray, n_sigma: float = 1.5
) -> tuple[np.ndarray, float, float, float]:
    """(center [2], width, height, angle in degrees) of the n-sigma ellipse of 2-D points.

    The ellipse {x : (x - mu)^T C^-1 (x - mu) = n_sigma^2}: semi-axes n_sigma sqrt(lambda_k) along
    the eigenvectors of the covariance C. This is the Pearson-correlation construction the paper
    cites (radii sqrt(1 +- rho) on standardized axes, then scaled by n_sigma sigma_x, n_sigma
    sigma_y).
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or len(points) < 2:
        raise ValueError(f"need at least 2 points of shape [n, 2], got {points.shape}")
    covariance = np.cov(points, rowvar=False)  # [2, 2]
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)  # ascending
    major = eigenvectors[:, 1]
    angle = math.degrees(math.atan2(major[1], major[0]))
    width, height = (
        2 * n_sigma * math.sqrt(max(eigenvalues[1], 0.0)),
        2 * n_sigma * math.sqrt(max(eigenvalues[0], 0.0)),
    )
    return points.mean(axis=0), width, height, angle


def open_stores(data_dir: str | os.PathLike, subsets: Sequence[str]) -> dict[str, StructureStore]:
    """{subset: store} of `<data_dir>/<subset>.lmdb`; a missing store names the subset."""
    stores = {}
    for subset in subsets:
        path = Path(data_dir) / f"{subset}.lmdb"
        if not path.exists():
            available = sorted(p.stem for p in Path(data_dir).glob("*.lmdb"))
            raise ValueError(
                f"unknown subset {subset!r}: no store {path} (stores in {data_dir}: {available})"
            )
        stores[subset] = StructureStore(path)
    return stores
