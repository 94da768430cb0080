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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lamm.launch import LaunchSettings
from lamm.tables import write_csv
from lamm.tracking import RunTracker


def run_benchmark(
    args: argparse.Namespace, config: dict[str, Any], settings: LaunchSettings
) -> dict[str, Any]:
    """Measure (or reuse) every case and write the tables and the figure; returns the summary."""
    started = time.monotonic()
    subsets = list(config["data"]["subsets"])
    data_dir = Path(args.data or config["data"]["dir"])
    world_size, temperature = settings.world_size, config["data"]["temperature"]
    plan = plan_cases(args, subsets, data_dir, world_size, temperature)
    if not args.reuse:  # stale timings of an earlier run must not mix in
        shutil.rmtree(args.work_dir, ignore_errors=True)
    stores = [str(data_dir / f"{s}.lmdb") for s in subsets]
    params = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "func"
    }
    with RunTracker(
        "bench", "bench-throughput", params={**params, "world_size": world_size}, inputs=stores
    ) as tracker:
        repeats = measure(args, plan, config, data_dir, settings)
        measured_s = time.monotonic() - started
        tracker.log_metrics({"repeats_done": repeats})
        timings, graph = read_timings(
            args, plan, repeats, config, data_dir, subsets, world_size, temperature
        )
        rows, step_times = case_rows(args, plan, timings, world_size)
        scaling, calibration = scaling_rows(
            args, plan, timings, rows, graph, subsets, data_dir, world_size, temperature
        )
        table = write_csv(rows, args.out)
        scaling_table = write_csv(scaling, args.scaling_out)
        figure(args, plan, timings, step_times)
        wall = time.monotonic() - started
        summary = {
            "table": str(table),
            "scaling_table": str(scaling_table),
            "figure": str(args.figure),
            "wall_s": round(wall, 1),
            "measure_s": round(measured_s, 1),
            "world_size": world_size,
            "samples_per_s": per_case(rows, "samples_per_s", 2),
            "efficiency": per_case(rows, "efficiency", 3),
            "idle_mean_s": per_case(rows, "idle_mean_s", 4),
            "calibration": calibration,
            "caps": plan.caps,
            "num_splits": plan.splits,
        }
        tracker.log_metrics({f"samples_per_s.{k}": v for k, v in summary["samples_per_s"].items()})
        tracker.log_metrics({f"idle_mean_s.{k}": v for k, v in summary["idle_mean_s"].items()})
        tracker.log_metrics(
            {
                "calibration_r2": calibration["r2"],
                "calibration_r2_atoms_only": calibration["r2_atoms_only"],
                "wall_s": wall,
            }
        )
        for path in (table, scaling_table, args.figure):
            tracker.log_artifact(path)
    return summary


@dataclass
class Plan:
    """The cases to time and what the analysis needs of their data."""

    cases: list = field(default_factory=list)  # [ThroughputCase]
    caps: dict[str, dict[str, int]] = field(default_factory=dict)
    splits: dict[str, int] = field(default_factory=dict)
    samples: dict[str, tuple] = field(default_factory=dict)  # dataset -> (natoms, sizes)


def plan_cases(
    args: argparse.Namespace, subsets: list[str], data_dir: Path, world_size: int, temperature
) -> Plan:
    """Every case: each sampler at each batch, lamm at the capped batch, and random at the capped
    batch (uncapped: the balance alone at that batch) unless --no-random-at-capped-batch."""
    from lamm.bench.throughput import (
        ThroughputCase,
        dataset_subsets,
        peak_atoms_per_rank,
        splits_for_group_steps,
        train_natoms,
    )

    plan = Plan()
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
        if not args.capped_batch or "lamm" not in args.samplers:
            continue
        cap = peak_atoms_per_rank(
            natoms, sizes, strategy="random", batch_per_rank=args.cap_reference_batch, **peak
        )
        plan.caps[dataset] = {
            "cap": cap,
            "random_peak_at_capped_batch": peak_atoms_per_rank(
                natoms, sizes, strategy="random", batch_per_rank=args.capped_batch, **peak
            ),
        }
        if (
            args.random_at_capped_batch
            and "random" in args.samplers
            and args.capped_batch not in args.batch_per_rank
        ):
            plan.cases.append(
                ThroughputCase("random", dataset, args.capped_batch, num_splits=num_splits)
            )
        plan.cases.append(
            ThroughputCase("lamm", dataset, args.capped_batch, cap, num_splits=num_splits)
        )
    return plan


def measure(args: argparse.Namespace, plan: Plan, config: dict, data_dir: Path, settings) -> int:
    """Run the cases (or, with --reuse, check their timings are there); returns the number of
    repeats that ran for every case (a budget may have stopped the rest)."""
    from lamm.bench.throughput import case_dir, run_cases
    from lamm.launch import launch

    if args.reuse:
        missing = [
            str(case_dir(args.work_dir, c, r))
            for c in plan.cases
            for r in range(args.repeats)
            if not (case_dir(args.work_dir, c, r) / "timings.csv").is_file()
        ]
        if missing:
            raise SystemExit(
                f"lamm bench throughput --reuse: no timings.csv in "
                f"{missing[:3]}{' ...' if len(missing) > 3 else ''}"
            )
    else:
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
    complete = (
        r
        for r in range(args.repeats)
        if not all((case_dir(args.work_dir, c, r) / "timings.csv").is_file() for c in plan.cases)
    )
    repeats = next(complete, args.repeats)
    if repeats == 0:
        raise SystemExit(f"lamm bench throughput: no complete repeat under {args.work_dir}")
    return repeats


def read_timings(
    args, plan: Plan, repeats: int, config: dict, data_dir: Path, subsets, world_size, temperature
):
    """{case: [timings of each repeat]}, each checked against the rebuilt plan and given the
    edges each rank trained on per step."""
    import numpy as np

    from lamm.bench import throughput_stats as stats
    from lamm.bench.throughput import case_dir, dataset_subsets, rank_step_totals
    from lamm.data.cost import edge_counts
    from lamm.data.store import StructureStore
    from lamm.models.build import resolve_model_config

    timings = {
        c: [
            stats.read_timings(case_dir(args.work_dir, c, r) / "timings.csv")
            for r in range(repeats)
        ]
        for c in plan.cases
    }
    model_config = resolve_model_config(config["model"])
    graph = dict(cutoff=model_config["cutoff"], max_neighbors=model_config["max_neighbors"])
    edges_of = {}
    for dataset in args.datasets:
        stores = [StructureStore(data_dir / f"{s}.lmdb") for s in dataset_subsets(dataset, subsets)]
        edges_of[dataset] = np.concatenate(
            [edge_counts(s, **graph)[s.indices("train")] for s in stores]
        )
    for case in plan.cases:
        natoms, sizes = plan.samples[case.dataset]
        plan_args = dict(
            world_size=world_size,
            temperature=temperature,
            num_splits=plan.splits[case.dataset],
            seed=args.seed,
            steps=args.steps,
        )
        atoms = rank_step_totals(natoms, natoms, sizes, case, **plan_args)  # [steps, W]
        edges = rank_step_totals(edges_of[case.dataset], natoms, sizes, case, **plan_args)
        for r, table in enumerate(timings[case]):
            table = timings[case][r] = table.sort_values(["step", "rank"], ignore_index=True)
            # the rebuilt plan must be the one the trainer followed
            if not np.array_equal(table["atoms"].to_numpy(), atoms.reshape(-1)):
                raise SystemExit(
                    f"lamm bench throughput: {case_dir(args.work_dir, case, r)}/timings.csv does "
                    f"not match the planned atoms per rank"
                )
            table["edges"] = edges.reshape(-1)
    return timings, graph


def case_rows(args, plan: Plan, timings, world_size: int):
    """One row per case (statistics pooled over repeats, their spread) and the step times per case
    for Fig. 6."""
    import numpy as np

    from lamm.bench import throughput_stats as stats

    rows, step_times = [], {}
    for case in plan.cases:
        tables = [stats.step_table(t, args.warmup) for t in timings[case]]
        capped = bool(case.max_atoms_per_rank)
        rows.append(
            {
                "sampler": case.sampler,
                "dataset": case.dataset,
                "world_size": world_size,
                "batch_per_rank": case.batch_per_rank,
                **stats.summarize_repeats(tables),
                "max_atoms_per_rank": case.max_atoms_per_rank,
                "reference_batch_per_rank": args.cap_reference_batch if capped else None,
                "num_splits": case.num_splits,
                "random_peak_atoms_at_this_batch": plan.caps[case.dataset][
                    "random_peak_at_capped_batch"
                ]
                if capped
                else None,
            }
        )
        label = f"B'={case.batch_per_rank}" + (f" cap {case.max_atoms_per_rank}" if capped else "")
        step_times[(case.dataset, f"{case.sampler} {label}", case.sampler)] = np.concatenate(
            [t["step_s"].to_numpy() for t in tables]
        )
    add_speedups(rows)
    return rows, step_times


def _ratio(row: dict, baseline: dict | None, column: str) -> float | None:
    if baseline is None or not row.get(column) or not baseline.get(column):
        return None
    return row[column] / baseline[column]


def add_speedups(rows: list[dict]) -> None:
    """Speedup over random at the same batch; the capped run's `speedup_vs_random` against random
    at the reference batch (the same memory per rank) and `speedup_vs_random_same_batch` against
    random at its own batch when that ran."""
    randoms = {
        (r["dataset"], r["batch_per_rank"]): r
        for r in rows
        if r["sampler"] == "random" and not r["max_atoms_per_rank"]
    }
    for row in rows:
        capped = bool(row["max_atoms_per_rank"])
        same_batch = randoms.get((row["dataset"], row["batch_per_rank"]))
        baseline = (
            randoms.get((row["dataset"], row["reference_batch_per_rank"])) if capped else same_batch
        )
        row["speedup_vs_random"] = _ratio(row, baseline, "samples_per_s")
        row["speedup_vs_random_median_step"] = _ratio(row, baseline, "samples_per_s_median_step")
        row["speedup_vs_random_same_batch"] = _ratio(row, same_batch, "samples_per_s")
        # compute per edge against random's on the same structures (the windows are whole lamm
        # groups, so every sampler trains on the same ones): > 1 means the batching itself made
        # the work dearer (not for the capped run: other structures)
        row["compute_per_edge_vs_random"] = (
            None if capped else _ratio(row, baseline, "compute_us_per_edge")
        )
        # the step-time gain of the balance alone at equal work (not for the capped run)
        row["efficiency_speedup_vs_random"] = (
            None if capped else _ratio(row, baseline, "efficiency")
        )


def scaling_rows(
    args, plan: Plan, timings, rows, graph, subsets, data_dir: Path, world_size, temperature
):
    """The cost model fitted on every measured step, and the balance simulation with it at
    --scaling-world-sizes, each row at the measured world size beside what was measured."""
    from lamm.bench import balance as sim
    from lamm.bench import throughput_stats as stats
    from lamm.bench.throughput import dataset_subsets

    all_timings = [t for c in plan.cases for t in timings[c]]
    _, _, r2_atoms = stats.fit_cost_model(all_timings, args.warmup)
    model, overhead, r2 = stats.fit_cost_model(all_timings, args.warmup, use_edges=True)
    calibration = dict(
        cost_per_structure_s=model.per_structure,
        cost_per_atom_s=model.per_atom,
        cost_per_edge_s=model.per_edge,
        step_overhead_s=overhead,
        calibration_r2=r2,
        calibration_r2_atoms_only=r2_atoms,
    )
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
            temperature=temperature,
            num_splits=plan.splits[dataset],
            seed=args.seed,
            epochs=args.scaling_epochs,
            step_overhead=overhead,
        )
        for row in simulated:
            row.update(dataset=dataset, **calibration)
            row.update(
                measured_speedup=None,
                model_on_measured_steps_speedup=None,
                measured_efficiency=None,
            )
            if row["world_size"] == world_size:
                _beside_measured(row, plan, timings, rows, model, overhead, args.warmup)
        scaling.extend(simulated)
    return scaling, {
        **model.to_dict(),
        "step_overhead_s": overhead,
        "r2": r2,
        "r2_atoms_only": r2_atoms,
    }


def _beside_measured(row, plan: Plan, timings, rows, model, overhead: float, warmup: int) -> None:
    """A simulated row at the measured world size: the measured speedup and efficiency of its
    case, and the cost model's speedup on the measured steps themselves."""
    import numpy as np

    from lamm.bench import throughput_stats as stats

    measured = {
        c.sampler: c
        for c in plan.cases
        if c.dataset == row["dataset"]
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
        == (mine.dataset, mine.sampler, mine.batch_per_rank, None)
    )
    row["measured_speedup"] = measured_row["speedup_vs_random"]
    row["measured_efficiency"] = measured_row["efficiency"]

    def predict(case) -> float:
        return float(
            np.mean([stats.predicted_step_time(t, model, overhead, warmup) for t in timings[case]])
        )

    row["model_on_measured_steps_speedup"] = predict(base) / predict(mine)


def figure(args, plan: Plan, timings, step_times) -> None:
    """Fig. 6: step-time distributions, and panel c (per-rank work) of random and lamm on the
    joint set (else the last) at the reference batch (else the largest)."""
    from lamm.bench.throughput import JOINT
    from lamm.bench.throughput_figures import fig6_step_time

    args.figure.parent.mkdir(parents=True, exist_ok=True)
    joint_or_last = JOINT if JOINT in args.datasets else args.datasets[-1]
    batch = (
        args.cap_reference_batch
        if args.cap_reference_batch in args.batch_per_rank
        else max(args.batch_per_rank)
    )
    panel_c = {
        c.sampler: timings[c][0]
        for c in plan.cases
        if c.dataset == joint_or_last
        and c.batch_per_rank == batch
        and not c.max_atoms_per_rank
        and c.sampler in ("random", "lamm")
    }
    fig6_step_time(step_times, args.datasets, panel_c, args.figure, warmup=args.warmup)


def per_case(rows, column: str, digits: int) -> dict[str, float]:
    return {
        f"{r['dataset']}/{r['sampler']}/B{r['batch_per_rank']}"
        + ("cap" if r["max_atoms_per_rank"] else ""): round(r[column], digits)
        for r in rows
    }
