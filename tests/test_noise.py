"""Denoising labels (SPEC section 5): relative noise is mean-free, labels are minus the noise."""

import numpy as np
import pytest
import torch
from ase.build import fcc111, molecule

from lamm.data.graph import neighbor_list
from lamm.data.noise import DEFAULT_SIGMA, denoise, wrap_positions


def test_relative_noise_has_zero_mean_and_labels_are_minus_the_noise():
    positions = molecule("C6H6").positions
    noisy, labels = denoise(positions, 0.1, "relative", np.random.default_rng(0))
    assert np.allclose(noisy - positions, -labels, atol=1e-12)
    assert np.allclose(labels.mean(axis=0), 0.0, atol=1e-12)
    # the same draw without the mean removal is the baseline: they differ by the mean only
    base_noisy, base_labels = denoise(positions, 0.1, "baseline", np.random.default_rng(0))
    assert np.allclose(base_noisy - positions, -base_labels, atol=1e-12)
    assert np.abs(base_labels.mean(axis=0)).max() > 1e-3
    assert np.allclose(labels, base_labels - base_labels.mean(axis=0), atol=1e-12)


def test_noise_scale_and_fresh_draws():
    positions = np.zeros((20000, 3))
    _, labels = denoise(positions, 0.04, "baseline", np.random.default_rng(1))
    assert labels.std() == pytest.approx(0.04, rel=0.02)
    rng = np.random.default_rng(2)
    first, _ = denoise(positions[:10], 0.04, "relative", rng)
    second, _ = denoise(positions[:10], 0.04, "relative", rng)
    assert not np.allclose(first, second)  # a new draw every time a sample is used
    again, _ = denoise(positions[:10], 0.04, "relative", np.random.default_rng(2))
    assert np.array_equal(first, again)  # and reproducible from the generator's seed
    assert DEFAULT_SIGMA == 0.04


def test_torch_tensors_keep_type_dtype_and_are_reproducible():
    positions = torch.tensor(molecule("CH4").positions, dtype=torch.float32)
    noisy, labels = denoise(positions, 0.05, "relative", torch.Generator().manual_seed(3))
    again, _ = denoise(positions, 0.05, "relative", torch.Generator().manual_seed(3))
    assert noisy.dtype == labels.dtype == torch.float32
    assert torch.equal(noisy, again)
    assert torch.allclose(labels.mean(dim=0), torch.zeros(3), atol=1e-7)
    assert torch.allclose(noisy - positions, -labels, atol=1e-6)
    with pytest.raises(TypeError):
        denoise(positions, 0.05, "relative", np.random.default_rng(0))


def test_periodic_noise_wraps_without_changing_labels_or_edges():
    slab = fcc111("Cu", size=(2, 2, 3), vacuum=6.0)
    noisy, labels = denoise(slab.positions, 0.3, "relative", np.random.default_rng(4))
    wrapped, wrapped_labels = denoise(
        slab.positions,
        0.3,
        "relative",
        np.random.default_rng(4),
        cell=slab.cell.array,
        pbc=slab.pbc,
    )
    assert np.array_equal(labels, wrapped_labels)
    fractional = np.linalg.solve(slab.cell.array.T, wrapped.T).T
    assert (fractional[:, :2] >= 0).all() and (fractional[:, :2] < 1).all()
    assert not np.allclose(noisy, wrapped)  # sigma 0.3 pushes some atoms out of the cell
    # the displacement is a lattice translation: the radius graph sees the same edge vectors
    vectors = []
    for pos in (noisy, wrapped):
        (j, i), shifts = neighbor_list(pos, slab.cell.array, slab.pbc, 4.0)
        vectors.append(
            np.sort(np.round(np.linalg.norm(pos[j] - pos[i] + shifts @ slab.cell.array, axis=1), 8))
        )
    assert np.array_equal(*vectors)


def test_wrap_with_zero_vector_on_an_open_axis():
    cell = np.diag([4.0, 4.0, 0.0])
    positions = np.array([[5.0, -1.0, 7.0]])
    wrapped = wrap_positions(positions, cell, np.array([True, True, False]))
    assert np.allclose(wrapped, [[1.0, 3.0, 7.0]])


@pytest.mark.parametrize(
    "args, error", [((0.1, "other"), ValueError), ((-1.0, "relative"), ValueError)]
)
def test_bad_arguments(args, error):
    with pytest.raises(error):
        denoise(np.zeros((3, 3)), *args, generator=np.random.default_rng(0))
    with pytest.raises(ValueError, match="shape"):
        denoise(np.zeros((3, 2)), 0.1, "relative", np.random.default_rng(0))
