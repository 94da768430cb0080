"""Model throughput benchmark (`lamm bench model`): atoms per second and peak memory.

One batch (by default PEERS.md's: 8 periodic Cu(111) 3x3x8 slabs with one or two CO, 598
atoms, built with ASE) goes through every case (implementation x force mode x phase x dtype),
each case in its own worker process (`lamm.bench.model_worker`) so that peak memory is the
case's own. The same batch file (atoms, edges, targets) feeds our potential and the peers whose
interpreters are given: schnetpack's PaiNN at the same width, depth, number of radial functions
and cutoff (for a PaiNN config), fairchem-core 1.x's EquiformerV2 at the same lmax/mmax,
channels, layers, grid, cutoff and neighbors (for an EquiformerV2 config such as `lamm-l`;
`lamm.bench.peers.fairchem_equiformer`), so they are compared on identical graphs in one run.
"""

from __future__ import annotations

import inspect
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

# Benchmark presets: LaMM-S (FAIR-Chem PaiNN h512, 6 layers), LaMM-L (EquiformerV2 31M, the model
# section of config/pretrain/lamm-l.yaml; a test keeps the two equal) and a small demo-sized PaiNN.
PRESETS: dict[str, dict[str, Any]] = {
    "lamm-s": {
        "encoder": "painn",
        "cutoff": 6.0,
        "max_neighbors": 50,
        "force_mode": "direct",
        "painn": {"hidden_channels": 512, "num_layers": 6, "num_rbf": 128},
        "heads": {"hidden_channels": 256},
    },
    "lamm-l": {
        "encoder": "equiformer_v2",
        "cutoff": 12.0,
        "max_neighbors": 20,
        "force_mode": "direct",
        "equiformer_v2": {
            "lmax": 4,
            "mmax": 2,
            "num_layers": 8,
            "sphere_channels": 128,
            "attn_hidden_channels": 64,
            "num_heads": 8,
            "attn_alpha_channels": 64,
            "attn_value_channels": 16,
            "ffn_hidden_channels": 128,
            "grid_mlp": True,
            "scalar_layer_norm": True,
            "num_distance_basis": 600,
            "edge_channels": 128,
            "grid_resolution": 18,
            "edge_grid_resolution": 18,
            "alpha_drop": 0.0,
            "activation_checkpointing": True,
        },
        "heads": {"hidden_channels": 128},
    },
    "demo": {
        "encoder": "painn",
        "cutoff": 5.0,
        "max_neighbors": 30,
        "force_mode": "direct",
        "painn": {"hidden_channels": 64, "num_layers": 3, "num_rbf": 32},
        "heads": {"hidden_channels": 32},
    },
}
IMPLEMENTATIONS = ("lamm", "schnetpack", "fairchem")
PEERS = IMPLEMENTATIONS[1:]
# the encoder each peer reimplements: a peer case of another encoder would compare unlike models
PEER_ENCODER = {"schnetpack": "painn", "fairchem": "equiformer_v2"}
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


def store_records(
    path: str | os.PathLike, num_structures: int, seed: int = 0
) -> list[StructureRecord]:
    """`num_structures` records of a store drawn without replacement (seeded)."""
    from lamm.data.store import StructureStore

    store = StructureStore(path)
    if len(store) == 0:
        raise ValueError(f"{path}: the store is empty")
    chosen = np.random.default_rng(seed).choice(
        len(store), size=min(num_structures, len(store)), replace=False
    )
    return [store.get_record(int(i)) for i in sorted(chosen)]


def make_batch(
    records: Sequence[StructureRecord], cutoff: float, max_neighbors: int | None
) -> Batch:
    """The training pipeline's graphs (same `structure_to_graph` and `collate`)."""
    return collate(
        [
            structure_to_graph(r, cutoff=cutoff, max_neighbors=max_neighbors, sample_index=i)
            for i, r in enumerate(records)
        ]
    )


def write_batch(batch: Batch, path: str | os.PathLike, seed: int = 0) -> None:
    """The arrays a worker needs, plus random normalized targets (the loss needs some)."""
    rng = np.random.default_rng(seed)
    num_atoms, num_graphs = int(batch.num_nodes), int(batch[K.NATOMS].shape[0])
    np.savez(
        path,
        atomic_numbers=batch[K.ATOMIC_NUMBERS].numpy(),
        pos=batch[K.POSITIONS].float().numpy(),
        cell=batch[K.CELL].float().numpy(),
        edge_index=batch[K.EDGE_INDEX].numpy(),
        cell_offsets=batch[K.CELL_OFFSETS].float().numpy(),
        batch=batch[K.BATCH].numpy(),
        natoms=batch[K.NATOMS].numpy(),
        target_energy=rng.normal(size=num_graphs),
        target_forces=rng.normal(size=(num_atoms, 3)).astype(np.float32),
    )


def plan_cases(
    modes: Sequence[str],
    phases: Sequence[str],
    dtypes: Sequence[str],
    with_schnetpack: bool,
    with_fairchem: bool = False,
) -> list[Case]:
    impls = ["lamm"] + ["schnetpack"] * with_schnetpack + ["fairchem"] * with_fairchem
    # per (mode, phase, dtype) ours then the peers', back to back, so drifting load hits all alike
    return [
        Case(impl, mode, phase, dtype)
        for mode, phase, dtype, impl in itertools.product(modes, phases, dtypes, impls)
    ]


def encoder_arguments(config: Mapping[str, Any]) -> dict[str, Any]:
    """Every keyword argument our encoder is built with: the config's section over the
    constructor's defaults (a peer is sized from these; fairchem's own defaults differ)."""
    encoder = config["encoder"]
    if encoder == "equiformer_v2":
        from lamm.models.equiformer_v2 import EquiformerV2Encoder as Encoder
    else:
        from lamm.models.painn import PaiNN as Encoder
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(Encoder.__init__).parameters.items()
        if parameter.default is not inspect.Parameter.empty and name not in ("cutoff", "seed")
    }
    return {**defaults, **config[encoder]}


def _run_worker(
    python: str, case: Case, batch_path: Path, spec: Mapping[str, Any], timeout: float
) -> dict[str, Any]:
    command = [
        python,
        str(WORKER),
        "--impl",
        case.impl,
        "--batch",
        str(batch_path),
        "--spec",
        json.dumps(dict(spec)),
    ]
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
    fairchem_python: str | None = None,
    timeout: float = 1800.0,
    source: str = "cu111_co",
    rounds: int = 1,
) -> list[dict[str, Any]]:
    """One row per case; failed cases keep a row with `status` saying why."""
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    config = resolve_model_config(model_config)
    pythons = {"lamm": sys.executable, "schnetpack": schnetpack_python, "fairchem": fairchem_python}
    _check_peers(config, cases, pythons)
    batch = make_batch(records, config["cutoff"], config["max_neighbors"])
    painn = config["painn"] if config["encoder"] == "painn" else {}
    common = _common_columns(config, batch, source, device)
    common.update(warmup=warmup, repeats=repeats)
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
                "model_config": config,
                "hidden_channels": common["hidden_channels"],
                "num_layers": common["num_layers"],
                "num_rbf": common["num_rbf"],
                "cutoff": config["cutoff"],
                "force_mode": case.force_mode,
                "phase": case.phase,
                "dtype": case.dtype,
                "device": device,
                "threads": threads,
                "warmup": warmup,
                "repeats": repeats,
                "seed": seed,
                "encoder_arguments": encoder_arguments(config),
            }
            result = _run_worker(str(pythons[case.impl]), case, batch_path, spec, timeout)
            log.info(
                "%s %s",
                case,
                {k: result.get(k) for k in ("atoms_per_s", "peak_memory_gb", "status")},
            )
            results[case].append(result)
    for case in cases:
        best = combine_rounds(results[case])
        rows.append(
            {
                **common,
                "impl": case.impl,
                "force_mode": case.force_mode,
                "phase": case.phase,
                "dtype": case.dtype,
                # our memory/time switch (lamm.models.painn_message); the peers have none
                "recompute_messages": painn.get("recompute_messages")
                if case.impl == "lamm"
                else None,
                "rounds": rounds,
                **best,
            }
        )
    return rows


def _check_peers(config: Mapping[str, Any], cases: Sequence[Case], pythons: dict) -> None:
    """Each peer compares one encoder of ours and needs the interpreter of its venv."""
    for peer in sorted({c.impl for c in cases} - {"lamm"}):
        if config["encoder"] != PEER_ENCODER[peer]:
            raise ValueError(
                f"the {peer} comparison exists for encoder {PEER_ENCODER[peer]} only, not "
                f"{config['encoder']}"
            )
        if not pythons[peer]:
            raise ValueError(f"{peer} cases need {peer}_python (the interpreter of its venv)")


def _common_columns(
    config: Mapping[str, Any], batch: Any, source: str, device: str
) -> dict[str, Any]:
    """The columns every row of one benchmark shares: inputs, device and the model's sizes."""
    painn = config["painn"] if config["encoder"] == "painn" else {}
    return {
        "source": source,
        "structures": int(batch[K.NATOMS].shape[0]),
        "atoms": int(batch.num_nodes),
        "edges": int(batch[K.EDGE_INDEX].shape[1]),
        "device": device,
        "encoder": config["encoder"],
        # every argument the encoder is built with, plus PaiNN's sizes as columns (the schnetpack
        # comparison's axes)
        "encoder_config": json.dumps(encoder_arguments(config), sort_keys=True),
        "hidden_channels": painn.get("hidden_channels"),
        "num_layers": painn.get("num_layers"),
        "num_rbf": painn.get("num_rbf"),
        "cutoff": config["cutoff"],
        "max_neighbors": config["max_neighbors"],
    }


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
    """Compact per-case numbers, and ours / each peer's throughput and peak memory (above 1: ours
    is faster, or takes more memory)."""
    cases = [
        {
            k: row.get(k)
            for k in (
                "impl",
                "force_mode",
                "phase",
                "dtype",
                "atoms_per_s",
                "peak_memory_gb",
                "status",
            )
        }
        for row in rows
    ]
    by_key = {
        (r["force_mode"], r["phase"], r["dtype"], r["impl"]): r
        for r in rows
        if r.get("status") == "ok"
    }
    ratios: dict[str, dict[str, float]] = {}
    for name in PEERS:
        speed, memory = {}, {}
        for (mode, phase, dtype, impl), row in by_key.items():
            peer = by_key.get((mode, phase, dtype, name))
            if impl == "lamm" and peer:
                speed[f"{mode}/{phase}/{dtype}"] = row["atoms_per_s"] / peer["atoms_per_s"]
                memory[f"{mode}/{phase}/{dtype}"] = row["peak_memory_gb"] / peer["peak_memory_gb"]
        ratios[f"lamm_over_{name}_throughput"] = speed
        if memory:
            ratios[f"lamm_over_{name}_peak_memory"] = memory
    first = rows[0] if rows else {}
    return {
        "atoms": first.get("atoms"),
        "edges": first.get("edges"),
        "device": first.get("device"),
        "cases": cases,
        **ratios,
    }


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
