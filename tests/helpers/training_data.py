"""Four small real stores in the shape of the pre-training data, written in about a second."""

from __future__ import annotations

from pathlib import Path

from lamm.data.record import StructureRecord
from tests.store_factory import MOLECULES, emt_record, rattled_molecule, slab, write_store

SUBSETS = ["oc20_s2ef", "transition1x", "qmugs", "pubchem3d"]


def write_training_stores(directory: Path) -> Path:
    """oc20_s2ef (EMT slabs, E+F), transition1x (molecules, E+F), qmugs (E only), pubchem3d
    (unlabeled)."""
    directory.mkdir(parents=True, exist_ok=True)
    write_store(
        directory / "oc20_s2ef.lmdb",
        [emt_record(slab(2 + i % 2, i)) for i in range(12)],
        subset="oc20_s2ef",
        task="s2ef",
        val_every=4,
    )
    molecules = [emt_record(rattled_molecule(MOLECULES[i % len(MOLECULES)], i)) for i in range(16)]
    write_store(
        directory / "transition1x.lmdb", molecules, subset="transition1x", task="s2ef", val_every=4
    )
    energy_only = [
        emt_record(rattled_molecule(MOLECULES[(i + 3) % len(MOLECULES)], 50 + i), labels="E")
        for i in range(8)
    ]
    write_store(directory / "qmugs.lmdb", energy_only, subset="qmugs", task="s2ef", val_every=4)
    conformers = [
        StructureRecord.from_atoms(rattled_molecule(MOLECULES[(2 * i) % len(MOLECULES)], 90 + i))
        for i in range(10)
    ]
    write_store(
        directory / "pubchem3d.lmdb",
        conformers,
        subset="pubchem3d",
        task="denoising",
        energy_kind="none",
        val_every=4,
    )
    return directory


def tiny_trainer_config(**overrides) -> dict:
    """A trainer config (before validation) for a model of a few thousand weights."""
    config = {
        "name": "unit",
        "seed": 0,
        "device": "cpu",
        "threads_per_rank": 1,
        "model": {
            "encoder": "painn",
            "cutoff": 4.0,
            "force_mode": "direct",
            "painn": {"hidden_channels": 16, "num_layers": 2, "num_rbf": 8},
            "heads": {"hidden_channels": 8},
        },
        "data": {
            "subsets": SUBSETS,
            "temperature": 2.0,
            "num_workers": 1,
            "statistics_samples": 100,
        },
        "sampler": {"strategy": "lamm", "batch_per_rank": 2, "num_splits": 2},
        "optimizer": {"lr": 3.0e-3, "warmup_steps": 5, "ema_decay": 0.9},
        "train": {
            "epochs": 3.0,
            "checkpoint_epochs": [0, 0.5, 3.0],
            "val_every_steps": 10,
            "log_every_steps": 5,
        },
    }
    for section, values in overrides.items():
        if isinstance(values, dict):
            config[section] = {**config.get(section, {}), **values}
        else:
            config[section] = values
    return config
