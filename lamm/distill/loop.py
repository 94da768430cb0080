"""The distillation rounds (DPA-2's concurrent-learning loop), each resumable.

    DIR/run.json                 what the run is (config, teacher, seed structures); a rerun must
    match DIR/validation.lmdb          the fixed validation set: teacher MD at every temperature,
    teacher labels DIR/rounds/round_<r>/        explored.lmdb, explore.json, select.json,
    labels.lmdb, train.lmdb,
                                 member_<k>/ (a fine-tuning run folder per student), student.pt,
                                 round.json
    DIR/rounds.csv               one row per finished round (written atomically after each)
    DIR/student.pt               the best round's student: an ordinary checkpoint

Round r: explore (Langevin MD driven by the teacher in round 0, else by round r-1's student) ->
select (round 0: evenly spread, no committee yet; then the configurations where round r-1's
committee disagrees most, inside the trust window, at most `max_per_round`) -> label (teacher)
-> train K students from scratch on every label so far -> score them on the validation set
(force MAE against the teacher); the round's student is the member with the lowest error.

Resuming: `round.json` is written last, so a round with one is finished and is read back, never
redone; inside an unfinished round each step's output (written atomically) is reused when
present, and a student's training resumes from its `last.pt`. Exploration noise, selection and
training are seeded, so a resumed run and an uninterrupted one give the same students.

Stopping (after a round): the validation force MAE is at most the target, or it has not
improved by `min_improvement` (relative) on the best so far for `patience` rounds, or a round
found no configuration inside the trust window above `lo` (the committee agrees everywhere
the student goes), or `--rounds` are done.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms

from lamm.analysis.evaluation import write_json
from lamm.distill import label as L
from lamm.distill.config import explore_settings
from lamm.distill.explore import explore
from lamm.distill.select import (
    committee_deviation,
    deviation_histogram,
    deviation_statistics,
    evenly_spaced,
    pair_deviation,
    select_configurations,
)
from lamm.tables import write_csv

log = logging.getLogger(__name__)

VALIDATION_STREAM = 0  # exploration streams: 0 the validation set, r + 1 round r
DEVIATION_EDGES = [
    0.0,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
    10.0,
    math.inf,
]  # eV/A, the per-round histogram


@dataclass(frozen=True)
class Teacher:
    path: Path
    head: str | None = None


def round_dir(out: Path, r: int) -> Path:
    return out / "rounds" / f"round_{r:03d}"


def stop_reason(
    errors: Sequence[float], *, target: float | None, patience: int, min_improvement: float
) -> str | None:
    """Why to stop after the last of `errors` (validation force MAE per round, meV/A), or None."""
    if not errors:
        return None
    if target is not None and errors[-1] <= target:
        return "target reached"
    stale, best = 0, math.inf
    for error in errors:
        if error < best * (1.0 - min_improvement):
            stale = 0
        else:
            stale += 1
        best = min(best, error)
    if stale >= patience:
        return f"no improvement in {patience} round(s)"
    return None


def slim_checkpoint(source: Path, target: Path, extra: Mapping[str, Any]) -> Path:
    """`source` (a training checkpoint) without its training state, plus `extra`, at `target`."""
    from lamm.models.checkpoint import load_checkpoint, save_checkpoint

    payload = load_checkpoint(source)
    payload.pop("training", None)
    return save_checkpoint(target, {**payload, **dict(extra)})


class Distillation:
    """One distillation run in `out` (see the module docstring); `run(rounds)` does the rounds."""

    def __init__(
        self,
        config: Mapping[str, Any],
        teacher: Teacher,
        seeds: Sequence[Atoms],
        out: str | Path,
        *,
        seeds_source: str = "",
    ) -> None:
        from lamm.calculator import LaMMCalculator
        from lamm.distill.predict import head_index

        self.config, self.teacher, self.seeds, self.out = (
            dict(config),
            teacher,
            list(seeds),
            Path(out),
        )
        if not self.seeds:
            raise ValueError("no seed structures")
        self.teacher_calc = LaMMCalculator(teacher.path, head=teacher.head, device=self._device())
        self.teacher_head = head_index(self.teacher_calc.potential, teacher.head, str(teacher.path))
        self.subset = self.teacher_calc.head
        self.seeds_source = seeds_source
        self.committee = int(config["student"]["committee"])

    def _device(self) -> str:
        import torch

        device = self.config["device"]
        return ("cuda" if torch.cuda.is_available() else "cpu") if device == "auto" else device

    # --- the run's identity
    # -------------------------------------------------------------------------
    def check_identity(self) -> None:
        """Write DIR/run.json, or check that the run in DIR is this one (rounds aside)."""
        identity = {
            "config": self.config,
            "teacher": str(self.teacher.path.resolve()),
            "teacher_head": self.subset,
            "seed_structures": self.seeds_source,
            "seed_formulas": [a.get_chemical_formula() for a in self.seeds],
        }
        path = self.out / "run.json"
        if path.is_file():
            previous = json.loads(path.read_text())
            if json.loads(json.dumps(identity)) != previous:
                changed = sorted(
                    k for k in identity if json.loads(json.dumps(identity[k])) != previous.get(k)
                )
                raise ValueError(
                    f"{self.out} holds a distillation run with another {', '.join(changed)}; "
                    "resume it with the same arguments, or choose another --out"
                )
            return
        write_json(identity, path)

    # --- validation set
    # -----------------------------------------------------------------------------
    def validation_records(self) -> list:
        path = self.out / "validation.lmdb"
        if not path.is_file():
            settings = explore_settings(self.config, validation=True)
            exploration = explore(
                self.seeds,
                self.teacher_calc,
                settings,
                seed=self.config["seed"],
                stream=VALIDATION_STREAM,
                prefix="validation/",
            )
            if not exploration.records:
                raise ValueError(
                    "the teacher's validation MD kept no configuration (every trajectory aborted: "
                    f"{exploration.aborted}); check the seed structures and explore settings"
                )
            labeled = L.teacher_label(
                self.teacher_calc.potential, exploration.records, head=self.teacher_head
            )
            L.write_store(
                path,
                [(r, "val") for r in labeled],
                subset=self.subset,
                labeled=True,
                info={"distill": "validation", "aborted": exploration.aborted},
            )
            log.info("validation set: %d teacher-labeled configurations -> %s", len(labeled), path)
        return L.read_records(path)

    # --- one round
    # ----------------------------------------------------------------------------------
    def _driver(self, r: int):
        from lamm.calculator import LaMMCalculator

        if r == 0:
            return self.teacher_calc, "teacher"
        return LaMMCalculator(
            round_dir(self.out, r - 1) / "student.pt", device=self._device()
        ), "student"

    def _explore(self, r: int, folder: Path) -> tuple[list, dict[str, Any]]:
        stats_path, store_path = folder / "explore.json", folder / "explored.lmdb"
        if stats_path.is_file() and store_path.is_file():
            return L.read_records(store_path), json.loads(stats_path.read_text())
        calculator, driver = self._driver(r)
        exploration = explore(
            self.seeds,
            calculator,
            explore_settings(self.config),
            seed=self.config["seed"],
            stream=r + 1,
            prefix=f"round{r}/",
        )
        L.write_store(
            store_path,
            [(rec, "train") for rec in exploration.records],
            subset=self.subset,
            labeled=False,
            info={"distill": f"round {r} exploration"},
        )
        stats = {
            "explored": len(exploration.records),
            "trajectories": exploration.trajectories,
            "aborted_trajectories": int(sum(exploration.aborted.values())),
            "aborted": exploration.aborted,
            "explore_driver": driver,
            "explore_atoms_per_s": exploration.atoms_per_second,
            "explore_seconds": exploration.md_seconds,
        }
        write_json(stats, stats_path)
        return exploration.records, stats

    def _members(self, r: int) -> list[Path]:
        return [
            round_dir(self.out, r) / f"member_{k}" / "checkpoints" / "last.pt"
            for k in range(self.committee)
        ]

    def deviations(self, r: int, records: Sequence) -> np.ndarray:
        """Force deviation of each explored configuration under round r-1's committee (or its
        student against the teacher when the committee has one member); NaN in round 0."""
        if r == 0:
            return np.full(len(records), math.nan)
        from lamm.distill.predict import predict
        from lamm.models.checkpoint import load_potential

        members = [
            predict(load_potential(path, device=self._device()), records).forces
            for path in self._members(r - 1)
        ]
        if self.committee == 1:
            teacher = predict(self.teacher_calc.potential, records, head=self.teacher_head).forces
            return np.array(
                [pair_deviation(s, t) for s, t in zip(members[0], teacher, strict=True)]
            )
        return np.array(
            [committee_deviation(np.stack([m[i] for m in members])) for i in range(len(records))]
        )

    def _select(self, r: int, folder: Path, records: Sequence) -> dict[str, Any]:
        path = folder / "select.json"
        if path.is_file():
            return json.loads(path.read_text())
        window = self.config["select"]
        deviations = self.deviations(r, records)
        if r == 0:
            chosen = evenly_spaced(len(records), window["max_per_round"])
            counts = {"accurate": 0, "candidates": len(records), "failed": 0}
        else:
            selection = select_configurations(
                deviations, window["lo_ev_per_a"], window["hi_ev_per_a"], window["max_per_round"]
            )
            chosen = selection.selected
            counts = {
                "accurate": selection.accurate,
                "candidates": selection.candidates,
                "failed": selection.failed,
            }
        result = {
            "selected": [int(i) for i in chosen],
            **counts,
            **deviation_statistics(deviations),
            "deviation_edges_ev_per_a": DEVIATION_EDGES[:-1] + ["inf"],
            "deviation_histogram": deviation_histogram(deviations, DEVIATION_EDGES),
            "deviations_ev_per_a": [None if not math.isfinite(d) else float(d) for d in deviations],
        }
        write_json(result, path)
        return result

    def _labels(self, folder: Path, records: Sequence, selected: Sequence[int]) -> list:
        path = folder / "labels.lmdb"
        if not path.is_file():
            chosen = [records[i] for i in selected]
            labeled = (
                L.teacher_label(self.teacher_calc.potential, chosen, head=self.teacher_head)
                if chosen
                else []
            )
            L.write_store(
                path,
                [(rec, "train") for rec in labeled],
                subset=self.subset,
                labeled=True,
                info={"distill": "teacher labels"},
            )
        return L.read_records(path)

    def _train(self, r: int, folder: Path, validation: Sequence) -> list[dict[str, Any]]:
        from lamm.distill.train import student_finetune_config, train_student

        store = folder / "train.lmdb"
        if not store.is_file():
            labeled = [
                rec
                for q in range(r + 1)
                for rec in L.read_records(round_dir(self.out, q) / "labels.lmdb")
            ]
            L.training_store(
                store,
                labeled,
                validation,
                subset=self.subset,
                info={"distill": f"round {r} training set"},
            )
        results = []
        for k in range(self.committee):
            config = student_finetune_config(
                self.config, subset=self.subset, seed=self.config["seed"] + k
            )
            start = time.perf_counter()
            summary = train_student(
                config,
                store,
                folder / f"member_{k}",
                parent_run=f"distill-{self.config['name']}-students",
            )
            results.append(
                {
                    **summary["test"],
                    "seconds": time.perf_counter() - start,
                    "steps": summary["steps"],
                }
            )
        return results

    def run_round(self, r: int, validation: Sequence, tracker: Any) -> dict[str, Any]:
        """Round r (resuming its finished steps); returns its row of rounds.csv."""
        folder = round_dir(self.out, r)
        folder.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        records, explored = self._explore(r, folder)
        selection = self._select(r, folder, records)
        labels = self._labels(folder, records, selection["selected"])
        row: dict[str, Any] = {
            "round": r,
            **{k: v for k, v in explored.items() if k != "aborted"},
            "selected": len(labels),
            **{k: selection[k] for k in ("accurate", "candidates", "failed")},
            **{
                k: selection[k] for k in ("dev_min", "dev_mean", "dev_median", "dev_p90", "dev_max")
            },
        }
        if r > 0 and not labels:
            row.update(status="converged", labels_total=self._labels_total(r))
            return row
        members = self._train(r, folder, validation)
        errors = [m["forces_mae_mev_per_a"] for m in members]
        best = int(np.nanargmin(errors)) if np.isfinite(errors).any() else 0
        slim_checkpoint(
            self._members(r)[best],
            folder / "student.pt",
            {
                "distill": {
                    "round": r,
                    "member": best,
                    "seed": self.config["seed"] + best,
                    "teacher": str(self.teacher.path),
                }
            },
        )
        row.update(
            status="trained",
            labels_total=self._labels_total(r),
            student_member=best,
            student_forces_mae_mev_per_a=errors[best],
            student_energy_mae_mev_per_atom=members[best]["energy_mae_mev_per_atom"],
            committee_forces_mae_mean_mev_per_a=float(np.nanmean(errors)),
            train_seconds=float(sum(m["seconds"] for m in members)),
            train_steps=members[best]["steps"],
        )
        row.update(self._student_speed(folder / "student.pt"))
        row["round_seconds"] = time.perf_counter() - started
        return row

    def _labels_total(self, r: int) -> int:
        from lamm.data.store import StructureStore

        return int(
            sum(len(StructureStore(round_dir(self.out, q) / "labels.lmdb")) for q in range(r + 1))
        )

    def _student_speed(self, checkpoint: Path) -> dict[str, float]:
        from lamm.calculator import LaMMCalculator
        from lamm.distill.speed import md_atoms_per_second, speed_structure

        speed = self.config["speed"]
        atoms = speed_structure(self.seeds[0], speed["min_atoms"])
        value = md_atoms_per_second(
            atoms,
            LaMMCalculator(checkpoint, device=self._device()),
            steps=speed["steps"],
            warmup=speed["warmup"],
        )
        return {"student_atoms_per_s": value}

    # --- the rounds
    # ---------------------------------------------------------------------------------
    def run(self, rounds: int) -> dict[str, Any]:
        """Rounds 0..rounds-1 (finished ones read back) until a stop; returns the run's summary."""
        from lamm.tracking import RunTracker, find_or_create_parent_run

        if rounds < 1:
            raise ValueError(f"--rounds must be at least 1, got {rounds}")
        self.out.mkdir(parents=True, exist_ok=True)
        self.check_identity()
        validation = self.validation_records()
        stop = self.config["stop"]
        rows: list[dict[str, Any]] = []
        reason = None
        parent = None
        for r in range(rounds):
            done = round_dir(self.out, r) / "round.json"
            if done.is_file():
                row = json.loads(done.read_text())
                log.info("round %d: finished earlier, reused (%s)", r, done)
            else:
                parent = parent or find_or_create_parent_run(
                    f"distill-{self.config['name']}", "distill"
                )
                params = {
                    **self.config,
                    "teacher": str(self.teacher.path),
                    "round": r,
                    "out": str(self.out),
                }
                with RunTracker(
                    "distill",
                    f"distill-{self.config['name']}-round{r}",
                    params=params,
                    inputs=[self.teacher.path],
                    parent_run_id=parent,
                ) as tracker:
                    row = self.run_round(r, validation, tracker)
                    tracker.log_metrics({k: float(v) for k, v in row.items() if _number(v)}, step=r)
                    write_json(row, done)
                    tracker.log_artifact(done)
            rows.append(row)
            write_csv(rows, self.out / "rounds.csv")
            errors = [
                x["student_forces_mae_mev_per_a"] for x in rows if x.get("status") == "trained"
            ]
            reason = (
                "no configuration above the trust window's lo"
                if row.get("status") == "converged"
                else stop_reason(
                    errors,
                    target=stop["target_forces_mae_mev_per_a"],
                    patience=stop["patience"],
                    min_improvement=stop["min_improvement"],
                )
            )
            if reason:
                log.info("stopping after round %d: %s", r, reason)
                break
        self.rows = rows
        trained = [x for x in rows if x.get("status") == "trained"]
        best = min(trained, key=lambda x: (x["student_forces_mae_mev_per_a"], x["round"]))
        student = self.out / "student.pt"
        slim_checkpoint(round_dir(self.out, best["round"]) / "student.pt", student, {})
        return {
            "out": str(self.out),
            "student": str(student),
            "rounds_done": len(rows),
            "best_round": best["round"],
            "stop_reason": reason or f"--rounds {rounds} done",
            "validation_configurations": len(validation),
            "student_forces_mae_mev_per_a": best["student_forces_mae_mev_per_a"],
            "student_energy_mae_mev_per_atom": best["student_energy_mae_mev_per_atom"],
            "labels_total": rows[-1]["labels_total"],
        }


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
