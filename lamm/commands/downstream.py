"""`lamm evaluate`, `lamm zero-shot`, `lamm dynamics`: a checkpoint on the downstream store."""

from __future__ import annotations

import argparse
import json
import logging
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lamm.commands.errors import USER_ERRORS, fail
from lamm.device import add_device_argument

if TYPE_CHECKING:
    from lamm.data.store import StructureStore

log = logging.getLogger(__name__)

EXTXYZ_SUFFIXES = (".xyz", ".extxyz")


def _label(checkpoint: str) -> str:
    """A readable name of a checkpoint file: its run directory for `last.pt`, else its stem."""
    path = Path(checkpoint)
    if path.stem == "last" and path.parent.name == "checkpoints":
        return path.parent.parent.name
    return path.stem


def _evaluate(args: argparse.Namespace) -> int:
    try:
        return _run_evaluate(args)
    except USER_ERRORS as err:
        return fail("evaluate", err)


def _run_evaluate(args: argparse.Namespace) -> int:
    from lamm.analysis.checkpoint_evaluation import evaluate_checkpoint
    from lamm.analysis.evaluation import check_head, evaluated_splits
    from lamm.device import log_device, resolve_device
    from lamm.models.checkpoint import load_checkpoint, potential_from_checkpoint
    from lamm.tracking import RunTracker
    from lamm.training.finetune_splits import carved_splits

    out = Path(args.out or Path("results") / "evaluate" / _label(args.checkpoint))
    if not Path(args.checkpoint).is_file():
        raise ValueError(f"checkpoint {args.checkpoint} does not exist")
    _check_references(args.reference)
    params = {
        "checkpoint": args.checkpoint,
        "data": args.data,
        "split": args.split,
        "head": args.head,
        "batch_size": args.batch_size,
    }
    device = resolve_device(args.device)
    with tempfile.TemporaryDirectory(prefix="lamm-evaluate-") as tmp:
        store, conversion = evaluation_store(args, Path(tmp))
        payload = load_checkpoint(args.checkpoint, device)
        store = carved_splits(payload, store, args.split) or store  # a run's carved test set
        splits = evaluated_splits(store, args.split)  # the cheap checks before the model is built
        potential = potential_from_checkpoint(payload, source=args.checkpoint).to(device).eval()
        del payload
        head = args.head or (store.subset if store.subset in potential.heads else None)
        head = check_head(potential, head, source=args.checkpoint)
        params["device"] = log_device(device, "evaluate")
        with RunTracker(
            "evaluate",
            f"evaluate-{_label(args.checkpoint)}",
            params=params,
            inputs=[args.checkpoint, args.data],
        ) as tracker:
            metrics = evaluate_checkpoint(
                potential,
                store,
                out,
                split=args.split,
                head=head,
                batch_size=args.batch_size,
                title=f"{_label(args.checkpoint)} on {Path(args.data).name} {'/'.join(splits)}",
                info={"data": str(args.data), **conversion},
            )
            tracker.log_metrics(
                {
                    k: v
                    for k, v in metrics.items()
                    if isinstance(v, (int, float)) and not isinstance(v, bool)
                }
            )
            if args.reference:
                metrics["references"] = _score_references(args, store, metrics, out)
                tracker.log_metrics(
                    {
                        f"reference/{name}/{key}": value
                        for name, row in metrics["references"].items()
                        for key, value in row.items()
                        if key.endswith("_mae_mev_per_atom") or key.endswith("_mae_mev_per_a")
                    }
                )
                tracker.log_artifact(out / "references.csv")
            for name in ("metrics.json", "metrics_per_element.csv", "parity.png"):
                tracker.log_artifact(out / name)
    print(json.dumps({"out": str(out), **{k: v for k, v in metrics.items() if k != "per_split"}}))
    return 0


def _check_references(names: list[str]) -> None:
    """Unknown names and missing packages fail before anything is computed."""
    if not names:
        return
    from lamm.data.demo.universal import labeler, require_labelers

    for name in names:
        labeler(name)
    try:
        require_labelers(list(names))
    except RuntimeError as err:  # a missing optional package: the user's to install
        raise ValueError(f"--reference: {err}") from err


def _score_references(
    args: argparse.Namespace, store: StructureStore, metrics: dict, out: Path
) -> dict[str, dict]:
    """Each --reference potential zero-shot on the evaluated split (energies shifted per element
    on the store's training split, `lamm.analysis.anchors`), beside the checkpoint: written into
    metrics.json (`references`) and references.csv, and logged as one table."""
    from lamm.analysis.anchors import anchor_row
    from lamm.analysis.evaluation import write_json
    from lamm.tables import write_csv

    E, F = "energy_mae_mev_per_atom", "forces_mae_mev_per_a"
    references = {
        name: anchor_row(
            name, store, eval_split=metrics["split"], fit_max=args.reference_fit_max, seed=0
        )
        for name in args.reference
    }
    rows = [{"model": _label(args.checkpoint), E: metrics.get(E), F: metrics.get(F)}]
    rows += [{**row, "model": name} for name, row in references.items()]
    write_csv(rows, out / "references.csv")
    write_json({**metrics, "references": references}, out / "metrics.json")

    def cell(value: float | None) -> float:  # a store without energies (or forces) has none
        return float("nan") if value is None else float(value)

    lines = [f"{'model':<28} {'energy meV/atom':>16} {'forces meV/A':>13}"] + [
        f"{row['model']:<28} {cell(row.get(E)):>16.1f} {cell(row.get(F)):>13.1f}" for row in rows
    ]
    log.info("%s split, %s:\n%s", metrics["split"], store.path, "\n".join(lines))
    return references


def evaluation_store(args: argparse.Namespace, tmp: Path) -> tuple[StructureStore, dict]:
    """The store `--store` names, or an extended-XYZ file converted into a store in `tmp` (every
    frame in the test split, labels read with --energy-key/--forces-key in
    --energy-unit/--length-unit); and what to record about the conversion."""
    from lamm.data.store import StructureStore

    data = Path(args.data)
    if not data.exists():
        raise ValueError(f"--store {data} does not exist")
    options = {
        "energy_key": args.energy_key,
        "forces_key": args.forces_key,
        "energy_unit": args.energy_unit,
        "length_unit": args.length_unit,
    }
    if data.suffix.lower() not in EXTXYZ_SUFFIXES:
        given = [
            f"--{key.replace('_', '-')}" for key, value in options.items() if value is not None
        ]
        if given:
            raise ValueError(
                f"{' '.join(given)} apply to an extended-XYZ --store (.xyz, .extxyz), not "
                f"to the store {data}"
            )
        if data.is_dir():
            raise ValueError(
                f"--store {data} is a folder; pass a store (.lmdb) or an extended-XYZ file "
                "(.xyz, .extxyz)"
            )
        return StructureStore(data), {}
    from lamm.data.user_dataset import UserDataset, UserSplit, convert_user_dataset

    name = re.sub(r"[^A-Za-z0-9_.-]", "_", data.stem) or "data"
    dataset = UserDataset(
        name=name,
        format="extxyz",
        test=(data,),
        split=UserSplit(policy="files"),
        energy_key=args.energy_key or "energy",
        forces_key=args.forces_key or "forces",
        energy_unit=args.energy_unit or "eV",
        length_unit=args.length_unit or "angstrom",
    )
    try:
        summary = convert_user_dataset(dataset, tmp / f"{name}.lmdb")
    except ValueError as err:
        if "missing_energy" in str(err) or "missing_forces" in str(err):
            raise ValueError(
                f"{err}; name the file's labels with --energy-key/--forces-key"
            ) from None
        raise
    log.info(
        "%s: %d frames read, %d converted (skipped: %s)",
        data,
        summary.read,
        summary.written,
        dict(summary.skipped) or "none",
    )
    conversion = {
        "converted_from_extxyz": True,
        "frames_read": summary.read,
        "frames_written": summary.written,
        "frames_skipped": dict(summary.skipped),
        **{k: getattr(dataset, k) for k in options},
    }
    return StructureStore(tmp / f"{name}.lmdb"), conversion


def _zero_shot(args: argparse.Namespace) -> int:
    from lamm.analysis.zero_shot import baseline_row, zero_shot_rows
    from lamm.data.store import StructureStore
    from lamm.models.checkpoint import load_potential
    from lamm.tables import write_csv
    from lamm.tracking import RunTracker

    params = {
        "checkpoints": args.checkpoints,
        "data": args.data,
        "heads": args.head,
        "fit_split": args.fit_split,
        "split": args.split,
    }
    with RunTracker(
        "zero_shot", "zero-shot", params=params, inputs=[*args.checkpoints, args.data]
    ) as tracker:
        store = StructureStore(args.data)
        rows = [baseline_row(store, fit_split=args.fit_split, eval_split=args.split)]
        for path in args.checkpoints:
            rows += zero_shot_rows(
                load_potential(path),
                store,
                checkpoint=_label(path),
                heads=args.head or None,
                fit_split=args.fit_split,
                eval_split=args.split,
                batch_size=args.batch_size,
            )
        write_csv(rows, args.out)
        for row in rows:
            tracker.log_metrics(
                {
                    f"{row['checkpoint']}/{row['head']}/{key}": value
                    for key, value in row.items()
                    if key not in ("checkpoint", "head") and isinstance(value, (int, float))
                }
            )
        tracker.log_artifact(args.out)
    numeric = [
        r for r in rows[1:] if r.get("energy_mae_mev_per_atom") == r.get("energy_mae_mev_per_atom")
    ]
    best = min(numeric, key=lambda r: r["energy_mae_mev_per_atom"]) if numeric else None
    print(
        json.dumps(
            {"out": str(args.out), "rows": len(rows), "baseline": rows[0], "best_energy": best}
        )
    )
    return 0


def _dynamics(args: argparse.Namespace) -> int:
    from lamm.analysis.dynamics import DynamicsSettings, relax_and_run
    from lamm.analysis.evaluation import split_indices, write_json
    from lamm.calculator import LaMMCalculator
    from lamm.data.store import StructureStore
    from lamm.device import log_device, resolve_device
    from lamm.tables import write_csv
    from lamm.tracking import RunTracker

    settings = DynamicsSettings(
        steps=args.steps,
        timestep_fs=args.timestep_fs,
        temperature_k=args.temperature_k,
        seed=args.seed,
        fmax=args.fmax,
        max_relax_steps=args.max_relax_steps,
        log_every=args.log_every,
    )
    out = Path(args.out)
    params = {
        "checkpoint": args.checkpoint,
        "data": args.data,
        "split": args.split,
        "index": args.index,
        "head": args.head,
        **settings.__dict__,
    }
    with RunTracker(
        "dynamics",
        f"dynamics-{_label(args.checkpoint)}",
        params=params,
        inputs=[args.checkpoint, args.data],
    ) as tracker:
        store = StructureStore(args.data)
        indices = split_indices(store, args.split)
        if not 0 <= args.index < len(indices):
            raise SystemExit(
                f"{args.data}: --index {args.index} out of range for split {args.split!r} "
                f"with {len(indices)} structures"
            )
        sample = int(indices[args.index])
        device = resolve_device(args.device)
        calculator = LaMMCalculator(args.checkpoint, head=args.head, device=device)
        tracker.log_params({"device": log_device(device, "dynamics")})
        summary = relax_and_run(
            store.get_atoms(sample),
            calculator,
            settings,
            out,
            force_mode=calculator.potential.force_mode,
            title=f"NVE, {_label(args.checkpoint)}, {store.subset} sample {sample}",
        )
        summary.update(
            {
                "checkpoint": args.checkpoint,
                "head": calculator.head,
                "store": args.data,
                "sample_index": sample,
            }
        )
        write_json(summary, out / "summary.json")
        if args.table:
            row = {"checkpoint": _label(args.checkpoint), "checkpoint_path": args.checkpoint}
            row.update({k: v for k, v in summary.items() if k not in ("note", "checkpoint")})
            write_csv([row], args.table)
        tracker.log_metrics(
            {
                k: v
                for k, v in summary.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)
            }
        )
        for name in ("summary.json", "energies.csv", "energies.png"):
            tracker.log_artifact(out / name)
    print(json.dumps({"out": str(out), **summary}))
    return 0


class _OldDataName(argparse.Action):
    """`--data STORE`, the old name of `--store` here: accepted with a warning, since `--data`
    names a folder of <subset>.lmdb stores in every other command."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        log.warning(
            "%s: --data is now --store (elsewhere --data names a folder of stores)", parser.prog
        )
        setattr(namespace, self.dest, values)


def add_store_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    """`--store PATH` (required), and the hidden old name `--data`."""
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--store", dest="data", metavar="PATH", help=help_text)
    group.add_argument("--data", dest="data", action=_OldDataName, help=argparse.SUPPRESS)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "evaluate",
        help="test-set metrics of one checkpoint head: energy MAE/atom, force MAE, force "
        "cosine, parity plots",
        description="Predict a store split (or every split: --split all) with one head of "
        "a checkpoint; write "
        "<out>/metrics.json (the test split, or the last one scored, at the top; every "
        "split under per_split), "
        "metrics_per_element.csv, parity.png (energies minus a per-element composition "
        "fit) and predictions.npz. "
        "--store may be an extended-XYZ file: it is converted first (every frame a test "
        "structure). "
        "Only labels the data has are scored.",
    )
    evaluate.add_argument("checkpoint", help="a lamm checkpoint (.pt)")
    add_store_option(evaluate, "structure store (.lmdb) or extended-XYZ file (.xyz, .extxyz)")
    evaluate.add_argument(
        "--split",
        default="test",
        choices=["train", "val", "test", "all"],
        help="the split to score, or all non-empty ones (default test)",
    )
    evaluate.add_argument(
        "--head",
        default=None,
        help="head name (default: the store's subset if the checkpoint has that head, else "
        "its first head)",
    )
    xyz = evaluate.add_argument_group("extended-XYZ --store")
    xyz.add_argument("--energy-key", default=None, help="info key of the energy (default energy)")
    xyz.add_argument(
        "--forces-key", default=None, help="per-atom array of the forces (default forces)"
    )
    xyz.add_argument(
        "--energy-unit",
        default=None,
        help="eV, meV, kcal/mol, kJ/mol, hartree or rydberg (default eV)",
    )
    xyz.add_argument("--length-unit", default=None, help="angstrom or bohr (default angstrom)")
    evaluate.add_argument(
        "--out", default=None, help="output directory (default results/evaluate/<checkpoint label>)"
    )
    evaluate.add_argument("--batch-size", type=int, default=16, help="structures per forward pass")
    evaluate.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="NAME",
        help="also score a universal potential zero-shot on the same split, for one table: "
        "sevennet-0, sevennet-l3i5, chgnet-0.3.0 or chgnet-r2scan (repeatable; pip install "
        "'.[labelers]'); its energies are shifted per element by a fit on the store's training "
        "split (raw energies when there is none); written to references.csv and metrics.json",
    )
    evaluate.add_argument(
        "--reference-fit-max",
        type=int,
        default=200,
        help="training structures (a seeded subsample) a reference's energy shift is fitted on",
    )
    add_device_argument(evaluate)
    evaluate.set_defaults(func=_evaluate)

    _add_zero_shot_parser(subparsers)
    _add_dynamics_parser(subparsers)


def _add_dynamics_parser(subparsers: argparse._SubParsersAction) -> None:
    """`lamm dynamics`."""
    dynamics = subparsers.add_parser(
        "dynamics",
        help="relax a store structure with BFGS, then NVE MD with the LaMMCalculator; "
        "reports total-energy drift",
        description="BFGS relaxation then velocity-Verlet NVE from Maxwell-Boltzmann "
        "velocities. Writes "
        "<out>/relax.traj, nve.traj, energies.csv, energies.png, summary.json. Only "
        "gradient-force models "
        "conserve the total energy.",
    )
    dynamics.add_argument("checkpoint", help="a lamm checkpoint (.pt)")
    add_store_option(dynamics, "structure store (.lmdb)")
    dynamics.add_argument(
        "--split",
        default="test",
        choices=["train", "val", "test"],
        help="split the structure comes from",
    )
    dynamics.add_argument(
        "--index", type=int, default=0, help="position of the structure within the split"
    )
    dynamics.add_argument(
        "--head", default=None, help="head name (default: the checkpoint's first head)"
    )
    dynamics.add_argument("--out", required=True, help="output directory")
    dynamics.add_argument(
        "--table",
        default=None,
        help="also write the summary as a one-row CSV (e.g. results/tables/nve_drift.csv)",
    )
    dynamics.add_argument("--steps", type=int, default=200, help="NVE steps")
    dynamics.add_argument("--timestep-fs", type=float, default=0.5, help="MD time step, fs")
    dynamics.add_argument(
        "--temperature-k", type=float, default=300.0, help="initial Maxwell-Boltzmann temperature"
    )
    dynamics.add_argument("--seed", type=int, default=0, help="seed of the initial velocities")
    dynamics.add_argument("--fmax", type=float, default=0.05, help="BFGS convergence, eV/Angstrom")
    dynamics.add_argument("--max-relax-steps", type=int, default=100, help="BFGS step limit")
    dynamics.add_argument(
        "--log-every", type=int, default=1, help="MD steps between recorded frames"
    )
    add_device_argument(dynamics)
    dynamics.set_defaults(func=_dynamics)


def _add_zero_shot_parser(subparsers: argparse._SubParsersAction) -> None:
    """`lamm zero-shot`."""
    zero_shot = subparsers.add_parser(
        "zero-shot",
        help="every head of pre-training checkpoints on the downstream test split, energy "
        "reference refit (change-bias)",
        description="For each checkpoint and head: fit a per-element energy shift on "
        "--fit-split to "
        "true - predicted (least squares, as deepmd's change-bias), then score --split. "
        "Writes one CSV row per head.",
    )
    zero_shot.add_argument("checkpoints", nargs="+", help="lamm checkpoints (.pt)")
    add_store_option(zero_shot, "the downstream structure store (.lmdb)")
    zero_shot.add_argument(
        "--out", required=True, help="CSV file (e.g. results/tables/zero_shot.csv)"
    )
    zero_shot.add_argument(
        "--head",
        action="append",
        default=[],
        help="evaluate only this head (repeatable; default all)",
    )
    zero_shot.add_argument(
        "--fit-split",
        default="train",
        choices=["train", "val", "test"],
        help="split the per-element energy shift is fitted on",
    )
    zero_shot.add_argument(
        "--split", default="test", choices=["train", "val", "test"], help="split that is scored"
    )
    zero_shot.add_argument("--batch-size", type=int, default=16, help="structures per forward pass")
    zero_shot.set_defaults(func=_zero_shot)
