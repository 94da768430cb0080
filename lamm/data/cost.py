"""Work per structure for the load balancer: atoms, edges, or a fitted time model.

Step time on a rank grows with the atoms (node updates) and the edges (messages) it holds, plus
a fixed cost per structure; `CostModel` predicts it as a + b * atoms + c * edges and is fitted
by least squares to measured times (per rank-step: sums over its structures, since the model is
linear). Edge counts come from the same vesin radius graph that training builds and are cached
beside the store as `<store>.edges.npz` (with the cutoff, neighbor cap and store key).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from lamm.data.graph import neighbor_list
from lamm.data.referencing import store_key
from lamm.data.store import StructureStore
from lamm.log import progress


@dataclass(frozen=True)
class CostModel:
    """Cost of one structure: `per_structure + per_atom * atoms + per_edge * edges` (>= 0 each)."""

    per_structure: float = 0.0
    per_atom: float = 1.0
    per_edge: float = 0.0

    def __post_init__(self) -> None:
        values = (self.per_structure, self.per_atom, self.per_edge)
        if min(values) < 0 or not max(values) > 0:
            raise ValueError(
                f"cost coefficients must be non-negative and not all zero, got {values}"
            )

    def __call__(self, natoms: np.ndarray, edges: np.ndarray | None = None) -> np.ndarray:
        natoms = np.asarray(natoms, dtype=np.float64)
        if self.per_edge and edges is None:
            raise ValueError("this cost model needs edge counts")
        cost = self.per_structure + self.per_atom * natoms
        if self.per_edge:
            cost = cost + self.per_edge * np.asarray(edges, dtype=np.float64)
        return cost

    @classmethod
    def fit(
        cls,
        structures: np.ndarray,
        atoms: np.ndarray,
        times: np.ndarray,
        edges: np.ndarray | None = None,
    ) -> CostModel:
        """Least squares of measured `times` against (structures, atoms[, edges]) per measurement.

        Each measurement is one rank-step (sums over its structures) or one structure. Terms
        whose coefficient comes out negative are dropped and the rest refitted, so the model
        stays a non-negative cost.
        """
        columns = {"per_structure": structures, "per_atom": atoms}
        if edges is not None:
            columns["per_edge"] = edges
        times = np.asarray(times, dtype=np.float64)
        names = list(columns)
        while names:
            matrix = np.stack(
                [np.asarray(columns[n], dtype=np.float64) for n in names], axis=1
            )  # [m, terms]
            solution, *_ = np.linalg.lstsq(matrix, times, rcond=None)
            if (solution >= 0).all():
                return cls(
                    **{
                        "per_structure": 0.0,
                        "per_atom": 0.0,
                        "per_edge": 0.0,
                        **dict(zip(names, solution.tolist(), strict=True)),
                    }
                )
            del names[int(np.argmin(solution))]
        raise ValueError("no non-negative cost model fits these times")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def edge_counts(
    store: StructureStore, cutoff: float, max_neighbors: int | None = None
) -> np.ndarray:
    """[len(store)] directed edges of every structure's radius graph, cached beside the store."""
    path = Path(f"{store.path}.edges.npz")
    identity = json.dumps(
        {"cutoff": float(cutoff), "max_neighbors": max_neighbors, "store": store_key(store)},
        sort_keys=True,
    )
    if path.exists():
        with np.load(path) as cached:
            if str(cached["identity"]) == identity:
                return cached["edges"]
    edges = np.zeros(len(store), dtype=np.int64)
    for index in progress(
        range(len(store)), desc=f"edges {store.subset}", total=len(store), unit="structure"
    ):
        record = store.get_record(index)
        edges[index] = neighbor_list(
            record.positions, record.cell, record.pbc, cutoff, max_neighbors
        )[0].shape[1]
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}.npz")
    try:
        np.savez(tmp, edges=edges, identity=np.array(identity))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return edges
