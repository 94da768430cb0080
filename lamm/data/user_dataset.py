"""A user's own DFT dataset -> one `StructureStore`, described in a few lines.

    name: my_molecules
    format: extxyz                  # auto | ase | dpdata | extxyz | ase_db | deepmd
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

Formats: `auto` (the default of the flags) detects each input's reader
(`lamm.data.readers.dft.detect_format`): extxyz and ASE databases with their own readers,
deepmd-kit systems, any other file ASE reads (VASP, QE, CASTEP, GPAW, FHI-aims, trajectories),
and through dpdata the codes ASE lacks (CP2K, Gaussian, ABACUS, ...). `ase` and `dpdata` force
one reader (`ase_format` / `dpdata_format` name the format when it cannot be detected).

Splits: with policy `auto` (the default when only train files are given) the frames of the train
files are split by `lamm.data.splitting.split_by_groups` over their groups (`group_by`: the
file by default, so one AIMD run per file; a deepmd system; the frame; or an info key's value):
whole groups when there are many, else contiguous blocks within each group, never interleaved;
`groups` and `blocks` force one; `random` hashes each group into a split (the older policy).
With policy `files` each split comes from its own files, and a split with no file is empty
unless its fraction is set, then carved from the train groups the same way.
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
USER_FORMATS = ("auto", "ase", "dpdata", "extxyz", "ase_db", "deepmd")
POLICIES = ("auto", "groups", "blocks", "random", "files")
# The key each format uses when the description names none.
DEFAULT_KEYS = {
    "extxyz": ("energy", "forces"),
    "ase_db": ("energy", "forces"),
    "deepmd": ("energy", "force"),
    "ase": ("energy", "forces"),
    "dpdata": ("energy", "forces"),
    "auto": ("energy", "forces"),
}
# Readers that read their own units (ASE and dpdata convert every code's output to eV, Angstrom).
NATIVE_UNIT_READERS = ("ase", "dpdata")
RANDOM_DEFAULT_FRACTION = 0.1  # val and test shares of a random split: small datasets need both


@dataclass(frozen=True)
class UserSplit:
    """How records are assigned to train/val/test (see the module docstring)."""

    policy: str | None = None  # auto | groups | blocks | random | files | None (module docstring)
    val_fraction: float | None = None
    test_fraction: float | None = None
    group_by: str = "file"
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
    energy: str = "free"  # free | zero-smearing, where a DFT output reports both
    stress_key: str | None = None  # extxyz info key of the stress (default: stress, or virial)
    ase_format: str | None = None  # an ase.io format name, when `format: ase` cannot detect it
    dpdata_format: str | None = None  # a dpdata format name (cp2k/output, ...)

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
        self._check_reader_options()
        if self.energy_kind not in ("total", "adsorption"):
            raise ValueError(
                f"dataset {self.name}: energy_kind must be total or adsorption, not "
                f"{self.energy_kind!r}"
            )
        if self.policy not in POLICIES:
            raise ValueError(
                f"dataset {self.name}: split policy {self.policy!r} is not one of "
                f"{', '.join(POLICIES)}"
            )
        if self.policy != "files" and (self.val or self.test):
            raise ValueError(
                f"dataset {self.name}: split policy {self.policy} takes train files only, but "
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

    def _check_reader_options(self) -> None:
        from lamm.data.readers.dft import ENERGY_CHOICES

        if self.energy not in ENERGY_CHOICES:
            raise ValueError(
                f"dataset {self.name}: energy must be one of {', '.join(ENERGY_CHOICES)}, not "
                f"{self.energy!r}"
            )
        if self.format == "dpdata" and not self.dpdata_format:
            raise ValueError(
                f"dataset {self.name}: format dpdata needs a dpdata format name (--dpdata-format "
                "cp2k/output, abacus/scf, gaussian/log, ...); or use --format auto"
            )
        if self.format in NATIVE_UNIT_READERS and not self.units.is_native:
            raise ValueError(
                f"dataset {self.name}: the {self.format} reader converts the code's units to eV "
                "and Angstrom itself; drop --energy-unit/--length-unit"
            )
        if self.format in NATIVE_UNIT_READERS and self.split.group_by not in ("frame", "file"):
            raise ValueError(
                f"dataset {self.name}: frames read by {self.format} have no info keys; group_by "
                "must be file (one run per file) or frame"
            )

    # --- resolved settings -------------------------------------------------------------------
    @property
    def units(self) -> Units:
        return Units(self.energy_unit, self.length_unit)

    @property
    def keys(self) -> tuple[str | None, str | None]:
        """(energy key, forces key) actually read: None for a label not listed in `labels`."""
        return self.keys_for(self.format)

    def keys_for(self, reader: str) -> tuple[str | None, str | None]:
        """The keys for one input's reader (`auto` resolves per file: deepmd's is force)."""
        default_energy, default_forces = DEFAULT_KEYS[reader]
        energy = (self.energy_key or default_energy) if "energy" in self.labels else None
        forces = (self.forces_key or default_forces) if "forces" in self.labels else None
        return energy, forces

    @property
    def policy(self) -> str:
        if self.split.policy is not None:
            return self.split.policy
        return "files" if (self.val or self.test) else "auto"

    def _fraction(self, value: float | None) -> float:
        if value is not None:
            return value
        return RANDOM_DEFAULT_FRACTION if self.policy != "files" else 0.0

    @property
    def val_fraction(self) -> float:
        """Share of train-file groups sent to val (0 when val has its own files)."""
        return 0.0 if self.val else self._fraction(self.split.val_fraction)

    @property
    def test_fraction(self) -> float:
        """Share of train-file groups sent to test (0 when test has its own files)."""
        return 0.0 if self.test else self._fraction(self.split.test_fraction)

    def assign(self, inputs: Sequence[tuple[str, str]]) -> list[str]:
        """The split of every record, from its (input split, group) in write order: records of
        val/test files keep theirs; those of train files are split (module docstring)."""
        from lamm.data.splitting import split_by_groups

        out = [split for split, _ in inputs]
        train = [i for i, (split, _) in enumerate(inputs) if split == "train"]
        groups = [inputs[i][1] for i in train]
        if self.policy == "random":
            sides = [
                split_of(g, self.split.seed, self.val_fraction, self.test_fraction) for g in groups
            ]
        else:
            mode = self.policy if self.policy in ("groups", "blocks") else "auto"
            sides = split_by_groups(
                groups, self.val_fraction, self.test_fraction, seed=self.split.seed, mode=mode
            ).tolist()
        for i, side in zip(train, sides, strict=True):
            out[i] = side
        return out

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
            "energy": self.energy,
            "stress_key": self.stress_key,
            "ase_format": self.ase_format,
            "dpdata_format": self.dpdata_format,
            "split": {
                "policy": self.policy,
                "val_fraction": self.val_fraction,
                "test_fraction": self.test_fraction,
                "group_by": self.split.group_by,
                "seed": self.split.seed,
            },
        }


def expand_glob(path: Path) -> list[Path]:
    """`path`, or the sorted paths a glob pattern in it matches (none: FileNotFoundError)."""
    import glob

    if path.exists() or not glob.has_magic(str(path)):
        return [path]
    matches = sorted(glob.glob(str(path), recursive=True))
    if not matches:
        raise FileNotFoundError(f"input {path}: the pattern matches no file")
    return [Path(m) for m in matches]


def _paths(value: str | Sequence[str] | None, base: Path) -> tuple[Path, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else list(value)
    paths = [Path(item) if os.path.isabs(item) else base / item for item in items]
    return tuple(p for path in paths for p in expand_glob(path))


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
                group_by=split.get("group_by", "file"),
                seed=split.get("seed", 0),
            ),
            energy=config["energy"],
            stress_key=config["stress_key"],
            ase_format=config["ase_format"],
            dpdata_format=config["dpdata_format"],
        )
    except ValueError as err:
        raise ConfigError(f"invalid {where}: {err}") from None


def load_user_dataset(path: str | os.PathLike) -> UserDataset:
    """Read and check a dataset description YAML (errors name the file and the key)."""
    path = Path(path)
    return user_dataset_from_mapping(
        load_yaml(path), path.parent, where=f"dataset description {path}"
    )


def resolve_format(dataset: UserDataset, path: Path) -> tuple[str, str | None]:
    """(reader, format name) of one input: the dataset's format, or detected for `auto`."""
    if dataset.format == "ase":
        return "ase", dataset.ase_format
    if dataset.format == "dpdata":
        return "dpdata", dataset.dpdata_format
    if dataset.format != "auto":
        return dataset.format, None
    from lamm.data.readers.dft import detect_format

    reader, name = detect_format(path)
    if reader == "ase" and name in ("extxyz", "xyz"):
        return "extxyz", None
    if reader == "ase" and name in ("db", "json"):
        return "ase_db", None
    if reader in NATIVE_UNIT_READERS and not dataset.units.is_native:
        raise ValueError(
            f"{path} is read by {reader} ({name}), which converts the code's units to eV and "
            "Angstrom itself; drop --energy-unit/--length-unit"
        )
    if reader in NATIVE_UNIT_READERS and dataset.split.group_by not in ("frame", "file"):
        raise ValueError(
            f"{path} is read by {reader} ({name}): its frames have no info keys; "
            "pass --group-by file (one run per file) or frame"
        )
    return reader, name


def _open_items(
    dataset: UserDataset, path: Path, choices: dict[str, Any] | None = None
) -> Iterator[SourceItem]:
    reader, name = resolve_format(dataset, path)
    energy_key, forces_key = dataset.keys_for(reader)
    options = dict(
        energy_key=energy_key,
        forces_key=forces_key,
        units=dataset.units,
        group_by=dataset.split.group_by,
    )
    if choices is not None:
        choices.setdefault("formats", {})[str(path)] = f"{reader}:{name}" if name else reader
    if reader == "extxyz":
        from lamm.data.readers.extxyz import read_extxyz

        items = read_extxyz(path, stress_key=dataset.stress_key, **options)
    elif reader == "ase_db":
        from lamm.data.readers.ase_db import read_ase_db

        items = read_ase_db(path, **options)
    elif reader == "deepmd":
        from lamm.data.readers.deepmd import read_deepmd

        items = read_deepmd(path, **options)
    elif reader == "ase":
        from lamm.data.readers.dft import read_ase_file

        energies = None if choices is None else choices.setdefault("energy", {})
        items = read_ase_file(
            path,
            ase_format=name,
            energy=dataset.energy,
            group_by=dataset.split.group_by,
            choices=energies,
        )
    else:
        from lamm.data.readers.dft import read_dpdata_file

        items = read_dpdata_file(path, dpdata_format=name, group_by=dataset.split.group_by)
    items = _without_labels(items, energy_key is None, forces_key is None)
    if dataset.periodic is None:
        return items
    return (_with_pbc(item, dataset.periodic) for item in items)


def _without_labels(
    items: Iterator[SourceItem], drop_energy: bool, drop_forces: bool
) -> Iterator[SourceItem]:
    """Labels not asked for (`labels`) are not stored (the ASE and dpdata readers read all)."""
    for item in items:
        if item.record is not None and (drop_energy or drop_forces):
            changes = {"energy": None} if drop_energy else {}
            changes.update({"forces": None} if drop_forces else {})
            item = dataclasses.replace(item, record=dataclasses.replace(item.record, **changes))
        yield item


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
    choices: dict[str, Any] = {}
    try:
        return write_store(
            Path(out),
            subset=dataset.name,
            source=f"user:{dataset.format}",
            energy_kind=energy_kind,
            info=info,
            inputs=inputs,
            open_items=lambda path: _open_items(dataset, path, choices),
            labels=dataset.labels,
            max_atoms=max_atoms,
            min_distance=min_distance,
            assign=dataset.assign,
            finish=lambda summary: _finish(dataset, summary, choices),
        )
    except ValueError as err:
        raise ValueError(_with_label_hint(str(err), dataset, inputs)) from None


def _finish(dataset: UserDataset, summary: Any, choices: Mapping[str, Any]) -> dict[str, Any]:
    """What the store records at the end (readers, energy choice, label sizes, warnings); the
    warnings are logged too."""
    from lamm.data.sanity import label_summary, split_warnings, unit_warnings

    labels = label_summary(summary)
    warnings = unit_warnings(
        summary.energy_per_atom, labels["force_rms_ev_per_a"], dataset.units.as_dict()
    )
    asked = {"val": dataset.val_fraction, "test": dataset.test_fraction}
    warnings += split_warnings(summary.splits, dataset.policy, asked)
    for message in warnings:
        log.warning("%s: %s", dataset.name, message)
    return {
        "readers": dict(choices.get("formats", {})),
        "energy_choice": dict(choices.get("energy", {})),
        "labels_summary": labels,
        "warnings": warnings,
    }


def _with_label_hint(message: str, dataset: UserDataset, inputs: Sequence[tuple[str, Path]]) -> str:
    """A failed conversion whose frames lacked a label: name the keys the first input has and
    the flags that fix it."""
    missing = [label for label in ("energy", "forces") if f"missing_{label}" in message]
    if not missing or not inputs:
        return message
    from lamm.data.readers.keys import available_keys

    path = inputs[0][1]
    reader = dataset.format
    try:
        reader, _ = resolve_format(dataset, path)
        keys = available_keys(reader, path)
    except (OSError, ValueError, KeyError, StopIteration):
        keys = "keys that could not be listed"
    energy_key, forces_key = dataset.keys_for(reader)
    flags = {
        "energy": f"--energy-key (read: {energy_key})",
        "forces": f"--forces-key (read: {forces_key})",
    }
    only = [label for label in dataset.labels if label not in missing]
    fix = " or ".join(flags[label] for label in missing)
    if only:
        fix += f", or convert {' '.join(only)} alone: --labels {' '.join(only)}"
    return f"{message}. {path} has {keys}; pass {fix}"
