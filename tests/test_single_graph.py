"""The calculator's single-structure inputs (lamm.single_graph) against the training path:
structure_to_graph + collate + Potential.predict, the calculator's path before it.

Same fields, same edges in the same order, the same energies, forces and stress, on periodic
and molecular structures, both force modes, every head; and again after the atomic numbers, the
pbc or the cell change between calls of one calculator (its cached tensors must follow).
"""

import warnings

import numpy as np
import pytest
import torch
from ase.build import bulk
from model_support import TINY_CONFIG, ethanol, rocksalt, single_thread, tiny_potential  # noqa: F401

from lamm import keys as K
from lamm.calculator import LaMMCalculator
from lamm.data.graph import collate, structure_to_graph
from lamm.data.record import StructureRecord
from lamm.models.checkpoint import checkpoint_dict, load_potential, save_checkpoint
from lamm.single_graph import SingleGraphBuilder

INPUT_FIELDS = (
    K.ATOMIC_NUMBERS,
    K.POSITIONS,
    K.CELL,
    K.PBC,
    K.NATOMS,
    K.BATCH,
    K.EDGE_INDEX,
    K.CELL_OFFSETS,
    K.DATASET_INDEX,
)


def calculator(tmp_path, force_mode, head="a"):
    """A calculator, and beside it its checkpoint's potential as training builds it (the
    calculator sets its own copy up for inference: no weight gradients, plain-autograd messages)."""
    path = tmp_path / f"{force_mode}.pt"
    config = {
        **TINY_CONFIG,
        "force_mode": force_mode,
        "painn": {**TINY_CONFIG["painn"], "recompute_messages": True},
    }
    save_checkpoint(path, checkpoint_dict(tiny_potential(force_mode, stats=True).float(), config))
    calc = LaMMCalculator(path, head=head)
    calc.reference = load_potential(path).eval()
    assert all(p.requires_grad for p in calc.reference.parameters())
    return calc


def alloy():
    """A 16-atom periodic Cu-Au cell, sheared and rattled: the demo's MD cells in miniature."""
    atoms = bulk("Cu", "fcc", a=3.7, cubic=True).repeat((2, 2, 1))
    atoms.numbers[[1, 6, 11]] = 79
    atoms.set_cell(
        atoms.cell.array @ (np.eye(3) + np.triu(np.full((3, 3), 0.015), 1)), scale_atoms=True
    )
    atoms.rattle(0.05, seed=3)
    return atoms


def collated(atoms, potential, head_index, max_neighbors=None):
    record = StructureRecord(
        atomic_numbers=atoms.numbers.astype(np.int64),
        positions=atoms.positions.astype(np.float64),
        cell=atoms.cell.array.astype(np.float64),
        pbc=np.asarray(atoms.pbc, dtype=bool),
    )
    dtype = next(potential.parameters()).dtype
    graph = structure_to_graph(
        record,
        cutoff=potential.cutoff,
        max_neighbors=max_neighbors or potential.max_neighbors,
        dataset_index=head_index,
        dtype=dtype,
    )
    return collate([graph])


def batched_prediction(atoms, calc):
    """(energy, forces, stress or None) of calc's head by the training path (eV, eV/A, eV/A^3
    3x3)."""
    potential, head = calc.reference, calc.head_index
    periodic = bool(np.any(atoms.pbc))
    with torch.no_grad():
        out = potential.predict(collated(atoms, potential, head), compute_stress=periodic)
    stress = out[K.PRED_STRESS][0, :, :, head].double().numpy() if periodic else None
    return (
        float(out[K.PRED_ENERGY][0, head]),
        out[K.PRED_FORCES][:, :, head].double().numpy(),
        stress,
    )


def assert_same_as_batched(atoms, calc):
    atoms.calc = calc
    energy, forces, stress = batched_prediction(atoms, calc)
    assert atoms.get_potential_energy() == pytest.approx(energy, rel=1e-6, abs=1e-6)
    np.testing.assert_allclose(atoms.get_forces(), forces, rtol=1e-5, atol=1e-6)
    if stress is None:
        np.testing.assert_array_equal(atoms.get_stress(), np.zeros(6))
    else:
        full = atoms.get_stress(voigt=False)
        np.testing.assert_allclose(full, stress, rtol=1e-5, atol=1e-7)
        assert np.abs(full).max() > 1e-5  # a real comparison, not of two zero tensors


@pytest.mark.parametrize("max_neighbors", [None, 5])
@pytest.mark.parametrize("make", [rocksalt, ethanol, alloy])
def test_fields_equal_the_collated_batch(make, max_neighbors):
    atoms = make()
    potential = tiny_potential("gradient").float()
    batch = collated(atoms, potential, head_index=1, max_neighbors=max_neighbors)
    inputs = SingleGraphBuilder(potential.cutoff, max_neighbors)(
        atoms.numbers,
        atoms.positions,
        atoms.cell.array,
        atoms.pbc,
        dataset_index=1,
        dtype=torch.float32,
    )
    assert inputs[K.EDGE_INDEX].shape[1] > 0
    for key in INPUT_FIELDS:
        assert inputs[key].dtype == batch[key].dtype, key
        assert torch.equal(inputs[key], batch[key]), key


@pytest.mark.parametrize("force_mode", ["direct", "gradient"])
@pytest.mark.parametrize("head", ["a", "b"])
def test_calculator_equals_the_batched_path(tmp_path, force_mode, head):
    calc = calculator(tmp_path, force_mode, head)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for atoms in (rocksalt(), ethanol(), alloy()):
            assert_same_as_batched(atoms, calc)
    # direct forces with a stress: warned once per calculator, as before
    assert [str(w.message)[:18] for w in caught] == (
        ["direct force mode:"] if force_mode == "direct" else []
    )


@pytest.mark.parametrize("force_mode", ["direct", "gradient"])
@pytest.mark.filterwarnings("ignore:direct force mode")
def test_cached_inputs_follow_numbers_pbc_and_cell(tmp_path, force_mode):
    """One calculator through an MD-like sequence: moved atoms, new elements (same count), a
    different structure, pbc switched off and on, a strained cell."""
    calc = calculator(tmp_path, force_mode)
    atoms = alloy()
    assert_same_as_batched(atoms, calc)
    constants = calc._inputs._constants[K.ATOMIC_NUMBERS]
    atoms.positions += 0.02
    assert_same_as_batched(atoms, calc)
    assert calc._inputs._constants[K.ATOMIC_NUMBERS] is constants  # reused while the numbers stay
    atoms.numbers[[0, 5]] = [46, 78]  # Pd, Pt: same atom count, new embeddings
    assert_same_as_batched(atoms, calc)
    assert_same_as_batched(ethanol(), calc)  # other size, no pbc
    atoms.pbc = False  # same numbers, pbc changed: PBC and the stress must follow
    assert_same_as_batched(atoms, calc)
    atoms.pbc = True
    assert_same_as_batched(atoms, calc)
    atoms.set_cell(atoms.cell.array * 1.03, scale_atoms=True)
    assert_same_as_batched(atoms, calc)
    atoms.set_cell(
        atoms.cell.array @ (np.eye(3) + np.diag([0.0, 0.0, 0.04])), scale_atoms=False
    )  # cell only
    assert_same_as_batched(atoms, calc)


def test_builder_rejects_mismatched_positions():
    builder = SingleGraphBuilder(4.0)
    atoms = rocksalt()
    with pytest.raises(ValueError, match="positions must be"):
        builder(atoms.numbers, atoms.positions[:-1], atoms.cell.array, atoms.pbc)
