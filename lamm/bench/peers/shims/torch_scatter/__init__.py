"""A pure-PyTorch `torch_scatter.scatter` for running fairchem-core 1.x on torch 2.13.

fairchem-core 1.x imports `from torch_scatter import scatter` at module level (in
`fairchem.core.common.utils`, the relaxation optimizers and the EquiformerV2 rank-2 head), and
torch_scatter has no wheel for torch 2.13 and does not build here. Only `scatter` is used there;
this module gives it torch_scatter's semantics on top of `Tensor.scatter_reduce`:

- `index` is broadcast to `src` along `dim` (a 1-D index of length src.shape[dim] labels the
  slices along that dimension);
- `dim_size` defaults to index.max() + 1 (0 for an empty index);
- a destination that receives nothing is 0 for every reduction (torch_scatter fills min/max
  with 0, and `mean` divides by a count clamped to 1);
- `out`, when given, is reduced into and returned, as torch_scatter does for sum/mean.

The EquiformerV2 model and heads that `lamm bench model` runs only reach `sum` and `mean`.
"""

from __future__ import annotations

import torch

__version__ = "0.0.0+lamm.shim"  # not torch_scatter: a peer that checks the version sees that

# torch_scatter's reduce names -> scatter_reduce's; "add" and "sum" are aliases there too
_REDUCE = {"sum": "sum", "add": "sum", "mean": "mean", "min": "amin", "max": "amax", "mul": "prod"}


def broadcast(index: torch.Tensor, src: torch.Tensor, dim: int) -> torch.Tensor:
    """`index` laid along `dim` of `src` and expanded to src's shape (torch_scatter's rule)."""
    dim = dim % src.dim() if src.dim() else 0
    if index.dim() == 1:
        shape = [1] * src.dim()
        shape[dim] = -1
        index = index.view(shape)
    for _ in range(index.dim(), src.dim()):
        index = index.unsqueeze(-1)
    return index.expand_as(src)


def scatter(
    src: torch.Tensor,
    index: torch.Tensor,
    dim: int = -1,
    out: torch.Tensor | None = None,
    dim_size: int | None = None,
    reduce: str = "sum",
) -> torch.Tensor:
    """Reduce the slices of `src` that share an index into one slice each, along `dim`."""
    if reduce not in _REDUCE:
        raise ValueError(f"reduce must be one of {', '.join(_REDUCE)}, got {reduce!r}")
    dim = dim % src.dim()
    index = broadcast(index, src, dim)
    if out is None:
        size = list(src.shape)
        if dim_size is None:
            dim_size = int(index.max()) + 1 if index.numel() else 0
        size[dim] = dim_size
        out = torch.zeros(size, dtype=src.dtype, device=src.device)
        # include_self=False: a destination's value comes from its sources only; one that gets
        # none keeps the 0 above, as torch_scatter leaves it
        return out.scatter_reduce(dim, index, src, _REDUCE[reduce], include_self=False)
    if reduce not in ("sum", "add", "mean"):
        raise ValueError(f"scatter with out= is supported for sum and mean only, got {reduce!r}")
    if reduce == "mean":
        # torch_scatter: (out + sum of sources) / count of sources, count clamped to 1
        counts = torch.zeros_like(out).scatter_add(dim, index, torch.ones_like(src))
        return out.scatter_add_(dim, index, src).div_(counts.clamp_(min=1))
    return out.scatter_add_(dim, index, src)


def scatter_sum(
    src: torch.Tensor,
    index: torch.Tensor,
    dim: int = -1,
    out: torch.Tensor | None = None,
    dim_size: int | None = None,
) -> torch.Tensor:
    return scatter(src, index, dim, out, dim_size, "sum")


def scatter_mean(
    src: torch.Tensor,
    index: torch.Tensor,
    dim: int = -1,
    out: torch.Tensor | None = None,
    dim_size: int | None = None,
) -> torch.Tensor:
    return scatter(src, index, dim, out, dim_size, "mean")


scatter_add = scatter_sum
