"""Which pre-training head a fine-tuning run copies (`init_head: auto`), and that head's energy
references refit on the downstream training records (DPA-2's `dp change-bias`), before
fine-tuning starts.

A head copied with `init_head` predicts energies relative to its pre-training subset's
references. References fitted to the downstream labels alone (`lamm.data.referencing`, as for a
fresh head) assume the head predicts zero on average: a copied head does not, so it would start
off by its mean prediction per element (on FitSNAP's Ta, lamm-universal-mini's omat24 head
started at 680 meV/atom on validation where the zero-shot refit gives 335), and an element the
training records lack would get no reference at all. So the copied head keeps its pre-training
references, and the refit adds to them the zero-shot shift of `lamm.analysis.zero_shot` fitted
on the records fine-tuning trains on,

    residual_i = E_i - E_pred_i,   b_Z = a + d_Z   (a per-atom shift, per-element deviations
                                                    under a ridge chosen by leave-one-out)

so the run starts from the copied head's zero-shot energies. Forces do not depend on it.

`init_head: auto` picks the head by that same refit: fitted on the training records, scored on
the validation records (energy MAE per atom), among the heads that learned energies and forces.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from lamm import keys as K
from lamm.analysis.zero_shot import fit_energy_shift, shift_strength
from lamm.data.graph import collate, structure_to_graph
from lamm.data.record import MAX_ATOMIC_NUMBER
from lamm.data.store import StructureStore
from lamm.models.potential import Potential

log = logging.getLogger(__name__)


def predicted_energies(
    potential: Potential,
    store: StructureStore,
    indices: Sequence[int],
    *,
    head: int | None = 0,
    batch_size: int = 16,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(energy labels [B] eV (NaN without one), the predictions of `head` [B] eV (every head's,
    [B, D], with `head` None), element counts [B, 119]) of the store's records `indices`.
    One pass gives every head's energies; forces are not needed."""
    dtype = next(potential.parameters()).dtype
    device = next(potential.parameters()).device
    records = [store.get_record(int(i)) for i in indices]
    labels = np.array([np.nan if r.energy is None else r.energy for r in records], np.float64)
    size = MAX_ATOMIC_NUMBER + 1
    counts = np.stack([np.bincount(np.asarray(r.atomic_numbers), minlength=size) for r in records])
    was_training = potential.training
    potential.eval()
    predictions = []
    for start in range(0, len(records), batch_size):
        graphs = [
            structure_to_graph(
                r, cutoff=potential.cutoff, max_neighbors=potential.max_neighbors, dtype=dtype
            )
            for r in records[start : start + batch_size]
        ]
        batch = collate(graphs).to(device)
        batch[K.DATASET_INDEX] = torch.full_like(batch[K.DATASET_INDEX], head or 0)
        with torch.no_grad():  # the potential enables autograd itself where forces need it
            energy = potential.predict(batch)[K.PRED_ENERGY]
        energy = energy.detach().cpu().double().numpy()
        predictions.append(energy if head is None else energy[:, head])
    potential.train(was_training)
    return labels, np.concatenate(predictions), counts


def copyable_heads(heads: Sequence[str], statistics: Sequence[Mapping[str, Any]]) -> list[str]:
    """The heads that learned total energies and forces (an s2ef task), so are worth copying:
    not a denoising head (no energies) nor an IS2RE one (relaxed energies, no forces). A head
    whose statistics carry no provenance is kept."""
    out = []
    for head, stats in zip(heads, statistics, strict=True):
        provenance = stats.get("provenance") or {}
        task, kind = provenance.get("task", "s2ef"), provenance.get("energy_kind", "total")
        if task == "s2ef" and kind == "total":
            out.append(head)
    return out


def choose_init_head(
    potential: Potential,
    store: StructureStore,
    fit_records: Sequence[int],
    score_records: Sequence[int],
    candidates: Sequence[str],
    *,
    batch_size: int = 16,
) -> tuple[str, list[dict[str, Any]]]:
    """`init_head: auto`: the candidate head whose energies, references refit on `fit_records`
    (the run's training records), have the lowest MAE per atom on `score_records` (its
    validation records), and one row per candidate (head, energy_mae_mev_per_atom). The same
    refit `lamm zero-shot` scores, on the validation split, never on the test split."""
    if not candidates:
        raise ValueError("init_head auto: the checkpoint has no head with energies and forces")
    fit_labels, fit_pred, fit_counts = predicted_energies(
        potential, store, fit_records, head=None, batch_size=batch_size
    )
    labels, predicted, counts = predicted_energies(
        potential, store, score_records, head=None, batch_size=batch_size
    )
    labeled = np.isfinite(labels)
    if not labeled.any() or not np.isfinite(fit_labels).any():
        raise ValueError(
            f"init_head auto: {store.path} has no energy labels on the training or validation "
            "records to choose a head by; name the head (init_head: <head>) or use null"
        )
    rows = []
    for name in candidates:
        channel = potential.heads.index(name)
        shift = fit_energy_shift(fit_counts, fit_labels - fit_pred[:, channel])
        error = np.abs(labels - predicted[:, channel] - counts @ shift) / counts.sum(axis=1)
        rows.append({"head": name, "energy_mae_mev_per_atom": 1000 * float(error[labeled].mean())})
    best = min(rows, key=lambda row: row["energy_mae_mev_per_atom"])
    log.info(
        "init_head auto: %s (validation energy MAE after the reference refit, meV/atom: %s)",
        best["head"],
        ", ".join(f"{r['head']} {r['energy_mae_mev_per_atom']:.1f}" for r in rows),
    )
    return best["head"], rows


def refit_references(
    potential: Potential,
    store: StructureStore,
    records: Sequence[int],
    statistics: Mapping[str, Any],
    *,
    head: int = 0,
    batch_size: int = 16,
) -> dict[str, Any]:
    """`statistics` with the element references shifted by the fit of the module docstring over
    `records`, set on the potential's `head`; the fit's strength and before/after MAE logged."""
    labels, predicted, counts = predicted_energies(
        potential, store, records, head=head, batch_size=batch_size
    )
    if not np.isfinite(labels).any():
        log.info("copied head's references kept: no training structure has an energy label")
        return dict(statistics)
    strength = shift_strength(counts, labels - predicted)
    shift = fit_energy_shift(counts, labels - predicted, strength)
    references = {int(z): float(v) for z, v in (statistics.get("element_references") or {}).items()}
    for z in np.flatnonzero(shift):
        references[int(z)] = references.get(int(z), 0.0) + float(shift[z])
    refit = {**statistics, "element_references": {str(z): v for z, v in sorted(references.items())}}
    potential.normalizer.set_head(head, refit)
    natoms = counts.sum(axis=1)
    labeled = np.isfinite(labels)
    before = np.abs(labels - predicted)[labeled] / natoms[labeled]
    after = np.abs(labels - predicted - counts @ shift)[labeled] / natoms[labeled]
    log.info(
        "copied head's references refit on %d training structures (ridge strength %.3g atoms^2, "
        "by leave-one-out): energy MAE %.1f -> %.1f meV/atom",
        int(labeled.sum()),
        strength,
        1000 * before.mean(),
        1000 * after.mean(),
    )
    return refit
