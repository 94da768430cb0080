"""`lamm data ...`: getting datasets into stores. One `_add_<name>` function per subcommand;
add a subcommand by writing one and listing it in SUBCOMMANDS."""

from __future__ import annotations

import argparse
import json
import time
import os
import logging
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lamm.data.sources import SOURCE_NAMES

log = logging.getLogger(__name__)


def _optional_int(text: str) -> int | None:
    if text.lower() == "none":
        return None
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'none', got {text}")
    return value


def _terminate_as_exit() -> None:
    """SIGTERM (Snakemake or SLURM stopping the job) unwinds like Ctrl-C, so writers clean up."""
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))


# --- lamm data fetch ---------------------------------------------------------------------------
def _add_fetch(sub: Any) -> None:
    parser = sub.add_parser(
        "fetch",
        help="download (resumable, MD5-checked) and unpack the release files of a real dataset",
        description="Download the release files of SOURCE into DIR (the files marked default in "
        "config/datasets/SOURCE.yaml unless --file names others), resuming partial downloads, "
        "checking published MD5s, and unpacking .tar/.tar.gz/.zip/.xz. Writes DIR/fetch-manifest.json "
        "last; the last stdout line is that manifest as JSON.",
    )
    parser.add_argument("source", metavar="SOURCE", choices=SOURCE_NAMES, help=f"one of: {', '.join(SOURCE_NAMES)}")
    parser.add_argument("--dest", required=True, type=Path, metavar="DIR", help="directory that receives the files")
    parser.add_argument("--file", action="append", dest="files", metavar="NAME",
                        help="a release file to fetch instead of the defaults (repeatable)")
    parser.add_argument("--mirror", metavar="URL", help="download every file from URL/<file name> instead of its release URL")
    parser.add_argument("--no-unpack", action="store_true", help="download only")
    parser.add_argument("--remove-archives", action="store_true", help="delete each archive once unpacked")
    parser.add_argument("--retries", type=int, default=3, help="retries of a dropped connection per file (default 3)")
    parser.set_defaults(func=_run_fetch)


def _run_fetch(args: argparse.Namespace) -> int:
    from lamm.data.fetch import FetchError, fetch_source
    from lamm.data.sources import load_source

    from lamm.tracking import RunTracker

    _terminate_as_exit()
    params = {"source": args.source, "dest": str(args.dest), "files": args.files, "mirror": args.mirror,
              "unpack": not args.no_unpack, "remove_archives": args.remove_archives}
    try:
        source = load_source(args.source)
        with RunTracker("data", f"fetch-{args.source}", params=params) as tracker:
            manifest = fetch_source(
                source, args.dest, names=args.files, mirror=args.mirror, unpack_files=not args.no_unpack,
                remove_archives=args.remove_archives, retries=args.retries,
            )
            statuses = [entry["status"] for entry in manifest["files"]]
            tracker.log_metrics({f"files_{status}": statuses.count(status) for status in sorted(set(statuses))})
            tracker.log_artifact(Path(args.dest) / "fetch-manifest.json")
    except (FetchError, ValueError) as err:
        print(f"lamm data fetch: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(manifest))
    return 0


# --- lamm data convert -------------------------------------------------------------------------
def _add_convert(sub: Any) -> None:
    parser = sub.add_parser(
        "convert",
        help="convert real release files into one structure store",
        description="Read the release files of SOURCE, skip (and count, by reason) records that fail the "
        "checks, and write one store, atomically. Records of --val-input/--test-input go to those splits; "
        "without them the split is a seeded 99/1 hash of each record's group (reaction, molecule, system). "
        'The last stdout line is JSON {"source", "read", "written", "skipped": {reason: count}}.',
    )
    parser.add_argument("source", metavar="SOURCE", choices=SOURCE_NAMES, help=f"one of: {', '.join(SOURCE_NAMES)}")
    parser.add_argument("--input", action="append", required=True, type=Path, dest="inputs", metavar="PATH",
                        help="train input as the release ships it (a file or a directory; repeatable)")
    parser.add_argument("--val-input", action="append", default=[], type=Path, metavar="PATH",
                        help="official validation input (repeatable)")
    parser.add_argument("--test-input", action="append", default=[], type=Path, metavar="PATH",
                        help="official test input (repeatable)")
    parser.add_argument("--out", required=True, type=Path, metavar="STORE", help="the store file to write")
    parser.add_argument("--max-atoms", type=_optional_int, default=argparse.SUPPRESS, metavar="N",
                        help="skip structures with more atoms ('none': no limit; default: the source's, 300 for ODAC23)")
    parser.add_argument("--min-distance", type=float, default=None, metavar="ANGSTROM",
                        help="skip structures with two atoms closer than this (default 0.5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random group split (default 0)")
    parser.add_argument("--val-fraction", type=float, default=None, help="share of groups in val (default: the source's, 0.01)")
    parser.add_argument("--reference-energies", type=Path, metavar="PKL",
                        help="OC20 oc20_ref.pkl: add per-system references to LMDB adsorption energies (stores totals)")
    parser.set_defaults(func=_run_convert)


def _run_convert(args: argparse.Namespace) -> int:
    from lamm.data.checks import DEFAULT_MIN_DISTANCE
    from lamm.data.convert import convert
    from lamm.data.readers import CorruptInputError
    from lamm.data.sources import load_source
    from lamm.tracking import RunTracker

    _terminate_as_exit()
    try:
        source = load_source(args.source)
    except ValueError as err:
        print(f"lamm data convert: error: {err}", file=sys.stderr)
        return 1
    max_atoms = args.max_atoms if hasattr(args, "max_atoms") else source.max_atoms
    min_distance = DEFAULT_MIN_DISTANCE if args.min_distance is None else args.min_distance
    inputs = [*args.inputs, *args.val_input, *args.test_input]
    params = {
        "source": args.source, "inputs": [str(p) for p in args.inputs], "val_inputs": [str(p) for p in args.val_input],
        "test_inputs": [str(p) for p in args.test_input], "out": str(args.out), "max_atoms": max_atoms,
        "min_distance": min_distance, "seed": args.seed, "val_fraction": args.val_fraction,
        "reference_energies": str(args.reference_energies) if args.reference_energies else None,
    }
    try:
        with RunTracker("data", f"convert-{args.source}", params=params, inputs=[p for p in inputs if p.is_file() or p.is_dir()]) as tracker:
            summary = convert(
                source, args.out, train_inputs=args.inputs, val_inputs=args.val_input, test_inputs=args.test_input,
                max_atoms=max_atoms, min_distance=min_distance, seed=args.seed, val_fraction=args.val_fraction,
                reference_energies=args.reference_energies,
            )
            tracker.log_metrics(summary.metrics())
    except (CorruptInputError, FileNotFoundError, ValueError) as err:
        print(f"lamm data convert: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(summary.as_json()))
    return 0


# --- lamm data demo ----------------------------------------------------------------------------
DEMO_SCALES = ("tiny", "small", "medium")


def _add_demo(commands: Any) -> None:
    parser = commands.add_parser(
        "demo", help="generate the offline mini joint dataset (EMT, GFN-xTB, MMFF94s)",
        description="Generate the ten pre-training subsets and the downstream set offline, labeled by "
        "EMT (slabs, frameworks), GFN2-xTB (molecules), GFN1-xTB (downstream) and unlabeled MMFF94s "
        "conformers, one store per subset: DIR/<subset>.lmdb. The last stdout line is a JSON summary "
        "(samples, atom counts and labeling failures per subset).",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="directory for the <subset>.lmdb stores")
    parser.add_argument("--scale", choices=DEMO_SCALES, default="small",
                        help="tiny: seconds (tests); small: the default demo (minutes); medium: thousands per subset")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random choice (same seed, same bytes)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="labeling processes (default: all cores)")
    # names checked when the command runs: the catalog imports the generators (ase.build), too
    # slow for building the parser of every `lamm` call
    parser.add_argument("--subsets", nargs="+", metavar="SUBSET", default=None,
                        help="write only these subsets (default: all; the names of Table 2, e.g. oc20_s2ef pubchem3d hme21)")
    parser.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from lamm.data.demo.catalog import SUBSET_NAMES
    from lamm.data.demo.generate import generate_demo
    from lamm.tracking import RunTracker

    unknown = [name for name in args.subsets or () if name not in SUBSET_NAMES]
    if unknown:
        print(f"lamm data demo: error: unknown subset(s) {unknown}; expected some of {', '.join(SUBSET_NAMES)}", file=sys.stderr)
        return 2

    params = {"scale": args.scale, "seed": args.seed, "workers": args.workers,
              "subsets": args.subsets or "all", "out": str(args.out)}
    with RunTracker("data", f"data-demo-{args.scale}", params=params) as tracker:
        report = generate_demo(args.out, scale=args.scale, seed=args.seed, subsets=args.subsets,
                               workers=args.workers)
        summary = report.as_dict()
        summary_path = args.out / "demo_summary.json"
        tmp = summary_path.with_name(summary_path.name + ".tmp")
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
        tmp.replace(summary_path)
        metrics = {"wall_s": report.wall_s}
        for subset, entry in report.subsets.items():
            metrics[f"samples.{subset}"] = entry["samples"]
            metrics[f"failures.{subset}"] = entry["failed"]
            metrics[f"natoms_mean.{subset}"] = entry["natoms_mean"]
        tracker.log_metrics(metrics)
        tracker.log_artifact(summary_path)
    print(json.dumps(summary))
    return 0


# --- lamm data stats ---------------------------------------------------------------------------
def _add_stats(commands: Any) -> None:
    parser = commands.add_parser(
        "stats", help="Table 2 (CSV) and Figs. 2 and 4 of a set of stores",
        description="From store metadata only (never decoding a sample): DIR/tables/table2_datasets.csv "
        "(task, labels, periodic, samples, samples with temperature sampling T=2, avg atoms, elements "
        "per subset, and a total row), DIR/figures/fig2_elements.png (periodic table: subsets "
        "containing each element) and DIR/figures/fig4_natoms.png (atom-count KDE per subset). "
        "IS2RE subsets are left out of the figures, as in the paper.",
    )
    parser.add_argument("stores", nargs="+", type=Path, metavar="STORE", help="structure store files (.lmdb)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="results directory (tables/ and figures/ inside)")
    parser.add_argument("--temperature", type=float, default=2.0, help="temperature of the sampling column (LaMM: 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the KDE subsample (at most 100,000 per subset)")
    parser.set_defaults(func=_run_stats)


def _run_stats(args: argparse.Namespace) -> int:
    from lamm.analysis.dataset_stats import write_dataset_stats
    from lamm.tracking import RunTracker

    params = {"stores": [str(p) for p in args.stores], "out": str(args.out),
              "temperature": args.temperature, "seed": args.seed}
    with RunTracker("data", "data-stats", params=params, inputs=args.stores) as tracker:
        start = time.perf_counter()
        outputs, table = write_dataset_stats(args.stores, args.out, temperature=args.temperature, seed=args.seed)
        metrics = {"wall_s": time.perf_counter() - start}
        for row in table.to_dict("records"):
            metrics[f"samples.{row['subset']}"] = row["samples"]
            metrics[f"avg_atoms.{row['subset']}"] = row["avg_atoms"]
        tracker.log_metrics(metrics)
        for path in outputs.values():
            tracker.log_artifact(path)
    print(json.dumps({name: str(path) for name, path in outputs.items()}))
    return 0


SUBCOMMANDS: tuple[Callable[[Any], None], ...] = (_add_fetch, _add_convert, _add_demo, _add_stats)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "data", help="fetch and convert datasets", description="Datasets: fetch real releases, convert them into stores."
    )
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    parser.set_defaults(func=lambda args: parser.print_help(sys.stderr) or 2)
