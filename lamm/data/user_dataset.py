"""A user's own DFT dataset -> one `StructureStore`, described in a few lines.

    name: my_molecules
    format: extxyz                  # extxyz | ase_db | deepmd
    files: {train: train.xyz, test: test.xyz}
    energy_key: REF_energy          # where the labels are (default: energy, forces / force)
    forces_key: REF_forces
    units: {energy: kcal/mol, length: bohr}
    functional: wB97X-D/def2-TZVP

(`lamm data convert --dataset my.yaml --out STORE`; every key: user_dataset.schema.yaml beside
this file; the same with flags: `lamm data convert --format extxyz --name ... --input ...`).

What the store records: the description as resolved (absolute paths, keys, units, functional,
split), that it holds eV / Angstrom / eV/Angstrom converted from the file's units, and the
conversion's counts. The records pass the same checks as the built-in sources (NaN, atoms too
close, a declared label missing in a frame: each skipped and counted by its reason).

Splits: with policy `random` (the default when only train files are given) each group (a frame,
a file or a deepmd system, or an info key's value) is hashed into train/val/test by the
fractions (0.1 and 0.1 unless set); with policy `files` each split comes from its own files, and a
split with no file is empty unless its fraction is set, then carved from the train groups.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lamm.config import ConfigError, load_yaml, validate_config
from lamm.data.checks import DEFAULT_MIN_DISTANCE
from lamm.data.convert import ConversionSummary, split_of, write_store
from lamm.data.readers import SourceItem
from lamm.data.units import Units

log = logging.getLogger(__name__)

SCHEMA = Path(__file__).with_name("user_dataset.schema.yaml")
USER_FORMATS = ("extxyz", "ase_db", "deepmd")
# The key each format uses when the description names none.
DEFAULT_KEYS = {
    "extxyz": ("energy", "forces"),
    "ase_db": ("energy", "forces"),
    "deepmd": ("energy", "force"),
}
RANDOM_DEFAULT_FRACTION = 0.1  # val and test shares of a random split: small datasets need both


@dataclass(frozen=True)
class UserSplit:
    """How records are assigned to train/val/test (see the module docstring)."""

    policy: str | None = None  # random | files | None: files when val/test files are given
    val_fraction: float | None = None
    test_fraction: float | None = None
    group_by: str = "frame"
    seed: int = 0


@dataclass(frozen=True)
class UserDataset:
    """A user's dataset: files per split, format, label keys, units, physics (see the module
    docstring)."""

    name: str
    format: str
    train: tuple[Path, ...] = ()
    val: tuple[Path, ...] = ()
    test: tuple[Path, ...] = ()
    energy_key: str | None = None  # None: the format's default
    forces_key: str | None = None
    labels: tuple[str, ...] = ("energy", "forces")
    energy_unit: str = "eV"
    length_unit: str = "angstrom"
    periodic: bool | None = None  # None: as each frame says
    functional: str | None = None
    energy_kind: str = "total"
    description: str = ""
    split: UserSplit = field(default_factory=UserSplit)

    def __post_init__(self) -> None:
        if self.format not in USER_FORMATS:
            raise ValueError(
                f"dataset {self.name}: format {self.format!r} is not one of "
                f"{', '.join(USER_FORMATS)}"
            )
        if not (self.train or self.val or self.test):
            raise ValueError(f"dataset {self.name}: no input files (give train, val or test files)")
        unknown = sorted(set(self.labels) - {"energy", "forces"})
        if unknown:
            raise ValueError(
                f"dataset {self.name}: unknown labels {unknown}; expected energy and/or forces"
            )
        if self.energy_kind not in ("total", "adsorption"):
            raise ValueError(
                f"dataset {self.name}: energy_kind must be total or adsorption, not "
                f"{self.energy_kind!r}"
            )
        if self.policy == "random" and (self.val or self.test):
            raise ValueError(
                f"dataset {self.name}: split policy random takes train files only, but "
                "val/test files are given;"
                " use policy files (or leave the policy out)"
            )
        if self.format == "deepmd" and self.split.group_by not in ("frame", "file"):
            raise ValueError(
                f"dataset {self.name}: deepmd frames have no info keys; group_by must be "
                "frame or file (a system)"
            )
        for fraction in (self.split.val_fraction, self.split.test_fraction):
            if fraction is not None and not 0 <= fraction < 1:
                raise ValueError(
                    f"dataset {self.name}: split fractions must lie in [0, 1), got {fraction}"
                )
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(f"dataset {self.name}: val_fraction + test_fraction must be below 1")
        _ = self.units  # raises on an unknown unit

    # --- resolved settings -------------------------------------------------------------------
    @property
    def units(self) -> Units:
        return Units(self.energy_unit, self.length_unit)

    @property
    def keys(self) -> tuple[str | None, str | None]:
        """(energy key, forces key) actually read: None for a label not listed in `labels`."""
        default_energy, default_forces = DEFAULT_KEYS[self.format]
        energy = (self.energy_key or default_energy) if "energy" in self.labels else None
        forces = (self.forces_key or default_forces) if "forces" in self.labels else None
        return energy, forces

    @property
    def policy(self) -> str:
        if self.split.policy is not None:
            return self.split.policy
        return "files" if (self.val or self.test) else "random"

    def _fraction(self, value: float | None) -> float:
        if value is not None:
            return value
        return RANDOM_DEFAULT_FRACTION if self.policy == "random" else 0.0

    @property
    def val_fraction(self) -> float:
        """Share of train-file groups sent to val (0 when val has its own files)."""
        return 0.0 if self.val else self._fraction(self.split.val_fraction)

    @property
    def test_fraction(self) -> float:
        """Share of train-file groups sent to test (0 when test has its own files)."""
        return 0.0 if self.test else self._fraction(self.split.test_fraction)

    def target(self, input_split: str, group: str) -> str:
        """The split of a record read from an input of `input_split`, in split group `group`."""
        if input_split != "train":
            return input_split
        return split_of(group, self.split.seed, self.val_fraction, self.test_fraction)

    def as_info(self) -> dict[str, Any]:
        """The description as the store records it (paths absolute, defaults resolved)."""
        energy_key, forces_key = self.keys
        return {
            "name": self.name,
            "format": self.format,
            "files": {
                split: [str(p.resolve()) for p in getattr(self, split)]
                for split in ("train", "val", "test")
            },
            "energy_key": energy_key,
            "forces_key": forces_key,
            "labels": list(self.labels),
            "units": self.units.as_dict(),
            "periodic": self.periodic,
            "functional": self.functional,
            "energy_kind": self.energy_kind,
            "description": self.description,
            "split": {
                "policy": self.policy,
                "val_fraction": self.val_fraction,
                "test_fraction": self.test_fraction,
                "group_by": self.split.group_by,
                "seed": self.split.seed,
            },
        }


def _paths(value: str | Sequence[str] | None, base: Path) -> tuple[Path, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    return tuple(Path(item) if os.path.isabs(item) else base / item for item in items)


def user_dataset_from_mapping(
    mapping: Mapping[str, Any], base: str | os.PathLike = ".", *, where: str = "dataset description"
) -> UserDataset:
    """A `UserDataset` from a description mapping (the YAML's content); paths relative to `base`."""
    config = validate_config(mapping, SCHEMA, name=where)
    base = Path(base)
    files, units, split = config["files"], config.get("units", {}), config.get("split", {})
    try:
        return UserDataset(
            name=config["name"],
            format=config["format"],
            train=_paths(files.get("train"), base),
            val=_paths(files.get("val"), base),
            test=_paths(files.get("test"), base),
            energy_key=config["energy_key"],
            forces_key=config["forces_key"],
            labels=tuple(config["labels"]),
            energy_unit=units.get("energy", "eV"),
            length_unit=units.get("length", "angstrom"),
            periodic=config["periodic"],
            functional=config["functional"],
            energy_kind=config["energy_kind"],
            description=config["description"],
            split=UserSplit(
                policy=split.get("policy"),
                val_fraction=split.get("val_fraction"),
                test_fraction=split.get("test_fraction"),
                group_by=split.get("group_by", "frame"),
                seed=split.get("seed", 0),
            ),
        )
    except ValueError as err:
        raise ConfigError(f"invalid {where}: {err}") from None


def load_user_dataset(path: str | os.PathLike) -> UserDataset:
    """Read and check a dataset description YAML (errors name the file and the key)."""
    path = Path(path)
    return user_dataset_from_mapping(
        load_yaml(path), path.parent, where=f"dataset description {path}"
    )


def _open_items(dataset: UserDataset, path: Path) -> Iterator[SourceItem]:
    energy_key, forces_key = dataset.keys
    options = dict(
        energy_key=energy_key,
        forces_key=forces_key,
        units=dataset.units,
        group_by=dataset.split.group_by,
    )
    if dataset.format == "extxyz":
        from lamm.data.readers.extxyz import read_extxyz

        items = read_extxyz(path, **options)
    elif dataset.format == "ase_db":
        from lamm.data.readers.ase_db import read_ase_db

        items = read_ase_db(path, **options)
    else:
        from lamm.data.readers.deepmd import read_deepmd

        items = read_deepmd(path, **options)
    if dataset.periodic is None:
        return items
    return (_with_pbc(item, dataset.periodic) for item in items)


def _with_pbc(item: SourceItem, periodic: bool) -> SourceItem:
    """Impose the description's periodicity (a periodic frame without a cell then fails the cell
    check)."""
    if item.record is None:
        return item
    return dataclasses.replace(
        item, record=dataclasses.replace(item.record, pbc=np.full(3, periodic))
    )


def convert_user_dataset(
    dataset: UserDataset,
    out: str | os.PathLike,
    *,
    max_atoms: int | None = None,
    min_distance: float = DEFAULT_MIN_DISTANCE,
) -> ConversionSummary:
    """Convert a user's dataset into the store `out` (eV, Angstrom); returns the counts.

    Raises ValueError when no record is kept, CorruptInputError when a file cannot be read.
    """
    if min_distance <= 0:
        raise ValueError(f"min_distance must be positive, got {min_distance}")
    inputs = [
        (split, path) for split in ("train", "val", "test") for path in getattr(dataset, split)
    ]
    info = {
        "task": "s2ef",
        "functional": dataset.functional,
        "periodic": dataset.periodic,
        "labels": list(dataset.labels),
        "title": dataset.description or dataset.name,
        "energy_reference": "already total"
        if dataset.energy_kind == "total"
        else "adsorption energies as given",
        "split_policy": dataset.policy,
        "split_group": dataset.split.group_by,
        "split_seed": dataset.split.seed,
        "val_fraction": dataset.val_fraction,
        "test_fraction": dataset.test_fraction,
        "max_atoms": max_atoms,
        "min_distance": min_distance,
        "user_dataset": dataset.as_info(),
        "units": {
            "energy": "eV",
            "length": "angstrom",
            "forces": "eV/angstrom",
            "converted_from": dataset.units.as_dict(),
        },
    }
    energy_kind = dataset.energy_kind if "energy" in dataset.labels else "none"
    return write_store(
        Path(out),
        subset=dataset.name,
        source=f"user:{dataset.format}",
        energy_kind=energy_kind,
        info=info,
        inputs=inputs,
        open_items=lambda path: _open_items(dataset, path),
        labels=dataset.labels,
        max_atoms=max_atoms,
        min_distance=min_distance,
        target=dataset.target,
    )
