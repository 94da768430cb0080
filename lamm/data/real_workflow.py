"""Command-line arguments of the real-data Snakemake rules (workflow/rules/data_real.smk).

Kept out of the .smk so the rules stay one-liners and the choices are testable: which release
files a source fetches (config `data.real.files`, else the defaults of its description, plus the
reference file when `data.real.total_energies` asks for totals), and which inputs, limits and
split settings its conversion gets.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lamm.data.sources import load_source


def release_names(real: Mapping[str, Any], subset: str) -> list[str] | None:
    """Release files to fetch for `subset` (None: the defaults of its description)."""
    names = real["files"].get(subset)
    if subset not in real["total_energies"]:
        return names
    source = load_source(subset)
    chosen = [f.name for f in source.release_files(names)]
    return chosen + [f.name for f in source.files if f.provides.reference and f.name not in chosen]


def fetch_message(real: Mapping[str, Any], subset: str) -> str:
    """What one fetch job downloads, with the published sizes (shown by `snakemake -n`)."""
    from lamm.data.fetch import fetch_plan, plan_line

    return "fetch " + plan_line(fetch_plan(load_source(subset), release_names(real, subset)))


def fetch_arguments(real: Mapping[str, Any], subset: str) -> str:
    """`--file ... --mirror ...` for `lamm data fetch`."""
    args = [f"--file {shlex.quote(name)}" for name in release_names(real, subset) or []]
    if real["mirror"]:
        args.append(f"--mirror {shlex.quote(real['mirror'])}")
    return " ".join(args)


def convert_arguments(real: Mapping[str, Any], subset: str, raw_dir: str | Path, seed: int) -> str:
    """Inputs and options of `lamm data convert` (everything but SOURCE and --out)."""
    source = load_source(subset)
    raw = Path(raw_dir) / subset
    names = release_names(real, subset)
    inputs = real["inputs"].get(subset) or {
        split: source.inputs(split, names) for split in ("train", "val", "test")
    }
    args = []
    for split, option in (("train", "--input"), ("val", "--val-input"), ("test", "--test-input")):
        args += [f"{option} {shlex.quote(str(raw / path))}" for path in inputs.get(split, [])]
    if subset in real["max_atoms"]:
        limit = real["max_atoms"][subset]
        args.append(f"--max-atoms {'none' if limit is None else limit}")
    if subset in real["total_energies"]:
        args.append(f"--reference-energies {shlex.quote(str(raw / source.reference(names)))}")
    args.append(
        f"--min-distance {real['min_distance']} --val-fraction {real['val_fraction']} --seed {seed}"
    )
    return " ".join(args)
