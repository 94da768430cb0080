"""Dataset over stores, the DDP batch sampler, and the loader: keys, noise, resume, workers."""

import numpy as np
import pytest
import torch

from lamm import keys as K
from lamm.data.dataset import MultiStoreDataset, SampleKey
from lamm.data.graph import collate, structure_to_graph
from lamm.data.loader import build_loader
from lamm.data.sampler import DistributedBatchSampler
from lamm.data.sampling import temperature_sizes
from tests.store_factory import demo_like_stores


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return demo_like_stores(tmp_path_factory.mktemp("stores"))


@pytest.fixture(scope="module")
def dataset(stores):
    return MultiStoreDataset(
        stores, "train", cutoff=5.0, max_neighbors=20, noise_sigma=0.05, seed=3
    )


def test_global_indexing_and_untouched_labels(stores, dataset):
    assert dataset.subsets == ["oc20_s2ef", "transition1x", "pubchem3d"]
    assert dataset.sizes.tolist() == [len(s.indices("train")) for s in stores] == [5, 8, 7]
    assert len(dataset) == 20 and dataset.dataset_index.tolist() == [0] * 5 + [1] * 8 + [2] * 7
    for index in (0, 4, 5, 12):
        subset, record_index = dataset.locate(index)
        record = stores[subset].get_record(record_index)
        assert dataset.natoms[index] == record.natoms
        graph = dataset[SampleKey(index, epoch=2, position=9)]
        expected = structure_to_graph(
            record, cutoff=5.0, max_neighbors=20, dataset_index=subset, sample_index=record_index
        )
        for field in (
            K.POSITIONS,
            K.FORCES,
            K.ENERGY,
            K.EDGE_INDEX,
            K.CELL_OFFSETS,
            K.ENERGY_MASK,
            K.FORCE_MASK,
            K.DATASET_INDEX,
        ):
            assert torch.equal(graph[field], expected[field]), field
        assert graph[K.ENERGY_MASK].item() and graph[K.FORCE_MASK].item()
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_denoising_samples_repeat_their_noise_per_key(stores, dataset):
    index = 15  # a conformer
    subset, record_index = dataset.locate(index)
    original = torch.tensor(stores[subset].get_record(record_index).positions, dtype=torch.float32)
    graph = dataset[SampleKey(index, 1, 40)]
    assert graph[K.DATASET_INDEX].item() == 2
    assert graph[K.FORCE_MASK].item() and not graph[K.ENERGY_MASK].item()
    displacement = graph[K.POSITIONS] - original
    assert torch.allclose(graph[K.FORCES], -displacement, atol=1e-6)
    assert torch.allclose(displacement.mean(dim=0), torch.zeros(3), atol=1e-6)  # relative mode
    assert 0.02 < displacement.std().item() < 0.1  # sigma 0.05
    # the same key (a resumed run) gives the same noise; another draw gives other noise
    assert torch.equal(dataset[SampleKey(index, 1, 40)][K.POSITIONS], graph[K.POSITIONS])
    assert not torch.equal(dataset[SampleKey(index, 1, 41)][K.POSITIONS], graph[K.POSITIONS])
    assert not torch.equal(dataset[SampleKey(index, 2, 40)][K.POSITIONS], graph[K.POSITIONS])
    other_seed = MultiStoreDataset(stores, "train", cutoff=5.0, noise_sigma=0.05, seed=4)
    assert not torch.equal(other_seed[SampleKey(index, 1, 40)][K.POSITIONS], graph[K.POSITIONS])


def make_sampler(dataset, rank=0, **overrides):
    options = dict(
        world_size=2,
        rank=rank,
        batch_per_rank=2,
        strategy="lamm",
        temperature=2.0,
        num_splits=2,
        seed=11,
    )
    options.update(overrides)
    return DistributedBatchSampler(dataset.natoms, dataset.sizes, **options)


@pytest.mark.parametrize("strategy", ["lamm", "greedy", "random"])
def test_ranks_together_cover_the_temperature_sampled_epoch(dataset, strategy):
    samplers = [make_sampler(dataset, rank, strategy=strategy) for rank in (0, 1)]
    for sampler in samplers:
        sampler.set_epoch(3)
    steps = [list(sampler) for sampler in samplers]
    assert len(steps[0]) == len(steps[1]) == len(samplers[0]) > 1
    assert all(len(batch) >= 1 for rank_steps in steps for batch in rank_steps)
    keys = [key for rank_steps in steps for batch in rank_steps for key in batch]
    assert sorted(k.position for k in keys) == list(range(len(keys)))  # each position once
    assert {k.epoch for k in keys} == {3}
    per_subset = np.bincount(dataset.dataset_index[[k.index for k in keys]], minlength=3)
    assert per_subset.tolist() == temperature_sizes(dataset.sizes, 2.0).tolist()


def test_sampler_resumes_exactly_mid_epoch(dataset):
    uninterrupted = make_sampler(dataset, rank=1)
    uninterrupted.set_epoch(5)
    full = list(uninterrupted)
    first = make_sampler(dataset, rank=1)
    first.set_epoch(5)
    iterator = iter(first)
    done = [next(iterator) for _ in range(2)]
    state = first.state_dict()
    assert state["epoch"] == 5 and state["step"] == 2
    resumed = make_sampler(dataset, rank=1)
    resumed.load_state_dict(state)
    resumed.set_epoch(5)  # what a training loop does after loading: keeps the position
    assert done + list(resumed) == full
    resumed.set_epoch(6)
    assert len(list(resumed)) == len(resumed)  # the next epoch starts at its first step
    with pytest.raises(ValueError, match="world_size"):
        make_sampler(dataset, world_size=4).load_state_dict(state)
    with pytest.raises(ValueError, match="strategy"):
        make_sampler(dataset, rank=1, strategy="random").load_state_dict(state)


def test_loader_with_workers_yields_batches_and_resumes(dataset):
    sampler = make_sampler(dataset, rank=0, world_size=1, batch_per_rank=3)
    loader = build_loader(dataset, sampler, num_workers=2, prefetch_factor=2)
    loader.set_epoch(1)
    batches = list(loader)
    assert len(batches) == len(loader)
    reference = make_sampler(dataset, rank=0, world_size=1, batch_per_rank=3)
    reference.set_epoch(1)
    for batch, keys in zip(batches, reference, strict=True):
        expected = collate([dataset[key] for key in keys])
        assert torch.equal(batch[K.POSITIONS], expected[K.POSITIONS]) and torch.equal(
            batch[K.EDGE_INDEX], expected[K.EDGE_INDEX]
        )
    # stop after 3 steps, save, and resume in a fresh loader: the remaining batches are identical
    loader.set_epoch(2)
    iterator = iter(loader)
    head = [next(iterator) for _ in range(3)]
    state = loader.state_dict()
    assert state["step"] == 3
    assert loader.sampler.state_dict()["step"] > 3  # the workers' prefetch ran the sampler ahead
    del iterator
    fresh = build_loader(
        dataset,
        make_sampler(dataset, rank=0, world_size=1, batch_per_rank=3),
        num_workers=2,
        prefetch_factor=2,
    )
    fresh.load_state_dict(state)
    fresh.set_epoch(2)
    tail = list(fresh)
    again = build_loader(
        dataset, make_sampler(dataset, rank=0, world_size=1, batch_per_rank=3), num_workers=0
    )
    again.set_epoch(2)
    whole = list(again)
    assert len(head) + len(tail) == len(whole)
    for got, want in zip(head + tail, whole, strict=True):
        assert torch.equal(got[K.POSITIONS], want[K.POSITIONS]) and torch.equal(
            got[K.FORCES], want[K.FORCES]
        )


def test_bad_sampler_arguments(dataset):
    with pytest.raises(ValueError, match="strategy"):
        make_sampler(dataset, strategy="fastest")
    with pytest.raises(ValueError, match="rank"):
        make_sampler(dataset, rank=2)
    with pytest.raises(ValueError, match="memory cap"):
        make_sampler(dataset, strategy="random", max_atoms_per_rank=100)
    with pytest.raises(ValueError, match="sum to"):
        DistributedBatchSampler(dataset.natoms, [1, 2])
