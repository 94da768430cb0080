"""Labels: the teacher's energies and forces on configurations, and the stores that hold them.

Every store of a distillation run is an ordinary `StructureStore` (`task: s2ef`) whose subset is
the teacher's head name, so the student trained on it gets a head of the same name and
`lamm evaluate STUDENT --store DOWNSTREAM.lmdb` picks it:

    explored.lmdb     a round's sampled configurations, unlabeled (energy_kind none)
    labels.lmdb       the round's selection, labeled by the teacher (split train)
    validation.lmdb   the fixed validation set, labeled by the teacher (split val)
    train.lmdb        what a round's students train on: every label so far (train), the
                      validation set (val, and again as test: the final test score of each
                      student is its error against the teacher on the validation set)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lamm.data.record import StructureRecord
from lamm.data.store import StructureStore, StructureStoreWriter
from lamm.distill.predict import predict
from lamm.models.potential import Potential


def with_labels(record: StructureRecord, energy: float, forces: np.ndarray) -> StructureRecord:
    """`record` with the given energy (eV) and forces (eV/Angstrom)."""
    return StructureRecord(
        **{
            **record.__dict__,
            "energy": float(energy),
            "forces": np.asarray(forces, dtype=np.float64),
        }
    )


def unlabeled(record: StructureRecord) -> StructureRecord:
    return StructureRecord(**{**record.__dict__, "energy": None, "forces": None, "stress": None})


def teacher_label(
    teacher: Potential, records: Sequence[StructureRecord], *, head: int, batch_size: int = 16
) -> list[StructureRecord]:
    """The records labeled with the teacher's head `head` (direct or gradient forces alike)."""
    labels = predict(teacher, records, head=head, batch_size=batch_size)
    return [
        with_labels(r, e, f) for r, e, f in zip(records, labels.energy, labels.forces, strict=True)
    ]


def write_store(
    path: str | os.PathLike,
    records: Iterable[tuple[StructureRecord, str]],
    *,
    subset: str,
    labeled: bool,
    info: Mapping[str, Any] | None = None,
) -> StructureStore:
    """An atomic store of (record, split) pairs (it exists whole or not at all)."""
    extra = {"task": "s2ef", "labels": ["energy", "forces"] if labeled else [], **dict(info or {})}
    with StructureStoreWriter(
        path,
        subset=subset,
        source="distill",
        energy_kind="total" if labeled else "none",
        extra_info=extra,
    ) as writer:
        for record, split in records:
            writer.add(record if labeled else unlabeled(record), split)
    return StructureStore(path)


def read_records(path: str | os.PathLike, split: str | None = None) -> list[StructureRecord]:
    """The records of a store (of one split), in store order."""
    store = StructureStore(path)
    indices = range(len(store)) if split is None else store.indices(split)
    return [store.get_record(int(i)) for i in indices]


def training_store(
    path: str | os.PathLike,
    labeled: Sequence[StructureRecord],
    validation: Sequence[StructureRecord],
    *,
    subset: str,
    info: Mapping[str, Any] | None = None,
) -> StructureStore:
    """`train.lmdb` of the module docstring."""
    if not labeled:
        raise ValueError(
            "no labeled configurations to train the students on (every explored "
            "configuration was rejected)"
        )
    pairs = (
        [(r, "train") for r in labeled]
        + [(r, "val") for r in validation]
        + [(r, "test") for r in validation]
    )
    return write_store(Path(path), pairs, subset=subset, labeled=True, info=info)
