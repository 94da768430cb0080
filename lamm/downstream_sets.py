"""The workflow's downstream sets (config `data.downstream`): what fine-tuning, sample efficiency
and zero-shot run on, and the suffix of each set's results.

`data.downstream` is one built-in name (`hme21`) or a list whose entries are built-in names or a
user's own dataset, `{name: NAME, dataset: FILE}`: FILE is a dataset description YAML
(lamm/data/user_dataset.schema.yaml) that `lamm data convert --dataset FILE` turns into the
store results/data/NAME.lmdb. The first set keeps the result names of a single set
(table3_finetune.csv, ...); each further set NAME gets `_NAME` suffixed tables and figures.

Kept out of the .smk files so the checks are plain functions the tests call; errors are
`ValueError`s naming the entry, turned into a WorkflowError by the rules.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

SPLIT_KEYS = ("train", "val", "test")  # the `files` keys of a dataset description


@dataclass(frozen=True)
class DownstreamSet:
    """One downstream set: a built-in store (made by the data stage) or a user's dataset."""

    name: str
    description: Path | None = (
        None  # the dataset description YAML of a user's dataset; None: built-in
    )
    first: bool = False  # the first set keeps the unsuffixed result names

    @property
    def suffix(self) -> str:
        """Appended to the set's table and figure names: '' for the first set, else '_<name>'."""
        return "" if self.first else f"_{self.name}"


def description_name(path: str | os.PathLike) -> Any:
    """The `name` key of a dataset description YAML (None when it has none)."""
    path = Path(path)
    try:
        with open(path) as handle:
            content = yaml.safe_load(handle)
    except FileNotFoundError:
        raise ValueError(f"dataset description {path} does not exist") from None
    except yaml.YAMLError as err:
        raise ValueError(f"dataset description {path} is not valid YAML: {err}") from None
    return content.get("name") if isinstance(content, Mapping) else None


def description_files(path: str | os.PathLike) -> list[Path]:
    """The input files (or folders) a dataset description names, relative paths resolved
    against its folder. Lenient: a malformed `files` key gives no paths (the conversion reports
    it)."""
    path = Path(path)
    with open(path) as handle:
        content = yaml.safe_load(handle)
    files = content.get("files") if isinstance(content, Mapping) else None
    if not isinstance(files, Mapping):
        return []
    paths = []
    for split in SPLIT_KEYS:
        value = files.get(split)
        items = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        paths += [
            Path(item) if os.path.isabs(item) else path.parent / item
            for item in items
            if isinstance(item, str)
        ]
    # a glob pattern stands for the files it matches (as `lamm data convert` expands it)
    return [
        p
        for entry in paths
        for p in sorted(map(Path, glob.glob(str(entry), recursive=True))) or [entry]
    ]


def downstream_sets(
    value: str | Sequence[str | Mapping[str, str]], *, reserved: Collection[str]
) -> list[DownstreamSet]:
    """The sets of a validated `data.downstream`, in order; checks what the schema cannot:

    names are unique, a user's dataset takes no built-in name (`reserved`: its store would be
    made twice), and its description exists and carries the same `name`.
    """
    entries = [value] if isinstance(value, str) else list(value)
    if not entries:
        raise ValueError("data.downstream lists no dataset")
    sets, seen = [], set()
    for position, entry in enumerate(entries):
        if isinstance(entry, str):
            item = DownstreamSet(entry, first=position == 0)
        else:
            name, description = entry["name"], Path(entry["dataset"])
            where = f"data.downstream.{position} ({name})"
            if name in reserved:
                raise ValueError(
                    f"{where}: {name!r} is a built-in dataset name "
                    f"(results/data/{name}.lmdb is made by the data stage); name your "
                    "dataset otherwise"
                )
            try:
                found = description_name(description)
            except ValueError as err:
                raise ValueError(f"{where}: {err}") from None
            if found != name:
                raise ValueError(
                    f"{where}: {description} names the dataset {found!r}, the config {name!r}; "
                    "the store's subset (and the fine-tuning head) takes the description's "
                    "name, so make them equal"
                )
            item = DownstreamSet(name, description, first=position == 0)
        if item.name in seen:
            raise ValueError(f"data.downstream lists {item.name!r} twice")
        seen.add(item.name)
        sets.append(item)
    return sets
