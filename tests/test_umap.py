"""UMAP of atom representations: invariance, sampling, embedding, ellipses, groups, the command."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch
from ase.data import atomic_numbers

from lamm.analysis.umap_atoms import (
    atom_representations,
    covariance_ellipse,
    embed,
    open_stores,
    periodic_group,
    sample_atoms,
)
from lamm.cli import main
from lamm.data.store import StructureStore
from lamm.models.checkpoint import checkpoint_dict, save_checkpoint
from tests.helpers.training_data import SUBSETS, write_training_stores
from tests.model_support import (
    TINY_CONFIG,
    batch_of,
    ethanol,
    random_rotation,
    rocksalt,
    tiny_potential,
)  # noqa: F401
from tests.store_factory import write_store


@pytest.mark.parametrize("structure", [ethanol, rocksalt])
def test_representations_are_invariant_to_rotation_and_translation(structure):
    potential = tiny_potential().eval()
    atoms = structure(1)
    moved = atoms.copy()
    rotation = random_rotation(4)
    moved.positions = atoms.positions @ rotation.T + np.array([0.3, -1.2, 2.0])
    moved.cell = atoms.cell.array @ rotation.T
    with torch.no_grad():
        reference = potential.atom_representations(batch_of(atoms))
        turned = potential.atom_representations(batch_of(moved))
    assert reference.shape == (len(atoms), TINY_CONFIG["painn"]["hidden_channels"])
    assert torch.allclose(reference, turned, atol=1e-9)
    with torch.no_grad():  # the same features the potential's forward hands to its heads
        assert torch.allclose(reference, potential(batch_of(atoms))["node_features"])


def test_sample_atoms_is_seeded_and_counts():
    natoms = np.array([5, 80, 12, 40, 7, 33])
    first = sample_atoms(natoms, 30, np.random.default_rng(1))
    again = sample_atoms(natoms, 30, np.random.default_rng(1))
    other = sample_atoms(natoms, 30, np.random.default_rng(2))
    assert sum(len(a) for a in first.values()) == 30
    assert first.keys() == again.keys() and all(np.array_equal(first[k], again[k]) for k in first)
    assert first.keys() != other.keys() or any(
        not np.array_equal(first[k], other[k]) for k in first
    )
    assert all(len(np.unique(a)) == len(a) and a.max() < natoms[s] for s, a in first.items())
    everything = sample_atoms(natoms, 10_000, np.random.default_rng(0))
    assert sum(len(a) for a in everything.values()) == natoms.sum()
    with pytest.raises(ValueError, match="positive"):
        sample_atoms(natoms, 0, np.random.default_rng(0))


def test_covariance_ellipse_is_1p5_sigma_of_a_known_covariance():
    a, b = 3.0, 1.0
    points = np.array([[a, 0], [-a, 0], [0, b], [0, -b]]) + np.array([2.0, -1.0])
    center, width, height, angle = covariance_ellipse(points, n_sigma=1.5)
    # np.cov (n - 1): var_x = 2 a^2 / 3, var_y = 2 b^2 / 3; full axes 2 x 1.5 sigma
    assert np.allclose(center, [2.0, -1.0])
    assert width == pytest.approx(3.0 * math.sqrt(2 * a**2 / 3))
    assert height == pytest.approx(3.0 * math.sqrt(2 * b**2 / 3))
    assert angle % 180 == pytest.approx(0.0, abs=1e-9) or angle % 180 == pytest.approx(
        180.0, abs=1e-9
    )
    turn = math.radians(30)
    rotation = np.array([[math.cos(turn), -math.sin(turn)], [math.sin(turn), math.cos(turn)]])
    _, w, h, rotated_angle = covariance_ellipse(points @ rotation.T, n_sigma=1.5)
    assert (w, h) == (pytest.approx(width), pytest.approx(height))
    assert rotated_angle % 180 == pytest.approx(30.0)
    with pytest.raises(ValueError, match="at least 2 points"):
        covariance_ellipse(np.zeros((1, 2)))


@pytest.mark.parametrize(
    "symbol, group",
    [
        ("H", 1),
        ("Na", 1),
        ("Mg", 2),
        ("Sc", 3),
        ("Fe", 8),
        ("Pt", 10),
        ("Cu", 11),
        ("Zn", 12),
        ("B", 13),
        ("Si", 14),
        ("O", 16),
        ("Cl", 17),
        ("Ar", 18),
        ("He", 18),
        ("La", 3),
        ("Ce", 3),
        ("U", 3),
        ("Hf", 4),
        ("Au", 11),
    ],
)
def test_periodic_group(symbol, group):
    assert periodic_group(atomic_numbers[symbol]) == group


def test_unknown_subset_and_empty_store_are_refused(tmp_path):
    data = write_training_stores(tmp_path / "data")
    with pytest.raises(ValueError, match="unknown subset 'oc21'.*oc20_s2ef"):
        open_stores(data, ["oc21"])
    empty = write_store(tmp_path / "data" / "void.lmdb", [], subset="void", task="s2ef")
    with pytest.raises(ValueError, match="void.lmdb: the store of subset 'void' is empty"):
        atom_representations(tiny_potential(), {"void": empty}, 10, seed=0)


def test_embedding_is_seeded(tmp_path):
    features = np.random.default_rng(0).normal(size=(60, 8))
    features[:30] += 4.0  # two clusters
    first = embed(features, seed=3, n_neighbors=10, n_epochs=30)
    assert first.shape == (60, 2) and np.isfinite(first).all()
    assert np.array_equal(first, embed(features, seed=3, n_neighbors=10, n_epochs=30))
    with pytest.raises(ValueError, match="needs more than 10 atoms"):
        embed(features[:10], seed=0, n_neighbors=10)


def test_umap_command_writes_figure_and_embedding(tmp_path, capsys):
    data = write_training_stores(tmp_path / "data")
    potential = tiny_potential(heads=tuple(SUBSETS), stats=False).float()
    checkpoint = save_checkpoint(
        tmp_path / "model.pt", checkpoint_dict(potential, {**TINY_CONFIG, "force_mode": "direct"})
    )
    out, figure = tmp_path / "umap", tmp_path / "fig8.png"
    code = main(
        [
            "umap",
            str(checkpoint),
            "--data",
            str(data),
            "--atoms-per-subset",
            "25",
            "--n-epochs",
            "20",
            "--n-neighbors",
            "8",
            "--out",
            str(out),
            "--figure",
            str(figure),
            "--seed",
            "1",
        ]
    )
    assert code == 0 and figure.stat().st_size > 10_000
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    with open(out / "embedding.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert (
        summary["atoms"] == len(rows) == 25 * len(SUBSETS)
    )  # every subset holds more than 25 atoms
    assert {r["subset"] for r in rows} == set(SUBSETS)
    store = StructureStore(data / "oc20_s2ef.lmdb")
    row = next(r for r in rows if r["subset"] == "oc20_s2ef")
    assert store.get_record(int(row["sample_index"])).atomic_numbers[int(row["atom_index"])] == int(
        row["atomic_number"]
    )
