"""Stress: ASE's convention, finite differences of the energy under strain, zero without
periodicity, batches, the calculator (cell relaxation, NPT), records, the loss and the trainer."""

import warnings

import numpy as np
import pytest
import torch
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.filters import FrechetCellFilter
from ase.md.nptberendsen import NPTBerendsen
from ase.md.velocitydistribution import thermalize_momenta
from ase.optimize import BFGS
from model_support import (
    STATS,
    TINY_CONFIG,
    batch_of,
    ethanol,
    rocksalt,
    tiny_potential,
)  # noqa: F401

from lamm import keys as K
from lamm.calculator import LaMMCalculator
from lamm.data.checks import INCONSISTENT_ARRAYS, NON_FINITE_LABELS, check_record
from lamm.data.graph import collate, structure_to_graph
from lamm.data.record import StructureRecord
from lamm.data.units import Units
from lamm.training.loss import universal_loss_terms

STEP = 1e-5  # strain step of the central differences


def strained(atoms: Atoms, eps: np.ndarray) -> Atoms:
    """Positions and cell deformed by (I + eps), as the stress is defined."""
    out = atoms.copy()
    out.set_cell(atoms.cell.array @ (np.eye(3) + eps), scale_atoms=True)
    return out


def finite_difference_stress(energy, atoms: Atoms) -> np.ndarray:
    """(1/V) dE/d(eps) [3, 3] by central differences of `energy(atoms)` under symmetric strains."""
    stress = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            eps = np.zeros((3, 3))
            eps[i, j] += STEP / 2
            eps[j, i] += STEP / 2
            stress[i, j] = (energy(strained(atoms, eps)) - energy(strained(atoms, -eps))) / (
                2 * STEP
            )
    return stress / atoms.get_volume()


def triclinic() -> Atoms:
    atoms = bulk("NaCl", "rocksalt", a=5.64)  # primitive fcc cell, 2 atoms
    atoms = strained(
        atoms.repeat((2, 1, 1)),
        np.array([[0.04, 0.03, -0.02], [0.0, -0.03, 0.05], [0.01, 0.0, 0.02]]),
    )
    atoms.rattle(0.1, seed=3)
    return atoms


def model_stress(potential, atoms: Atoms, head: int) -> np.ndarray:
    out = potential.predict(batch_of(atoms, dataset_index=head), compute_stress=True)
    return out[K.PRED_STRESS][0, :, :, head].detach().numpy()


def model_energy(potential, head: int):
    return lambda atoms: potential.predict(batch_of(atoms, dataset_index=head))[K.PRED_ENERGY][
        0, head
    ].item()


def test_the_convention_is_ases_emt_and_the_finite_differences_here():
    # compressed copper (a < 3.61 A) pushes outwards: negative stress in ASE's convention
    atoms = bulk("Cu", "fcc", a=3.5, cubic=True)
    atoms.calc = EMT()
    reference = atoms.get_stress(voigt=False)

    def energy(other):
        other.calc = EMT()
        return other.get_potential_energy()

    np.testing.assert_allclose(finite_difference_stress(energy, atoms), reference, atol=1e-9)
    assert (np.diag(reference) < 0).all()


@pytest.mark.parametrize("force_mode", ["gradient", "direct"])
@pytest.mark.parametrize("cell", ["cubic", "triclinic"])
def test_stress_is_the_strain_derivative_of_the_energy(force_mode, cell):
    # non-trivial statistics (head 1): the normalized stress is scaled back to eV/A^3
    potential = tiny_potential(force_mode, stats=True).eval()
    atoms = rocksalt() if cell == "cubic" else triclinic()
    stress = model_stress(potential, atoms, head=1)
    numeric = finite_difference_stress(model_energy(potential, 1), atoms)
    assert np.abs(stress).max() > 1e-4  # not trivially zero
    np.testing.assert_allclose(stress, numeric, rtol=1e-5, atol=1e-6 * np.abs(numeric).max())
    np.testing.assert_allclose(stress, stress.T, atol=1e-14)


def test_equiformer_v2_stress_matches_finite_differences():
    potential = tiny_potential("gradient", heads=("a",), encoder="equiformer_v2").eval()
    atoms = triclinic()
    numeric = finite_difference_stress(model_energy(potential, 0), atoms)
    np.testing.assert_allclose(
        model_stress(potential, atoms, head=0),
        numeric,
        rtol=1e-5,
        atol=1e-6 * np.abs(numeric).max(),
    )


def test_zero_without_periodicity_and_nan_without_volume():
    potential = tiny_potential("gradient").eval()
    assert np.all(model_stress(potential, ethanol(), head=0) == 0.0)
    # periodic along a and b, but no c vector: no volume to divide by
    sheet = Atoms(
        "NaCl",
        positions=[[0, 0, 0], [1.4, 1.4, 0.0]],
        cell=[[2.8, 0, 0], [0, 2.8, 0], [0, 0, 0]],
        pbc=[True, True, False],
    )
    assert np.isnan(model_stress(potential, sheet, head=0)).all()


def test_a_mixed_batch_equals_the_single_structures():
    potential = tiny_potential("gradient", stats=True).eval()
    structures = [rocksalt(), ethanol(), triclinic()]
    graphs = [
        batch_of(atoms, dataset_index=d).to_data_list()[0]
        for atoms, d in zip(structures, (0, 1, 1), strict=True)
    ]
    batch = collate(graphs)
    together = potential.predict(batch, compute_stress=True)[K.PRED_STRESS].detach()
    for b, (atoms, d) in enumerate(zip(structures, (0, 1, 1), strict=True)):
        np.testing.assert_allclose(
            together[b, :, :, d].numpy(),
            model_stress(potential, atoms, head=d),
            rtol=1e-9,
            atol=1e-14,
        )
        assert torch.isnan(together[b, :, :, 1 - d]).all()  # other heads: not computed
    assert (together[1, :, :, 1] == 0).all()


def test_stress_leaves_energy_and_forces_unchanged():
    potential = tiny_potential("gradient", stats=True).eval()
    batch = batch_of(triclinic(), dataset_index=1)
    plain, with_stress = potential.predict(batch), potential.predict(batch, compute_stress=True)
    assert torch.equal(plain[K.PRED_ENERGY], with_stress[K.PRED_ENERGY])
    torch.testing.assert_close(
        plain[K.PRED_FORCES], with_stress[K.PRED_FORCES], rtol=1e-12, atol=1e-14, equal_nan=True
    )
    assert K.PRED_STRESS not in plain


# --- the calculator ---------------------------------------------------------------------------
def calculator(force_mode: str = "gradient") -> LaMMCalculator:
    calc = LaMMCalculator.untrained(
        "painn", heads=["a"], seed=0, force_mode=force_mode, model_config=TINY_CONFIG
    )
    calc.potential.double()
    calc.dtype = torch.float64
    return calc


def test_calculator_returns_voigt_stress_in_ev_per_a3():
    atoms = triclinic()
    atoms.calc = calculator()
    forces = atoms.get_forces()
    assert "stress" in atoms.calc.results  # gradient mode: computed with the forces, no second call
    stress = atoms.get_stress()
    assert stress.shape == (6,)
    full = model_stress(atoms.calc.potential, atoms, head=0)
    np.testing.assert_allclose(
        stress, full[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]], rtol=1e-12
    )  # xx yy zz yz xz xy
    plain = atoms.calc.potential.predict(batch_of(atoms))
    np.testing.assert_array_equal(forces, plain[K.PRED_FORCES][:, :, 0].detach().numpy())
    molecule = ethanol()
    molecule.calc = calculator()
    assert np.all(molecule.get_stress() == 0.0)


def test_direct_mode_calculator_gives_the_energy_derivative_and_warns_once():
    atoms = rocksalt()
    atoms.calc = calculator("direct")
    atoms.get_forces()
    assert "stress" not in atoms.calc.results  # only when asked: it costs a backward pass
    with pytest.warns(UserWarning, match="direct force mode"):
        stress = atoms.get_stress(voigt=False)
    np.testing.assert_allclose(
        stress, model_stress(atoms.calc.potential, atoms, head=0), rtol=1e-12
    )
    atoms.rattle(0.01, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        atoms.get_stress()


@pytest.fixture
def one_blas_thread():
    """FrechetCellFilter's 3 x 3 logm/expm in scipy: OpenBLAS threads on a loaded shared machine
    make each 3 x 3 solve take milliseconds (20x slower relaxation)."""
    threadpoolctl = pytest.importorskip("threadpoolctl")
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield


def test_cell_relaxation_lowers_energy_and_stress(one_blas_thread):
    atoms = bulk("Si", "diamond", a=5.2)  # 2 atoms, primitive cell, strained and rattled
    atoms.rattle(0.02, seed=1)
    atoms = strained(atoms, np.array([[0.0, 0.03, 0.0], [0.0, -0.03, 0.0], [0.0, 0.0, 0.02]]))
    atoms.calc = calculator()
    energy, stress = atoms.get_potential_energy(), np.abs(atoms.get_stress()).max()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # scipy's logm accuracy notes
        converged = BFGS(FrechetCellFilter(atoms), logfile=None).run(fmax=0.01, steps=80)
    assert converged
    assert atoms.get_potential_energy() < energy - 0.1
    assert np.abs(atoms.get_stress()).max() < stress / 10


def test_npt_runs_and_changes_the_volume():
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.calc = calculator()
    thermalize_momenta(atoms, temperature_K=300, rng=np.random.default_rng(0))
    dynamics = NPTBerendsen(
        atoms,
        timestep=1 * units.fs,
        temperature_K=300,
        pressure_au=1e-4 * units.GPa,
        taut=50 * units.fs,
        taup=100 * units.fs,
        compressibility_au=1 / (140 * units.GPa),
    )
    volumes, energies = [atoms.get_volume()], []
    dynamics.attach(
        lambda: (volumes.append(atoms.get_volume()), energies.append(atoms.get_total_energy()))
    )
    dynamics.run(8)
    assert np.isfinite(energies).all()
    assert abs(volumes[-1] - volumes[0]) > 1e-3 * volumes[0]


# --- labels: records, graphs, units, checks ---------------------------------------------------
def labeled(stress: np.ndarray | None) -> StructureRecord:
    atoms = rocksalt()
    return StructureRecord(
        **{
            **StructureRecord.from_atoms(atoms, source_id="x").__dict__,
            "energy": -3.0,
            "stress": stress,
        }
    )


STRESS = (
    np.array([[1.0, 0.6, 0.5], [0.6, 2.0, 0.4], [0.5, 0.4, 3.0]]) * 1e-3
)  # xy 0.6, xz 0.5, yz 0.4


def test_record_encoding_round_trip_and_old_records():
    record = labeled(STRESS)
    decoded = StructureRecord.decode(record.encode())
    np.testing.assert_array_equal(decoded.stress, STRESS)
    assert decoded.energy == -3.0 and decoded.source_id == "x"
    # without stress: the encoding is the old one (no flag bit 7, nothing appended) ...
    old = labeled(None).encode()
    assert old[1] & 128 == 0 and StructureRecord.decode(old).stress is None
    # ... and a record with stress is the old encoding plus a tail that old decoders ignore
    new = record.encode()
    assert new[1] == old[1] | 128 and new[2:].startswith(old[2:])


def test_ase_round_trip_in_voigt_order():
    atoms = labeled(STRESS).to_atoms()
    np.testing.assert_array_equal(
        atoms.calc.results["stress"], 1e-3 * np.array([1.0, 2.0, 3.0, 0.4, 0.5, 0.6])
    )
    np.testing.assert_array_equal(StructureRecord.from_atoms(atoms).stress, STRESS)
    atoms.calc = SinglePointCalculator(atoms, energy=1.0, stress=STRESS)  # 3 x 3 is accepted too
    np.testing.assert_array_equal(StructureRecord.from_atoms(atoms).stress, STRESS)
    assert StructureRecord.from_atoms(labeled(None).to_atoms()).stress is None


def test_graph_units_and_checks():
    graphs = [structure_to_graph(labeled(s), cutoff=4.0) for s in (STRESS, None)]
    batch = collate(graphs)
    assert batch[K.STRESS].shape == (2, 3, 3) and batch[K.STRESS_MASK].tolist() == [True, False]
    torch.testing.assert_close(batch[K.STRESS][0], torch.tensor(STRESS, dtype=torch.float32))
    assert (batch[K.STRESS][1] == 0).all()
    in_ev = Units(energy="hartree", length="bohr").apply(labeled(STRESS))
    np.testing.assert_allclose(in_ev.stress, STRESS * units.Hartree / units.Bohr**3)
    assert check_record(labeled(np.full((3, 3), np.nan)), labels=()) == NON_FINITE_LABELS
    assert check_record(labeled(np.zeros(6)), labels=()) == INCONSISTENT_ARRAYS
    with pytest.raises(ValueError, match="stress must have shape"):
        labeled(np.zeros(6)).validate()


# --- the loss and the trainer -----------------------------------------------------------------
def test_stress_term_by_hand_and_masked():
    # B = 3, D = 2; s0 head 0 with error of Frobenius norm 5, s1 head 1 with norm 2, s2 unlabeled
    target = torch.zeros(3, 3, 3, dtype=torch.float64)
    pred = torch.full((3, 3, 3, 2), 1e3, dtype=torch.float64)
    pred[0, :, :, 0] = torch.tensor([[3.0, 0, 0], [0, 0, 0], [0, 0, 4.0]])
    pred[1, :, :, 1] = torch.tensor([[0, 1.0, 0], [1.0, 1.0, 0], [0, 0, 1.0]])
    pred[2, :, :, 1] = float("nan")  # no label: must not leak
    pred.requires_grad_(True)
    dataset_index, mask = torch.tensor([0, 1, 1]), torch.tensor([True, True, False])
    energy = torch.zeros(3, 2, dtype=torch.float64)
    forces, atom_batch = torch.zeros(3, 3, 2, dtype=torch.float64), torch.tensor([0, 1, 2])
    common = (
        energy,
        forces,
        torch.zeros(3, dtype=torch.float64),
        torch.zeros(3, 3, dtype=torch.float64),
        dataset_index,
        torch.zeros(3, dtype=torch.bool),
        torch.zeros(3, dtype=torch.bool),
        atom_batch,
    )
    terms = universal_loss_terms(
        *common, pred_stress=pred, target_stress=target, stress_mask=mask, lambda_stress=0.5
    )
    assert terms.stress.item() == pytest.approx((5.0 + 2.0) / 2)
    assert terms.total.item() == pytest.approx(0.5 * 3.5)
    terms.total.backward()
    assert (
        torch.isfinite(pred.grad).all()
        and (pred.grad[2] == 0).all()
        and (pred.grad[0, :, :, 1] == 0).all()
    )
    assert universal_loss_terms(*common).stress.item() == 0.0  # no stress given: a zero term
    with pytest.raises(ValueError, match="together"):
        universal_loss_terms(*common, pred_stress=pred)


@pytest.mark.parametrize("lambda_stress", [0.0, 2.0])
def test_trainer_loss_uses_stress_labels_only_with_a_weight(lambda_stress):
    from lamm.training.distributed import DistributedContext
    from lamm.training.timing import StepClock
    from lamm.training.trainer import Trainer

    potential = tiny_potential("gradient", stats=True)
    trainer = Trainer.__new__(Trainer)
    trainer.model = trainer.wrapped = potential
    trainer.context = DistributedContext(
        rank=0, world_size=1, local_rank=0, device=torch.device("cpu")
    )
    trainer.config = {
        "loss": {"lambda_energy": 1.0, "lambda_forces": 10.0, "lambda_stress": lambda_stress}
    }
    trainer.accumulate, trainer.autocast_dtype = 1, None
    graphs = [
        structure_to_graph(labeled(s), cutoff=4.0, dataset_index=1, dtype=torch.float64)
        for s in (STRESS, None)
    ]
    batch = collate(graphs)
    loss, parts, finite = trainer._loss(batch, StepClock(torch.device("cpu")))
    assert finite
    plain = universal_loss_terms(
        *(potential(batch)[k] for k in (K.PRED_ENERGY, K.PRED_FORCES)),
        potential.normalizer.normalize_energy(
            batch[K.ENERGY], batch[K.ATOMIC_NUMBERS], batch[K.BATCH], batch[K.DATASET_INDEX]
        ),
        potential.normalizer.normalize_forces(
            batch[K.FORCES], batch[K.DATASET_INDEX][batch[K.BATCH]]
        ),
        batch[K.DATASET_INDEX],
        batch[K.ENERGY_MASK],
        batch[K.FORCE_MASK],
        batch[K.BATCH],
        1.0,
        10.0,
    ).total
    if lambda_stress == 0:
        assert "loss/stress" not in parts
        assert loss.item() == pytest.approx(plain.item(), rel=1e-6)
        return
    # only the labeled structure counts, compared on its own head in units of its force RMS
    predicted = potential.predict(batch, compute_stress=True)[K.PRED_STRESS][0, :, :, 1].detach()
    expected = torch.linalg.norm(predicted - torch.tensor(STRESS)).item() / STATS[1]["force_rms"]
    assert parts["loss/stress"] == pytest.approx(expected, rel=1e-5)
    assert loss.item() == pytest.approx(plain.item() + lambda_stress * expected, rel=1e-5)
    loss.backward()
    assert potential.energy_head.mlp[0].weight.grad.abs().sum() > 0
