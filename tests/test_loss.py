"""Universal loss (LaMM eq. 5) on a hand-computed case, its masking and its gradients."""

import pytest
import torch
from model_support import batch_of, ethanol, rocksalt, single_thread, tiny_potential  # noqa: F401

from lamm import keys as K
from lamm.training.loss import universal_loss, universal_loss_terms

BIG = 1000.0  # values in channels a structure must not be compared on


def hand_case():
    """B = 3 structures, D = 2 heads.
    s0: 2 atoms, head 0, energy + forces;  s1: 1 atom, head 1, energy only;
    s2: 3 atoms, head 1, forces only (a denoising-like sample)."""
    pred_energy = torch.tensor(
        [[1.0, BIG], [BIG, -1.0], [BIG, 3.0]], dtype=torch.float64, requires_grad=True
    )
    target_energy = torch.tensor([0.5, 1.0, 77.0], dtype=torch.float64)  # 77: unlabeled, masked out
    # forces [N, 3, D]; the own channel holds prediction = target + error
    own_errors = torch.tensor(
        [
            [1.0, 0.0, 0.0],
            [0.0, -3.0, 4.0],  # s0: |e| = 1, 5 -> mean 3
            [9.0, 9.0, 9.0],  # s1: force-unlabeled, masked out
            [0.0, 0.0, 2.0],
            [1.0, 2.0, 2.0],
            [0.0, 0.0, 0.0],
        ],  # s2: |e| = 2, 3, 0 -> mean 5/3
        dtype=torch.float64,
    )
    target_forces = torch.randn(
        6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )
    dataset_index = torch.tensor([0, 1, 1])
    atom_batch = torch.tensor([0, 0, 1, 2, 2, 2])
    own = dataset_index[atom_batch]
    pred_forces = torch.full((6, 3, 2), BIG, dtype=torch.float64)
    pred_forces[torch.arange(6), :, own] = target_forces + own_errors
    pred_forces.requires_grad_(True)
    energy_mask = torch.tensor([True, True, False])
    force_mask = torch.tensor([True, False, True])
    return (
        pred_energy,
        pred_forces,
        target_energy,
        target_forces,
        dataset_index,
        energy_mask,
        force_mask,
        atom_batch,
    )


def test_matches_eq5_by_hand():
    args = hand_case()
    terms = universal_loss_terms(*args, lambda_energy=2.0, lambda_forces=0.5)
    # energy: (|0.5 - 1.0| + |1.0 - (-1.0)|) / 2 = 1.25
    assert terms.energy.item() == pytest.approx(1.25, abs=1e-12)
    # forces, structure-size balanced: (3 + 5/3) / 2 = 7/3  (a per-atom mean would give 11/5)
    assert terms.forces.item() == pytest.approx(7 / 3, abs=1e-12)
    assert terms.total.item() == pytest.approx(2.0 * 1.25 + 0.5 * 7 / 3, abs=1e-12)
    assert universal_loss(*args, lambda_energy=2.0, lambda_forces=0.5).item() == pytest.approx(
        terms.total.item()
    )


def test_gradients_by_hand_and_none_to_other_channels_or_masked_samples():
    args = hand_case()
    pred_energy, pred_forces = args[0], args[1]
    universal_loss(*args).backward()
    # energy: d/dE of |E^ - E| / 2 = sign(E - E^) / 2, only on own channels of labeled samples
    expected_energy = torch.zeros(3, 2, dtype=torch.float64)
    expected_energy[0, 0], expected_energy[1, 1] = 0.5, -0.5
    torch.testing.assert_close(pred_energy.grad, expected_energy)
    # forces: d/dF of ||e|| / (N_i * 2 structures) = e / ||e|| / (2 N_i); zero error -> zero, not
    # NaN
    e = torch.tensor([[1.0, 0, 0], [0, -3, 4], [0, 0, 2], [1, 2, 2]], dtype=torch.float64)
    unit = e / e.norm(dim=1, keepdim=True)
    expected_forces = torch.zeros(6, 3, 2, dtype=torch.float64)
    expected_forces[[0, 1], :, 0] = unit[:2] / (2 * 2)
    expected_forces[[3, 4], :, 1] = unit[2:] / (2 * 3)
    torch.testing.assert_close(pred_forces.grad, expected_forces)


@pytest.mark.parametrize("which", ["energy", "forces", "both"])
def test_empty_masks_give_zero_not_nan(which):
    args = list(hand_case())
    if which in ("energy", "both"):
        args[5] = torch.zeros(3, dtype=torch.bool)
    if which in ("forces", "both"):
        args[6] = torch.zeros(3, dtype=torch.bool)
    terms = universal_loss_terms(*args)
    if which != "forces":
        assert terms.energy.item() == 0.0
    if which != "energy":
        assert terms.forces.item() == 0.0
    terms.total.backward()
    assert torch.isfinite(args[0].grad).all() and torch.isfinite(args[1].grad).all()


@pytest.mark.parametrize("force_mode", ["direct", "gradient"])
def test_heads_of_absent_datasets_get_no_gradient(force_mode):
    potential = tiny_potential(force_mode, heads=("a", "b", "c"))
    from model_support import graph_of

    from lamm.data.graph import collate

    batch = collate([graph_of(ethanol(), dataset_index=0), graph_of(rocksalt(), dataset_index=1)])
    out = potential(batch)
    n = batch.num_nodes
    mask = torch.ones(2, dtype=torch.bool)
    loss = universal_loss(
        out[K.PRED_ENERGY],
        out[K.PRED_FORCES],
        torch.tensor([1.0, -2.0], dtype=torch.float64),
        torch.randn(n, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)),
        batch.dataset_index,
        mask,
        mask,
        batch.batch,
    )
    loss.backward()
    last = potential.energy_head.mlp[2]
    assert (last.weight.grad[2] == 0).all() and last.bias.grad[2] == 0
    assert (last.weight.grad[:2].abs().sum(dim=1) > 0).all()
    if force_mode == "direct":
        block = potential.force_head.blocks[1]
        assert (block.vector_out.weight.grad[2] == 0).all()
        assert (block.vector_out.weight.grad[:2].abs().sum(dim=1) > 0).all()
    assert potential.encoder.messages[0].filter_net.weight.grad.abs().sum() > 0


def test_shape_errors_name_the_argument():
    args = list(hand_case())
    args[7] = torch.tensor([0, 0, 1, 2, 2])
    with pytest.raises(ValueError, match="atom_batch"):
        universal_loss(*args)
