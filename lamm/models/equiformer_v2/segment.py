"""Sums and softmax over segments of edges (all edges sharing a center atom), without
torch-scatter."""

from __future__ import annotations

import torch


def segment_sum(values: torch.Tensor, index: torch.Tensor, num_segments: int) -> torch.Tensor:
    """out[s] = sum of values[e] over edges e with index[e] == s; `[M, ...]` -> `[num_segments,
    ...]`."""
    out = torch.zeros((num_segments, *values.shape[1:]), dtype=values.dtype, device=values.device)
    return out.index_add_(0, index, values)


def segment_softmax(
    logits: torch.Tensor,
    index: torch.Tensor,
    num_segments: int,
    weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """Softmax of `logits` `[M, H]` over the edges of each segment, per column.

    With `weights` `[M]` (>= 0) it is the weighted softmax w_e exp(a_e) / sum_f w_f exp(a_f):
    an edge of weight 0 takes no share, and shares change continuously with the weights.
    The per-segment maximum is subtracted first (detached: the result does not depend on it),
    so large logits neither overflow nor lose precision. A segment whose weights are all zero
    gets zeros, not NaN.
    """
    expand = index.view(-1, 1).expand_as(logits)  # [M, H]
    seg_max = torch.zeros((num_segments, logits.shape[1]), dtype=logits.dtype, device=logits.device)
    seg_max = seg_max.scatter_reduce(
        0, expand, logits.detach(), reduce="amax", include_self=False
    )  # [S, H]
    exp = torch.exp(logits - seg_max[index])  # [M, H], each segment's largest is exp(0) = 1
    if weights is not None:
        exp = exp * weights.view(-1, 1)
    denominator = segment_sum(exp, index, num_segments)  # [S, H]
    tiny = torch.finfo(logits.dtype).tiny
    return exp / denominator.clamp_min(tiny)[index]
