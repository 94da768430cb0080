"""Test-set evaluation of one checkpoint head on a store split: predictions, metrics, parity plot.

Predictions go through the same graph construction and collate as training (and as
`lamm.calculator`), each structure on the chosen head (its `dataset_index` set to that head, so
gradient-force models differentiate that head's energy), in eV and eV/Angstrom.

Metrics (only those the store has labels for; a store with energy_kind "none" gets no energy
metrics, a denoising store's "forces" are noise labels and are not compared):
- energy_mae_mev_per_atom = 1000 * mean_i |E_pred_i - E_i| / N_i  over structures with energy
- forces_mae_mev_per_a    = 1000 * mean over atoms and Cartesian components of |F_pred - F|
- force_cosine            = mean over atoms of F_pred . F / (|F_pred| |F|); atoms where either
                            force is below COSINE_MIN_NORM (eV/A) are left out (no direction)
- force_angle_mean_deg, force_angle_median_deg: the angle between F_pred and F in degrees,
                            atan2(|F_pred x F|, F_pred . F), over the same atoms as the cosine
- stress_mae_gpa, stress_rmse_gpa = over structures with a stress label and their 9 components
                            of S_pred - S (GPa; the stress is the strain derivative of the energy),
                            for stores with stress labels; pressure_mae_gpa: |tr(S_pred - S)| / 3;
                            stress_mae_gpa_zero_baseline: the MAE of predicting zero stress
- RMSEs beside the MAEs (energy_rmse_mev_per_atom, forces_rmse_mev_per_a)
- counts: n_structures, n_energy_labels, n_force_atoms, n_cosine_atoms, n_stress_labels

`evaluate_checkpoint` scores one split or all non-empty ones (`split="all"`), and per element
(`lamm.analysis.element_metrics`), and draws the parity plot (`lamm.analysis.parity`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lamm import keys as K
from lamm.data.graph import collate, structure_to_graph
from lamm.data.record import MAX_ATOMIC_NUMBER
from lamm.data.store import SPLITS, StructureStore
from lamm.log import progress
from lamm.models.potential import Potential

log = logging.getLogger(__name__)

COSINE_MIN_NORM = 1e-6  # eV/Angstrom
GPA_PER_EV_PER_A3 = 160.21766208  # 1 eV/Angstrom^3 in GPa


@dataclass(frozen=True)
class Predictions:
    """One head's predictions on one split, with the labels (NaN where the store has none)."""

    head: str
    sample_index: np.ndarray  # [B] int64, index in the store
    natoms: np.ndarray  # [B] int64
    composition: np.ndarray  # [B, 119] int64, atoms of each element per structure
    energy: np.ndarray  # [B] float64 eV, NaN without a label
    energy_pred: np.ndarray  # [B] float64 eV
    forces: np.ndarray  # [N, 3] float64 eV/A, NaN without labels
    forces_pred: np.ndarray  # [N, 3] float64 eV/A
    atom_structure: np.ndarray  # [N] int64, row of each atom in the structure arrays
    atomic_numbers: np.ndarray | None = None  # [N] int64
    stress: np.ndarray | None = None  # [B, 3, 3] float64 eV/A^3, NaN without a label
    stress_pred: np.ndarray | None = None  # [B, 3, 3] float64 eV/A^3 (stores with stress labels)

    def with_energy_pred(self, energy_pred: np.ndarray) -> Predictions:
        return Predictions(
            **{**self.__dict__, "energy_pred": np.asarray(energy_pred, dtype=np.float64)}
        )


def check_head(potential: Potential, head: str | None, source: str = "checkpoint") -> str:
    """The head to evaluate: `head`, or the potential's only/first head; unknown names raise."""
    if head is None:
        return potential.heads[0]
    if head not in potential.heads:
        raise ValueError(
            f"{source}: unknown head {head!r}; this checkpoint has heads {potential.heads}"
        )
    return head


def split_indices(store: StructureStore, split: str) -> np.ndarray:
    """Sample indices of a non-empty split; an empty or unknown split is an error naming the
    store."""
    try:
        indices = store.indices(split)
    except ValueError as err:
        raise ValueError(f"{store.path}: {err}") from None
    if len(indices) == 0:
        counts = {name: int(len(store.indices(name))) for name in ("train", "val", "test")}
        raise ValueError(f"{store.path}: split {split!r} is empty (samples per split: {counts})")
    return indices


def predict_split(
    potential: Potential,
    store: StructureStore,
    split: str,
    heads: Sequence[str],
    batch_size: int = 16,
) -> dict[str, Predictions]:
    """Predictions of every head in `heads` on `split` of `store` (eV, eV/A).

    Direct-force models give every head in one forward pass; gradient-force models need one
    pass per head (forces are -dE/dx of the head named by `dataset_index`).
    """
    for head in heads:
        check_head(potential, head)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    indices = split_indices(store, split)
    records = [store.get_record(int(i)) for i in indices]
    dtype = next(potential.parameters()).dtype
    device = next(potential.parameters()).device
    graphs = [
        structure_to_graph(
            r,
            cutoff=potential.cutoff,
            max_neighbors=potential.max_neighbors,
            sample_index=int(i),
            dtype=dtype,
        )
        for r, i in zip(records, indices, strict=True)
    ]
    passes = [list(heads)] if potential.force_mode == "direct" else [[head] for head in heads]
    energy_pred = {head: [] for head in heads}
    forces_pred = {head: [] for head in heads}
    stress_pred = {head: [] for head in heads}
    with_stress = any(r.stress is not None for r in records)
    potential.eval()
    starts = range(0, len(graphs), batch_size)
    for start in progress(starts, desc=f"predict {split}", total=len(starts), unit="batch"):
        batch = collate(graphs[start : start + batch_size]).to(device)
        for group in passes:
            # gradient mode differentiates the head in dataset_index (and the stress of that
            # head is computed); direct mode ignores it
            stress_groups = [[head] for head in group] if with_stress else [[]]
            for stress_heads in stress_groups:
                head = (stress_heads or group)[0]
                batch[K.DATASET_INDEX] = torch.full_like(
                    batch[K.DATASET_INDEX], potential.heads.index(head)
                )
                with torch.no_grad():  # the potential enables autograd itself where it needs it
                    out = potential.predict(batch, compute_stress=with_stress)
                for name in stress_heads:
                    channel = potential.heads.index(name)
                    stress_pred[name].append(
                        out[K.PRED_STRESS][:, :, :, channel].detach().cpu().double().numpy()
                    )
            for head in group:
                channel = potential.heads.index(head)
                energy_pred[head].append(
                    out[K.PRED_ENERGY][:, channel].detach().cpu().double().numpy()
                )
                forces_pred[head].append(
                    out[K.PRED_FORCES][:, :, channel].detach().cpu().double().numpy()
                )
    labels = zero_predictions(store, split, head="")
    return {
        head: Predictions(
            **{
                **labels.__dict__,
                "head": head,
                "energy_pred": np.concatenate(energy_pred[head]),
                "forces_pred": np.concatenate(forces_pred[head]),
                "stress_pred": np.concatenate(stress_pred[head]) if with_stress else None,
            }
        )
        for head in heads
    }


def zero_predictions(store: StructureStore, split: str, head: str = "zero") -> Predictions:
    """The labels of `split` with predictions of zero energy and zero forces: the baseline that a
    per-element energy refit alone (`lamm.analysis.zero_shot`) turns into a composition model."""
    indices = split_indices(store, split)
    records = [store.get_record(int(i)) for i in indices]
    compare_forces = store.info.get("task") != "denoising"  # denoising labels are minus the noise
    natoms = np.array([r.natoms for r in records], dtype=np.int64)
    composition = np.stack(
        [
            np.bincount(
                np.asarray(r.atomic_numbers, dtype=np.int64), minlength=MAX_ATOMIC_NUMBER + 1
            )
            for r in records
        ]
    )
    energy = np.array([np.nan if r.energy is None else r.energy for r in records], dtype=np.float64)
    forces = np.concatenate(
        [
            r.forces
            if (r.forces is not None and compare_forces)
            else np.full((r.natoms, 3), np.nan)
            for r in records
        ]
    ).astype(np.float64)
    with_stress = any(r.stress is not None for r in records)
    stress = (
        np.stack(
            [np.full((3, 3), np.nan) if r.stress is None else np.asarray(r.stress) for r in records]
        ).astype(np.float64)
        if with_stress
        else None
    )
    return Predictions(
        head=head,
        stress=stress,
        stress_pred=None if stress is None else np.zeros_like(stress),
        sample_index=np.asarray(indices, dtype=np.int64),
        natoms=natoms,
        composition=composition,
        energy=energy,
        energy_pred=np.zeros(len(records)),
        forces=forces,
        forces_pred=np.zeros_like(forces),
        atom_structure=np.repeat(np.arange(len(records), dtype=np.int64), natoms),
        atomic_numbers=np.concatenate(
            [np.asarray(r.atomic_numbers, dtype=np.int64) for r in records]
        ),
    )


def energy_metrics(
    energy: np.ndarray, energy_pred: np.ndarray, natoms: np.ndarray
) -> dict[str, float | int]:
    """n_energy_labels, and MAE/RMSE of the per-atom energy error (meV/atom) over labeled
    structures."""
    labeled = np.isfinite(energy)  # [B]
    metrics: dict[str, float | int] = {"n_energy_labels": int(labeled.sum())}
    if labeled.any():
        per_atom_error = (energy_pred - energy)[labeled] / natoms[labeled]  # [b] eV/atom
        metrics["energy_mae_mev_per_atom"] = 1000.0 * float(np.abs(per_atom_error).mean())
        metrics["energy_rmse_mev_per_atom"] = 1000.0 * float(np.sqrt((per_atom_error**2).mean()))
    return metrics


def force_metrics(forces: np.ndarray, forces_pred: np.ndarray) -> dict[str, float | int]:
    """n_force_atoms, force MAE/RMSE (meV/A), cosine and angle (degrees) over atoms with labels."""
    labeled = np.isfinite(forces).all(axis=1)  # [N]
    metrics: dict[str, float | int] = {"n_force_atoms": int(labeled.sum())}
    if not labeled.any():
        return metrics
    true, pred = forces[labeled], forces_pred[labeled]  # [n, 3]
    metrics["forces_mae_mev_per_a"] = 1000.0 * float(np.abs(pred - true).mean())
    metrics["forces_rmse_mev_per_a"] = 1000.0 * float(np.sqrt(((pred - true) ** 2).mean()))
    true_norm, pred_norm = np.linalg.norm(true, axis=1), np.linalg.norm(pred, axis=1)  # [n]
    directed = (true_norm > COSINE_MIN_NORM) & (pred_norm > COSINE_MIN_NORM)
    metrics["n_cosine_atoms"] = int(directed.sum())
    if directed.any():
        true, pred = true[directed], pred[directed]  # [m, 3]
        dot = (true * pred).sum(axis=1)  # [m]
        metrics["force_cosine"] = float((dot / (true_norm[directed] * pred_norm[directed])).mean())
        # atan2 of |a x b| and a . b: accurate near 0 and 180 degrees, where arccos is not
        angle = np.degrees(np.arctan2(np.linalg.norm(np.cross(true, pred), axis=1), dot))  # [m]
        metrics["force_angle_mean_deg"] = float(angle.mean())
        metrics["force_angle_median_deg"] = float(np.median(angle))
    return metrics


def stress_metrics(stress: np.ndarray | None, stress_pred: np.ndarray | None) -> dict[str, Any]:
    """n_stress_labels, stress MAE/RMSE over the 9 components and pressure MAE (GPa); nothing for
    a store without stress labels."""
    if stress is None or stress_pred is None:
        return {}
    labeled = np.isfinite(stress).all(axis=(1, 2)) & np.isfinite(stress_pred).all(axis=(1, 2))
    metrics: dict[str, Any] = {"n_stress_labels": int(labeled.sum())}
    if labeled.any():
        error = GPA_PER_EV_PER_A3 * (stress_pred - stress)[labeled]  # [b, 3, 3] GPa
        metrics["stress_mae_gpa"] = float(np.abs(error).mean())
        metrics["stress_rmse_gpa"] = float(np.sqrt((error**2).mean()))
        metrics["pressure_mae_gpa"] = float(np.abs(np.trace(error, axis1=1, axis2=2)).mean() / 3)
        # the error of predicting no stress at all: what a stress MAE is worth
        metrics["stress_mae_gpa_zero_baseline"] = float(
            GPA_PER_EV_PER_A3 * np.abs(stress[labeled]).mean()
        )
    return metrics


def compute_metrics(predictions: Predictions) -> dict[str, float | int]:
    """The metrics of the module docstring (energy, force and stress entries only where labels
    exist)."""
    return {
        "n_structures": int(len(predictions.natoms)),
        "n_atoms": int(predictions.natoms.sum()),
        **energy_metrics(predictions.energy, predictions.energy_pred, predictions.natoms),
        **force_metrics(predictions.forces, predictions.forces_pred),
        **stress_metrics(predictions.stress, predictions.stress_pred),
    }


def write_json(data: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """JSON written atomically (temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(json.dumps(dict(data), indent=2, sort_keys=True) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_predictions(predictions: Predictions, path: str | os.PathLike) -> Path:
    """All arrays of `predictions` as one .npz (atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.tmp-{os.getpid()}.npz")
    try:
        arrays = {
            k: v
            for k, v in predictions.__dict__.items()
            if isinstance(v, np.ndarray) and k != "composition"
        }
        np.savez(tmp, head=np.array(predictions.head), **arrays)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def evaluated_splits(store: StructureStore, split: str) -> list[str]:
    """[split], or for `all` the non-empty splits in the order train, val, test (none: an error)."""
    if split != "all":
        split_indices(store, split)
        return [split]
    present = [name for name in SPLITS if len(store.indices(name))]
    if not present:
        raise ValueError(f"{store.path}: the store holds no structures")
    return present


def main_split(splits: Sequence[str]) -> str:
    """The split metrics.json reports at its top level: test if scored, else the last."""
    return "test" if "test" in splits else splits[-1]


def unreferenced_elements(potential: Potential, head: str, store: StructureStore) -> list[str]:
    """Elements of `store` for which `head` has no reference energy while it has some for others:
    the head never saw them, so its energies of those structures are off by a whole reference
    (a warning; `lamm zero-shot` refits references for such a head)."""
    from ase.data import chemical_symbols

    references = (
        potential.normalizer.element_references[potential.heads.index(head)].detach().cpu().numpy()
    )  # [119]
    if not np.any(references):
        return []
    missing = [
        chemical_symbols[z] for z in np.flatnonzero(store.element_counts > 0) if references[z] == 0
    ]
    if missing:
        log.warning(
            "head %r has no reference energy for %s of %s: its energies there are not comparable",
            head,
            ", ".join(missing),
            store.path,
        )
    return missing
