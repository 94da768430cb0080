"""Temperature sampling sizes against LaMM Table 2."""

import numpy as np
import pytest

from lamm.data.sampling import temperature_sizes

# LaMM Table 2: samples and samples with temperature sampling (T = 2), in millions.
TABLE2 = {
    "oc20_s2ef": (134, 134),
    "oc22_s2ef": (8.2, 33),
    "odac23_s2ef": (29, 63),
    "transition1x": (9.5, 36),
    "qm7x": (4.2, 24),
    "qmugs": (2.0, 16),
    "pubchem3d": (94, 112),
    "oc20_is2re": (0.460, 7.9),
    "oc22_is2re": (0.046, 2.5),
    "odac23_is2re": (0.132, 4.2),
}


def test_table2_with_temperature_sampling_within_5_percent():
    samples = np.array([round(n * 1e6) for n, _ in TABLE2.values()])
    virtual = temperature_sizes(samples, temperature=2.0)
    expected = np.array([ts * 1e6 for _, ts in TABLE2.values()])
    relative = np.abs(virtual - expected) / expected
    assert relative.max() < 0.05, dict(zip(TABLE2, relative.round(3), strict=True))
    # the total of the table: 432M
    assert abs(virtual.sum() / 432e6 - 1) < 0.05


def test_hand_computed_and_limits():
    assert temperature_sizes([100, 25, 4], temperature=2.0).tolist() == [100, 50, 20]
    assert temperature_sizes([100, 25, 4], temperature=1.0).tolist() == [100, 25, 4]
    assert temperature_sizes([100, 25, 0], temperature=1e9).tolist() == [100, 100, 0]


@pytest.mark.parametrize("sizes, temperature", [([], 2.0), ([-1, 3], 2.0), ([1, 2], 0.0)])
def test_bad_input(sizes, temperature):
    with pytest.raises(ValueError):
        temperature_sizes(sizes, temperature)


def test_epoch_draw_sizes_repeats_and_largest_once():
    from lamm.data.sampling import temperature_epoch

    sizes = [1000, 90, 7, 0]
    draws = temperature_epoch(sizes, 2.0, seed=0, epoch=0)
    virtual = temperature_sizes(sizes, 2.0)
    assert [len(d) for d in draws] == virtual.tolist()  # [1000, 300, 84, 0]
    assert np.array_equal(np.sort(draws[0]), np.arange(1000))  # the largest subset exactly once
    for draw, n, v in zip(draws[1:3], sizes[1:3], virtual[1:3], strict=True):
        counts = np.bincount(draw, minlength=n)
        assert set(np.unique(counts)) <= {v // n, v // n + 1}  # whole repeats plus a remainder
        assert counts.sum() == v
    assert temperature_epoch(sizes, None, 0, 0)[1].tolist() != list(range(90))  # shuffled
    assert sorted(temperature_epoch(sizes, None, 0, 0)[1].tolist()) == list(range(90))


def test_epoch_draw_is_unbiased_and_reshuffled_per_epoch():
    from lamm.data.sampling import temperature_epoch

    sizes = [400, 30]  # v = 400 * sqrt(30 / 400) = 110: 3 copies + 20 of 30 drawn each epoch
    epochs = [temperature_epoch(sizes, 2.0, seed=1, epoch=e)[1] for e in range(600)]
    mean_count = np.mean([np.bincount(d, minlength=30) for d in epochs], axis=0)
    # expected count v/n = 3.667 for every sample; standard error of the mean ~0.02
    assert np.abs(mean_count - 110 / 30).max() < 0.1
    assert not np.array_equal(epochs[0], epochs[1])
    assert np.array_equal(temperature_epoch(sizes, 2.0, 1, 5)[1], epochs[5])  # pure function
    assert not np.array_equal(temperature_epoch(sizes, 2.0, 2, 5)[1], epochs[5])
