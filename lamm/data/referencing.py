"""Per-subset energy referencing and normalization statistics (SPEC section 3; OC22, JMP).

For one subset (one store, its training split):
1. Per-element reference energies e_Z by least squares of the energies against the element
   counts, E_i ~ sum_Z c_iZ e_Z, without an intercept (as OC22/fairchem and JMP fit them: a
   constant term has no meaning for total energies, which scale with the atom count).
2. `energy_mean`, `energy_std` of the referenced energies E_i - sum_Z c_iZ e_Z (with
   `energy_scale="robust"`, `energy_std` is 1.4826 times their median absolute deviation instead:
   an equation-of-state scan's compressed cells lie eV above the rest and make the standard
   deviation tens of eV, which weights every other structure's energy error down by as much
   against the forces; FitSNAP's Ta: 15.2 eV std, 0.31 eV robust), and `force_rms`,
   the root mean square over all force components of the training labels; `stress_scale`
   (eV/Angstrom^3), the median over structures with a stress label of the RMS of their 9 stress
   components (a median: equation-of-state scans reach thousands of GPa at their smallest
   volumes, and an RMS would be theirs alone), the force RMS when no structure has one.
The result is one JSON-able dict with exactly the keys `Normalizer.set_head` reads plus a
`provenance` entry (samples used, energy kind, fit residual, rank, settings, store key).

Rank-deficient compositions. Only the part of e in the row space of the composition matrix is
determined by the data; we take the minimum-norm least-squares solution (SVD), which gives
every training structure the same referenced energy as any other least-squares solution, and
report the undetermined directions in `provenance.null_space`:
- a single-element subset is not deficient (one column): e_Z = sum_i c_i E_i / sum_i c_i^2;
- an element present in every sample with the same count k has a constant column, which acts
  as the intercept: it is determined and absorbs the subset's constant offset (k e_Z = the mean
  energy left by the other elements); `provenance.constant_elements` names such elements, whose
  reference is then not a transferable atomic energy (it only makes sense inside this head);
- fixed ratios (every sample C7H10O2, water clusters with H:O = 2:1) make columns collinear:
  only the combination (e.g. 2 e_H + e_O) is determined; the minimum-norm solution spreads it
  over the elements in proportion to their counts.
Elements absent from the training split get no reference (0, the Normalizer's default).

Subsets: energies of `energy_kind` "adsorption" (OC20/ODAC23 IS2RE) are already referenced to
the clean slab and gas-phase molecules and do not grow with the atom count, so by default
(`fit_references="auto"`) they get mean/std only; `fit_references=True` forces the fit.
Denoising subsets (store info `task == "denoising"`) get neutral energy statistics and
`force_rms` = the noise sigma (their force labels are minus the noise). Subsets without energy
labels get neutral energy statistics; without forces, `force_rms` = 1.

The statistics are cached beside the store as `<store>.stats.json` (written atomically) and
recomputed when the store (size, modification time, metadata) or the settings change.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lamm.data.noise import DEFAULT_SIGMA
from lamm.data.record import MAX_ATOMIC_NUMBER
from lamm.data.store import StructureStore
from lamm.log import progress

log = logging.getLogger(__name__)

STATS_FORMAT = "lamm-subset-statistics"
STATS_VERSION = 2  # 2: stress_scale
DEFAULT_MAX_SAMPLES = 100_000
MIN_STD = 1e-6  # eV; below this (a perfect fit, one sample) the energy scale falls back to 1
ENERGY_SCALES = ("std", "robust")
MAD_TO_SIGMA = 1.4826  # median absolute deviation -> standard deviation of a normal distribution
NUM_ELEMENTS = MAX_ATOMIC_NUMBER + 1


def fit_element_references(counts: np.ndarray, energies: np.ndarray) -> dict[str, Any]:
    """Minimum-norm least squares e [119] of `energies` [n] against `counts` [n, 119].

    Returns `references` [119] (0 for absent elements), `elements`, `rank`, `null_space`
    (undetermined element combinations), `constant_elements`, and the residual RMSE/MAE.
    """
    counts = np.asarray(counts, dtype=np.float64)
    energies = np.asarray(energies, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[1] != NUM_ELEMENTS or counts.shape[0] != energies.shape[0]:
        raise ValueError(
            f"counts must be [n, {NUM_ELEMENTS}] matching energies [n], got {counts.shape} "
            f"and {energies.shape}"
        )
    if len(energies) == 0:
        raise ValueError("no energies to fit references to")
    if not np.isfinite(energies).all():
        raise ValueError("energies contain NaN or infinity")
    elements = np.flatnonzero(counts.any(axis=0))
    matrix = counts[:, elements]  # [n, n_elements]
    solution, _, rank, singular = np.linalg.lstsq(matrix, energies, rcond=None)  # minimum norm
    references = np.zeros(NUM_ELEMENTS, dtype=np.float64)
    references[elements] = solution
    residual = energies - matrix @ solution
    # undetermined directions: right singular vectors beyond the rank (zero rows pad a short
    # matrix to square so that all of them exist; the thin SVD never forms an [n, n] matrix)
    padded = np.vstack([matrix, np.zeros((max(0, len(elements) - len(matrix)), len(elements)))])
    _, _, vt = np.linalg.svd(padded, full_matrices=False)  # [n_elements, n_elements]
    null_space = [
        {
            str(int(z)): round(float(c), 6)
            for z, c in zip(elements, vector, strict=True)
            if abs(c) > 1e-9
        }
        for vector in vt[rank:]
    ]
    constant = [
        int(z)
        for z, column in zip(elements, matrix.T, strict=True)
        if len(column) > 1 and (column == column[0]).all()
    ]
    return {
        "references": references,
        "elements": elements.tolist(),
        "rank": int(rank),
        "null_space": null_space,
        "constant_elements": constant,
        "residual_rmse": float(np.sqrt(np.mean(residual**2))),
        "residual_mae": float(np.mean(np.abs(residual))),
    }


def compute_statistics(
    store: StructureStore,
    *,
    noise_sigma: float = DEFAULT_SIGMA,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    seed: int = 0,
    fit_references: bool | str = "auto",
    indices: np.ndarray | None = None,
    energy_scale: str = "std",
) -> dict[str, Any]:
    """The normalization statistics of one store's training split (module docstring).

    `indices`: the training records to use instead of the whole split (a fine-tuning run on a
    fraction of the downstream training set refits on exactly its records); not cached.
    """
    settings = _settings(store, noise_sigma, max_samples, seed, fit_references, energy_scale)
    task = store.info.get("task")
    provenance: dict[str, Any] = {
        "format": STATS_FORMAT,
        "version": STATS_VERSION,
        "store": store.path.name,
        "store_key": store_key(store),
        "subset": store.subset,
        "task": task,
        "energy_kind": store.energy_kind,
        "settings": settings,
    }
    train = store.indices("train")
    if indices is not None:
        train = np.asarray(indices, dtype=np.int64)
        provenance["train_subsample"] = True
    provenance["train_samples"] = len(train)
    if task == "denoising":
        provenance.update(
            samples_used=0,
            references="none (denoising: no energies)",
            force_rms_source="noise sigma",
        )
        return _result({}, 0.0, 1.0, float(noise_sigma), provenance)
    if len(train) > max_samples:
        train = np.sort(np.random.default_rng(seed).choice(train, size=max_samples, replace=False))
    provenance["samples_used"] = len(train)
    counts, energies, squares, components, stresses, non_finite = _gather_labels(store, train)
    provenance["samples_with_energy"] = len(energies)
    if any(non_finite.values()):
        provenance["non_finite_labels_skipped"] = non_finite
        log.warning("%s: non-finite labels left out of the statistics: %s", store.path, non_finite)
    provenance["force_components"] = components
    force_rms = float(np.sqrt(squares / components)) if components else 1.0
    if components and not force_rms > 0:
        force_rms = 1.0
        provenance["force_rms_fallback"] = "all force labels are zero"
    stress_scale = _stress_scale(stresses, force_rms, provenance)
    if not energies:
        provenance["references"] = "none (no energy labels)"
        return _result({}, 0.0, 1.0, force_rms, provenance, stress_scale)
    energies_array = np.asarray(energies, dtype=np.float64)
    provenance["energy_std_unreferenced"] = float(energies_array.std())
    fit = settings["fit_references"]
    if fit:
        result = fit_element_references(np.stack(counts), energies_array)
        references = result.pop("references")
        referenced = energies_array - np.stack(counts) @ references
        provenance["references"] = "least squares (minimum norm)"
        provenance.update(result)
        reference_dict = {str(z): float(references[z]) for z in result["elements"]}
    else:
        referenced = energies_array
        provenance["references"] = f"none ({store.energy_kind} energies)"
        reference_dict = {}
    std = _energy_scale(referenced, energy_scale, provenance)
    return _result(
        reference_dict, float(referenced.mean()), std, force_rms, provenance, stress_scale
    )


def _energy_scale(referenced: np.ndarray, energy_scale: str, provenance: dict[str, Any]) -> float:
    """The standard deviation of the referenced energies, or their robust one (1.4826 x the
    median absolute deviation; the standard deviation when that is zero); 1 eV below MIN_STD."""
    std = float(referenced.std())
    if energy_scale == "robust":
        provenance["energy_std_plain"] = std
        deviation = float(np.median(np.abs(referenced - np.median(referenced))))
        std = MAD_TO_SIGMA * deviation if MAD_TO_SIGMA * deviation >= MIN_STD else std
    if std < MIN_STD:
        provenance["energy_std_fallback"] = (
            f"referenced energies vary by {std:.3g} eV; scale 1 eV used"
        )
        std = 1.0
    return std


def _stress_scale(stresses: list[float], force_rms: float, provenance: dict[str, Any]) -> float:
    """The median of the per-structure stress RMS (module docstring); the force RMS without one."""
    provenance["samples_with_stress"] = len(stresses)
    scale = float(np.median(stresses)) if stresses else force_rms
    if not scale > 0:
        provenance["stress_scale_fallback"] = "all stress labels are zero"
        return force_rms
    return scale


def _gather_labels(
    store: StructureStore, train: np.ndarray
) -> tuple[list[np.ndarray], list[float], float, int, list[float], dict[str, int]]:
    """Element counts and energies of the records with a finite energy, the sum of squared
    finite force components and their number, the RMS of each finite stress label, and the
    non-finite labels left out (counted; converted stores have none)."""
    counts, energies, squares, components, stresses = [], [], 0.0, 0, []
    non_finite = {"energy": 0, "forces": 0}
    for index in progress(train.tolist(), desc=f"statistics {store.subset}", unit="sample"):
        record = store.get_record(index)
        if record.energy is not None and not np.isfinite(record.energy):
            non_finite["energy"] += 1
        elif record.energy is not None:
            numbers = np.asarray(record.atomic_numbers, dtype=np.int64)
            counts.append(np.bincount(numbers, minlength=NUM_ELEMENTS))
            energies.append(record.energy)
        if record.forces is not None and not np.isfinite(record.forces).all():
            non_finite["forces"] += 1
        elif record.forces is not None:
            squares += float(np.square(record.forces).sum())
            components += record.forces.size
        if record.stress is not None and np.isfinite(record.stress).all():
            stresses.append(float(np.sqrt(np.square(record.stress).mean())))
    return counts, energies, squares, components, stresses, non_finite


def _result(references, mean, std, force_rms, provenance, stress_scale=None) -> dict[str, Any]:
    return {
        "element_references": references,
        "energy_mean": mean,
        "energy_std": std,
        "force_rms": force_rms,
        "stress_scale": force_rms if stress_scale is None else stress_scale,
        "provenance": provenance,
    }


def _settings(
    store, noise_sigma, max_samples, seed, fit_references, energy_scale="std"
) -> dict[str, Any]:
    if max_samples < 1:
        raise ValueError(f"max_samples must be positive, got {max_samples}")
    if energy_scale not in ENERGY_SCALES:
        raise ValueError(f"energy_scale must be one of {ENERGY_SCALES}, got {energy_scale!r}")
    if fit_references not in ("auto", True, False):
        raise ValueError(f"fit_references must be 'auto', True or False, got {fit_references!r}")
    fit = store.energy_kind != "adsorption" if fit_references == "auto" else bool(fit_references)
    settings: dict[str, Any] = {
        "max_samples": int(max_samples),
        "seed": int(seed),
        "fit_references": fit,
    }
    if energy_scale != "std":  # the default stays out, so caches written before it stay valid
        settings["energy_scale"] = energy_scale
    if store.info.get("task") == "denoising":
        if not noise_sigma > 0:
            raise ValueError(f"noise_sigma must be positive, got {noise_sigma}")
        settings = {"noise_sigma": float(noise_sigma)}
    return settings


def store_key(store: StructureStore) -> dict[str, Any]:
    """What identifies a store's content for the cache: file size, mtime and metadata digest."""
    stat = store.path.stat()
    digest = hashlib.sha256(json.dumps(store.info, sort_keys=True).encode())
    digest.update(store.natoms.tobytes())
    digest.update(store.split.tobytes())
    return {
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "metadata_sha256": digest.hexdigest()[:16],
    }


def statistics_path(store_path: str | os.PathLike) -> Path:
    return Path(f"{os.fspath(store_path)}.stats.json")


def load_or_compute_statistics(
    store: StructureStore | str | os.PathLike,
    *,
    noise_sigma: float = DEFAULT_SIGMA,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    seed: int = 0,
    fit_references: bool | str = "auto",
    energy_scale: str = "std",
) -> dict[str, Any]:
    """The cached statistics of a store, recomputed (and re-cached) when stale."""
    if not isinstance(store, StructureStore):
        store = StructureStore(store)
    path = statistics_path(store.path)
    settings = _settings(store, noise_sigma, max_samples, seed, fit_references, energy_scale)
    if path.exists():
        try:
            cached = json.loads(path.read_text())
            provenance = cached["provenance"]
            if (
                provenance.get("format") == STATS_FORMAT
                and provenance.get("version") == STATS_VERSION
                and provenance.get("store_key") == store_key(store)
                and provenance.get("settings") == settings
            ):
                return cached
            log.info("%s is stale (store or settings changed); recomputing", path)
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            log.warning("ignoring unreadable statistics cache %s: %s", path, err)
    stats = compute_statistics(
        store,
        noise_sigma=noise_sigma,
        max_samples=max_samples,
        seed=seed,
        fit_references=fit_references,
        energy_scale=energy_scale,
    )
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(stats, indent=1, sort_keys=True))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return stats


def statistics_for(
    stores: Sequence[StructureStore | str | os.PathLike],
    *,
    noise_sigma: float = DEFAULT_SIGMA,
    max_samples: int = DEFAULT_MAX_SAMPLES,
    seed: int = 0,
    fit_references: bool | str = "auto",
    energy_scale: str = "std",
) -> list[dict[str, Any]]:
    """One statistics dict per store, in head order (for `Normalizer.from_statistics`)."""
    return [
        load_or_compute_statistics(
            store,
            noise_sigma=noise_sigma,
            max_samples=max_samples,
            seed=seed,
            fit_references=fit_references,
            energy_scale=energy_scale,
        )
        for store in stores
    ]
