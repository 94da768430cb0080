"""A universal potential fine-tuned with its own trainer, on the same records and budget as ours.

Issue 26 asks for the anchors fine-tuned as well as zero-shot, where their own tools allow it
here. CHGNet's do: `chgnet.trainer.Trainer` trains on the CPU from structures, energies per atom
and forces. This module gives it what `lamm finetune` gets for one run of `lamm transfer`:

- the same training records (`lamm.training.finetune.train_records`: the seeded draw of the
  fraction), the store's validation split for the trainer's per-epoch check, and the test split,
  scored once with the final weights, as ours are;
- the same batch size, and at least as many optimizer steps (the trainer counts whole epochs, so
  the step budget is rounded up to a whole number of epochs; the row records the steps taken);
- CHGNet's own settings otherwise (Adam, cosine decay, MSE, learning rate 1e-3), with its
  composition model (per-element reference energies) trained too, which the trainer's
  documentation suggests when the data's elemental energies differ from the Materials Project's,
  as a user's DFT settings make them (`lamm finetune` refits ours to the training records too,
  by a fit rather than by gradient steps).

Energies are scored as they come out of the fine-tuned model (no per-element shift afterwards:
the model learned the data's reference itself, as ours does).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from lamm.analysis.anchors import anchor_predictions
from lamm.analysis.evaluation import compute_metrics
from lamm.analysis.transfer import FINETUNED_ANCHOR
from lamm.data.store import StructureStore

# the anchors whose own trainer runs here: name -> CHGNet.load model_name
FINETUNABLE = {"chgnet-0.3.0": "0.3.0", "chgnet-r2scan": "r2scan"}
LEARNING_RATE = 1e-3  # chgnet.trainer.Trainer's default


def check_finetunable(names: list[str]) -> None:
    unknown = [name for name in names if name not in FINETUNABLE]
    if unknown:
        raise ValueError(
            f"cannot fine-tune {', '.join(unknown)}: the anchors with a trainer that runs here "
            f"are {', '.join(FINETUNABLE)}"
        )


def _structure_data(store: StructureStore, records: np.ndarray) -> Any:
    """CHGNet's dataset of `records`: pymatgen structures, energies per atom (eV), forces (eV/A)."""
    from chgnet.data.dataset import StructureData
    from pymatgen.io.ase import AseAtomsAdaptor

    structures, energies, forces = [], [], []
    for index in records:
        atoms = store.get_atoms(int(index))
        structures.append(AseAtomsAdaptor.get_structure(atoms))
        energies.append(float(atoms.get_potential_energy()) / len(atoms))
        forces.append(np.asarray(atoms.get_forces(), dtype=np.float64))
    return StructureData(structures, energies, forces, shuffle=False)


def finetune_anchor_row(
    name: str,
    store_path: str | Path,
    *,
    fraction: float,
    seed: int,
    steps: int,
    batch_size: int,
    work_dir: str | Path,
    learning_rate: float = LEARNING_RATE,
) -> dict[str, Any]:
    """Fine-tune anchor `name` on the records a `lamm finetune` run of (fraction, seed) trains
    on, for at least `steps` steps of `batch_size`; its test metrics as a `lamm transfer` row.
    `work_dir` holds the trainer's checkpoints while it runs (removed afterwards)."""
    check_finetunable([name])
    import torch
    from chgnet.data.dataset import collate_graphs
    from chgnet.model import CHGNet
    from chgnet.model.dynamics import CHGNetCalculator
    from chgnet.trainer import Trainer
    from torch.utils.data import DataLoader

    from lamm.training.finetune import train_records

    torch.set_num_threads(1)
    store = StructureStore(store_path)
    records = train_records(store, fraction, seed)
    val_records = np.asarray(store.indices("val"), dtype=np.int64)
    if len(val_records) == 0 or len(store.indices("test")) == 0:
        raise ValueError(f"{store_path}: fine-tuning an anchor needs val and test splits")
    torch.manual_seed(seed)
    train_loader = DataLoader(
        _structure_data(store, records),
        batch_size=batch_size,
        shuffle=True,
        collate_fn=collate_graphs,
        generator=torch.Generator().manual_seed(seed),
    )
    val_loader = DataLoader(
        _structure_data(store, val_records), batch_size=16, collate_fn=collate_graphs
    )
    epochs = max(1, math.ceil(steps / len(train_loader)))
    model = CHGNet.load(model_name=FINETUNABLE[name], use_device="cpu", verbose=False)
    trainer = Trainer(
        model=model,
        targets="ef",
        learning_rate=learning_rate,
        epochs=epochs,
        torch_seed=seed,
        data_seed=seed,
        use_device="cpu",
        print_freq=10**9,  # its per-batch lines; the epoch summaries stay
    )
    save_dir = Path(work_dir) / f"{name}_f{fraction:g}_s{seed}_trainer"  # runs share work_dir
    try:
        trainer.train(
            train_loader, val_loader, save_dir=str(save_dir), train_composition_model=True
        )
    finally:
        shutil.rmtree(save_dir, ignore_errors=True)
    calc = CHGNetCalculator(trainer.model, use_device="cpu")
    metrics = compute_metrics(anchor_predictions(name, store, "test", calc=calc))
    return {
        "method": f"{name} {FINETUNED_ANCHOR}",
        "fraction": float(fraction),
        "seed": int(seed),
        "run": f"{name}_finetuned_f{fraction:g}_s{seed}",
        "energy_mae_mev_per_atom": metrics.get("energy_mae_mev_per_atom", float("nan")),
        "forces_mae_mev_per_a": metrics.get("forces_mae_mev_per_a", float("nan")),
        "steps": epochs * len(train_loader),
        "train_structures": len(records),
    }
