"""The offline demo data: byte reproducibility, tasks and labels, and labels that are what they
claim (recomputed with EMT and tblite, finite differences, adsorption-energy formulas)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import defaultdict

import numpy as np
import pytest
from ase.calculators.emt import EMT

from lamm.cli import main
from lamm.data.demo.adsorbates import gas_energy, oc20_gas_references
from lamm.data.demo.catalog import FAMILIES, SUBSET_NAMES, SUBSETS, frames_per_system, target_sizes
from lamm.data.demo.generate import SystemFailure, _FamilyState, generate_demo
from lamm.data.demo.labelers import DemoFailure, emt_relax, xtb_energy_forces
from lamm.data.demo.slabs import FMAX, MAX_STEPS
from lamm.data.demo.systems import SystemResult
from lamm.data.record import StructureRecord
from lamm.data.store import StructureStore
from tests.conftest import ROOT

# Atom-count ranges each generator promises (Table 2 / Fig. 4 shapes).
NATOMS_RANGE = {
    "oc20_s2ef": (24, 160),
    "oc20_is2re": (24, 160),
    "oc22_s2ef": (30, 160),
    "oc22_is2re": (30, 160),
    "odac23_s2ef": (100, 300),
    "odac23_is2re": (100, 300),
    "transition1x": (3, 23),
    "qm7x": (2, 23),
    "qmugs": (18, 100),
    "pubchem3d": (5, 160),
    "hme21": (12, 32),
}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo-tiny")
    report = generate_demo(out, scale="tiny", seed=0, workers=2)
    return out, report


def records(store: StructureStore) -> list[StructureRecord]:
    return [store.get_record(i) for i in range(len(store))]


def test_every_subset_written_with_its_target_count_and_metadata(tiny):
    out, report = tiny
    targets = target_sizes("tiny")
    assert sorted(report.subsets) == sorted(SUBSET_NAMES)
    for spec in SUBSETS:
        store = StructureStore(out / f"{spec.name}.lmdb")
        assert len(store) == targets[spec.name] == report.subsets[spec.name]["samples"]
        info = store.info
        assert info["subset"] == spec.name and info["source"] == "demo"
        assert (info["task"], info["energy_kind"], info["functional"], info["periodic"]) == (
            spec.task,
            spec.energy_kind,
            spec.functional,
            spec.periodic,
        )
        assert info["failures"] == report.subsets[spec.name]["failures"]
        low, high = NATOMS_RANGE[spec.name]
        assert low <= store.natoms.min() and store.natoms.max() <= high, spec.name
        splits = set(np.unique(store.split).tolist())
        assert splits == ({0, 1, 2} if spec.role == "downstream" else {0, 1}), spec.name


def test_labels_present_or_absent_as_the_task_says(tiny):
    out, _ = tiny
    for spec in SUBSETS:
        store = StructureStore(out / f"{spec.name}.lmdb")
        for record in records(store):
            assert (record.energy is not None) == ("energy" in spec.labels), spec.name
            assert (record.forces is not None) == ("forces" in spec.labels), spec.name
            assert (
                bool(record.pbc.all()) == spec.periodic and bool(record.pbc.any()) == spec.periodic
            )
            if spec.periodic:
                assert (
                    np.linalg.det(record.cell) > 8.0 * record.natoms
                )  # a cell of solid or lower density
            else:
                assert not record.cell.any()
            if record.energy is not None:
                assert np.isfinite(record.energy)
            if record.forces is not None:
                assert np.isfinite(record.forces).all()


def test_same_seed_same_bytes_for_any_worker_count_and_subset_selection(tiny, tmp_path):
    out, _ = tiny
    # One worker instead of two, and oc20_is2re without its sibling oc20_s2ef.
    chosen = ["oc20_is2re", "qm7x", "transition1x", "pubchem3d"]
    generate_demo(tmp_path, scale="tiny", seed=0, workers=1, subsets=chosen)
    for subset in chosen:
        assert (tmp_path / f"{subset}.lmdb").read_bytes() == (
            out / f"{subset}.lmdb"
        ).read_bytes(), subset
    assert sorted(p.name for p in tmp_path.glob("*.lmdb")) == sorted(f"{s}.lmdb" for s in chosen)


def test_rerun_keeps_finished_stores_and_rebuilds_other_settings(tiny, tmp_path):
    out, _ = tiny
    (tmp_path / "qm7x.lmdb").write_bytes(
        (out / "qm7x.lmdb").read_bytes()
    )  # as if a run stopped after qm7x
    before = (tmp_path / "qm7x.lmdb").stat()
    again = generate_demo(tmp_path, scale="tiny", seed=0, workers=1, subsets=["qm7x"])
    assert (
        again.subsets["qm7x"]["reused"]
        and (tmp_path / "qm7x.lmdb").stat().st_mtime_ns == before.st_mtime_ns
    )
    assert again.subsets["qm7x"]["samples"] == target_sizes("tiny")["qm7x"]
    other = generate_demo(tmp_path, scale="tiny", seed=1, workers=1, subsets=["qm7x"])
    assert not other.subsets["qm7x"]["reused"]
    first, second = StructureStore(out / "qm7x.lmdb"), StructureStore(tmp_path / "qm7x.lmdb")
    assert second.info["demo"]["seed"] == 1
    assert first.get_record(0).source_id != second.get_record(0).source_id


def test_emt_labels_are_energy_and_minus_gradient(tiny):
    out, _ = tiny
    for subset in ("oc20_s2ef", "odac23_s2ef"):
        record = StructureStore(out / f"{subset}.lmdb").get_record(1)
        atoms = record.to_atoms()
        atoms.set_constraint()
        atoms.calc = EMT()
        assert atoms.get_potential_energy() == pytest.approx(record.energy, abs=1e-9)
        np.testing.assert_allclose(atoms.get_forces(), record.forces, atol=1e-9)
    # forces are minus the gradient: central difference of the EMT energy along one coordinate
    atom, axis, step = int(np.argmax(np.abs(record.forces).max(axis=1))), 2, 1e-4
    energies = []
    for sign in (1, -1):
        moved = atoms.copy()
        moved.positions[atom, axis] += sign * step
        moved.calc = EMT()
        energies.append(moved.get_potential_energy())
    assert -(energies[0] - energies[1]) / (2 * step) == pytest.approx(
        record.forces[atom, axis], abs=1e-4
    )


# Recomputes with tblite in a child process with one OpenMP thread: in this process tblite
# would start one spinning thread per core, which is slow on a shared machine.
_RECOMPUTE_XTB = """
import json, sys
import numpy as np
from tblite.ase import TBLite  # an independent path into tblite (its ASE calculator)
from lamm.data.demo.labelers import xtb_energy_forces
from lamm.data.store import StructureStore
out, result = sys.argv[1], {}
for subset, method in (("transition1x", "GFN2-xTB"), ("qm7x", "GFN2-xTB")):
    atoms = StructureStore(f"{out}/{subset}.lmdb").get_atoms(0)
    atoms.calc = TBLite(method=method, verbosity=0)
    result[subset] = [atoms.get_potential_energy(), atoms.get_forces().tolist()]
record = StructureStore(f"{out}/qm7x.lmdb").get_record(0)
for sign in (1, -1):  # central difference of the energy along x of atom 0
    moved = record.positions.copy()
    moved[0, 0] += sign * 1e-4
    result[f"qm7x{sign:+d}"] = xtb_energy_forces(
        record.atomic_numbers, moved, method="GFN2-xTB", forces=False
    )[0]
record = StructureStore(f"{out}/qmugs.lmdb").get_record(0)
result["qmugs"] = xtb_energy_forces(
    record.atomic_numbers, record.positions, method="GFN2-xTB", forces=False
)[0]
print(json.dumps(result))
"""


def test_xtb_labels_are_energy_and_minus_gradient(tiny):
    out, _ = tiny
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    child = subprocess.run(
        [sys.executable, "-c", _RECOMPUTE_XTB, str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
    )
    assert child.returncode == 0, child.stderr
    recomputed = json.loads(child.stdout.strip().splitlines()[-1])
    for subset in ("transition1x", "qm7x"):
        record = StructureStore(out / f"{subset}.lmdb").get_record(0)
        energy, forces = recomputed[subset]
        assert energy == pytest.approx(record.energy, abs=1e-6), subset
        np.testing.assert_allclose(forces, record.forces, atol=1e-6, err_msg=subset)
    qm7x = StructureStore(out / "qm7x.lmdb").get_record(0)
    gradient = (recomputed["qm7x+1"] - recomputed["qm7x-1"]) / 2e-4
    assert -gradient == pytest.approx(qm7x.forces[0, 0], abs=2e-3)
    qmugs = StructureStore(out / "qmugs.lmdb").get_record(0)
    assert recomputed["qmugs"] == pytest.approx(qmugs.energy, abs=1e-6) and qmugs.forces is None


def frames_of(store: StructureStore, system: str) -> list[StructureRecord]:
    return [r for r in records(store) if r.source_id.startswith(system + "/frame")]


@pytest.mark.parametrize("family", ["oc20", "oc22", "odac23"])
def test_is2re_labels_follow_their_relaxation(tiny, family):
    """The IS2RE sample of system 0 starts where its S2EF frames start; the relaxed energy lies
    below the initial one, and adsorption energies follow the documented references."""
    out, _ = tiny
    is2re = StructureStore(out / f"{family}_is2re.lmdb").get_record(0)
    system = is2re.source_id.removesuffix("/initial")
    frames = frames_of(StructureStore(out / f"{family}_s2ef.lmdb"), system)
    assert frames[0].source_id.endswith("frame000")
    np.testing.assert_array_equal(frames[0].positions, is2re.positions)
    initial = is2re.to_atoms()
    initial.set_constraint()
    initial.calc = EMT()
    e_initial = initial.get_potential_energy()
    assert e_initial == pytest.approx(frames[0].energy, abs=1e-9)
    e_relaxed = frames[-1].energy  # the last frame of a converged relaxation is always kept
    assert e_relaxed < e_initial
    adsorbate = is2re.tags == 2
    if family == "oc22":
        assert is2re.energy == pytest.approx(e_relaxed, abs=1e-9)
    elif family == "oc20":
        clean = is2re.to_atoms()[~adsorbate]
        slab_frames, converged = emt_relax(clean, fmax=FMAX, max_steps=MAX_STEPS)
        assert converged
        references = oc20_gas_references()
        symbols = np.array(initial.get_chemical_symbols())[adsorbate]
        expected = e_relaxed - slab_frames[-1].energy - sum(references[s] for s in symbols)
        assert is2re.energy == pytest.approx(expected, abs=1e-6)
    else:
        host = is2re.to_atoms()[~adsorbate]
        host.set_constraint()
        host.calc = EMT()
        names = system.rsplit("+", 2)  # ".../<framework>+CO2" or "+CO2+H2O"
        molecules = [n for n in names[1:] if n in ("CO2", "H2O")] or [names[-1]]
        expected = e_relaxed - host.get_potential_energy() - sum(gas_energy(m) for m in molecules)
        assert is2re.energy == pytest.approx(expected, abs=1e-6)
        assert is2re.fixed[~adsorbate].all() and not is2re.fixed[adsorbate].any()


def test_frames_of_one_relaxation_share_a_split(tiny):
    out, _ = tiny
    for subset in ("oc20_s2ef", "oc22_s2ef", "odac23_s2ef"):
        store = StructureStore(out / f"{subset}.lmdb")
        splits = defaultdict(set)
        for index, record in enumerate(records(store)):
            splits[record.source_id.rsplit("/frame", 1)[0]].add(int(store.split[index]))
        assert all(len(s) == 1 for s in splits.values()), subset
        assert len(splits) >= 2


def test_sizes_keep_table2_order_compressed():
    for scale in ("tiny", "small", "medium"):
        sizes = target_sizes(scale)
        pretrain = sorted(
            (s for s in SUBSETS if s.role == "pretrain"), key=lambda s: -s.paper_samples
        )
        counts = [sizes[s.name] for s in pretrain]
        assert counts == sorted(counts, reverse=True), scale  # Table 2's order, ties allowed
        assert sizes["oc20_s2ef"] == max(counts)
    small = target_sizes("small")
    assert (
        5 <= small["oc20_s2ef"] / small["oc22_is2re"] <= 20
    )  # compressed: the paper's ratio is ~2900
    assert min(small.values()) >= 50
    oc20 = next(f for f in FAMILIES if f.name == "oc20")
    assert frames_per_system(oc20, "small") * small["oc20_is2re"] >= small["oc20_s2ef"]


def test_failures_are_counted_per_reason_and_generation_goes_on():
    """A family state counts whole-system and per-subset failures and keeps filling its target."""
    family = next(f for f in FAMILIES if f.name == "oc22")
    state = _FamilyState(family, {"oc22_s2ef": 3, "oc22_is2re": 2}, frames=2)
    frame = StructureRecord(
        np.array([8]), np.zeros((1, 3)), np.eye(3) * 10, np.ones(3, bool), 1.0, np.zeros((1, 3))
    )
    state.consume(SystemFailure("no free adsorption site", ""))
    state.consume(
        SystemResult({"oc22_s2ef": [frame, frame]}, {"oc22_is2re": "EMT relaxation not converged"})
    )
    assert not state.complete and state.deficit("oc22_is2re") == 2
    state.consume(SystemResult({"oc22_s2ef": [frame, frame], "oc22_is2re": [frame]}))
    state.consume(SystemResult({"oc22_s2ef": [frame, frame], "oc22_is2re": [frame]}))
    assert state.complete and len(state.records["oc22_s2ef"]) == 3  # the last system truncated
    state.consume(SystemFailure("past the stopping point", ""))  # discarded, not counted
    assert dict(state.failures["oc22_is2re"]) == {
        "no free adsorption site": 1,
        "EMT relaxation not converged": 1,
    }
    assert dict(state.failures["oc22_s2ef"]) == {"no free adsorption site": 1}
    assert [split for _, split in state.records["oc22_is2re"]] == [
        "val",
        "train",
    ]  # productive ordinals 1, 2


def test_unconverged_scf_is_a_counted_failure_not_a_label():
    numbers = np.array([6, 8])
    positions = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.13]])
    with pytest.raises(DemoFailure) as failure:
        xtb_energy_forces(numbers, positions, method="GFN2-xTB", max_iterations=1)
    assert failure.value.reason == "GFN2-xTB SCF not converged"


def test_bad_arguments_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown demo subset 'oc21_s2ef'"):
        generate_demo(tmp_path, scale="tiny", subsets=["oc21_s2ef"])
    with pytest.raises(ValueError, match="unknown scale 'huge'"):
        generate_demo(tmp_path, scale="huge")
    with pytest.raises(ValueError, match="workers"):
        generate_demo(tmp_path, scale="tiny", workers=0)


def test_curated_smiles_parse_and_decorated_molecules_are_valid():
    from rdkit import Chem

    from lamm.data.demo.molecules import decorated_molecule
    from lamm.data.demo.smiles import DRUGS, SCAFFOLDS, SMALL_CHNO, SMALL_CHNOSCL, SUBSTITUENTS

    for smiles in (*SMALL_CHNOSCL, *DRUGS, *SCAFFOLDS, *SUBSTITUENTS):
        assert Chem.MolFromSmiles(smiles) is not None, smiles
    assert all(Chem.MolFromSmiles(s).GetNumHeavyAtoms() <= 7 for s in SMALL_CHNOSCL)
    assert {a.GetSymbol() for s in SMALL_CHNO for a in Chem.MolFromSmiles(s).GetAtoms()} == {
        "C",
        "N",
        "O",
    }
    rng = np.random.default_rng(3)
    for _ in range(20):
        molecule = Chem.MolFromSmiles(decorated_molecule(rng))
        assert molecule is not None and molecule.GetNumHeavyAtoms() <= 50


def test_cli_demo_writes_stores_summary_and_an_mlflow_run(tmp_path, capsys, tracking_db):
    from mlflow.tracking import MlflowClient

    data = tmp_path / "data"
    assert (
        main(
            [
                "data",
                "demo",
                "--out",
                str(data),
                "--scale",
                "tiny",
                "--workers",
                "1",
                "--subsets",
                "qm7x",
            ]
        )
        == 0
    )
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (
        summary["subsets"]["qm7x"]["samples"]
        == target_sizes("tiny")["qm7x"]
        == len(StructureStore(data / "qm7x.lmdb"))
    )
    assert sorted(p.name for p in data.iterdir()) == ["demo_summary.json", "qm7x.lmdb"]
    assert json.loads((data / "demo_summary.json").read_text())["subsets"] == summary["subsets"]
    client = MlflowClient(tracking_uri=f"sqlite:///{tracking_db}")
    (run,) = client.search_runs(client.get_experiment_by_name("lamm").experiment_id)
    assert run.info.run_name == "data-demo-tiny" and run.info.status == "FINISHED"
    assert run.data.tags["stage"] == "data" and run.data.params["scale"] == "tiny"
    assert run.data.metrics["samples.qm7x"] == summary["subsets"]["qm7x"]["samples"]
    assert run.data.metrics["failures.qm7x"] == 0 and run.data.metrics["wall_s"] > 0
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["demo_summary.json"]
