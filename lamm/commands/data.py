"""`lamm data ...`: getting datasets into stores. One `_add_<name>` function per subcommand;
add a subcommand by writing one and listing it in SUBCOMMANDS."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
import sys
import time
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
        "checking published MD5s, and unpacking .tar/.tar.gz/.zip/.xz. Writes "
        "DIR/fetch-manifest.json "
        "last; the last stdout line is that manifest as JSON.",
    )
    parser.add_argument(
        "source", metavar="SOURCE", choices=SOURCE_NAMES, help=f"one of: {', '.join(SOURCE_NAMES)}"
    )
    parser.add_argument(
        "--dest", required=True, type=Path, metavar="DIR", help="directory that receives the files"
    )
    parser.add_argument(
        "--file",
        action="append",
        dest="files",
        metavar="NAME",
        help="a release file to fetch instead of the defaults (repeatable)",
    )
    parser.add_argument(
        "--mirror",
        metavar="URL",
        help="download every file from URL/<file name> instead of its release URL",
    )
    parser.add_argument("--no-unpack", action="store_true", help="download only")
    parser.add_argument(
        "--remove-archives", action="store_true", help="delete each archive once unpacked"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=3,
        help="retries of a dropped connection per file (default 3)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="download nothing: print the files, their published sizes and the disk needed "
        "(last line: JSON with download_bytes, disk_bytes)",
    )
    parser.set_defaults(func=_run_fetch)


def _run_fetch(args: argparse.Namespace) -> int:
    from lamm.data.fetch import FetchError, fetch_plan, fetch_source, plan_line
    from lamm.data.sources import load_source

    if args.dry_run:
        try:
            plan = fetch_plan(load_source(args.source), args.files)
        except ValueError as err:
            print(f"lamm data fetch: error: {err}", file=sys.stderr)
            return 1
        for entry in plan["files"]:
            print(f"{entry['name']}\t{entry['size'] or 'size not published'}\t{entry['url']}")
        print(plan_line(plan), file=sys.stderr)
        print(json.dumps(plan))
        return 0

    from lamm.tracking import RunTracker

    _terminate_as_exit()
    params = {
        "source": args.source,
        "dest": str(args.dest),
        "files": args.files,
        "mirror": args.mirror,
        "unpack": not args.no_unpack,
        "remove_archives": args.remove_archives,
    }
    try:
        source = load_source(args.source)
        with RunTracker("data", f"fetch-{args.source}", params=params) as tracker:
            manifest = fetch_source(
                source,
                args.dest,
                names=args.files,
                mirror=args.mirror,
                unpack_files=not args.no_unpack,
                remove_archives=args.remove_archives,
                retries=args.retries,
            )
            statuses = [entry["status"] for entry in manifest["files"]]
            tracker.log_metrics(
                {f"files_{status}": statuses.count(status) for status in sorted(set(statuses))}
            )
            tracker.log_artifact(Path(args.dest) / "fetch-manifest.json")
    except (FetchError, ValueError) as err:
        print(f"lamm data fetch: error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(manifest))
    return 0


# --- lamm data convert -------------------------------------------------------------------------
# lamm.data.user_dataset.USER_FORMATS and POLICIES, without their imports
USER_FORMATS = ("auto", "ase", "dpdata", "extxyz", "ase_db", "deepmd")
SPLIT_POLICIES = ("auto", "groups", "blocks", "random")
ENERGY_UNIT_NAMES = ("eV", "meV", "kcal/mol", "kJ/mol", "hartree", "rydberg")
LENGTH_UNIT_NAMES = ("angstrom", "bohr")


def _add_convert(sub: Any) -> None:
    parser = sub.add_parser(
        "convert",
        help="convert real release files, or your own dataset, into one structure store",
        description=(
            "Three ways in: a built-in SOURCE and its release files; your own dataset described\n"
            "by --dataset FILE (a YAML: name, format, files, keys, units, split); or the same\n"
            "with flags (--format, --name, --input, ...). Records that fail the checks (NaN,\n"
            "atoms too close, a declared label missing) are skipped and counted by reason; the\n"
            "store is written atomically in eV, Angstrom and eV/Angstrom and records the\n"
            "description, units and counts. A conversion that keeps no record fails. The last\n"
            'stdout line is JSON {"source", "read", "written", "skipped": {reason: count}}; the\n'
            "split sizes are in the log and in the store's info (conversion.splits)."
        ),
        epilog=(
            "examples:\n"
            "  lamm data convert hme21 --input raw/hme21_train.xyz \\\n"
            "      --val-input raw/hme21_val.xyz --out hme21.lmdb\n"
            "  lamm data convert --name water --input 'runs/*/vasprun.xml' \\\n"
            "      --out water.lmdb   (format detected)\n"
            "  lamm data convert --name feo --input cp2k.out --format dpdata \\\n"
            "      --dpdata-format cp2k/output --out feo.lmdb\n"
            "  lamm data convert --dataset my_set.yaml --out results/data/my_set.lmdb\n"
            "  lamm data convert --format extxyz --name my_set --input train.xyz \\\n"
            "      --energy-key REF_energy --forces-key REF_forces --energy-unit kcal/mol \\\n"
            "      --out my_set.lmdb"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "source",
        metavar="SOURCE",
        nargs="?",
        choices=SOURCE_NAMES,
        help=f"a built-in source: {', '.join(SOURCE_NAMES)} (or use --dataset / --format)",
    )
    parser.add_argument(
        "--input",
        action="append",
        default=[],
        type=Path,
        dest="inputs",
        metavar="PATH",
        help="train input: a file, a directory, or a glob in quotes ('runs/*/OUTCAR'); repeatable",
    )
    parser.add_argument(
        "--val-input",
        action="append",
        default=[],
        type=Path,
        metavar="PATH",
        help="validation input (repeatable; default: none)",
    )
    parser.add_argument(
        "--test-input",
        action="append",
        default=[],
        type=Path,
        metavar="PATH",
        help="test input (repeatable; default: none)",
    )
    parser.add_argument(
        "--out", required=True, type=Path, metavar="STORE", help="the store file to write"
    )
    _add_checks_arguments(parser)
    own = parser.add_argument_group("your own dataset (instead of SOURCE)")
    _add_own_dataset_arguments(own)
    _add_own_units_and_split_arguments(own)
    parser.set_defaults(func=_run_convert)


def _add_checks_arguments(parser: argparse.ArgumentParser) -> None:
    """Record checks, the seeded split, and OC20 references."""
    parser.add_argument(
        "--max-atoms",
        type=_optional_int,
        default=argparse.SUPPRESS,
        metavar="N",
        help="skip structures with more atoms ('none': no limit; default: the source's, 300 for "
        "ODAC23; none for your own data)",
    )
    parser.add_argument(
        "--min-distance",
        type=float,
        default=None,
        metavar="ANGSTROM",
        help="skip structures with two atoms closer than this (default 0.5)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed of the random group split (default 0, or the description's split.seed)",
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=None,
        help="share of groups in val (default: the source's, 0.01; your own data: 0.1 without "
        "a --val-input, else 0)",
    )
    parser.add_argument(
        "--reference-energies",
        type=Path,
        metavar="PKL",
        help="OC20 oc20_ref.pkl: add per-system references to LMDB adsorption energies "
        "(stores totals)",
    )


def _add_own_dataset_arguments(own: Any) -> None:
    """The options of a user's own dataset: description, format, name, label keys."""
    own.add_argument(
        "--dataset",
        type=Path,
        metavar="FILE",
        help="a dataset description YAML (keys: lamm/data/user_dataset.schema.yaml); "
        "replaces the flags below",
    )
    own.add_argument(
        "--format",
        choices=USER_FORMATS,
        default=None,
        help="auto (the default: detected per file), ase (any file ase.io reads: vasprun.xml, "
        "OUTCAR, QE, CASTEP, GPAW, FHI-aims, traj, also .gz/.xz), dpdata (CP2K, ABACUS, Gaussian, "
        "...), extxyz (.xyz/.extxyz), ase_db (.db) or deepmd (npy systems with type_map.raw)",
    )
    own.add_argument(
        "--ase-format", default=None, help="the ase.io format name, when --format ase cannot tell"
    )
    own.add_argument(
        "--dpdata-format",
        default=None,
        help="dpdata's format name for --format dpdata (cp2k/output, cp2k/aimd_output, abacus/md, "
        "gaussian/log, ...; detected for --format auto)",
    )
    own.add_argument(
        "--energy",
        choices=["free", "zero-smearing"],
        default="free",
        help="where a DFT output reports both: the free energy (VASP TOTEN; consistent with the "
        "forces) or the sigma->0 energy; recorded in the store",
    )
    own.add_argument(
        "--stress-key",
        default=None,
        help="extxyz info key of the stress (6 or 9 values, ASE's sign, energy/length^3 of the "
        "file; default: stress, else -virial/V)",
    )
    own.add_argument(
        "--name",
        default=None,
        help="the dataset's name: the store's subset and the fine-tuning head",
    )
    own.add_argument(
        "--energy-key", default=None, help="info/column/npy key of the energy (default: energy)"
    )
    own.add_argument(
        "--forces-key",
        default=None,
        help="array/data/npy key of the forces (default: forces; force for deepmd)",
    )
    own.add_argument(
        "--labels",
        nargs="+",
        choices=["energy", "forces"],
        default=None,
        help="labels every frame must have; others are not read (default: energy forces)",
    )


def _add_own_units_and_split_arguments(own: Any) -> None:
    """Units, periodicity and the split of a user's dataset (`lamm data convert`)."""
    own.add_argument(
        "--energy-unit",
        choices=ENERGY_UNIT_NAMES,
        default="eV",
        type=_unit(ENERGY_UNIT_NAMES),
        help="energy unit of the files (default eV); forces are energy-unit per length-unit",
    )
    own.add_argument(
        "--length-unit",
        choices=LENGTH_UNIT_NAMES,
        default="angstrom",
        type=_unit(LENGTH_UNIT_NAMES),
        help="length unit of positions, cells and forces (default angstrom)",
    )
    own.add_argument(
        "--periodic",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="periodic along every cell vector, or a molecule (default: as each frame says)",
    )
    own.add_argument(
        "--functional",
        default=None,
        help="level of theory, recorded in the store (default: not recorded)",
    )
    own.add_argument(
        "--test-fraction",
        type=float,
        default=None,
        help="share of groups in test (default 0.1 without a --test-input, else 0)",
    )
    own.add_argument(
        "--group-by",
        default="file",
        help="frames kept together by the split: file (one run per file; a deepmd system), frame, "
        "or an info key such as config_group (default file)",
    )
    own.add_argument(
        "--split",
        choices=SPLIT_POLICIES,
        default=None,
        dest="split_policy",
        help="auto: whole groups when there are 10 or more, else contiguous blocks within each "
        "group; groups; blocks; random (each group hashed); default auto (files with "
        "--val-input/--test-input)",
    )


def _unit(names: tuple[str, ...]) -> Callable[[str], str]:
    """Case-insensitive unit names (EV, Hartree), reported in their canonical spelling."""
    canonical = {name.lower(): name for name in names}
    return lambda text: canonical.get(text.lower(), text)


def expand_inputs(paths: list[Path]) -> tuple[Path, ...]:
    """Each --input as given, or the sorted files a glob pattern in it matches (the shell did not
    expand it: quoted, or run by Snakemake); a pattern that matches nothing is an error."""
    from lamm.data.user_dataset import expand_glob

    return tuple(p for path in paths for p in expand_glob(path))


def _user_dataset_from_args(args: argparse.Namespace) -> Any:
    """The UserDataset of --dataset or of the flags; raises ValueError naming what is missing."""
    from lamm.data.user_dataset import UserDataset, UserSplit, load_user_dataset

    if args.dataset is not None:
        flags = [
            flag
            for flag, value in (
                ("--format", args.format),
                ("--name", args.name),
                ("--input", args.inputs),
                ("--val-input", args.val_input),
                ("--test-input", args.test_input),
            )
            if value
        ]
        if flags:
            raise ValueError(
                f"--dataset describes the files and format; drop {', '.join(flags)} (or "
                f"edit {args.dataset})"
            )
        dataset = load_user_dataset(args.dataset)
        overrides = {
            key: value
            for key, value in (
                ("seed", args.seed),
                ("val_fraction", args.val_fraction),
                ("test_fraction", args.test_fraction),
            )
            if value is not None
        }
        if overrides:
            dataset = dataclasses.replace(
                dataset, split=dataclasses.replace(dataset.split, **overrides)
            )
        return dataset
    missing = [flag for flag, value in (("--name", args.name),) if not value]
    if not (args.inputs or args.val_input or args.test_input):
        missing.append("--input")
    if missing:
        raise ValueError(
            f"your own dataset needs {', '.join(missing)} (or a description: --dataset FILE)"
        )
    return UserDataset(
        name=args.name,
        format=args.format or "auto",
        train=expand_inputs(args.inputs),
        val=expand_inputs(args.val_input),
        test=expand_inputs(args.test_input),
        energy=args.energy,
        stress_key=args.stress_key,
        ase_format=args.ase_format,
        dpdata_format=args.dpdata_format,
        energy_key=args.energy_key,
        forces_key=args.forces_key,
        labels=tuple(args.labels) if args.labels else ("energy", "forces"),
        energy_unit=args.energy_unit,
        length_unit=args.length_unit,
        periodic=args.periodic,
        functional=args.functional,
        split=UserSplit(
            policy=args.split_policy,
            val_fraction=args.val_fraction,
            test_fraction=args.test_fraction,
            group_by=args.group_by,
            seed=0 if args.seed is None else args.seed,
        ),
    )


def _run_convert(args: argparse.Namespace) -> int:
    from lamm.config import ConfigError
    from lamm.data.checks import DEFAULT_MIN_DISTANCE
    from lamm.data.readers import CorruptInputError

    _terminate_as_exit()
    min_distance = DEFAULT_MIN_DISTANCE if args.min_distance is None else args.min_distance
    user = args.source is None
    try:
        if user:
            if args.reference_energies is not None:
                raise ValueError("--reference-energies applies to the OC20 source only")
            dataset = _user_dataset_from_args(args)
            summary = _convert_user(args, dataset, min_distance)
        else:
            own_flags = [
                flag
                for flag, given in (
                    ("--dataset", args.dataset),
                    ("--format", args.format),
                    ("--name", args.name),
                )
                if given
            ]
            if own_flags:
                raise ValueError(
                    f"give either SOURCE ({args.source}) or {', '.join(own_flags)}, not both"
                )
            if not args.inputs:
                raise ValueError(f"{args.source} needs --input (its train release files)")
            summary = _convert_source(args, min_distance)
    except (ConfigError, CorruptInputError, FileNotFoundError, ValueError) as err:
        message = str(err).replace("\n", " ")
        print(f"lamm data convert: error: {message}", file=sys.stderr)
        return 1
    print(json.dumps(summary.as_json()))
    return 0


def _convert_source(args: argparse.Namespace, min_distance: float) -> Any:
    from lamm.data.convert import convert
    from lamm.data.sources import load_source
    from lamm.tracking import RunTracker

    source = load_source(args.source)
    max_atoms = args.max_atoms if hasattr(args, "max_atoms") else source.max_atoms
    seed = 0 if args.seed is None else args.seed
    inputs = [*args.inputs, *args.val_input, *args.test_input]
    params = {
        "source": args.source,
        "inputs": [str(p) for p in args.inputs],
        "val_inputs": [str(p) for p in args.val_input],
        "test_inputs": [str(p) for p in args.test_input],
        "out": str(args.out),
        "max_atoms": max_atoms,
        "min_distance": min_distance,
        "seed": seed,
        "val_fraction": args.val_fraction,
        "reference_energies": str(args.reference_energies) if args.reference_energies else None,
    }
    with RunTracker(
        "data",
        f"convert-{args.source}",
        params=params,
        inputs=[p for p in inputs if p.is_file() or p.is_dir()],
    ) as tracker:
        summary = convert(
            source,
            args.out,
            train_inputs=args.inputs,
            val_inputs=args.val_input,
            test_inputs=args.test_input,
            max_atoms=max_atoms,
            min_distance=min_distance,
            seed=seed,
            val_fraction=args.val_fraction,
            reference_energies=args.reference_energies,
        )
        tracker.log_metrics(summary.metrics())
    return summary


def _convert_user(args: argparse.Namespace, dataset: Any, min_distance: float) -> Any:
    from lamm.data.user_dataset import convert_user_dataset
    from lamm.tracking import RunTracker

    max_atoms = args.max_atoms if hasattr(args, "max_atoms") else None
    files = [p for split in ("train", "val", "test") for p in getattr(dataset, split)]
    params = {
        **dataset.as_info(),
        "out": str(args.out),
        "max_atoms": max_atoms,
        "min_distance": min_distance,
        "description_file": str(args.dataset) if args.dataset else None,
    }
    inputs = [
        p for p in [*files, *([args.dataset] if args.dataset else [])] if p.is_file() or p.is_dir()
    ]
    with RunTracker("data", f"convert-{dataset.name}", params=params, inputs=inputs) as tracker:
        summary = convert_user_dataset(
            dataset, args.out, max_atoms=max_atoms, min_distance=min_distance
        )
        tracker.log_metrics(summary.metrics())
    return summary


# --- lamm data demo ----------------------------------------------------------------------------
DEMO_SCALES = ("tiny", "small", "medium", "mini")  # mini: the universal labels only
DEMO_LABELS = ("light", "universal")


def _add_demo(commands: Any) -> None:
    parser = commands.add_parser(
        "demo",
        help="generate the offline mini joint dataset "
        "(light: EMT, GFN2-xTB; universal: SevenNet, CHGNet)",
        description="Generate the pre-training subsets and the downstream set offline, one "
        "store per subset: DIR/<subset>.lmdb. --labels light: EMT (slabs, frameworks), GFN2-xTB "
        "(molecules), a varied EMT (downstream alloy MD), unlabeled MMFF94s conformers. --labels "
        "universal: universal potentials trained on real DFT (SevenNet-0, CHGNet 0.3.0 and its "
        "r2SCAN model; SevenNet-l3i5 for the downstream set) label crystals, slabs and frameworks "
        "of 65 elements, plus an OMat24-like bulk subset with stress; molecules keep GFN2-xTB "
        "(pip install '.[labelers]'). The last stdout line is a JSON summary (samples, atom "
        "counts and labeling failures per subset).",
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="directory for the <subset>.lmdb stores",
    )
    parser.add_argument(
        "--scale",
        choices=DEMO_SCALES,
        default="small",
        help="tiny: seconds (tests); small: the default demo (minutes); medium: thousands per "
        "subset; light labels: tiny, small, medium; universal labels: tiny, mini (about an hour)",
    )
    parser.add_argument(
        "--labels",
        choices=DEMO_LABELS,
        default="light",
        help="light: EMT and GFN2-xTB (minutes); universal: DFT-trained universal potentials",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of every random choice (same seed, same bytes)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="labeling processes (default: all cores)",
    )
    # names checked when the command runs: the catalog imports the generators (ase.build), too
    # slow for building the parser of every `lamm` call
    parser.add_argument(
        "--subsets",
        nargs="+",
        metavar="SUBSET",
        default=None,
        help="write only these subsets (default: all; the names of Table 2, e.g. oc20_s2ef "
        "pubchem3d hme21)",
    )
    parser.set_defaults(func=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from lamm.data.demo.catalog import label_set
    from lamm.data.demo.generate import generate_demo
    from lamm.tracking import RunTracker

    chosen = label_set(args.labels)
    names = [s.name for s in chosen.subsets]
    unknown = [name for name in args.subsets or () if name not in names]
    if unknown:
        print(
            f"lamm data demo: error: unknown subset(s) {unknown} for --labels {args.labels}; "
            f"expected some of {', '.join(names)}",
            file=sys.stderr,
        )
        return 2
    if args.scale not in chosen.scales:
        print(
            f"lamm data demo: error: --scale {args.scale} is not a scale of "
            f"--labels {args.labels}; "
            f"expected one of {', '.join(chosen.scales)}",
            file=sys.stderr,
        )
        return 2

    params = {
        "scale": args.scale,
        "labels": args.labels,
        "seed": args.seed,
        "workers": args.workers,
        "subsets": args.subsets or "all",
        "out": str(args.out),
    }
    with RunTracker("data", f"data-demo-{args.scale}", params=params) as tracker:
        report = generate_demo(
            args.out,
            scale=args.scale,
            seed=args.seed,
            subsets=args.subsets,
            workers=args.workers,
            labels=args.labels,
        )
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
        "stats",
        help="Table 2 (CSV) and Figs. 2 and 4 of a set of stores",
        description="From store metadata only (never decoding a sample): "
        "DIR/tables/table2_datasets.csv "
        "(task, labels, periodic, samples, samples with temperature sampling T=2, avg "
        "atoms, elements "
        "per subset, and a total row), DIR/figures/fig2_elements.png (periodic table: subsets "
        "containing each element) and DIR/figures/fig4_natoms.png (atom-count KDE per subset). "
        "IS2RE subsets are left out of the figures, as in the paper.",
    )
    parser.add_argument(
        "stores", nargs="+", type=Path, metavar="STORE", help="structure store files (.lmdb)"
    )
    parser.add_argument(
        "--out",
        required=True,
        type=Path,
        metavar="DIR",
        help="results directory (tables/ and figures/ inside)",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=2.0,
        help="temperature of the sampling column (LaMM: 2)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the KDE subsample (at most 100,000 per subset)"
    )
    parser.set_defaults(func=_run_stats)


def _run_stats(args: argparse.Namespace) -> int:
    from lamm.analysis.dataset_figures import write_dataset_stats
    from lamm.tracking import RunTracker

    params = {
        "stores": [str(p) for p in args.stores],
        "out": str(args.out),
        "temperature": args.temperature,
        "seed": args.seed,
    }
    with RunTracker("data", "data-stats", params=params, inputs=args.stores) as tracker:
        start = time.perf_counter()
        outputs, table = write_dataset_stats(
            args.stores, args.out, temperature=args.temperature, seed=args.seed
        )
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
        "data",
        help="fetch and convert datasets",
        description="Datasets: fetch real releases, convert them into stores.",
    )
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    parser.set_defaults(func=lambda args: parser.print_help(sys.stderr) or 2)
