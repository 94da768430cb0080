"""`lamm distill`: a small, fast student potential from a fine-tuned teacher (DPA-2's
distillation)."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from lamm.commands.errors import USER_ERRORS, fail
from lamm.device import add_device_argument

log = logging.getLogger(__name__)


def _distill(args: argparse.Namespace) -> int:
    try:
        return _run_distill(args)
    except USER_ERRORS as err:
        return fail("distill", err)


def _reference_store(args: argparse.Namespace) -> Path | None:
    """--reference-store, else the seed store when it has force labels (the teacher's own data)."""
    if args.reference_store:
        path = Path(args.reference_store)
        if not path.is_file():
            raise ValueError(f"--reference-store {path} does not exist")
        return path
    seeds = Path(args.seed_structures)
    if seeds.suffix.lower() in (".xyz", ".extxyz"):
        return None
    from lamm.data.store import StructureStore

    return seeds if StructureStore(seeds).info.get("with_forces", 0) > 0 else None


def _run_distill(args: argparse.Namespace) -> int:
    from lamm.distill.config import load_distill_config
    from lamm.distill.seeds import load_seed_structures

    teacher = Path(args.teacher)
    if not teacher.is_file():
        raise ValueError(f"teacher checkpoint {teacher} does not exist")
    if args.rounds < 1:
        raise ValueError(f"--rounds must be at least 1, got {args.rounds}")
    config = load_distill_config(args.student_config)
    if args.seed is not None:
        config["seed"] = args.seed
    if args.device is not None:
        config["device"] = args.device
    seeds = load_seed_structures(
        args.seed_structures,
        split=config["seeds"]["split"],
        max_structures=config["seeds"]["max_structures"],
    )
    reference = _reference_store(args)
    import torch

    from lamm.distill.final import final_checks
    from lamm.distill.loop import Distillation, Teacher
    from lamm.models.checkpoint import load_checkpoint

    load_checkpoint(teacher)  # a readable lamm checkpoint, or one clear error
    if config["threads"] is not None:
        torch.set_num_threads(config["threads"])
    from lamm.device import log_device, resolve_device

    log_device(resolve_device(config["device"]), "distillation (teacher labels, student training)")
    run = Distillation(
        config,
        Teacher(teacher, args.teacher_head),
        seeds,
        args.out,
        seeds_source=str(Path(args.seed_structures).resolve()),
    )
    summary = run.run(args.rounds)
    if not args.skip_final:
        final = final_checks(run, run.rows, reference)
        keys = (
            "speedup",
            "teacher_atoms_per_s",
            "student_atoms_per_s",
            "student_vs_teacher_forces_mae_mev_per_a",
            "teacher_vs_labels_forces_mae_mev_per_a",
            "error_ratio",
            "drift_over_epot_std",
            "checks",
        )
        summary.update({k: final[k] for k in keys if k in final})
    print(json.dumps(summary))
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "distill",
        help="distill a fine-tuned teacher into a small, fast student (MD exploration, "
        "committee selection, teacher labels)",
        description="Rounds of: Langevin MD from the seed structures (the teacher in round "
        "0, then the current student), "
        "selection of the configurations where a committee of students disagrees most on "
        "forces (a trust window "
        "and a cap), teacher labels, and training of the students on every label so far; "
        "until the student's "
        "force error against the teacher on a fixed validation set reaches the target or "
        "stops improving. "
        "Writes <out>/student.pt (an ordinary checkpoint: LaMMCalculator, lamm evaluate, "
        "lamm dynamics), "
        "rounds.csv, final.json (speed, errors, NVE drift), parity.png, rounds.png, "
        "speed.png. A rerun resumes: "
        "finished rounds are reused. The last stdout line is a JSON summary.",
    )
    parser.add_argument(
        "--teacher",
        required=True,
        help="the teacher checkpoint (any lamm checkpoint, direct or gradient forces)",
    )
    parser.add_argument(
        "--teacher-head", default=None, help="the teacher's head (default: its first)"
    )
    parser.add_argument(
        "--student-config",
        required=True,
        help="distillation config (e.g. config/distill/demo.yaml)",
    )
    parser.add_argument(
        "--seed-structures",
        required=True,
        help="structure store (.lmdb; the config's seeds.split) or extended-XYZ file the "
        "MD starts from",
    )
    parser.add_argument(
        "--out", required=True, help="output directory (a rerun with the same arguments resumes)"
    )
    parser.add_argument("--rounds", type=int, default=4, help="at most this many rounds")
    parser.add_argument(
        "--reference-store",
        default=None,
        help="labeled store for the teacher's own error (default: --seed-structures when "
        "it has force labels)",
    )
    parser.add_argument("--seed", type=int, default=None, help="override the config's seed")
    add_device_argument(parser, default=None)
    parser.add_argument(
        "--skip-final",
        action="store_true",
        help="skip the speed, NVE and error checks after the rounds",
    )
    parser.set_defaults(func=_distill)
