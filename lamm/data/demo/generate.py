"""Build the demo stores: systems in parallel, results in a fixed order, one store per subset.

Every system draws from its own generator, a pure function of (seed, family, index)
(`systems.system_rng`), and results are consumed in index order (`Pool.imap`), so the stores
are the same bytes for any number of workers and any scheduling. A family builds systems in
rounds until each requested subset has its target; systems past that point are discarded
(not counted), so the stopping point is deterministic too.

Splits go by the ordinal of the system among those that produced records: pre-training
subsets put every 10th system (ordinal 1, 11, 21, ...) into `val` (frames of one relaxation
never straddle splits); the downstream set also every 10th into `test` (ordinal 2, 12, ...).

Labeling failures are counted per subset and reason, logged, stored in each store's info
(`failures`) and returned; none is dropped silently.

Stores are written family by family as soon as complete, and a rerun keeps those already
written with the same scale, seed and GENERATOR_VERSION, so an interrupted run resumes.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lamm.data.demo.alloy_md import DRIVER as HME21_DRIVER
from lamm.data.demo.catalog import (
    ADSORPTION_REFERENCE,
    FamilySpec,
    frames_per_system,
    label_set,
    subset_spec,
    target_sizes,
)
from lamm.data.demo.labelers import DemoFailure
from lamm.data.demo.systems import SystemRequest, SystemResult, system_rng
from lamm.data.demo.universal import provenance
from lamm.data.record import StructureRecord
from lamm.data.store import SPLITS, StructureStore, StructureStoreWriter
from lamm.log import progress

log = logging.getLogger(__name__)

VAL_EVERY = 10
MAX_ROUNDS = 20
# Generator versions live per label set (catalog.LABEL_SETS): a light store of version 3 is
# the same bytes as before the universal labels existed.
GENERATOR_VERSION = label_set("light").version
_SINGLE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass
class _FamilyState:
    spec: FamilySpec
    wanted: dict[str, int]  # requested subset -> target
    frames: int
    labels: str = "light"
    next_index: int = 0  # systems handed to the pool so far
    consumed: int = 0  # systems used before the family was complete
    productive: int = 0  # systems that yielded records (the split ordinal)
    records: dict[str, list[tuple[StructureRecord, str]]] = field(default_factory=dict)
    failures: dict[str, Counter] = field(default_factory=dict)
    yields: Counter = field(
        default_factory=Counter
    )  # records obtained per subset, before truncation

    def deficit(self, subset: str) -> int:
        return self.wanted[subset] - len(self.records.setdefault(subset, []))

    @property
    def complete(self) -> bool:
        return all(self.deficit(s) <= 0 for s in self.wanted)

    def systems_needed(self) -> int:
        """Systems for the next round, from the yield so far (optimistic guess at first)."""
        needed = 0
        for subset in self.wanted:
            deficit = self.deficit(subset)
            if deficit <= 0:
                continue
            per_system = 1 if subset == self.spec.is2re else self.frames
            if self.consumed:
                per_system = max(self.yields[subset] / self.consumed, 0.1)
            needed = max(needed, math.ceil(deficit / per_system * 1.05))
        return needed

    def split(self, downstream: bool) -> str:
        ordinal = self.productive % VAL_EVERY
        if ordinal == 1:
            return "val"
        return "test" if downstream and ordinal == 2 else "train"

    def consume(self, result: SystemResult | SystemFailure) -> None:
        if self.complete:
            return  # past the stopping point: discarded, not counted
        self.consumed += 1
        if isinstance(result, SystemFailure):
            for subset in self.wanted:
                self.failures.setdefault(subset, Counter())[result.reason] += 1
            return
        for subset, reason in result.failures.items():
            if subset in self.wanted:
                self.failures.setdefault(subset, Counter())[reason] += 1
        produced = [s for s in self.wanted if result.records.get(s)]
        if not produced:
            return
        downstream = any(subset_spec(s, self.labels).role == "downstream" for s in produced)
        split = self.split(downstream)
        self.productive += 1
        for subset in produced:
            self.yields[subset] += len(result.records[subset])
            room = max(self.deficit(subset), 0)
            self.records[subset].extend((record, split) for record in result.records[subset][:room])


@dataclass(frozen=True)
class SystemFailure:
    """A system that failed as a whole (picklable, unlike an exception with extra fields)."""

    reason: str
    detail: str


def _build(task: tuple[FamilySpec, int, int, int]) -> SystemResult | SystemFailure:
    family, index, seed, frames = task
    try:
        return family.build(
            SystemRequest(family.name, index, frames), system_rng(seed, family.name, index)
        )
    except DemoFailure as failure:
        return SystemFailure(failure.reason, failure.detail)


@dataclass
class DemoReport:
    scale: str
    seed: int
    workers: int
    wall_s: float
    subsets: dict[str, dict[str, Any]]
    labels: str = "light"

    def as_dict(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "labels": self.labels,
            "seed": self.seed,
            "workers": self.workers,
            "wall_s": round(self.wall_s, 2),
            "subsets": self.subsets,
        }


def generate_demo(
    out_dir: str | os.PathLike,
    *,
    scale: str = "small",
    seed: int = 0,
    subsets: list[str] | None = None,
    workers: int = 1,
    labels: str = "light",
) -> DemoReport:
    """Write `out_dir/<subset>.lmdb` for the requested subsets (default: all of the label set).

    `labels` picks the label set (`catalog`): "light" (EMT, GFN2-xTB) or "universal" (universal
    potentials trained on real DFT for the periodic subsets; `pip install .[labelers]`).
    Each family's stores are written as soon as the family is complete; a rerun keeps stores
    already written with the same labels, scale, seed and generator version (an interrupted run
    resumes family by family). Workers are spawned, so a script calling this must do so under
    `if __name__ == "__main__":` (the `lamm` command does)."""
    start = time.perf_counter()
    out = Path(out_dir)
    chosen = label_set(labels)
    targets = target_sizes(scale, labels)
    names = [s.name for s in chosen.subsets]
    requested = list(names if subsets is None else subsets)
    for name in requested:
        subset_spec(name, labels)  # raises ValueError naming an unknown subset
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if labels == "universal":
        from lamm.data.demo.universal import LABELERS, require_labelers

        require_labelers(
            sorted({subset_spec(n, labels).labeler for n in requested} & set(LABELERS))
        )
    report: dict[str, dict[str, Any]] = {}
    states = []
    for family in chosen.families:
        wanted = {s: targets[s] for s in family.subsets if s in requested}
        if not wanted:
            continue
        existing = {
            s: _reusable(out / f"{s}.lmdb", scale, seed, n, labels) for s, n in wanted.items()
        }
        if all(store is not None for store in existing.values()):
            log.info(
                "%s: keeping %s (same labels, scale, seed and generator)",
                family.name,
                ", ".join(wanted),
            )
            report.update({s: {**_summary(store), "reused": True} for s, store in existing.items()})
            continue
        frames = frames_per_system(family, scale, labels)
        states.append(_FamilyState(family, wanted, frames, labels))
    if states:
        report.update(_run(states, out, scale, seed, workers))
    ordered = {s: report[s] for s in names if s in report}
    return DemoReport(scale, seed, workers, time.perf_counter() - start, ordered, labels)


def _run(
    states: list[_FamilyState], out: Path, scale: str, seed: int, workers: int
) -> dict[str, dict[str, Any]]:
    report: dict[str, dict[str, Any]] = {}
    # Labelers run single-threaded in each worker: threads would fight over the same cores
    # (and change floating-point summation order between machines).
    saved = {k: os.environ.get(k) for k in _SINGLE_THREAD}
    os.environ.update({k: "1" for k in _SINGLE_THREAD})
    try:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for round_number in range(1, MAX_ROUNDS + 1):
                tasks = []
                for state in states:
                    if state.complete:
                        continue
                    count = state.systems_needed()
                    tasks += [
                        (state.spec, state.next_index + i, seed, state.frames) for i in range(count)
                    ]
                    state.next_index += count
                if not tasks:
                    break
                by_family = {state.spec.name: state for state in states}
                results = pool.imap(_build, tasks, chunksize=1)
                for task, result in zip(
                    tasks,
                    progress(
                        results,
                        desc=f"demo {scale} round {round_number}",
                        total=len(tasks),
                        unit="system",
                    ),
                    strict=True,
                ):
                    if isinstance(result, SystemFailure):
                        log.info(
                            "%s system %d failed: %s %s",
                            task[0].name,
                            task[1],
                            result.reason,
                            result.detail,
                        )
                    state = by_family[task[0].name]
                    state.consume(result)
                    if state.complete and not any(s in report for s in state.wanted):
                        for subset in state.wanted:  # written now: an interruption later keeps them
                            report[subset] = _write_store(out, subset, state, scale, seed)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    unfinished = [
        f"{s}: {st.wanted[s] - st.deficit(s)}/{st.wanted[s]} "
        f"(failures {dict(st.failures.get(s, {}))})"
        for st in states
        for s in st.wanted
        if st.deficit(s) > 0
    ]
    if unfinished:
        raise RuntimeError(
            f"demo data incomplete after {MAX_ROUNDS} rounds: {'; '.join(unfinished)}"
        )
    return report


def _reusable(
    path: Path, scale: str, seed: int, count: int, labels: str = "light"
) -> StructureStore | None:
    """The store at `path` if a previous run wrote it with these settings, else None."""
    if not path.is_file():
        return None
    try:
        store = StructureStore(path)
    except (OSError, ValueError):
        return None
    demo = store.info.get("demo", {})
    same = (
        store.info.get("source") == "demo"
        and demo.get("version") == label_set(labels).version
        and demo.get("labels", "light") == labels
        and demo.get("scale") == scale
        and demo.get("seed") == seed
        and len(store) == count
    )
    return store if same else None


def _write_store(
    out_dir: Path, subset: str, state: _FamilyState, scale: str, seed: int
) -> dict[str, Any]:
    spec = subset_spec(subset, state.labels)
    failures = dict(sorted(state.failures.get(subset, Counter()).items()))
    info = {
        "task": spec.task,
        "functional": spec.functional,
        "periodic": spec.periodic,
        "labels": list(spec.labels),
        "role": spec.role,
        "description": spec.description,
        "labeler": provenance(spec.labeler),
        "demo": {
            "version": label_set(state.labels).version,
            "labels": state.labels,
            "scale": scale,
            "seed": seed,
            "family": state.spec.name,
            "systems": state.consumed,
            "frames_per_system": state.frames if subset == state.spec.s2ef else 1,
        },
        "failures": failures,
    }
    if spec.name == "hme21" and state.labels == "universal":
        info["md_driver"] = provenance(HME21_DRIVER)
    if subset in ADSORPTION_REFERENCE:
        info["adsorption_reference"] = ADSORPTION_REFERENCE[subset].replace("EMT", spec.functional)
    path = out_dir / f"{subset}.lmdb"
    with StructureStoreWriter(
        path, subset=subset, source="demo", energy_kind=spec.energy_kind, extra_info=info
    ) as writer:
        for record, split in state.records[subset]:
            writer.add(record, split)
        summary = _summary(writer.close())
    log.info(
        "%s: %d samples (%s), %d-%d atoms, failures %s",
        subset,
        summary["samples"],
        summary["splits"],
        summary["natoms_min"],
        summary["natoms_max"],
        failures or "none",
    )
    return summary


def _summary(store: StructureStore) -> dict[str, Any]:
    """Samples, splits, atom counts and failures of a demo store, from its metadata."""
    natoms = store.natoms
    splits = {name: int((store.split == code).sum()) for name, code in SPLITS.items()}
    failures = dict(store.info.get("failures", {}))
    return {
        "path": str(store.path),
        "samples": len(store),
        "splits": {k: v for k, v in splits.items() if v},
        "natoms_min": int(natoms.min()),
        "natoms_max": int(natoms.max()),
        "natoms_mean": round(float(natoms.mean()), 2),
        "failures": failures,
        "failed": sum(failures.values()),
        "reused": False,
    }
