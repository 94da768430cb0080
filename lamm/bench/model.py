"""Model throughput benchmark (`lamm bench model`): atoms per second and peak memory.

One batch (by default PEERS.md's: 8 periodic Cu(111) 3x3x8 slabs with one or two CO, 598
atoms, built with ASE) goes through every case (implementation x force mode x phase x dtype),
each case in its own worker process (`lamm.bench.model_worker`) so that peak memory is the
case's own. The same batch file (atoms, edges, targets) feeds our potential and, when a
schnetpack interpreter is given, schnetpack's PaiNN at the same width, depth, number of radial
functions and cutoff, so the two are compared on identical graphs in the same run.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch_geometric.data import Batch

from lamm import keys as K
from lamm.data.graph import collate, structure_to_graph
from lamm.data.record import StructureRecord
from lamm.log import progress
from lamm.models.build import resolve_model_config

log = logging.getLogger(__name__)

WORKER = Path(__file__).resolve().parent / "model_worker.py"

# Benchmark presets: LaMM-S (FAIR-Chem PaiNN h512, 6 layers) and a small demo-sized PaiNN.
PRESETS: dict[str, dict[str, Any]] = {
    "lamm-s": {
        "encoder": "painn", "cutoff": 6.0, "max_neighbors": 50, "force_mode": "direct",
        "painn": {"hidden_channels": 512, "num_layers": 6, "num_rbf": 128}, "heads": {"hidden_channels": 256},
    },
    "demo": {
        "encoder": "painn", "cutoff": 5.0, "max_neighbors": 30, "force_mode": "direct",
        "painn": {"hidden_channels": 64, "num_layers": 3, "num_rbf": 32}, "heads": {"hidden_channels": 32},
    },
}
IMPLEMENTATIONS = ("lamm", "schnetpack")
PHASES = ("train", "infer")
DTYPES = ("float32", "bf16")


@dataclass(frozen=True)
class Case:
    impl: str
    force_mode: str
    phase: str
    dtype: str


def cu111_co_records(num_slabs: int = 8, seed: int = 0) -> list[StructureRecord]:
    """Cu(111) 3x3x8 slabs (10 A vacuum) with CO on top; slabs 5-7 of every 8 carry a second
    CO, so 8 slabs hold 598 atoms. Positions rattled by 0.05 A (seeded) to break symmetry."""
    from ase.build import add_adsorbate, fcc111, molecule

    records = []
    for k in range(num_slabs):
        slab = fcc111("Cu", size=(3, 3, 8), vacuum=10.0)
        for site in range(1 if k % 8 < 5 else 2):
            add_adsorbate(slab, molecule("CO"), 1.9, position=(1.3 + 2.5 * site, 1.5))
        slab.rattle(0.05, seed=seed + k)
        records.append(StructureRecord.from_atoms(slab, source_id=f"cu111_co_{k}"))
    return records


def store_records(path: str | os.PathLike, num_structures: int, seed: int = 0) -> list[StructureRecord]:
    """`num_structures` records of a store drawn without replacement (seeded)."""
    from lamm.data.store import StructureStore

    store = StructureStore(path)
    if len(store) == 0:
        raise ValueError(f"{path}: the store is empty")
    chosen = np.random.default_rng(seed).choice(len(store), size=min(num_structures, len(store)), replace=False)
    return [store.get_record(int(i)) for i in sorted(chosen)]


def make_batch(records: Sequence[StructureRecord], cutoff: float, max_neighbors: int | None) -> Batch:
    """The training pipeline's graphs (same `structure_to_graph` and `collate`)."""
    return collate([structure_to_graph(r, cutoff=cutoff, max_neighbors=max_neighbors, sample_index=i) for i, r in enumerate(records)])


def write_batch(batch: Batch, path: str | os.PathLike, seed: int = 0) -> None:
    """The arrays a worker needs, plus random normalized targets (the loss needs some)."""
    rng = np.random.default_rng(seed)
    num_atoms, num_graphs = int(batch.num_nodes), int(batch[K.NATOMS].shape[0])
    np.savez(
        path,
        atomic_numbers=batch[K.ATOMIC_NUMBERS].numpy(), pos=batch[K.POSITIONS].float().numpy(),
        cell=batch[K.CELL].float().numpy(), edge_index=batch[K.EDGE_INDEX].numpy(),
        cell_offsets=batch[K.CELL_OFFSETS].float().numpy(), batch=batch[K.BATCH].numpy(), natoms=batch[K.NATOMS].numpy(),
        target_energy=rng.normal(size=num_graphs), target_forces=rng.normal(size=(num_atoms, 3)).astype(np.float32),
    )


def plan_cases(modes: Sequence[str], phases: Sequence[str], dtypes: Sequence[str], with_schnetpack: bool) -> list[Case]:
    impls = IMPLEMENTATIONS if with_schnetpack else IMPLEMENTATIONS[:1]
    # per (mode, phase, dtype) ours then schnetpack's, back to back, so drifting load hits both alike
    return [Case(impl, mode, phase, dtype) for mode, phase, dtype, impl in itertools.product(modes, phases, dtypes, impls)]


def _run_worker(python: str, case: Case, batch_path: Path, spec: Mapping[str, Any], timeout: float) -> dict[str, Any]:
    command = [python, str(WORKER), "--impl", case.impl, "--batch", str(batch_path), "--spec", json.dumps(dict(spec))]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"status": f"failed: timed out after {timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        reason = (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1]
        if done.returncode < 0:
            reason = f"killed by signal {-done.returncode} (out of memory?)"
        return {"status": f"failed: {reason}"}
    return {"status": "ok", **json.loads(lines[-1])}


def run_model_benchmark(
    model_config: Mapping[str, Any],
    records: Sequence[StructureRecord],
    cases: Sequence[Case],
    *,
    device: str = "cpu",
    threads: int | None = None,
    warmup: int = 1,
    repeats: int = 3,
    seed: int = 0,
    schnetpack_python: str | None = None,
    timeout: float = 1800.0,
    source: str = "cu111_co",
    rounds: int = 1,
) -> list[dict[str, Any]]:
    """One row per case; failed cases keep a row with `status` saying why."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    config = resolve_model_config(model_config)
    if config["encoder"] != "painn" and any(c.impl == "schnetpack" for c in cases):
        raise ValueError("the schnetpack comparison exists for encoder painn only")
    if any(c.impl == "schnetpack" for c in cases) and not schnetpack_python:
        raise ValueError("schnetpack cases need schnetpack_python (the interpreter of its venv)")
    batch = make_batch(records, config["cutoff"], config["max_neighbors"])
    painn = config["painn"] if config["encoder"] == "painn" else {}
    common = {
        "source": source, "structures": int(batch[K.NATOMS].shape[0]), "atoms": int(batch.num_nodes),
        "edges": int(batch[K.EDGE_INDEX].shape[1]), "device": device, "encoder": config["encoder"],
        # any encoder's own section, plus PaiNN's sizes as columns (the schnetpack comparison's axes)
        "encoder_config": json.dumps(config[config["encoder"]], sort_keys=True),
        "hidden_channels": painn.get("hidden_channels"), "num_layers": painn.get("num_layers"),
        "num_rbf": painn.get("num_rbf"), "cutoff": config["cutoff"], "max_neighbors": config["max_neighbors"],
        "warmup": warmup, "repeats": repeats,
    }
    rows = []
    with tempfile.TemporaryDirectory(prefix="lamm-bench-") as folder:
        batch_path = Path(folder) / "batch.npz"
        write_batch(batch, batch_path, seed=seed)
        # Rounds run every case in turn, so load from other jobs drifting over time hits every
        # case alike; each case reports its fastest round (and its largest peak memory).
        results: dict[Case, list[dict[str, Any]]] = {case: [] for case in cases}
        runs = [case for _ in range(rounds) for case in cases]
        for case in progress(runs, desc="model benchmark", unit="case"):
            spec = {
                "model_config": config, "hidden_channels": common["hidden_channels"], "num_layers": common["num_layers"],
                "num_rbf": common["num_rbf"], "cutoff": config["cutoff"], "force_mode": case.force_mode,
                "phase": case.phase, "dtype": case.dtype, "device": device, "threads": threads,
                "warmup": warmup, "repeats": repeats, "seed": seed,
            }
            python = sys.executable if case.impl == "lamm" else str(schnetpack_python)
            result = _run_worker(python, case, batch_path, spec, timeout)
            log.info("%s %s", case, {k: result.get(k) for k in ("atoms_per_s", "peak_memory_gb", "status")})
            results[case].append(result)
    for case in cases:
        best = combine_rounds(results[case])
        rows.append({
            **common, "impl": case.impl, "force_mode": case.force_mode, "phase": case.phase, "dtype": case.dtype,
            # our memory/time switch (lamm.models.painn_message); schnetpack has none
            "recompute_messages": painn.get("recompute_messages") if case.impl == "lamm" else None,
            "rounds": rounds, **best,
        })
    return rows


def combine_rounds(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One case's rounds -> its fastest round, with the largest peak memory of all rounds and
    every round's median step time; the first failure if any round failed."""
    failed = [r for r in results if r["status"] != "ok"]
    if failed:
        return dict(failed[0])
    best = dict(min(results, key=lambda r: r["step_s_median"]))
    best["peak_memory_gb"] = max(r["peak_memory_gb"] for r in results)
    best["round_step_s"] = json.dumps([round(r["step_s_median"], 4) for r in results])
    return best


def summarize(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Compact per-case numbers and ours / schnetpack throughput ratios."""
    cases = [
        {k: row.get(k) for k in ("impl", "force_mode", "phase", "dtype", "atoms_per_s", "peak_memory_gb", "status")}
        for row in rows
    ]
    by_key = {(r["force_mode"], r["phase"], r["dtype"], r["impl"]): r for r in rows if r.get("status") == "ok"}
    ratios = {}
    for (mode, phase, dtype, impl), row in by_key.items():
        peer = by_key.get((mode, phase, dtype, "schnetpack"))
        if impl == "lamm" and peer:
            ratios[f"{mode}/{phase}/{dtype}"] = row["atoms_per_s"] / peer["atoms_per_s"]
    first = rows[0] if rows else {}
    return {
        "atoms": first.get("atoms"), "edges": first.get("edges"), "device": first.get("device"),
        "cases": cases, "lamm_over_schnetpack_throughput": ratios,
    }


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
