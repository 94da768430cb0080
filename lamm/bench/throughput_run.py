"""`lamm bench throughput` end to end: plan the cases, measure them (or reuse their timings),
check the timings against the rebuilt plans, and write the step table, the calibrated scaling
table and Fig. 6.

`args` is the parsed `lamm bench throughput` namespace (`lamm.commands.bench_throughput` checks
it); the trainer config comes in already loaded, the launch settings already resolved.
"""

from __future__ import annotations

import argparse
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamm.bench import balance as sim
from lamm.bench import throughput_stats as stats
from lamm.bench.throughput import (
    JOINT,
    ThroughputCase,
    case_dir,
    dataset_subsets,
    peak_atoms_per_rank,
    rank_step_totals,
    run_cases,
    splits_for_group_steps,
    train_natoms,
)
from lamm.bench.throughput_figures import fig6_step_time
from lamm.data.cost import CostModel, edge_counts
from lamm.data.store import StructureStore
from lamm.launch import LaunchSettings, launch
from lamm.models.build import resolve_model_config
from lamm.tables import write_csv
from lamm.tracking import RunTracker


@dataclass
class Plan:
    """The cases of one benchmark and what was planned for each dataset."""

    cases: list[ThroughputCase]
    caps: dict[str, dict[str, int]]  # dataset -> the cap and random's peak at the capped batch
    splits: dict[str, int]  # dataset -> LaMM's S
    samples: dict[str, tuple]  # dataset -> (natoms, sizes) of its training samples
    world_size: int
    temperature: float


def run_benchmark(
    args: argparse.Namespace, config: dict[str, Any], settings: LaunchSettings
) -> dict[str, Any]:
    """Measure (or reuse) every case and write the tables and the figure; returns the summary."""
    started = time.monotonic()
    subsets = list(config["data"]["subsets"])
    data_dir = Path(args.data or config["data"]["dir"])
    plan = plan_cases(args, data_dir, subsets, settings.world_size, config["data"]["temperature"])
    if not args.reuse:
        # stale timings of an earlier run must not mix in
        shutil.rmtree(args.work_dir, ignore_errors=True)
    stores = [str(data_dir / f"{s}.lmdb") for s in subsets]
    params = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"
    }
    with RunTracker(
        "bench", "bench-throughput", params={**params, "world_size": plan.world_size}, inputs=stores
    ) as tracker:
        _measure(args, plan, config, data_dir, settings)
        measured_s = time.monotonic() - started
        repeats = complete_repeats(args, plan.cases)
        tracker.log_metrics({"repeats_done": repeats})
        model_config = resolve_model_config(config["model"])
        graph = dict(cutoff=model_config["cutoff"], max_neighbors=model_config["max_neighbors"])
        timings = load_timings(args, plan, repeats, data_dir, subsets, graph)
        rows, step_times = case_rows(args, plan, timings)
        add_speedups(rows, args.cap_reference_batch)
        all_timings = [t for c in plan.cases for t in timings[c]]
        _, _, r2_atoms = stats.fit_cost_model(all_timings, args.warmup)
        model, overhead, r2 = stats.fit_cost_model(all_timings, args.warmup, use_edges=True)
        calibration = {**model.to_dict(), "step_overhead_s": overhead, "r2": r2}
        calibration["r2_atoms_only"] = r2_atoms
        cost = (model, overhead, calibration)
        scaling = scaling_rows(args, plan, timings, rows, data_dir, subsets, graph, cost)
        table = write_csv(rows, args.out)
        scaling_table = write_csv(scaling, args.scaling_out)
        _figure(args, plan, timings, step_times)
        summary = {
            "table": str(table),
            "scaling_table": str(scaling_table),
            "figure": str(args.figure),
            **_summary(rows, plan, calibration, time.monotonic() - started, measured_s),
        }
        tracker.log_metrics({f"samples_per_s.{k}": v for k, v in summary["samples_per_s"].items()})
        tracker.log_metrics({f"idle_mean_s.{k}": v for k, v in summary["idle_mean_s"].items()})
        tracker.log_metrics(
            {
                "calibration_r2": r2,
                "calibration_r2_atoms_only": r2_atoms,
                "wall_s": summary["wall_s"],
            }
        )
        for path in (table, scaling_table, args.figure):
            tracker.log_artifact(path)
    return summary


def plan_cases(
    args: argparse.Namespace,
    data_dir: Path,
    subsets: list[str],
    world_size: int,
    temperature: float,
) -> Plan:
    """Every (sampler, dataset, batch) case, plus lamm at `--capped-batch` under the peak atoms
    per rank that random needs at `--cap-reference-batch`."""
    plan = Plan([], {}, {}, {}, world_size, temperature)
    for dataset in args.datasets:
        natoms, sizes = train_natoms(data_dir, dataset_subsets(dataset, subsets))
        plan.samples[dataset] = (natoms, sizes)
        plan.splits[dataset] = num_splits = splits_for_group_steps(
            natoms,
            sizes,
            world_size=world_size,
            temperature=temperature,
            seed=args.seed,
            group_steps=args.group_steps,
        )
        peak = dict(
            world_size=world_size, temperature=temperature, num_splits=num_splits, seed=args.seed
        )
        plan.cases += [
            ThroughputCase(s, dataset, b, num_splits=num_splits)
            for b in args.batch_per_rank
            for s in args.samplers
        ]
        if args.capped_batch and "lamm" in args.samplers:
            cap = peak_atoms_per_rank(
                natoms, sizes, strategy="random", batch_per_rank=args.cap_reference_batch, **peak
            )
            plan.caps[dataset] = {
                "cap": cap,
                "random_peak_at_capped_batch": peak_atoms_per_rank(
                    natoms, sizes, strategy="random", batch_per_rank=args.capped_batch, **peak
                ),
            }
            plan.cases.append(
                ThroughputCase("lamm", dataset, args.capped_batch, cap, num_splits=num_splits)
            )
    return plan


def _measure(
    args: argparse.Namespace,
    plan: Plan,
    config: dict[str, Any],
    data_dir: Path,
    settings: LaunchSettings,
) -> None:
    """Run every case on the ranks (one process group), or check that `--reuse` has them."""
    if args.reuse:
        missing = [
            str(case_dir(args.work_dir, c, r))
            for c in plan.cases
            for r in range(args.repeats)
            if not (case_dir(args.work_dir, c, r) / "timings.csv").is_file()
        ]
        if missing:
            more = " ..." if len(missing) > 3 else ""
            raise SystemExit(
                f"lamm bench throughput --reuse: no timings.csv in {missing[:3]}{more}"
            )
        return
    launch(
        run_cases,
        {
            "cases": plan.cases,
            "base_config": config,
            "data_dir": data_dir,
            "out_root": args.work_dir,
            "steps": args.steps,
            "seed": args.seed,
            "repeats": args.repeats,
            "budget_s": None if args.budget_minutes is None else 60.0 * args.budget_minutes,
        },
        settings,
        folder=args.work_dir / "submitit",
        name="lamm-bench-throughput",
    )


def complete_repeats(args: argparse.Namespace, cases: list[ThroughputCase]) -> int:
    """Repeats that ran for every case (a budget may have stopped the rest)."""
    repeats = next(
        (
            r
            for r in range(args.repeats)
            if not all((case_dir(args.work_dir, c, r) / "timings.csv").is_file() for c in cases)
        ),
        args.repeats,
    )
    if repeats == 0:
        raise SystemExit(f"lamm bench throughput: no complete repeat under {args.work_dir}")
    return repeats


def load_timings(
    args: argparse.Namespace,
    plan: Plan,
    repeats: int,
    data_dir: Path,
    subsets: list[str],
    graph: dict[str, Any],
) -> dict[ThroughputCase, list]:
    """Each case's timing tables, sorted by (step, rank), with the edges of each rank-step; the
    atoms the trainer logged must be the ones the rebuilt plan puts on each rank."""
    timings = {
        c: [
            stats.read_timings(case_dir(args.work_dir, c, r) / "timings.csv")
            for r in range(repeats)
        ]
        for c in plan.cases
    }
    edges_of = {}
    for dataset in args.datasets:
        stores_of = [
            StructureStore(data_dir / f"{s}.lmdb") for s in dataset_subsets(dataset, subsets)
        ]
        edges_of[dataset] = np.concatenate(
            [edge_counts(s, **graph)[s.indices("train")] for s in stores_of]
        )
    for case in plan.cases:
        natoms, sizes = plan.samples[case.dataset]
        plan_args = dict(
            world_size=plan.world_size,
            temperature=plan.temperature,
            num_splits=plan.splits[case.dataset],
            seed=args.seed,
            steps=args.steps,
        )
        atoms = rank_step_totals(natoms, natoms, sizes, case, **plan_args)  # [steps, W]
        edges = rank_step_totals(edges_of[case.dataset], natoms, sizes, case, **plan_args)
        for r in range(len(timings[case])):
            table = timings[case][r] = timings[case][r].sort_values(
                ["step", "rank"], ignore_index=True
            )
            if not np.array_equal(table["atoms"].to_numpy(), atoms.reshape(-1)):
                raise SystemExit(
                    f"lamm bench throughput: {case_dir(args.work_dir, case, r)}/timings.csv "
                    "does not match the planned atoms per rank"
                )
            table["edges"] = edges.reshape(-1)
    return timings


def case_rows(
    args: argparse.Namespace, plan: Plan, timings: dict[ThroughputCase, list]
) -> tuple[list[dict[str, Any]], dict[tuple, np.ndarray]]:
    """One row of step statistics per case, and each case's step times after warm-up (Fig. 6)."""
    rows, step_times = [], {}
    for case in plan.cases:
        tables = [stats.step_table(t, args.warmup) for t in timings[case]]
        capped = case.max_atoms_per_rank
        rows.append(
            {
                "sampler": case.sampler,
                "dataset": case.dataset,
                "world_size": plan.world_size,
                "batch_per_rank": case.batch_per_rank,
                **stats.summarize_repeats(tables),
                "max_atoms_per_rank": capped,
                "num_splits": case.num_splits,
                "random_peak_atoms_at_this_batch": plan.caps[case.dataset][
                    "random_peak_at_capped_batch"
                ]
                if capped
                else None,
            }
        )
        label = f"B'={case.batch_per_rank}" + (f" cap {capped}" if capped else "")
        step_times[(case.dataset, f"{case.sampler} {label}", case.sampler)] = np.concatenate(
            [t["step_s"].to_numpy() for t in tables]
        )
    return rows, step_times


def add_speedups(rows: list[dict[str, Any]], cap_reference_batch: int) -> None:
    """Speedups over random at the same batch; the capped run against random at the reference
    batch (the same memory per rank)."""
    random_rows = {(r["dataset"], r["batch_per_rank"]): r for r in rows if r["sampler"] == "random"}
    for row in rows:
        capped = row["max_atoms_per_rank"]
        reference = cap_reference_batch if capped else row["batch_per_rank"]
        baseline = random_rows.get((row["dataset"], reference))
        row["speedup_vs_random"] = (
            row["samples_per_s"] / baseline["samples_per_s"] if baseline else None
        )
        row["speedup_vs_random_median_step"] = (
            row["samples_per_s_median_step"] / baseline["samples_per_s_median_step"]
            if baseline
            else None
        )
        # compute per edge against random's on the same structures (the windows are whole
        # lamm groups, so every sampler trains on the same ones): > 1 means the batching
        # itself made the work dearer (not for the capped run: other structures)
        row["compute_per_edge_vs_random"] = (
            row["compute_us_per_edge"] / baseline["compute_us_per_edge"]
            if baseline
            and not capped
            and row["compute_us_per_edge"]
            and baseline["compute_us_per_edge"]
            else None
        )
        # the step-time gain of the balance alone at equal work (not for the capped run)
        row["efficiency_speedup_vs_random"] = (
            row["efficiency"] / baseline["efficiency"] if baseline and not capped else None
        )


def scaling_rows(
    args: argparse.Namespace,
    plan: Plan,
    timings: dict[ThroughputCase, list],
    rows: list[dict[str, Any]],
    data_dir: Path,
    subsets: list[str],
    graph: dict[str, Any],
    cost: tuple[CostModel, float, dict[str, float]],
) -> list[dict[str, Any]]:
    """The balance simulation with the calibrated cost at `--scaling-world-sizes`; at the
    measured world size each row also carries the measured speedup and the cost model's
    prediction of it on the measured steps. `cost`: the calibrated model, its step overhead and
    the calibration summary (with its R^2)."""
    model, overhead, calibration = cost
    scaling = []
    for dataset in args.datasets:
        names = dataset_subsets(dataset, subsets)
        workload = sim.workload_from_stores(
            [data_dir / f"{s}.lmdb" for s in names], work="cost", cost_model=model, **graph
        )
        simulated = sim.simulate(
            workload,
            world_sizes=args.scaling_world_sizes,
            batches_per_rank=args.batch_per_rank,
            strategies=args.samplers,
            temperature=plan.temperature,
            num_splits=plan.splits[dataset],
            seed=args.seed,
            epochs=args.scaling_epochs,
            step_overhead=overhead,
        )
        for row in simulated:
            row.update(
                dataset=dataset,
                cost_per_structure_s=model.per_structure,
                cost_per_atom_s=model.per_atom,
                cost_per_edge_s=model.per_edge,
                step_overhead_s=overhead,
                calibration_r2=calibration["r2"],
                calibration_r2_atoms_only=calibration["r2_atoms_only"],
                measured_speedup=None,
                model_on_measured_steps_speedup=None,
                measured_efficiency=None,
            )
            if row["world_size"] == plan.world_size:
                _add_measured(row, dataset, plan, timings, rows, model, overhead, args.warmup)
        scaling.extend(simulated)
    return scaling


def _add_measured(
    row: dict[str, Any],
    dataset: str,
    plan: Plan,
    timings: dict[ThroughputCase, list],
    rows: list[dict[str, Any]],
    model: CostModel,
    overhead: float,
    warmup: int,
) -> None:
    """The measured speedup and efficiency of this simulated row's case, and the cost model's
    speedup predicted on the measured steps."""
    measured = {
        c.sampler: c
        for c in plan.cases
        if c.dataset == dataset
        and c.batch_per_rank == row["batch_per_rank"]
        and not c.max_atoms_per_rank
    }
    if row["strategy"] not in measured or "random" not in measured:
        return
    mine, base = measured[row["strategy"]], measured["random"]
    measured_row = next(
        r
        for r in rows
        if (r["dataset"], r["sampler"], r["batch_per_rank"], r["max_atoms_per_rank"])
        == (dataset, mine.sampler, mine.batch_per_rank, None)
    )
    row["measured_speedup"] = measured_row["speedup_vs_random"]
    row["measured_efficiency"] = measured_row["efficiency"]

    def predict(case: ThroughputCase) -> float:
        return float(
            np.mean([stats.predicted_step_time(t, model, overhead, warmup) for t in timings[case]])
        )

    row["model_on_measured_steps_speedup"] = predict(base) / predict(mine)


def _figure(
    args: argparse.Namespace,
    plan: Plan,
    timings: dict[ThroughputCase, list],
    step_times: dict[tuple, np.ndarray],
) -> None:
    """Fig. 6; panel c shows random and lamm on the joint data (or the last dataset) at the
    cap's reference batch when it was measured, else at the largest batch."""
    args.figure.parent.mkdir(parents=True, exist_ok=True)
    joint_or_last = JOINT if JOINT in args.datasets else args.datasets[-1]
    panel_c_batch = (
        args.cap_reference_batch
        if args.cap_reference_batch in args.batch_per_rank
        else max(args.batch_per_rank)
    )
    panel_c = {
        c.sampler: timings[c][0]
        for c in plan.cases
        if c.dataset == joint_or_last
        and c.batch_per_rank == panel_c_batch
        and not c.max_atoms_per_rank
        and c.sampler in ("random", "lamm")
    }
    fig6_step_time(step_times, args.datasets, panel_c, args.figure, warmup=args.warmup)


def _summary(
    rows: list[dict[str, Any]],
    plan: Plan,
    calibration: dict[str, float],
    wall: float,
    measured_s: float,
) -> dict[str, Any]:
    def key(r: dict[str, Any]) -> str:
        cap = "cap" if r["max_atoms_per_rank"] else ""
        return f"{r['dataset']}/{r['sampler']}/B{r['batch_per_rank']}{cap}"

    return {
        "wall_s": round(wall, 1),
        "measure_s": round(measured_s, 1),
        "world_size": plan.world_size,
        "samples_per_s": {key(r): round(r["samples_per_s"], 2) for r in rows},
        "efficiency": {key(r): round(r["efficiency"], 3) for r in rows},
        "idle_mean_s": {key(r): round(r["idle_mean_s"], 4) for r in rows},
        "calibration": calibration,
        "caps": plan.caps,
        "num_splits": plan.splits,
    }
