"""Energy referencing and normalization statistics, their edge cases and their cache."""

import json

import numpy as np
import pytest
import torch

from lamm.data.record import StructureRecord
from lamm.data.referencing import (
    fit_element_references,
    load_or_compute_statistics,
    statistics_path,
)
from lamm.models.normalizer import Normalizer
from tests.store_factory import write_store

TRUE_REFERENCES = {1: -3.4, 6: -8.1, 7: -6.3, 8: -5.2, 29: -3.9}  # eV per atom


def synthetic_record(numbers, energy, forces=None) -> StructureRecord:
    n = len(numbers)
    rng = np.random.default_rng(n)
    return StructureRecord(
        atomic_numbers=np.asarray(numbers),
        positions=rng.uniform(0, 8, (n, 3)),
        cell=np.zeros((3, 3)),
        pbc=np.zeros(3, dtype=bool),
        energy=energy,
        forces=forces,
    )


def composition_store(
    tmp_path,
    compositions,
    energies,
    *,
    name="s",
    task="s2ef",
    energy_kind="total",
    val_every=0,
    forces=None,
):
    records = []
    for i, (numbers, energy) in enumerate(zip(compositions, energies, strict=True)):
        records.append(synthetic_record(numbers, energy, None if forces is None else forces[i]))
    return write_store(
        tmp_path / f"{name}.lmdb",
        records,
        subset=name,
        task=task,
        energy_kind=energy_kind,
        val_every=val_every,
    )


def random_compositions(rng, count):
    elements = np.array(list(TRUE_REFERENCES))
    return [rng.choice(elements, size=rng.integers(3, 40)) for _ in range(count)]


def test_recovers_known_element_energies(tmp_path):
    rng = np.random.default_rng(0)
    compositions = random_compositions(rng, 300)
    energies = [sum(TRUE_REFERENCES[z] for z in c) + rng.normal(0, 0.02) for c in compositions]
    # every 5th sample is validation with an absurd energy: only the training split is fitted
    energies = [e + (1e4 if i % 5 == 4 else 0) for i, e in enumerate(energies)]
    store = composition_store(tmp_path, compositions, energies, val_every=5)
    stats = load_or_compute_statistics(store)
    fitted = {int(z): e for z, e in stats["element_references"].items()}
    assert fitted.keys() == TRUE_REFERENCES.keys()
    for z, e in TRUE_REFERENCES.items():
        assert fitted[z] == pytest.approx(e, abs=0.01)
    assert stats["energy_mean"] == pytest.approx(0.0, abs=0.01)
    assert stats["energy_std"] == pytest.approx(0.02, rel=0.2)
    provenance = stats["provenance"]
    assert provenance["samples_used"] == 240 and provenance["train_samples"] == 240
    assert (
        provenance["rank"] == 5
        and provenance["null_space"] == []
        and provenance["residual_rmse"] < 0.03
    )
    # the Normalizer built from it maps the training energies to mean 0, std 1
    normalizer = Normalizer.from_statistics([stats])
    train = [i for i in range(300) if i % 5 != 4]
    numbers = torch.tensor(np.concatenate([compositions[i] for i in train]))
    batch = torch.repeat_interleave(
        torch.arange(len(train)), torch.tensor([len(compositions[i]) for i in train])
    )
    normalized = normalizer.normalize_energy(
        torch.tensor([energies[i] for i in train], dtype=torch.float64),
        numbers,
        batch,
        torch.zeros(len(train), dtype=torch.long),
    )
    assert normalized.mean().item() == pytest.approx(0.0, abs=1e-6) and normalized.std(
        unbiased=False
    ).item() == pytest.approx(1.0, abs=1e-6)


def test_fixed_stoichiometry_is_rank_deficient_and_min_norm():
    # water clusters: H:O is always 2:1, only 2 e_H + e_O = -14 is determined
    counts = np.zeros((20, 119))
    sizes = np.arange(1, 21)
    counts[:, 1], counts[:, 8] = 2 * sizes, sizes
    fit = fit_element_references(counts, -14.0 * sizes)
    e_h, e_o = fit["references"][1], fit["references"][8]
    assert 2 * e_h + e_o == pytest.approx(-14.0)
    assert e_h / e_o == pytest.approx(2.0)  # minimum norm: proportional to the counts (2, 1)
    assert fit["rank"] == 1 and len(fit["null_space"]) == 1
    direction = fit["null_space"][0]
    assert 2 * direction["1"] + direction["8"] == pytest.approx(0.0, abs=1e-5)  # (1, -2) up to sign
    assert fit["residual_rmse"] < 1e-9


def test_single_element_and_constant_count_elements():
    # one element, varying counts: an ordinary one-parameter fit
    counts = np.zeros((4, 119))
    counts[:, 29] = [4, 8, 12, 16]
    fit = fit_element_references(counts, np.array([-16.1, -31.9, -48.0, -64.2]))
    assert fit["references"][29] == pytest.approx(
        np.dot([4, 8, 12, 16], [-16.1, -31.9, -48.0, -64.2]) / 480
    )
    # one element with the same count everywhere: its reference is the mean energy per atom
    counts[:, 29] = 13
    fit = fit_element_references(counts, np.array([-40.0, -41.0, -42.0, -41.0]))
    assert fit["references"][29] == pytest.approx(-41.0 / 13) and fit["constant_elements"] == [29]
    # a constant-count element beside a varying one acts as the intercept of the fit
    counts[:, 1] = [1, 2, 3, 4]
    energies = -40.0 + np.array([1, 2, 3, 4]) * -3.0
    fit = fit_element_references(counts, energies)
    assert 13 * fit["references"][29] == pytest.approx(-40.0) and fit["references"][
        1
    ] == pytest.approx(-3.0)
    assert fit["rank"] == 2 and fit["null_space"] == []


def test_forces_rms_over_all_components_and_energy_only_subsets(tmp_path):
    forces = [np.array([[1.0, 2.0, 2.0]]), np.array([[0.0, 0.0, 3.0], [1.0, 1.0, 1.0]])]
    store = composition_store(tmp_path, [[1], [1, 1]], [-1.0, -2.5], forces=forces)
    stats = load_or_compute_statistics(store)
    assert stats["force_rms"] == pytest.approx(np.sqrt((1 + 4 + 4 + 9 + 3) / 9))
    assert stats["provenance"]["force_components"] == 9
    energy_only = composition_store(tmp_path, [[1], [1, 8], [8]], [-1.0, -6.0, -5.5], name="e")
    assert load_or_compute_statistics(energy_only)["force_rms"] == 1.0


def test_denoising_and_adsorption_subsets(tmp_path):
    unlabeled = composition_store(
        tmp_path, [[6, 1, 1], [8, 1]], [None, None], name="d", task="denoising"
    )
    stats = load_or_compute_statistics(unlabeled, noise_sigma=0.05)
    assert (
        stats["element_references"],
        stats["energy_mean"],
        stats["energy_std"],
        stats["force_rms"],
    ) == ({}, 0.0, 1.0, 0.05)
    rng = np.random.default_rng(1)
    compositions = random_compositions(rng, 40)
    # adsorption energies that depend on the adsorbate's oxygen count, plus noise
    adsorption = np.array([-0.3 * (c == 8).sum() for c in compositions]) + rng.normal(0, 0.1, 40)
    store = composition_store(
        tmp_path, compositions, adsorption, name="a", energy_kind="adsorption"
    )
    stats = load_or_compute_statistics(store)
    assert stats["element_references"] == {} and stats["energy_mean"] == pytest.approx(
        adsorption.mean()
    )
    assert stats["provenance"]["references"] == "none (adsorption energies)"
    forced = load_or_compute_statistics(store, fit_references=True)
    assert len(forced["element_references"]) == 5 and forced["energy_std"] < stats["energy_std"]


def test_cache_is_used_and_invalidated(tmp_path):
    rng = np.random.default_rng(2)
    compositions = random_compositions(rng, 30)
    energies = [sum(TRUE_REFERENCES[z] for z in c) + rng.normal(0, 0.1) for c in compositions]
    store = composition_store(tmp_path, compositions, energies)
    first = load_or_compute_statistics(store)
    path = statistics_path(store.path)
    assert json.loads(path.read_text()) == first
    assert not list(tmp_path.glob("*.tmp-*"))
    cached = json.loads(path.read_text())
    cached["energy_mean"] = 123.0  # a marker: returned only when the cache is read
    path.write_text(json.dumps(cached))
    assert load_or_compute_statistics(store.path)["energy_mean"] == 123.0
    assert (
        load_or_compute_statistics(store, max_samples=10)["provenance"]["samples_used"] == 10
    )  # settings changed
    # a rewritten store (other content at the same path) invalidates the cache
    composition_store(tmp_path, compositions[:20], energies[:20])
    fresh = load_or_compute_statistics(store.path)
    assert fresh["provenance"]["samples_used"] == 20 and fresh["energy_mean"] != 123.0
    path.write_text("{not json")
    assert load_or_compute_statistics(store.path)["provenance"]["samples_used"] == 20


def test_seeded_subsample_and_bad_input(tmp_path):
    from lamm.data.referencing import compute_statistics

    rng = np.random.default_rng(3)
    compositions = random_compositions(rng, 50)
    store = composition_store(
        tmp_path,
        compositions,
        [sum(TRUE_REFERENCES[z] for z in c) + rng.normal() for c in compositions],
    )
    a, b, c = (compute_statistics(store, max_samples=12, seed=s) for s in (4, 4, 5))
    assert a == b and a["energy_std"] != c["energy_std"] and a["provenance"]["samples_used"] == 12
    counts = np.zeros((3, 119))
    with pytest.raises(ValueError, match="NaN"):
        fit_element_references(counts, np.array([1.0, np.nan, 2.0]))
    with pytest.raises(ValueError, match="no energies"):
        fit_element_references(np.zeros((0, 119)), np.zeros(0))


def test_non_finite_labels_are_left_out_and_counted(tmp_path):
    import dataclasses

    from lamm.data.referencing import compute_statistics
    from lamm.data.store import StructureStoreWriter
    from tests.store_factory import emt_record, rattled_molecule

    records = [
        emt_record(rattled_molecule(name, i))
        for i, name in enumerate(["H2O", "CH4", "NH3", "C2H6", "CH3OH"])
    ]
    clean = tmp_path / "clean.lmdb"
    poisoned = tmp_path / "poisoned.lmdb"
    for path, bad in ((clean, None), (poisoned, 2)):
        with StructureStoreWriter(
            path, subset="m", source="t", extra_info={"task": "s2ef"}
        ) as writer:
            for record in records:
                writer.add(record)
            if bad is not None:
                nan_forces = records[bad].forces.copy()
                nan_forces[0, 0] = np.nan
                writer.add(
                    dataclasses.replace(records[bad], energy=float("inf"), forces=nan_forces)
                )
    from lamm.data.store import StructureStore

    reference = compute_statistics(StructureStore(clean), fit_references=True)
    stats = compute_statistics(StructureStore(poisoned), fit_references=True)
    assert stats["provenance"]["non_finite_labels_skipped"] == {"energy": 1, "forces": 1}
    for key in ("energy_mean", "energy_std", "force_rms"):
        assert stats[key] == pytest.approx(reference[key])


def test_robust_energy_scale_is_the_scaled_median_absolute_deviation(tmp_path):
    # one element, 4 atoms each: e_Cu = mean(E) / 4, so the referenced energies are E - mean(E);
    # one compressed cell 10 eV above the rest, as in an equation-of-state scan
    energies = [-16.0, -16.2, -15.8, -16.1, -15.9, -6.0]
    store = composition_store(tmp_path, [[29] * 4] * 6, energies)
    referenced = np.array(energies) - np.mean(energies)  # mean -14.333
    # median of referenced = -1.617 (between -1.667 and -1.567); absolute deviations from it:
    # 0.05, 0.25, 0.15, 0.15, 0.05, 9.95 -> median 0.15
    assert np.median(np.abs(referenced - np.median(referenced))) == pytest.approx(0.15)
    plain = load_or_compute_statistics(store)
    robust = load_or_compute_statistics(store, energy_scale="robust")
    assert plain["energy_std"] == pytest.approx(referenced.std())  # 3.73 eV: the outlier's
    assert robust["energy_std"] == pytest.approx(1.4826 * 0.15)
    assert robust["energy_mean"] == pytest.approx(plain["energy_mean"])
    assert robust["element_references"] == plain["element_references"]
    assert robust["provenance"]["energy_std_plain"] == pytest.approx(plain["energy_std"])
    # the setting is part of the cache key: each call above computed its own
    assert robust["provenance"]["settings"]["energy_scale"] == "robust"
    assert "energy_scale" not in plain["provenance"]["settings"]
    assert load_or_compute_statistics(store)["energy_std"] == pytest.approx(plain["energy_std"])
    with pytest.raises(ValueError, match="energy_scale must be one of"):
        load_or_compute_statistics(store, energy_scale="mad")
