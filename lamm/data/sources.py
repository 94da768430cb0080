"""The eleven real dataset sources, described by `config/datasets/<source>.yaml`.

`load_source(name)` reads one description and returns a typed, validated `Source`: unknown keys,
missing keys and values of the wrong type raise `ValueError` naming the file and the key, so a
typo in a YAML never turns into a silently ignored setting.

A source lists its release files (URL, published MD5, how to unpack, which split they feed and
where the unpacked input lies), the physics of its labels (task, functional, periodic, energy
convention) and the conversion policy (reader format, field names, max atoms, split policy).
Facts that could not be checked against the real files are listed under `unverified`.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

SOURCE_NAMES = (
    "oc20_s2ef",
    "oc20_is2re",
    "oc22_s2ef",
    "oc22_is2re",
    "odac23_s2ef",
    "odac23_is2re",
    "transition1x",
    "qm7x",
    "qmugs",
    "pubchem3d",
    "hme21",
)
# Reader formats; `lamm.data.convert.open_reader` maps each to one module of lamm/data/readers/.
FORMATS = (
    "fairchem_lmdb",
    "oc20_extxyz",
    "extxyz",
    "transition1x_h5",
    "qm7x_h5",
    "qmugs_sdf",
    "pubchem3d_sdf",
)
DATASETS_DIR_ENV = "LAMM_DATASETS_DIR"
_MD5 = re.compile(r"^[0-9a-f]{32}$")

Task = Literal["s2ef", "is2re", "denoising"]
Label = Literal["energy", "forces"]
EnergyKind = Literal["total", "adsorption", "none"]
SplitName = Literal["train", "val", "test"]
Unpack = Literal["none", "tar", "tar.gz", "xz", "zip"]
SplitPolicyName = Literal["official", "random"]


@dataclass(frozen=True)
class Chunks:
    """A release split into numbered chunk files (PubChem3D: 25,000 CIDs per file)."""

    first: int  # first id of the first chunk
    last: int  # last id covered by the last chunk
    size: int  # ids per chunk
    missing_ok: bool = False  # a chunk the server does not have (404) is reported and skipped


@dataclass(frozen=True)
class Provides:
    """Convert inputs a release file provides once unpacked, relative to the source's raw dir."""

    train: tuple[str, ...] = ()
    val: tuple[str, ...] = ()
    test: tuple[str, ...] = ()
    reference: str | None = None  # per-system reference energies that turn adsorption into total


@dataclass(frozen=True)
class ReleaseFile:
    """One downloadable file of a release (a file that provides nothing is an extra)."""

    name: str  # file name on disk; `{first:08d}`/`{last:08d}` placeholders when chunked
    url: str
    md5: str | None = None  # as published; None where the publisher gives none
    size: str | None = None  # compressed size as published (human readable), for the user
    unpack: Unpack = "none"
    unpacked_name: str | None = None  # for `xz`: the name of the decompressed file
    provides: Provides = Provides()
    default: bool = False  # fetched by `lamm data fetch SOURCE` when no --file is given
    chunks: Chunks | None = None
    note: str = ""

    def expand(self) -> list[ReleaseFile]:
        """This file, or one concrete file per chunk."""
        if self.chunks is None:
            return [self]
        files = []
        for first in range(self.chunks.first, self.chunks.last + 1, self.chunks.size):
            last = first + self.chunks.size - 1
            names = {"first": first, "last": last}
            provides = Provides(
                **{
                    split: tuple(p.format(**names) for p in getattr(self.provides, split))
                    for split in ("train", "val", "test")
                }
            )
            files.append(
                dataclasses.replace(
                    self,
                    name=self.name.format(**names),
                    url=self.url.format(**names),
                    chunks=None,
                    provides=provides,
                )
            )
        return files


@dataclass(frozen=True)
class EnergyConvention:
    kind: EnergyKind  # what the converted store holds
    release: str  # what the release files hold, in words
    reference: str  # what makes the stored energy a total energy (or why it already is one)


@dataclass(frozen=True)
class Fields:
    """Names of the label fields in the release, tried in order (fairchem LMDBs, HDF5 files)."""

    energy: tuple[str, ...] = ()
    forces: tuple[str, ...] = ()


@dataclass(frozen=True)
class SplitPolicy:
    policy: SplitPolicyName  # official: the release's train/val(/test) files; random: hashed groups
    group_by: str  # what keeps near-duplicate frames on one side of the split, in words
    val_fraction: float = 0.01  # fraction of groups sent to val by the random split


@dataclass(frozen=True)
class Source:
    name: str
    title: str
    description: str
    homepage: str
    license: str
    citation: str
    task: Task
    labels: tuple[Label, ...]
    functional: str
    periodic: bool
    format: str
    energy: EnergyConvention
    split: SplitPolicy
    files: tuple[ReleaseFile, ...]
    fields: Fields = Fields()
    max_atoms: int | None = None
    unverified: tuple[str, ...] = ()

    def release_files(self, names: list[str] | None = None) -> list[ReleaseFile]:
        """Concrete files (chunks expanded): those named, else those marked default."""
        expanded = [f for entry in self.files for f in entry.expand()]
        if names is None:
            return [f for f in expanded if f.default]
        by_name = {f.name: f for f in expanded}
        templates = {entry.name: entry.expand() for entry in self.files if entry.chunks is not None}
        chosen: list[ReleaseFile] = []
        for name in names:
            if name in by_name:
                chosen.append(by_name[name])
            elif name in templates:
                chosen.extend(templates[name])
            else:
                raise ValueError(
                    f"source {self.name} has no release file {name!r}; files: "
                    f"{', '.join(sorted(by_name))}"
                )
        return chosen

    def inputs(self, split: SplitName, names: list[str] | None = None) -> list[str]:
        """Convert inputs of `split` (relative to the source's raw dir) that the chosen files
        provide."""
        paths: list[str] = []
        for release in self.release_files(names):
            paths.extend(p for p in getattr(release.provides, split) if p not in paths)
        return paths

    def reference(self, names: list[str] | None = None) -> str | None:
        """The reference-energy file among the chosen files, if any."""
        found = [f.provides.reference for f in self.release_files(names) if f.provides.reference]
        return found[0] if found else None


# --- strict loading of a YAML mapping into the dataclasses above --------------------------------
def _fail(where: str, message: str) -> typing.NoReturn:
    raise ValueError(f"{where}: {message}")


def _convert(value: Any, annotation: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return _convert(value, option, where)
            except ValueError as err:
                errors.append(str(err))
        _fail(where, "; ".join(errors))
    if origin is Literal:
        if value not in args:
            _fail(where, f"{value!r} is not one of {', '.join(map(str, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            _fail(where, f"expected a list, got {type(value).__name__}")
        return tuple(_convert(item, args[0], f"{where}[{i}]") for i, item in enumerate(value))
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, value, where)
    if annotation is bool:
        if not isinstance(value, bool):
            _fail(where, f"expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(where, f"expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            _fail(where, f"expected a number, got {value!r}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            _fail(where, f"expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {annotation!r} at {where}")


def _build(cls: type, mapping: Any, where: str) -> Any:
    if not isinstance(mapping, Mapping):
        _fail(where, f"expected a mapping, got {type(mapping).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in mapping:
        if key not in fields:
            hint = difflib.get_close_matches(str(key), list(fields), n=1)
            suggestion = f" (did you mean {hint[0]}?)" if hint else ""
            _fail(f"{where}.{key}", f"unknown key{suggestion}; allowed: {', '.join(fields)}")
    values = {}
    for name, spec in fields.items():
        if name in mapping:
            values[name] = _convert(mapping[name], hints[name], f"{where}.{name}")
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            _fail(f"{where}.{name}", "required key missing")
    return cls(**values)


def _check(source: Source, where: str) -> None:
    """Rules a type cannot express."""
    if source.format not in FORMATS:
        _fail(f"{where}.format", f"{source.format!r} is not one of {', '.join(FORMATS)}")
    if source.task == "denoising" and source.labels:
        _fail(f"{where}.labels", "a denoising source has no labels")
    if source.task != "denoising" and "energy" not in source.labels:
        _fail(f"{where}.labels", f"a {source.task} source needs an energy label")
    if source.max_atoms is not None and source.max_atoms < 1:
        _fail(f"{where}.max_atoms", "must be positive")
    if not 0.0 < source.split.val_fraction < 1.0:
        _fail(f"{where}.split.val_fraction", "must lie in (0, 1)")
    names = set()
    for i, release in enumerate(source.files):
        here = f"{where}.files[{i}]"
        if release.md5 is not None and not _MD5.match(release.md5):
            _fail(f"{here}.md5", f"{release.md5!r} is not 32 lowercase hex digits")
        if release.unpack == "xz" and not release.unpacked_name:
            _fail(f"{here}.unpacked_name", "required when unpack is xz")
        if release.name in names:
            _fail(f"{here}.name", f"duplicate file name {release.name!r}")
        names.add(release.name)
    if not any(f.default and f.provides.train for f in source.files):
        _fail(f"{where}.files", "no default file provides a train input")


def datasets_dir() -> Path:
    """`config/datasets` of this checkout, or `$LAMM_DATASETS_DIR`."""
    override = os.environ.get(DATASETS_DIR_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[2] / "config" / "datasets"


def load_source(name: str, directory: str | os.PathLike | None = None) -> Source:
    """The validated description of source `name` (see SOURCE_NAMES)."""
    if name not in SOURCE_NAMES:
        hint = difflib.get_close_matches(name, SOURCE_NAMES, n=1)
        suggestion = f" (did you mean {hint[0]}?)" if hint else ""
        raise ValueError(f"unknown source {name!r}{suggestion}; sources: {', '.join(SOURCE_NAMES)}")
    path = Path(directory) if directory is not None else datasets_dir()
    path = path / f"{name}.yaml"
    try:
        with open(path) as handle:
            mapping = yaml.safe_load(handle)
    except FileNotFoundError:
        raise ValueError(f"no description of source {name} at {path}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from None
    source = _build(Source, mapping, str(path))
    if source.name != name:
        _fail(f"{path}.name", f"{source.name!r} does not match the file name {name!r}")
    _check(source, str(path))
    return source
