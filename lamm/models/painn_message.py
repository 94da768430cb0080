"""PaiNN's message and sum over neighbors as one autograd function that saves node-level tensors.

Written with plain autograd, each layer keeps four edge-sized tensors for the backward pass
(the gathered h_j and v_j, the filter, their product): 12 M F numbers per layer, most of the
memory of a training step (M edges ~ 50 N). This function keeps only the filter (3 M F) and
the unit vectors, and recomputes the gathers in the backward pass. Measured on CPU (598 atoms,
F = 512): 2.2x less peak memory for ~10-20% more time, hence the `recompute_messages` switch
of the PaiNN encoder (on by default: memory bounds the batch size of pre-training on GPUs).

    per_edge = h[j] * filter_ij                   # [M, 3F], split into (a, g_v, g_r)
    ds_i = sum_j a_ij                             # [N, F]
    dv_i = sum_j g_v,ij * v_j + g_r,ij * u_ij     # [N, 3, F]

The backward pass is written with differentiable torch operations, so gradient forces can
differentiate through it again (create_graph=True); gradcheck/gradgradcheck test both orders.
"""

from __future__ import annotations

from typing import Any

import torch


class _FusedMessage(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        per_atom: torch.Tensor,
        filters: torch.Tensor,
        vectors: torch.Tensor | None,
        unit_vectors: torch.Tensor,
        source: torch.Tensor,
        target: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ctx.save_for_backward(per_atom, filters, vectors, unit_vectors, source, target)
        return message_sum(per_atom, filters, vectors, unit_vectors, source, target)

    @staticmethod
    def backward(
        ctx: Any, grad_ds: torch.Tensor, grad_dv: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        per_atom, filters, vectors, unit_vectors, source, target = ctx.saved_tensors
        needs_per_atom, needs_filters, needs_vectors, needs_unit = ctx.needs_input_grad[:4]
        n, f = per_atom.shape[0], per_atom.shape[1] // 3
        dtype = per_atom.dtype
        gathered = per_atom.index_select(0, source)  # [M, 3F], recomputed instead of saved
        gates = gathered[:, f:] * filters[:, f:]  # [M, 2F], the (g_v, g_r) part of per_edge
        gate_v, gate_r = torch.split(gates, f, dim=-1)
        grad_a = grad_ds.to(dtype).index_select(0, target)  # [M, F]
        grad_edge_v = grad_dv.to(dtype).index_select(0, target)  # [M, 3, F]
        grad_gate_r = torch.sum(grad_edge_v * unit_vectors.to(dtype).unsqueeze(2), dim=1)  # [M, F]
        grad_unit = grad_vectors = None
        if needs_unit:  # only when differentiating with respect to positions (gradient forces)
            grad_unit = torch.sum(grad_edge_v * gate_r.unsqueeze(1), dim=2).to(
                unit_vectors.dtype
            )  # [M, 3]
        if vectors is None:
            grad_gate_v = torch.zeros_like(grad_a)
        else:
            grad_gate_v = torch.sum(
                grad_edge_v * vectors.to(dtype).index_select(0, source), dim=1
            )  # [M, F]
            if needs_vectors:
                grad_vectors = (
                    torch.zeros(n, 3, f, dtype=dtype, device=per_atom.device)
                    .index_add(0, source, grad_edge_v * gate_v.unsqueeze(1))
                    .to(vectors.dtype)
                )  # [N, 3, F]
        grad_per_edge = torch.cat([grad_a, grad_gate_v, grad_gate_r], dim=-1)  # [M, 3F]
        grad_per_atom = grad_filters = None
        if needs_per_atom:
            grad_per_atom = torch.zeros_like(per_atom).index_add(
                0, source, grad_per_edge * filters
            )  # [N, 3F]
        if needs_filters:
            grad_filters = grad_per_edge * gathered  # [M, 3F]
        return grad_per_atom, grad_filters, grad_vectors, grad_unit, None, None


def message_sum(
    per_atom: torch.Tensor,
    filters: torch.Tensor,
    vectors: torch.Tensor | None,
    unit_vectors: torch.Tensor,
    source: torch.Tensor,
    target: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The message and its sum with plain autograd (which keeps the edge tensors)."""
    n, f = per_atom.shape[0], per_atom.shape[1] // 3
    dtype = per_atom.dtype  # under autocast the compute dtype (bf16) of the layers' outputs
    per_edge = per_atom.index_select(0, source) * filters  # [M, 3F]
    a, gate_v, gate_r = torch.split(per_edge, f, dim=-1)  # 3 x [M, F]
    edge_v = gate_r.unsqueeze(1) * unit_vectors.to(dtype).unsqueeze(2)  # [M, 3, F]
    if vectors is not None:
        edge_v = edge_v + vectors.to(dtype).index_select(0, source) * gate_v.unsqueeze(
            1
        )  # [M, 3, F]
    ds = torch.zeros(n, f, dtype=dtype, device=per_atom.device).index_add_(0, target, a)  # [N, F]
    dv = torch.zeros(n, 3, f, dtype=dtype, device=per_atom.device).index_add_(
        0, target, edge_v
    )  # [N, 3, F]
    return ds, dv


def painn_message(
    per_atom: torch.Tensor,
    filters: torch.Tensor,
    vectors: torch.Tensor | None,
    unit_vectors: torch.Tensor,
    edge_index: torch.Tensor,
    recompute: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """per_atom [N, 3F] (a, g_v, g_r parts of h), filters [M, 3F], vectors [N, 3, F] or None
    (all zero), unit_vectors [M, 3] from i to j, edge_index [2, M] (j, i) -> (ds [N, F], dv [N, 3,
    F]).

    `recompute`: the memory-saving autograd function; False: plain autograd (faster on CPU)."""
    source, target = edge_index[0], edge_index[1]
    if filters.dtype != per_atom.dtype:  # autocast may leave one of them in float32
        filters = filters.to(per_atom.dtype)
    if recompute:
        return _FusedMessage.apply(per_atom, filters, vectors, unit_vectors, source, target)
    return message_sum(per_atom, filters, vectors, unit_vectors, source, target)
