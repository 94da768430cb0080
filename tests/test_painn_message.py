"""The PaiNN message (plain or recomputing autograd): same values, exact first and second
derivatives."""

import pytest
import torch
from model_support import single_thread  # noqa: F401

from lamm.models.painn_message import painn_message


def inputs(first_layer: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n, m, f = 5, 14, 3
    edge_index = torch.stack(
        [torch.randint(0, n, (m,), generator=g), torch.randint(0, n, (m,), generator=g)]
    )
    per_atom = torch.randn(n, 3 * f, generator=g, dtype=torch.float64, requires_grad=True)
    filters = torch.randn(m, 3 * f, generator=g, dtype=torch.float64, requires_grad=True)
    vectors = (
        None
        if first_layer
        else torch.randn(n, 3, f, generator=g, dtype=torch.float64, requires_grad=True)
    )
    unit = torch.nn.functional.normalize(
        torch.randn(m, 3, generator=g, dtype=torch.float64), dim=1
    ).requires_grad_(True)
    return per_atom, filters, vectors, unit, edge_index


@pytest.mark.parametrize("first_layer", [False, True])
def test_matches_plain_autograd(first_layer):
    per_atom, filters, vectors, unit, edge_index = inputs(first_layer)
    fused = painn_message(per_atom, filters, vectors, unit, edge_index, recompute=True)
    plain = painn_message(
        per_atom, filters, vectors, unit, edge_index, recompute=False
    )  # plain autograd
    weights = [
        torch.randn(t.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        for t in plain
    ]
    leaves = [t for t in (per_atom, filters, vectors, unit) if t is not None]
    grads_fused = torch.autograd.grad(
        sum((w * t).sum() for w, t in zip(weights, fused, strict=True)), leaves
    )
    grads_plain = torch.autograd.grad(
        sum((w * t).sum() for w, t in zip(weights, plain, strict=True)), leaves
    )
    for a, b in zip(fused, plain, strict=True):
        torch.testing.assert_close(a, b)
    for a, b in zip(grads_fused, grads_plain, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("first_layer", [False, True])
def test_gradcheck_and_gradgradcheck(first_layer):
    per_atom, filters, vectors, unit, edge_index = inputs(first_layer, seed=2)

    def function(per_atom, filters, unit, *maybe_vectors):
        return painn_message(
            per_atom, filters, maybe_vectors[0] if maybe_vectors else None, unit, edge_index
        )

    args = (per_atom, filters, unit) + (() if vectors is None else (vectors,))
    assert torch.autograd.gradcheck(function, args)
    assert torch.autograd.gradgradcheck(function, args)  # gradient forces train through this


def test_potential_trains_identically_with_and_without_recompute():
    # gradient forces + a force loss: the weights' gradients go through the double backward
    from model_support import TINY_CONFIG, batch_of, rocksalt

    from lamm import keys as K
    from lamm.models.build import build_potential

    grads = []
    for recompute in (True, False):
        config = {
            **TINY_CONFIG,
            "force_mode": "gradient",
            "painn": {**TINY_CONFIG["painn"], "recompute_messages": recompute},
        }
        potential = build_potential(config, ["a"], seed=4).double().train()
        out = potential(batch_of(rocksalt()))
        weights = torch.linspace(-1, 1, out[K.PRED_FORCES].numel(), dtype=torch.float64).view_as(
            out[K.PRED_FORCES]
        )
        ((out[K.PRED_FORCES] * weights).sum() + out[K.PRED_ENERGY].sum()).backward()
        grads.append({name: p.grad for name, p in potential.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], msg=name)
    assert grads[0]["encoder.messages.0.filter_net.weight"].abs().sum() > 0
