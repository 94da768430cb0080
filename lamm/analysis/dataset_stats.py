"""LaMM Table 2 and the inputs of Figs. 2 and 4, from store metadata only.

A store's metadata holds its count, per-sample atom counts, splits and per-element atom counts,
so these statistics never decode a sample and work for stores of hundreds of millions of
structures. Store info written by the demo or the converters carries `task`, `labels`,
`periodic`, `role` and `functional`; for stores without them, the values of LaMM Table 2 are
looked up by subset name.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

from lamm.data.sampling import temperature_sizes
from lamm.data.store import SPLITS, StructureStore

# LaMM Table 2 by subset name: (task, periodic), for stores whose info does not say.
TABLE2_DEFAULTS = {
    "oc20_s2ef": ("s2ef", True),
    "oc22_s2ef": ("s2ef", True),
    "odac23_s2ef": ("s2ef", True),
    "transition1x": ("s2ef", False),
    "qm7x": ("s2ef", False),
    "qmugs": ("s2ef", False),
    "pubchem3d": ("denoising", False),
    "oc20_is2re": ("is2re", True),
    "oc22_is2re": ("is2re", True),
    "odac23_is2re": ("is2re", True),
    "hme21": ("s2ef", True),
}
DOWNSTREAM_SUBSETS = ("hme21",)
COLUMNS = [
    "subset",
    "role",
    "task",
    "functional",
    "energy_kind",
    "periodic",
    "labels",
    "samples",
    "samples_train",
    "samples_val",
    "samples_test",
    "samples_ts",
    "avg_atoms",
    "min_atoms",
    "max_atoms",
    "elements",
]


@dataclass
class StoreSummary:
    """What the table and figures need of one store."""

    subset: str
    role: str  # pretrain | downstream
    task: str  # s2ef | is2re | denoising | unknown
    functional: str
    energy_kind: str
    periodic: bool | None
    labels: str  # "E, F" | "E" | "F" | "N" | "none"
    natoms: np.ndarray  # [samples] int32
    split_counts: dict[str, int]
    element_atoms: np.ndarray  # [119] atoms of each element

    @property
    def elements(self) -> np.ndarray:
        """Atomic numbers present in the store."""
        return np.flatnonzero(self.element_atoms)

    @property
    def in_figures(self) -> bool:
        """Figs. 2 and 4 show the pre-training subsets except IS2RE (LaMM section 3.1)."""
        return self.role == "pretrain" and self.task != "is2re"


def _labels(info: dict, task: str) -> str:
    if task == "denoising":
        return "N"  # pseudo-forces drawn during training
    count = info["count"]
    parts = [
        name for name, key in (("E", "with_energy"), ("F", "with_forces")) if info.get(key, 0) > 0
    ]
    partial = [
        name
        for name, key in (("E", "with_energy"), ("F", "with_forces"))
        if 0 < info.get(key, 0) < count
    ]
    text = ", ".join(parts) if parts else "none"
    return text + (f" (partial {', '.join(partial)})" if partial else "")


def summarize_store(path: str | os.PathLike) -> StoreSummary:
    """Summary of one store from its metadata (no sample is decoded)."""
    store = StructureStore(path)
    info = store.info
    subset = store.subset
    default_task, default_periodic = TABLE2_DEFAULTS.get(subset, ("unknown", None))
    task = str(info.get("task", default_task))
    role = str(info.get("role", "downstream" if subset in DOWNSTREAM_SUBSETS else "pretrain"))
    periodic = info.get("periodic", default_periodic)
    return StoreSummary(
        subset=subset,
        role=role,
        task=task,
        functional=str(info.get("functional", "unknown")),
        energy_kind=store.energy_kind,
        periodic=None if periodic is None else bool(periodic),
        labels=_labels(info, task),
        natoms=store.natoms,
        split_counts={name: int((store.split == code).sum()) for name, code in SPLITS.items()},
        element_atoms=store.element_counts,
    )


def table2(summaries: list[StoreSummary], temperature: float = 2.0) -> pd.DataFrame:
    """Table 2: one row per store (pre-training, a total row, then downstream stores).

    `samples_ts` is the subset's virtual size under temperature sampling over the pre-training
    subsets (`temperature_sizes`, largest subset fixed); downstream rows leave it empty.
    """
    pretrain = [s for s in summaries if s.role == "pretrain"]
    downstream = [s for s in summaries if s.role != "pretrain"]
    virtual = temperature_sizes([len(s.natoms) for s in pretrain], temperature) if pretrain else []
    rows = []
    for summary, ts in [*zip(pretrain, virtual, strict=True), *((s, None) for s in downstream)]:
        natoms = summary.natoms
        rows.append(
            {
                "subset": summary.subset,
                "role": summary.role,
                "task": summary.task,
                "functional": summary.functional,
                "energy_kind": summary.energy_kind,
                "periodic": "unknown"
                if summary.periodic is None
                else ("yes" if summary.periodic else "no"),
                "labels": summary.labels,
                "samples": len(natoms),
                **{f"samples_{name}": count for name, count in summary.split_counts.items()},
                "samples_ts": None if ts is None else int(ts),
                "avg_atoms": round(float(natoms.mean()), 2) if len(natoms) else float("nan"),
                "min_atoms": int(natoms.min()) if len(natoms) else 0,
                "max_atoms": int(natoms.max()) if len(natoms) else 0,
                "elements": len(summary.elements),
            }
        )
    if pretrain:
        atoms = sum(int(s.natoms.sum()) for s in pretrain)
        samples = sum(len(s.natoms) for s in pretrain)
        union = np.flatnonzero(sum(s.element_atoms for s in pretrain))
        total = {
            "subset": "total",
            "role": "pretrain",
            "task": "",
            "functional": "",
            "energy_kind": "",
            "periodic": "",
            "labels": "",
            "samples": samples,
            **{f"samples_{name}": sum(s.split_counts[name] for s in pretrain) for name in SPLITS},
            "samples_ts": int(np.sum(virtual)),
            "avg_atoms": round(atoms / samples, 2) if samples else float("nan"),
            "min_atoms": min(int(s.natoms.min()) for s in pretrain if len(s.natoms)),
            "max_atoms": max(int(s.natoms.max()) for s in pretrain if len(s.natoms)),
            "elements": len(union),
        }
        rows.insert(len(pretrain), total)
    table = pd.DataFrame(rows, columns=COLUMNS)
    table["samples_ts"] = table["samples_ts"].astype("Int64")
    return table


def table2_order(summary: StoreSummary) -> tuple[int, str]:
    """Rows (and figure legends) in LaMM Table 2's order; other subsets after, by name."""
    order = list(TABLE2_DEFAULTS)
    return (order.index(summary.subset) if summary.subset in order else len(order), summary.subset)
