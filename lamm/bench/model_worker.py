"""One timed case of `lamm bench model`, run in its own process so its peak memory is its own.

    python model_worker.py --impl lamm|schnetpack|fairchem --batch BATCH.npz --spec JSON

Imports only numpy and torch at module level: the peer cases run with the interpreter of a
separate venv (schnetpack pins an older sympy than torch 2.13 wants; fairchem-core 1.x pins
torch 2.4, see scripts/setup-fairchem.sh), which has the peer but not lamm. The fairchem case
lives in `peers/fairchem_equiformer.py`, loaded by file path for that reason. The batch (same
atoms, same edges, same targets for every implementation) comes from `lamm.bench.model`; the
last stdout line is the JSON result.

A step is what a training step costs without the optimizer: forward, the universal loss
(energy MAE + per-atom force L2 norm), backward. `phase=infer` is the forward pass with forces
(autograd for gradient forces, no graph kept) in eval mode.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch


def _load_batch(path: str, device: torch.device) -> dict[str, torch.Tensor]:
    with np.load(path) as arrays:
        return {name: torch.from_numpy(arrays[name]).to(device) for name in arrays.files}


def _lamm_case(
    spec: dict[str, Any], arrays: dict[str, torch.Tensor]
) -> tuple[torch.nn.Module, Callable, int]:
    from lamm import keys as K
    from lamm.models.build import build_potential
    from lamm.training.loss import universal_loss

    config = {**spec["model_config"], "force_mode": spec["force_mode"]}
    model = build_potential(config, heads=["bench"], seed=spec["seed"]).to(arrays["pos"].device)
    num_graphs = int(arrays["natoms"].shape[0])
    # a plain mapping of the batch fields: the same tensors a collated AtomicGraph holds
    batch = {
        K.ATOMIC_NUMBERS: arrays["atomic_numbers"],
        K.POSITIONS: arrays["pos"],
        K.CELL: arrays["cell"],
        K.EDGE_INDEX: arrays["edge_index"],
        K.CELL_OFFSETS: arrays["cell_offsets"],
        K.BATCH: arrays["batch"],
        K.NATOMS: arrays["natoms"],
        K.DATASET_INDEX: torch.zeros(num_graphs, dtype=torch.long, device=arrays["pos"].device),
    }
    mask = torch.ones(num_graphs, dtype=torch.bool, device=arrays["pos"].device)

    def step(train: bool) -> None:
        out = model(batch)
        if train:
            loss = universal_loss(
                out[K.PRED_ENERGY],
                out[K.PRED_FORCES],
                arrays["target_energy"],
                arrays["target_forces"],
                batch[K.DATASET_INDEX],
                mask,
                mask,
                arrays["batch"],
            )
            loss.backward()

    return model, step, sum(p.numel() for p in model.parameters())


def _schnetpack_case(
    spec: dict[str, Any], arrays: dict[str, torch.Tensor]
) -> tuple[torch.nn.Module, Callable, int]:
    import typing

    import torch.utils.data.dataloader as dataloader

    # schnetpack 2.x imports a name torch removed; see PEERS.md
    if not hasattr(dataloader, "T_co"):
        dataloader.T_co = typing.TypeVar("T_co", covariant=True)
    import schnetpack as spk
    from schnetpack import properties as P

    torch.manual_seed(spec["seed"])
    width, cutoff = spec["hidden_channels"], spec["cutoff"]
    representation = spk.representation.PaiNN(
        n_atom_basis=width,
        n_interactions=spec["num_layers"],
        radial_basis=spk.nn.GaussianRBF(n_rbf=spec["num_rbf"], cutoff=cutoff),
        cutoff_fn=spk.nn.CosineCutoff(cutoff),
    )
    energy_head = spk.atomistic.Atomwise(
        n_in=width, output_key="energy"
    )  # MLP width -> width/2 -> 1, summed
    gradient = spec["force_mode"] == "gradient"
    force_head = (
        spk.atomistic.Forces()
        if gradient
        else spk.nn.build_gated_equivariant_mlp(n_in=width, n_out=1, n_layers=2)
    )
    model = torch.nn.ModuleDict(
        {"representation": representation, "energy": energy_head, "forces": force_head}
    )
    model.to(arrays["pos"].device)
    source, target = arrays["edge_index"][0], arrays["edge_index"][1]
    offsets = torch.einsum(
        "mk,mkl->ml", arrays["cell_offsets"], arrays["cell"][arrays["batch"][target]]
    )
    inputs0 = {
        P.Z: arrays["atomic_numbers"],
        P.idx_m: arrays["batch"],
        P.n_atoms: arrays["natoms"],
        P.idx_i: target,
        P.idx_j: source,
        P.offsets: offsets,
        P.cell: arrays["cell"],
    }
    distances = spk.atomistic.PairwiseDistances()

    def step(train: bool) -> None:
        inputs = dict(inputs0)
        inputs[P.R] = arrays["pos"].detach().requires_grad_(gradient)
        # gradient forces need autograd even in the no_grad inference phase
        with torch.enable_grad() if gradient else contextlib.nullcontext():
            inputs = representation(distances(inputs))
            inputs = energy_head(inputs)
            if gradient:
                forces = force_head(inputs)["forces"]
            else:
                _, vectors = force_head(
                    (inputs["scalar_representation"], inputs["vector_representation"])
                )
                forces = vectors.squeeze(-1)  # [N, 3]
        if train:
            peer_loss(inputs["energy"], forces, arrays).backward()

    return model, step, sum(p.numel() for p in model.parameters())


def peer_loss(
    energy: torch.Tensor, forces: torch.Tensor, arrays: dict[str, torch.Tensor]
) -> torch.Tensor:
    """The universal loss for one head, written out for the peers (their venvs have no lamm):
    energy MAE + the per-structure mean of the per-atom force error norm."""
    energy_term = (energy - arrays["target_energy"].to(energy.dtype)).abs().mean()
    per_atom = torch.sqrt(torch.sum((forces - arrays["target_forces"]) ** 2, dim=1))  # [N]
    per_structure = torch.zeros(
        len(arrays["natoms"]), dtype=per_atom.dtype, device=per_atom.device
    )  # [S]
    per_structure.index_add_(0, arrays["batch"], per_atom)
    return energy_term + (per_structure / arrays["natoms"]).mean()


def _fairchem_module() -> Any:
    """`peers/fairchem_equiformer.py` beside this file, imported by path: the side venv running
    this worker has fairchem but not the lamm package."""
    path = Path(__file__).resolve().parent / "peers" / "fairchem_equiformer.py"
    spec = importlib.util.spec_from_file_location("lamm_bench_fairchem_equiformer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _peak_memory_gb(device: torch.device) -> tuple[float, str]:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9, "cuda_max_allocated"
    # VmHWM (peak RSS of this address space) rather than ru_maxrss: Linux keeps ru_maxrss across
    # execve, so a worker would report its parent's size when that is larger than its own.
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e9, "peak_rss"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9, "peak_rss_maxrss"


def run(impl: str, batch_path: str, spec: dict[str, Any]) -> dict[str, Any]:
    device = torch.device(spec["device"])
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    arrays = _load_batch(batch_path, device)
    fairchem = _fairchem_module() if impl == "fairchem" else None
    if fairchem is not None:
        model, step, params = fairchem.build_case(spec, arrays, peer_loss)
    else:
        model, step, params = (_lamm_case if impl == "lamm" else _schnetpack_case)(spec, arrays)
    train = spec["phase"] == "train"
    model.train(train)
    bf16 = spec["dtype"] == "bf16"

    def timed() -> tuple[float, float]:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        grad_context = torch.enable_grad() if train else torch.no_grad()
        with grad_context:
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=bf16):
                step(train)
        model.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start, time.process_time() - start_cpu

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(spec["warmup"]):
        timed()
    measured = [timed() for _ in range(spec["repeats"])]
    times = [wall for wall, _ in measured]
    peak, memory_kind = _peak_memory_gb(device)
    atoms = int(arrays["atomic_numbers"].shape[0])
    median = statistics.median(times)
    version = "unknown"
    if impl == "schnetpack":
        import schnetpack

        version = schnetpack.__version__
    elif fairchem is not None:
        version = fairchem.version()
    return {
        "impl": impl,
        "impl_version": version,
        "torch": torch.__version__,
        "params": params,
        "step_s_median": median,
        "step_s_min": min(times),
        "atoms_per_s": atoms / median,
        # CPU seconds of all threads: less sensitive than wall time to other jobs on a shared
        # machine
        "step_cpu_s_median": statistics.median(cpu for _, cpu in measured),
        "peak_memory_gb": peak,
        "memory_kind": memory_kind,
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--impl", choices=("lamm", "schnetpack", "fairchem"), required=True)
    parser.add_argument("--batch", required=True, help="npz written by lamm.bench.model")
    parser.add_argument(
        "--spec",
        required=True,
        help="JSON: the case (model, force_mode, phase, dtype, device, ...)",
    )
    args = parser.parse_args(argv)
    result = run(args.impl, args.batch, json.loads(args.spec))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    # Run as a script, this file's directory would be first on sys.path, where module names
    # such as `build` could shadow installed packages.
    here = Path(__file__).resolve().parent
    sys.path[:] = [p for p in sys.path if not p or Path(p).resolve() != here]
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
