"""Our pure-PyTorch torch_scatter.scatter (lamm/bench/peers/shims), which fairchem-core 1.x imports
in the side venv of `lamm bench model`, against cases worked out by hand."""

import pytest
import torch

from lamm.bench.peers.shims.torch_scatter import scatter, scatter_mean, scatter_sum

SRC = torch.tensor([1.0, 2.0, 3.0, 4.0])
INDEX = torch.tensor([0, 1, 0, 2])


@pytest.mark.parametrize(
    ("reduce", "expected"),
    [
        ("sum", [4.0, 2.0, 4.0]),  # 1 + 3, 2, 4
        ("add", [4.0, 2.0, 4.0]),
        ("mean", [2.0, 2.0, 4.0]),  # (1 + 3) / 2
        ("max", [3.0, 2.0, 4.0]),
        ("min", [1.0, 2.0, 4.0]),
        ("mul", [3.0, 2.0, 4.0]),
    ],
)
def test_one_dimensional_reductions(reduce, expected):
    assert scatter(SRC, INDEX, dim=0, reduce=reduce).tolist() == expected


@pytest.mark.parametrize("reduce", ["sum", "mean", "max", "min"])
def test_a_destination_without_sources_is_zero(reduce):
    # torch_scatter leaves untouched slots at 0 for every reduction (not -inf / +inf for max / min)
    out = scatter(SRC, INDEX, dim=0, dim_size=5, reduce=reduce)
    assert out.shape == (5,) and out[3:].tolist() == [0.0, 0.0]


def test_a_one_dimensional_index_labels_rows_of_a_matrix():
    src = torch.tensor([[1.0, 5.0], [3.0, 2.0], [0.0, 7.0]])
    index = torch.tensor([1, 1, 0])
    assert scatter(src, index, dim=0, reduce="sum").tolist() == [[0.0, 7.0], [4.0, 7.0]]
    assert scatter(src, index, dim=0, reduce="max").tolist() == [[0.0, 7.0], [3.0, 5.0]]
    assert scatter(src, index, dim=0, reduce="min").tolist() == [[0.0, 7.0], [1.0, 2.0]]
    assert scatter(src, index, dim=0, reduce="mean").tolist() == [[0.0, 7.0], [2.0, 3.5]]


def test_the_rank2_heads_per_edge_tensors_average_per_node():
    # fairchem's rank-2 head: scatter(edge_outer [E, 3, 3], edge_index, dim=0, reduce="mean")
    edge_outer = torch.stack([torch.full((3, 3), 2.0), torch.full((3, 3), 6.0), torch.eye(3)])
    node = scatter(edge_outer, torch.tensor([0, 0, 1]), dim=0, reduce="mean")
    assert node.shape == (2, 3, 3)
    assert torch.equal(node[0], torch.full((3, 3), 4.0)) and torch.equal(node[1], torch.eye(3))


def test_last_dimension_by_default():
    src = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert scatter(src, torch.tensor([0, 0, 1])).tolist() == [[3.0, 3.0], [9.0, 6.0]]


def test_out_is_reduced_into_as_torch_scatter_does():
    assert scatter_sum(SRC, INDEX, 0, out=torch.ones(3)).tolist() == [5.0, 3.0, 5.0]
    # mean with out: (out + sum of sources) / number of sources
    assert scatter_mean(SRC, INDEX, 0, out=torch.ones(3)).tolist() == [2.5, 3.0, 5.0]
    with pytest.raises(ValueError, match="out= is supported for sum and mean only"):
        scatter(SRC, INDEX, 0, out=torch.zeros(3), reduce="max")


def test_gradients_flow_to_the_sources():
    src = SRC.clone().requires_grad_(True)
    scatter(src, INDEX, dim=0, reduce="mean").sum().backward()
    assert src.grad.tolist() == [
        0.5,
        1.0,
        0.5,
        1.0,
    ]  # each of the two sources of slot 0 counts half


def test_empty_input_and_unknown_reduction():
    empty = scatter(torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), dim=0)
    assert empty.shape == (0, 4)
    with pytest.raises(ValueError, match="reduce must be one of"):
        scatter(SRC, INDEX, reduce="median")
