"""`lamm evaluate`, `lamm zero-shot`, `lamm dynamics`: a checkpoint on the downstream store."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _label(checkpoint: str) -> str:
    """A readable name of a checkpoint file: its run directory for `last.pt`, else its stem."""
    path = Path(checkpoint)
    if path.stem == "last" and path.parent.name == "checkpoints":
        return path.parent.parent.name
    return path.stem


def _evaluate(args: argparse.Namespace) -> int:
    from lamm.analysis.evaluation import evaluate_checkpoint
    from lamm.data.store import StructureStore
    from lamm.models.checkpoint import load_potential
    from lamm.tracking import RunTracker

    out = Path(args.out or Path("results") / "evaluate" / _label(args.checkpoint))
    params = {"checkpoint": args.checkpoint, "data": args.data, "split": args.split, "head": args.head, "batch_size": args.batch_size}
    with RunTracker("evaluate", f"evaluate-{_label(args.checkpoint)}", params=params, inputs=[args.checkpoint, args.data]) as tracker:
        potential = load_potential(args.checkpoint)
        metrics = evaluate_checkpoint(
            potential, StructureStore(args.data), out, split=args.split, head=args.head, batch_size=args.batch_size,
            title=f"{_label(args.checkpoint)} on {Path(args.data).stem} {args.split}",
        )
        tracker.log_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        for name in ("metrics.json", "parity.png"):
            tracker.log_artifact(out / name)
    print(json.dumps({"out": str(out), **metrics}))
    return 0


def _zero_shot(args: argparse.Namespace) -> int:
    from lamm.analysis.zero_shot import baseline_row, zero_shot_rows
    from lamm.data.store import StructureStore
    from lamm.models.checkpoint import load_potential
    from lamm.tables import write_csv
    from lamm.tracking import RunTracker

    params = {"checkpoints": args.checkpoints, "data": args.data, "heads": args.head, "fit_split": args.fit_split, "split": args.split}
    with RunTracker("zero_shot", "zero-shot", params=params, inputs=[*args.checkpoints, args.data]) as tracker:
        store = StructureStore(args.data)
        rows = [baseline_row(store, fit_split=args.fit_split, eval_split=args.split)]
        for path in args.checkpoints:
            rows += zero_shot_rows(
                load_potential(path), store, checkpoint=_label(path), heads=args.head or None,
                fit_split=args.fit_split, eval_split=args.split, batch_size=args.batch_size,
            )
        write_csv(rows, args.out)
        for row in rows:
            tracker.log_metrics({
                f"{row['checkpoint']}/{row['head']}/{key}": value for key, value in row.items()
                if key not in ("checkpoint", "head") and isinstance(value, (int, float))
            })
        tracker.log_artifact(args.out)
    numeric = [r for r in rows[1:] if r.get("energy_mae_mev_per_atom") == r.get("energy_mae_mev_per_atom")]
    best = min(numeric, key=lambda r: r["energy_mae_mev_per_atom"]) if numeric else None
    print(json.dumps({"out": str(args.out), "rows": len(rows), "baseline": rows[0], "best_energy": best}))
    return 0


def _dynamics(args: argparse.Namespace) -> int:
    from lamm.analysis.dynamics import DynamicsSettings, relax_and_run
    from lamm.analysis.evaluation import split_indices, write_json
    from lamm.calculator import LaMMCalculator
    from lamm.data.store import StructureStore
    from lamm.tables import write_csv
    from lamm.tracking import RunTracker

    settings = DynamicsSettings(
        steps=args.steps, timestep_fs=args.timestep_fs, temperature_k=args.temperature_k, seed=args.seed,
        fmax=args.fmax, max_relax_steps=args.max_relax_steps, log_every=args.log_every,
    )
    out = Path(args.out)
    params = {"checkpoint": args.checkpoint, "data": args.data, "split": args.split, "index": args.index, "head": args.head, **settings.__dict__}
    with RunTracker("dynamics", f"dynamics-{_label(args.checkpoint)}", params=params, inputs=[args.checkpoint, args.data]) as tracker:
        store = StructureStore(args.data)
        indices = split_indices(store, args.split)
        if not 0 <= args.index < len(indices):
            raise SystemExit(f"{args.data}: --index {args.index} out of range for split {args.split!r} with {len(indices)} structures")
        sample = int(indices[args.index])
        calculator = LaMMCalculator(args.checkpoint, head=args.head)
        summary = relax_and_run(
            store.get_atoms(sample), calculator, settings, out, force_mode=calculator.potential.force_mode,
            title=f"NVE, {_label(args.checkpoint)}, {store.subset} sample {sample}",
        )
        summary.update({"checkpoint": args.checkpoint, "head": calculator.head, "store": args.data, "sample_index": sample})
        write_json(summary, out / "summary.json")
        if args.table:
            row = {"checkpoint": _label(args.checkpoint), "checkpoint_path": args.checkpoint}
            row.update({k: v for k, v in summary.items() if k not in ("note", "checkpoint")})
            write_csv([row], args.table)
        tracker.log_metrics({k: v for k, v in summary.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
        for name in ("summary.json", "energies.csv", "energies.png"):
            tracker.log_artifact(out / name)
    print(json.dumps({"out": str(out), **summary}))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    evaluate = subparsers.add_parser(
        "evaluate",
        help="test-set metrics of one checkpoint head: energy MAE/atom, force MAE, force cosine, parity plots",
        description="Predict a store split with one head of a checkpoint; write <out>/metrics.json, "
        "parity.png and predictions.npz. Only labels the store has are scored.",
    )
    evaluate.add_argument("checkpoint", help="a lamm checkpoint (.pt)")
    evaluate.add_argument("--data", required=True, help="structure store (.lmdb)")
    evaluate.add_argument("--split", default="test", choices=["train", "val", "test"])
    evaluate.add_argument("--head", default=None, help="head name (default: the checkpoint's first head)")
    evaluate.add_argument("--out", default=None, help="output directory (default results/evaluate/<checkpoint label>)")
    evaluate.add_argument("--batch-size", type=int, default=16)
    evaluate.set_defaults(func=_evaluate)

    zero_shot = subparsers.add_parser(
        "zero-shot",
        help="every head of pre-training checkpoints on the downstream test split, energy reference refit (change-bias)",
        description="For each checkpoint and head: fit a per-element energy shift on --fit-split to "
        "true - predicted (least squares, as deepmd's change-bias), then score --split. Writes one CSV row per head.",
    )
    zero_shot.add_argument("checkpoints", nargs="+", help="lamm checkpoints (.pt)")
    zero_shot.add_argument("--data", required=True, help="the downstream structure store (.lmdb)")
    zero_shot.add_argument("--out", required=True, help="CSV file (e.g. results/tables/zero_shot.csv)")
    zero_shot.add_argument("--head", action="append", default=[], help="evaluate only this head (repeatable; default all)")
    zero_shot.add_argument("--fit-split", default="train", choices=["train", "val", "test"])
    zero_shot.add_argument("--split", default="test", choices=["train", "val", "test"])
    zero_shot.add_argument("--batch-size", type=int, default=16)
    zero_shot.set_defaults(func=_zero_shot)

    dynamics = subparsers.add_parser(
        "dynamics",
        help="relax a store structure with BFGS, then NVE MD with the LaMMCalculator; reports total-energy drift",
        description="BFGS relaxation then velocity-Verlet NVE from Maxwell-Boltzmann velocities. Writes "
        "<out>/relax.traj, nve.traj, energies.csv, energies.png, summary.json. Only gradient-force models "
        "conserve the total energy.",
    )
    dynamics.add_argument("checkpoint", help="a lamm checkpoint (.pt)")
    dynamics.add_argument("--data", required=True, help="structure store (.lmdb)")
    dynamics.add_argument("--split", default="test", choices=["train", "val", "test"])
    dynamics.add_argument("--index", type=int, default=0, help="position of the structure within the split")
    dynamics.add_argument("--head", default=None, help="head name (default: the checkpoint's first head)")
    dynamics.add_argument("--out", required=True, help="output directory")
    dynamics.add_argument("--table", default=None, help="also write the summary as a one-row CSV (e.g. results/tables/nve_drift.csv)")
    dynamics.add_argument("--steps", type=int, default=200, help="NVE steps")
    dynamics.add_argument("--timestep-fs", type=float, default=0.5)
    dynamics.add_argument("--temperature-k", type=float, default=300.0, help="initial Maxwell-Boltzmann temperature")
    dynamics.add_argument("--seed", type=int, default=0, help="seed of the initial velocities")
    dynamics.add_argument("--fmax", type=float, default=0.05, help="BFGS convergence, eV/Angstrom")
    dynamics.add_argument("--max-relax-steps", type=int, default=100)
    dynamics.add_argument("--log-every", type=int, default=1, help="MD steps between recorded frames")
    dynamics.set_defaults(func=_dynamics)
