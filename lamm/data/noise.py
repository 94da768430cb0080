"""Denoising labels for unlabeled structures (LaMM section 3.3, SPEC section 5).

Every atom i is displaced by dx_i ~ N(0, sigma^2 I_3) and the force label is minus the
displacement, so the model learns to push atoms back (Zaidi et al. 2023: denoising is learning
a force field around equilibrium structures).

- `baseline`: input x_i + dx_i, label -dx_i.
- `relative` (LaMM): the mean displacement is removed first, dx'_i = dx_i - mean_j dx_j, then
  input x_i + dx'_i, label -dx'_i. A rigid translation of the whole structure changes no edge
  vector, so a model that sees only relative positions cannot predict the mean of dx; the
  baseline labels carry that unpredictable part, the relative labels do not (labels are then a
  function of the input structure and the reference structure alone).

Periodic structures: the noise is drawn in Cartesian space; `cell`/`pbc` wrap the noisy positions
back into the cell along periodic axes, which moves an atom by a lattice vector and changes no
edge vector (the neighbor list finds the same images). Labels always come from the drawn noise,
never from position differences, so wrapping cannot corrupt them.

Default sigma: `DEFAULT_SIGMA` = 0.04 Angstrom, the Gaussian coordinate-noise scale of
pre-training via denoising (Zaidi et al., ICLR 2023: `position_noise_scale: 0.04` in
github.com/shehzaidi/pre-training-via-denoising, examples/ET-PCQM4MV2.yaml, applied as
`randn_like(pos) * scale`) and of the coordinate part of Fractional Denoising (Feng et al., ICML
2023: github.com/fengshikun/FradNMI, `position_noise_scale: 0.04` on top of torsion noise for
RDKit-generated conformers). LaMM does not state its sigma. 0.04 A is well below bond lengths
(1-1.5 A), so the perturbed structure stays in the harmonic basin of its conformer (the regime
in which denoising approximates a force field), and it is consistent with LaMM's Fig. 7: the
trivial predictor (zero) has a per-atom L2 error of about 1.6 sigma = 0.064 A there, so the
paper's 0.03 A threshold is a real target.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

DEFAULT_SIGMA = 0.04  # Angstrom, see the module docstring
MODES = ("relative", "baseline")

Array = np.ndarray | torch.Tensor


def denoise(
    positions: Array,
    sigma: float,
    mode: Literal["relative", "baseline"] = "relative",
    generator: np.random.Generator | torch.Generator | None = None,
    *,
    cell: Array | None = None,
    pbc: Array | None = None,
) -> tuple[Array, Array]:
    """Noisy positions and their force labels (minus the applied displacement), both [n, 3].

    `positions` may be a numpy array (then `generator` is a `numpy.random.Generator`) or a torch
    tensor (then a `torch.Generator` on its device); the outputs have the same type, dtype and
    device. `generator=None` draws from a fresh, OS-seeded generator: not reproducible, so
    training always passes one (see `lamm.data.dataset`). With `cell` and `pbc`, the noisy
    positions are wrapped into the cell along the periodic axes; labels are unaffected.
    """
    if mode not in MODES:
        raise ValueError(f"unknown denoising mode {mode!r}; expected one of {MODES}")
    if not sigma >= 0:
        raise ValueError(f"sigma must be non-negative, got {sigma}")
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise ValueError(f"positions must have shape [n, 3], got {tuple(positions.shape)}")
    if isinstance(positions, torch.Tensor):
        return _denoise_torch(positions, float(sigma), mode, generator, cell, pbc)
    return _denoise_numpy(np.asarray(positions), float(sigma), mode, generator, cell, pbc)


def _denoise_numpy(positions, sigma, mode, generator, cell, pbc):
    if generator is None:
        generator = np.random.default_rng()
    if not isinstance(generator, np.random.Generator):
        raise TypeError(
            f"numpy positions need a numpy.random.Generator, got {type(generator).__name__}"
        )
    dtype = positions.dtype if np.issubdtype(positions.dtype, np.floating) else np.float64
    noise = generator.standard_normal(positions.shape) * sigma  # [n, 3] float64
    if mode == "relative" and len(noise):
        noise -= noise.mean(axis=0, keepdims=True)
    noisy = positions.astype(np.float64) + noise
    if cell is not None or pbc is not None:
        noisy = wrap_positions(
            noisy, np.asarray(cell, dtype=np.float64), np.asarray(pbc, dtype=bool)
        )
    return noisy.astype(dtype, copy=False), (-noise).astype(dtype, copy=False)


def _denoise_torch(positions, sigma, mode, generator, cell, pbc):
    if generator is None:
        generator = torch.Generator(device=positions.device)
        generator.seed()
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"torch positions need a torch.Generator, got {type(generator).__name__}")
    dtype = positions.dtype if positions.is_floating_point() else torch.float64
    noise = (
        torch.randn(positions.shape, generator=generator, dtype=dtype, device=positions.device)
        * sigma
    )  # [n, 3]
    if mode == "relative" and len(noise):
        noise = noise - noise.mean(dim=0, keepdim=True)
    noisy = positions.to(dtype) + noise
    if cell is not None or pbc is not None:
        wrapped = wrap_positions(
            noisy.detach().cpu().double().numpy(),
            np.asarray(torch.as_tensor(cell).cpu(), dtype=np.float64),
            np.asarray(torch.as_tensor(pbc).cpu(), dtype=bool),
        )
        noisy = torch.as_tensor(wrapped, dtype=dtype, device=positions.device)
    return noisy, -noise


def wrap_positions(positions: np.ndarray, cell: np.ndarray, pbc: np.ndarray) -> np.ndarray:
    """Positions moved into the cell (fractional coordinates in [0, 1)) along periodic axes."""
    if cell.shape != (3, 3) or pbc.shape != (3,):
        raise ValueError(f"cell must be [3, 3] and pbc [3], got {cell.shape} and {pbc.shape}")
    if not pbc.any():
        return positions
    if np.linalg.matrix_rank(cell[pbc]) < int(pbc.sum()):
        raise ValueError(
            f"cannot wrap: the periodic cell vectors are degenerate (cell={cell.tolist()})"
        )
    # Non-periodic axes may have zero cell vectors: complete the cell to an invertible basis
    # (an orthogonal complement) so fractional coordinates exist, then wrap periodic axes only.
    basis = cell.copy()
    for axis in np.flatnonzero(~pbc):
        if np.linalg.norm(basis[axis]) < 1e-8 or np.linalg.matrix_rank(basis) < 3:
            basis[axis] = _complement(basis, axis)
    fractional = positions @ np.linalg.inv(basis)  # [n, 3]
    shift = np.zeros_like(fractional)
    shift[:, pbc] = np.floor(fractional[:, pbc])
    return positions - shift @ basis


def _complement(basis: np.ndarray, axis: int) -> np.ndarray:
    """A unit vector orthogonal to the other (non-zero) rows of `basis`."""
    others = [basis[j] for j in range(3) if j != axis and np.linalg.norm(basis[j]) > 1e-8]
    if not others:
        return np.eye(3)[axis]
    _, _, vt = np.linalg.svd(np.stack(others))
    return vt[-1]
