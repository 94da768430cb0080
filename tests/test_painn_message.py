"""The PaiNN message (plain or recomputing autograd): same values, exact first and second derivatives."""

import pytest
import torch

from lamm.models.painn_message import painn_message
from model_support import single_thread  # noqa: F401


def inputs(first_layer: bool, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    n, m, f = 5, 14, 3
    edge_index = torch.stack([torch.randint(0, n, (m,), generator=g), torch.randint(0, n, (m,), generator=g)])
    per_atom = torch.randn(n, 3 * f, generator=g, dtype=torch.float64, requires_grad=True)
    filters = torch.randn(m, 3 * f, generator=g, dtype=torch.float64, requires_grad=True)
    vectors = None if first_layer else torch.randn(n, 3, f, generator=g, dtype=torch.float64, requires_grad=True)
    unit = torch.nn.functional.normalize(torch.randn(m, 3, generator=g, dtype=torch.float64), dim=1).requires_grad_(True)
    return per_atom, filters, vectors, unit, edge_index


@pytest.mark.parametrize("first_layer", [False, True])
def test_matches_plain_autograd(first_layer):
    per_atom, filters, vectors, unit, edge_index = inputs(first_layer)
    fused = painn_message(per_atom, filters, vectors, unit, edge_index, recompute=True)
    plain = painn_message(per_atom, filters, vectors, unit, edge_index, recompute=False)  # plain autograd
    weights = [torch.randn(t.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64) for t in plain]
    leaves = [t for t in (per_atom, filters, vectors, unit) if t is not None]
    grads_fused = torch.autograd.grad(sum((w * t).sum() for w, t in zip(weights, fused)), leaves)
    grads_plain = torch.autograd.grad(sum((w * t).sum() for w, t in zip(weights, plain)), leaves)
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a, b)
    for a, b in zip(grads_fused, grads_plain):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("first_layer", [False, True])
def test_gradcheck_and_gradgradcheck(first_layer):
    per_atom, filters, vectors, unit, edge_index = inputs(first_layer, seed=2)

    def function(per_atom, filters, unit, *maybe_vectors):
        return painn_message(per_atom, filters, maybe_vectors[0] if maybe_vectors else None, unit, edge_index)

    args = (per_atom, filters, unit) + (() if vectors is None else (vectors,))
    assert torch.autograd.gradcheck(function, args)
    assert torch.autograd.gradgradcheck(function, args)  # gradient forces train through this
