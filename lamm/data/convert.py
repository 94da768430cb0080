"""Real release files -> one `StructureStore`: read, check, split, write.

Every input record is either written or skipped with a reason (`lamm.data.readers` for records
that cannot be parsed, `lamm.data.checks` for the physics), so read = written + skipped.
A file that cannot be read fails the whole conversion with its name, and the store appears
only when complete (`StructureStoreWriter` writes a temporary file and renames it).

Splits: records from validation (and test) inputs go to those splits, as the releases define
them (OC20, OC22, ODAC23, HME21). Without such inputs the split is a seeded hash of the record's
group key (`split_of`): a group lands in val with probability `val_fraction` (1% by default),
independent of the order of the input, so converting again, or a partial input, puts every
group on the same side, and frames of one reaction, relaxation or molecule never straddle the
split. The val share of samples is therefore close to, not exactly, 1%.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lamm.data.checks import DEFAULT_MIN_DISTANCE, check_record
from lamm.data.readers import SourceItem
from lamm.data.readers.extxyz import read_extxyz
from lamm.data.readers.fairchem_lmdb import load_reference_energies, read_fairchem_lmdb
from lamm.data.readers.oc20_extxyz import read_oc20_extxyz
from lamm.data.readers.pubchem3d import read_pubchem3d
from lamm.data.readers.qm7x import read_qm7x
from lamm.data.readers.qmugs import read_qmugs
from lamm.data.readers.transition1x import read_transition1x
from lamm.data.sources import Source
from lamm.data.store import StructureStoreWriter
from lamm.log import progress

log = logging.getLogger(__name__)


def split_of(group: str, seed: int, val_fraction: float, test_fraction: float = 0.0) -> str:
    """`train`, `val` or `test` for a group key: a pure function of (seed, group).

    One uniform number u per group: test when u < test_fraction, val when u < test_fraction +
    val_fraction; so with test_fraction 0 a group's side is the same as without a test split."""
    digest = hashlib.blake2b(f"{seed}\0{group}".encode(), digest_size=8).digest()
    u = int.from_bytes(digest, "big") / 2.0**64
    if u < test_fraction:
        return "test"
    return "val" if u < test_fraction + val_fraction else "train"


def open_reader(
    source: Source,
    path: Path,
    *,
    reference_energies: Mapping[str, float] | None = None,
    scratch_dir: Path | None = None,
) -> Iterator[SourceItem]:
    """The reader of `source.format` over one input path."""
    fields = source.fields
    if source.format == "fairchem_lmdb":
        return read_fairchem_lmdb(
            path,
            energy_fields=fields.energy,
            forces_fields=fields.forces,
            periodic=source.periodic,
            reference_energies=reference_energies,
        )
    if reference_energies is not None:
        raise ValueError(
            f"reference energies apply to fairchem LMDB sources only, not to {source.name} "
            f"({source.format})"
        )
    if source.format == "oc20_extxyz":
        return read_oc20_extxyz(path)
    if source.format == "extxyz":
        return read_extxyz(path)
    if source.format == "transition1x_h5":
        return read_transition1x(path, energy_field=fields.energy[0], forces_field=fields.forces[0])
    if source.format == "qm7x_h5":
        return read_qm7x(
            path,
            energy_field=fields.energy[0],
            forces_field=fields.forces[0],
            scratch_dir=scratch_dir,
        )
    if source.format == "qmugs_sdf":
        return read_qmugs(path, energy_field=fields.energy[0])
    if source.format == "pubchem3d_sdf":
        return read_pubchem3d(path)
    raise ValueError(f"no reader for format {source.format!r}")


@dataclass
class ConversionSummary:
    source: str
    read: int = 0
    written: int = 0
    skipped: Counter = field(default_factory=Counter)
    splits: Counter = field(default_factory=Counter)
    # label sizes of the records written, for the unit sanity checks (lamm.data.sanity)
    energy_per_atom: list = field(default_factory=list)  # eV/atom, one per record with an energy
    force_squares: float = 0.0  # sum of squared force components, (eV/A)^2
    force_components: int = 0

    def add_labels(self, record: Any) -> None:
        if record.energy is not None:
            self.energy_per_atom.append(float(record.energy) / max(record.natoms, 1))
        if record.forces is not None:
            self.force_squares += float(np.square(record.forces).sum())
            self.force_components += int(np.size(record.forces))

    def as_json(self) -> dict[str, Any]:
        """The summary `lamm data convert` prints (INTERFACES.md)."""
        return {
            "source": self.source,
            "read": self.read,
            "written": self.written,
            "skipped": dict(sorted(self.skipped.items())),
        }

    def metrics(self) -> dict[str, float]:
        metrics = {
            "read": self.read,
            "written": self.written,
            "skipped": sum(self.skipped.values()),
        }
        metrics.update({f"skipped_{reason}": count for reason, count in self.skipped.items()})
        metrics.update({f"split_{name}": count for name, count in self.splits.items()})
        return metrics


def convert(
    source: Source,
    out: str | Path,
    *,
    train_inputs: Sequence[str | Path],
    val_inputs: Sequence[str | Path] = (),
    test_inputs: Sequence[str | Path] = (),
    max_atoms: int | None = None,
    min_distance: float = DEFAULT_MIN_DISTANCE,
    seed: int = 0,
    val_fraction: float | None = None,
    reference_energies: str | Path | None = None,
) -> ConversionSummary:
    """Convert the inputs of one source into the store `out`; returns the counts.

    `max_atoms` None means no limit (pass `source.max_atoms` for the source's default).
    `reference_energies` (OC20's `oc20_ref.pkl`) turns adsorption energies into totals.
    """
    if not train_inputs:
        raise ValueError("at least one train input is needed")
    if min_distance <= 0:
        raise ValueError(f"min_distance must be positive, got {min_distance}")
    if max_atoms is not None and max_atoms < 1:
        raise ValueError(f"max_atoms must be positive, got {max_atoms}")
    val_fraction = source.split.val_fraction if val_fraction is None else val_fraction
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie in (0, 1), got {val_fraction}")
    out = Path(out)
    official = bool(val_inputs or test_inputs)
    if not official and source.split.policy == "official":
        log.warning(
            "%s has official splits but no validation input was given: using the random "
            "group split",
            source.name,
        )
    references = None if reference_energies is None else load_reference_energies(reference_energies)
    energy_kind = "total" if references is not None else source.energy.kind
    info = {
        "task": source.task,
        "functional": source.functional,
        "periodic": source.periodic,
        "labels": list(source.labels),
        "title": source.title,
        "energy_reference": (
            f"{source.energy.reference} (applied: {Path(reference_energies).name})"
            if references is not None
            else source.energy.reference
        ),
        "split_policy": "official" if official else "random_group",
        "split_group": source.split.group_by,
        "split_seed": seed,
        "val_fraction": None if official else val_fraction,
        "max_atoms": max_atoms,
        "min_distance": min_distance,
    }
    inputs = [
        (split, Path(path))
        for split, paths in (("train", train_inputs), ("val", val_inputs), ("test", test_inputs))
        for path in paths
    ]
    scratch_dir = out.parent
    return write_store(
        out,
        subset=source.name,
        source=source.name,
        energy_kind=energy_kind,
        info=info,
        inputs=inputs,
        open_items=lambda path: open_reader(
            source, path, reference_energies=references, scratch_dir=scratch_dir
        ),
        labels=source.labels,
        max_atoms=max_atoms,
        min_distance=min_distance,
        target=lambda split, group: split if official else split_of(group, seed, val_fraction),
    )


def write_store(
    out: Path,
    *,
    subset: str,
    source: str,
    energy_kind: str,
    info: Mapping[str, Any],
    inputs: Sequence[tuple[str, Path]],
    open_items: Callable[[Path], Iterator[SourceItem]],
    labels: Sequence[str],
    max_atoms: int | None,
    min_distance: float,
    target: Callable[[str, str], str] | None = None,
    assign: Callable[[list[tuple[str, str]]], list[str]] | None = None,
    finish: Callable[[ConversionSummary], Mapping[str, Any]] | None = None,
) -> ConversionSummary:
    """Read every (split, path) input, check each record, write the good ones to the store `out`.

    `target(input_split, group)` is the split a record goes to as it is written; or `assign`
    gets every written record's (input split, group) at the end and returns their splits (a
    splitter that needs the whole input). The store's info gets `info`, the conversion's counts
    (`conversion`) and what `finish(summary)` returns (called before the store is closed). A
    conversion that keeps no record fails with the skip reasons and leaves no store: an empty
    store would only fail later, far from the cause.
    """
    if (target is None) == (assign is None):
        raise ValueError("write_store needs exactly one of target and assign")
    summary = ConversionSummary(subset)
    pending: list[tuple[str, str]] = []
    out.parent.mkdir(parents=True, exist_ok=True)
    with StructureStoreWriter(
        out, subset=subset, source=source, energy_kind=energy_kind, extra_info=info
    ) as writer:
        for split, path in inputs:
            for item in progress(open_items(path), desc=f"{subset} {path.name}", unit="records"):
                summary.read += 1
                reason = item.skip_reason
                if reason is None:
                    reason = check_record(
                        item.record, labels=labels, max_atoms=max_atoms, min_distance=min_distance
                    )
                if reason is not None:
                    summary.skipped[reason] += 1
                    continue
                if assign is None:
                    split_name = target(split, item.group)
                    summary.splits[split_name] += 1
                else:
                    split_name = "train"
                    pending.append((split, item.group))
                writer.add(item.record, split_name)
                summary.written += 1
                summary.add_labels(item.record)
        if summary.written == 0:
            raise ValueError(
                f"{subset}: no record kept of {summary.read} read from "
                f"{', '.join(str(p) for _, p in inputs)}"
                f" (skipped: {dict(summary.skipped) or 'none'}); no store written"
            )
        if assign is not None:
            splits = assign(pending)
            writer.set_splits(splits)
            summary.splits.update(splits)
        if finish is not None:
            writer.update_info(dict(finish(summary)))
        writer.update_info(
            {"conversion": {**summary.as_json(), "splits": dict(sorted(summary.splits.items()))}}
        )
    log.info(
        "%s: read %d, wrote %d (%s), skipped %s",
        subset,
        summary.read,
        summary.written,
        dict(summary.splits),
        dict(summary.skipped) or "none",
    )
    return summary
