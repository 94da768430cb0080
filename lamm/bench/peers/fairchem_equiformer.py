"""fairchem-core 1.x's EquiformerV2 as a `lamm bench model` case, sized from our LaMM-L config.

Runs inside the worker of a side venv (`scripts/setup-fairchem.sh`: fairchem-core 1.10 on our
torch 2.13, torch_scatter from `lamm/bench/peers/shims`), which has fairchem but not lamm: like
the worker, this module imports only numpy and torch at module level, and the worker loads it
by file path.

The model is fairchem's backbone (`EquiformerV2Backbone`) with its OC20 heads: the energy head
`EqV2ScalarHead` (an S2 feed-forward block, summed over atoms / avg_num_nodes) and, for direct
forces, `EqV2VectorHead` (one more graph-attention block). The graph is ours (the batch file's
edges and cell offsets, `otf_graph=False`), so both models see the same edges. Settings that
LaMM-L does not have are switched off: drop path (ours has none) and the random edge-frame roll
cannot be (fairchem always draws it; it costs a `rand_like` per step). Direct forces run with
`regress_forces=False`: fairchem's `conditional_grad` would otherwise turn autograd on inside the
backbone even for inference and keep the graph, which ours does not pay either.

Gradient forces are not like for like: fairchem detaches its edge rotation (and the Wigner-D
matrices built from it), so its -dE/dx follows the distances only, not the edge directions;
ours differentiates through the rotation (conservative forces), a larger backward pass.

Outputs cannot be compared weight for weight. The backbones' parameters correspond nearly one to
one in shape, but ours weights every message and attention logit with a polynomial envelope
(fairchem has none), uses another S2 grid without fairchem's per-degree rescaling, and
deterministic edge frames where fairchem draws a random roll per edge and call; the heads
differ in kind (ours: MLP and gated equivariant blocks on l = 0, 1; fairchem: an S2 FFN and a
whole SO(2) attention block). See `lamm.models.equiformer_v2.encoder`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from types import SimpleNamespace
from typing import Any

import torch

# Our encoder's option -> fairchem's constructor argument of the same meaning (renamed only).
RENAMED = {
    "num_layers": "num_layers",
    "sphere_channels": "sphere_channels",
    "attn_hidden_channels": "attn_hidden_channels",
    "num_heads": "num_heads",
    "attn_alpha_channels": "attn_alpha_channels",
    "attn_value_channels": "attn_value_channels",
    "ffn_hidden_channels": "ffn_hidden_channels",
    "edge_channels": "edge_channels",
    "grid_mlp": "use_grid_mlp",
    "grid_resolution": "grid_resolution",
    "alpha_drop": "alpha_drop",
    "avg_degree": "avg_degree",
    "activation_checkpointing": "activation_checkpoint",
}
# fairchem's GaussianSmearing has 600 functions whatever num_distance_basis says (gaussian basis)
FAIRCHEM_DISTANCE_BASIS = 600


def backbone_arguments(
    encoder: Mapping[str, Any], cutoff: float, max_neighbors: int | None, *, direct_forces: bool
) -> dict[str, Any]:
    """fairchem `EquiformerV2Backbone` keyword arguments for our encoder's (every one of them:
    `lamm.bench.model.encoder_arguments` fills in our defaults, which differ from fairchem's).

    Raises ValueError for a setting fairchem cannot express (its one grid resolution serves the
    node and the edge grids; its Gaussian basis has 600 functions)."""
    problems = []
    if encoder["edge_grid_resolution"] != encoder["grid_resolution"]:
        problems.append(
            "edge_grid_resolution differs from grid_resolution (fairchem has one grid resolution)"
        )
    if encoder["num_distance_basis"] != FAIRCHEM_DISTANCE_BASIS:
        problems.append(
            f"num_distance_basis is {encoder['num_distance_basis']} (fairchem's Gaussian "
            f"basis has {FAIRCHEM_DISTANCE_BASIS})"
        )
    if problems:
        raise ValueError("fairchem EquiformerV2 cannot match this config: " + "; ".join(problems))
    arguments = {theirs: encoder[name] for name, theirs in RENAMED.items()}
    arguments.update(
        lmax_list=[encoder["lmax"]],
        mmax_list=[encoder["mmax"]],
        norm_type="layer_norm_sh" if encoder["scalar_layer_norm"] else "rms_norm_sh",
        max_num_elements=encoder["max_atomic_number"] + 1,  # both index embeddings by Z
        max_radius=float(cutoff),
        max_neighbors=int(max_neighbors or 10**6),
        use_pbc=True,
        otf_graph=False,
        regress_forces=not direct_forces,
        distance_function="gaussian",
        num_distance_basis=FAIRCHEM_DISTANCE_BASIS,
        weight_init="uniform",
        drop_path_rate=0.0,
        proj_drop=0.0,  # the OC20 31M model's initialization
    )
    return arguments


def graph_data(arrays: Mapping[str, torch.Tensor], pos: torch.Tensor) -> SimpleNamespace:
    """The attributes fairchem's backbone and heads read from a batch, from the batch file's
    arrays (edges grouped by structure, as `get_pbc_distances` requires)."""
    num_graphs = int(arrays["natoms"].shape[0])
    edge_graph = arrays["batch"][arrays["edge_index"][1]]  # [M]
    return SimpleNamespace(
        pos=pos,
        atomic_numbers=arrays["atomic_numbers"],
        natoms=arrays["natoms"],
        batch=arrays["batch"],
        cell=arrays["cell"],
        edge_index=arrays["edge_index"],
        cell_offsets=arrays["cell_offsets"],
        neighbors=torch.bincount(edge_graph, minlength=num_graphs),  # [S] edges per structure
    )


Loss = Callable[[torch.Tensor, torch.Tensor, Mapping[str, torch.Tensor]], torch.Tensor]


def build_case(
    spec: Mapping[str, Any], arrays: Mapping[str, torch.Tensor], loss: Loss
) -> tuple[torch.nn.Module, Callable[[bool], None], int]:
    """(model, step(train), parameter count) for the worker; `loss(energy, forces, arrays)` is
    the worker's, the same for every peer."""
    import e3nn  # noqa: F401  fairchem's backbone refuses to build unless e3nn is imported first
    from fairchem.core.models.equiformer_v2.equiformer_v2 import EquiformerV2Backbone
    from fairchem.core.models.equiformer_v2.heads import EqV2ScalarHead, EqV2VectorHead

    direct = spec["force_mode"] == "direct"
    torch.manual_seed(spec["seed"])
    config = spec["model_config"]
    arguments = backbone_arguments(
        spec["encoder_arguments"], config["cutoff"], config["max_neighbors"], direct_forces=direct
    )
    backbone = EquiformerV2Backbone(**arguments)
    energy_head = EqV2ScalarHead(backbone)
    force_head = EqV2VectorHead(backbone) if direct else None
    model = torch.nn.ModuleDict(
        {"backbone": backbone, "energy": energy_head, **({"forces": force_head} if direct else {})}
    )
    model.to(arrays["pos"].device)

    def step(train: bool) -> None:
        pos = arrays["pos"].detach().requires_grad_(not direct)
        data = graph_data(arrays, pos)
        # gradient forces need autograd even in the no_grad inference phase
        with torch.enable_grad() if not direct else contextlib.nullcontext():
            embedding = backbone(data)
            energy = energy_head(data, embedding)["energy"]  # [S]
            if direct:
                forces = force_head(data, embedding)["forces"]  # [N, 3]
            else:
                (gradient,) = torch.autograd.grad(energy.sum(), pos, create_graph=train)
                forces = -gradient
        if train:
            loss(energy, forces, arrays).backward()

    return model, step, sum(p.numel() for p in model.parameters())


def version() -> str:
    from importlib.metadata import version as installed

    return installed("fairchem-core")
