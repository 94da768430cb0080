"""The final checks of a distilled student (DIR/final.json and the figures), the issue's
acceptance numbers:

- speed: MD atoms/s of student and teacher, same process, same structures (every seed structure
  repeated to `speed.min_atoms`, and as it is), wall clock and CPU time (`speed.compare_speed`);
- accuracy: the student's force MAE against the teacher on the validation set, next to the
  teacher's own force MAE against the labels of a reference store (the downstream set the
  teacher was fine-tuned on: its test split, else the first non-empty split); their ratio; the
  student's own errors there too, with the reference elements absent from its labels (a
  student knows the chemistry of its seed structures only, and its energies of other
  elements are meaningless);
- energy conservation: the student's NVE drift over the potential-energy fluctuation.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from ase.data import chemical_symbols

from lamm.analysis.evaluation import compute_metrics, predict_split, write_json
from lamm.data.store import StructureStore
from lamm.distill.figures import rounds_figure, speed_figure
from lamm.distill.speed import compare_speed, nve_drift, speed_structure

log = logging.getLogger(__name__)


def _split_with_labels(store: StructureStore) -> str:
    for split in ("test", "val", "train"):
        if len(store.indices(split)):
            return split
    raise ValueError(f"{store.path} is empty")


def label_errors(
    checkpoint_calc: Any, store: StructureStore, head: str, split: str
) -> dict[str, float]:
    metrics = compute_metrics(predict_split(checkpoint_calc.potential, store, split, [head])[head])
    return {
        k: v
        for k, v in metrics.items()
        if k in ("forces_mae_mev_per_a", "energy_mae_mev_per_atom", "n_structures")
    }


def final_checks(
    run: Any, rows: list[dict[str, Any]], reference_store: str | Path | None
) -> dict[str, Any]:
    """`run` is a finished `lamm.distill.loop.Distillation`; writes final.json, parity.png,
    rounds.png, speed.png into its folder and returns final.json's content."""
    from lamm.analysis.parity import parity_plot
    from lamm.calculator import LaMMCalculator

    out, config = run.out, run.config
    student = LaMMCalculator(out / "student.pt", device=run._device())
    result: dict[str, Any] = {
        "student": str(out / "student.pt"),
        "teacher": str(run.teacher.path),
        "student_parameters": sum(p.numel() for p in student.potential.parameters()),
        "teacher_parameters": sum(p.numel() for p in run.teacher_calc.potential.parameters()),
    }
    validation = StructureStore(out / "validation.lmdb")
    predictions = predict_split(student.potential, validation, "val", [student.head])
    vs_teacher = compute_metrics(predictions[student.head])
    result["student_vs_teacher_forces_mae_mev_per_a"] = vs_teacher.get("forces_mae_mev_per_a")
    result["student_vs_teacher_energy_mae_mev_per_atom"] = vs_teacher.get("energy_mae_mev_per_atom")
    result["validation_configurations"] = vs_teacher["n_structures"]
    parity_plot(
        {"val": predictions[student.head]},
        out / "parity.png",
        title="student vs teacher, validation set",
    )
    teacher_error = _against_labels(run, student, reference_store, result)
    measured = _speed(run, student, result)
    nve = config["nve"]
    result.update(
        nve_drift(
            run.seeds[0],
            student,
            steps=nve["steps"],
            timestep_fs=nve["timestep_fs"],
            temperature_k=nve["temperature_k"],
            seed=config["seed"],
        )
    )
    result["checks"] = {
        "speedup_at_least_5": result["speedup"] >= 5.0,
        "error_ratio_at_most_1.5": (result["error_ratio"] <= 1.5)
        if "error_ratio" in result
        else None,
        "nve_drift_below_1pct_of_epot_std": result["drift_over_epot_std"] < 0.01,
    }
    rounds_figure(rows, out / "rounds.png", teacher_error=teacher_error)
    speed_figure(measured, out / "speed.png")
    write_json(result, out / "final.json")
    _track(run, result)
    return result


def _against_labels(
    run: Any, student: Any, reference_store: str | Path | None, result: dict[str, Any]
) -> float | None:
    """Teacher and student against the reference store's labels, into `result`; returns the
    teacher's force MAE (None without a reference store)."""
    if reference_store is None:
        return None
    store = StructureStore(reference_store)
    split = _split_with_labels(store)
    teacher = label_errors(run.teacher_calc, store, run.teacher_calc.head, split)
    mine = label_errors(student, store, student.head, split)
    teacher_error = teacher.get("forces_mae_mev_per_a")
    result.update(
        {
            "reference_store": str(store.path),
            "reference_split": split,
            "teacher_vs_labels_forces_mae_mev_per_a": teacher_error,
            "teacher_vs_labels_energy_mae_mev_per_atom": teacher.get("energy_mae_mev_per_atom"),
            "student_vs_labels_forces_mae_mev_per_a": mine.get("forces_mae_mev_per_a"),
            "student_vs_labels_energy_mae_mev_per_atom": mine.get("energy_mae_mev_per_atom"),
        }
    )
    if teacher_error:
        result["error_ratio"] = result["student_vs_teacher_forces_mae_mev_per_a"] / teacher_error
    # the student knows the elements of its labels only (the seed structures' chemistry)
    learned = set().union(
        *(
            set(StructureStore(p).element_counts.nonzero()[0].tolist())
            for p in sorted(run.out.glob("rounds/round_*/labels.lmdb"))
        )
    )
    reference = {
        int(z) for i in store.indices(split) for z in store.get_record(int(i)).atomic_numbers
    }
    result["reference_elements_not_in_student_labels"] = [
        chemical_symbols[z] for z in sorted(reference - learned)
    ]
    return teacher_error


def _speed(run: Any, student: Any, result: dict[str, Any]) -> dict[str, Any]:
    """MD speed of teacher and student on the seed cells repeated to `speed.min_atoms` (and on
    the cells as they are when that made them larger), into `result`; returns the first."""
    speed = run.config["speed"]
    calculators = {"teacher": run.teacher_calc, "student": student}
    structures = [speed_structure(atoms, speed["min_atoms"]) for atoms in run.seeds]
    measured = compare_speed(
        structures,
        calculators,
        steps=speed["steps"],
        warmup=speed["warmup"],
        repeats=speed["repeats"],
    )
    result.update(measured)
    result["speedup"] = measured["student_atoms_per_s"] / measured["teacher_atoms_per_s"]
    result["speedup_cpu_time"] = (
        measured["student_atoms_per_cpu_s"] / measured["teacher_atoms_per_cpu_s"]
    )
    # the seed cells as they are too: there the per-step overhead weighs more
    if any(len(a) > len(b) for a, b in zip(structures, run.seeds, strict=True)):
        cell = compare_speed(
            run.seeds,
            calculators,
            steps=speed["steps"],
            warmup=speed["warmup"],
            repeats=speed["repeats"],
        )
        result.update({f"seed_cell_{k}": v for k, v in cell.items()})
        result["seed_cell_speedup"] = cell["student_atoms_per_s"] / cell["teacher_atoms_per_s"]
        result["seed_cell_speedup_cpu_time"] = (
            cell["student_atoms_per_cpu_s"] / cell["teacher_atoms_per_cpu_s"]
        )
    return measured


def _track(run: Any, result: dict[str, Any]) -> None:
    """One MLflow run with the final numbers and files, beside the rounds' runs."""
    from lamm.tracking import RunTracker, find_or_create_parent_run

    parent = find_or_create_parent_run(f"distill-{run.config['name']}", "distill")
    numbers = {
        k: float(v)
        for k, v in result.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }
    with RunTracker(
        "distill",
        f"distill-{run.config['name']}-final",
        params={**run.config, "teacher": str(run.teacher.path)},
        inputs=[run.teacher.path],
        parent_run_id=parent,
    ) as tracker:
        tracker.log_metrics(numbers)
        for name in ("final.json", "rounds.csv", "parity.png", "rounds.png", "speed.png"):
            tracker.log_artifact(run.out / name)
