"""Pre-training: a 2-rank run learns and writes loadable checkpoints; exact resume; NaN steps."""

import csv
import dataclasses
import errno
import json
import os

import numpy as np
import pytest
import torch
from ase.build import fcc111

from lamm.calculator import LaMMCalculator
from lamm.config import ConfigError, validate_config
from lamm.data.store import StructureStore, StructureStoreWriter
from lamm.launch import LaunchSettings, launch
from lamm.models.checkpoint import CheckpointWriteError, load_checkpoint
from lamm.training.pretrain import SCHEMA, run_pretraining
from lamm.training.trainer import NonFiniteLossError
from tests.helpers.training_data import SUBSETS, tiny_trainer_config, write_training_stores


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    return write_training_stores(tmp_path_factory.mktemp("stores"))


@pytest.fixture(autouse=True)
def _restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def config(**overrides):
    return validate_config(tiny_trainer_config(**overrides), SCHEMA)


def read_validation(path):
    with open(path, newline="") as handle:
        return [row for row in csv.DictReader(handle)]


def test_two_ranks_learn_and_write_loadable_checkpoints(stores, tmp_path):
    out = tmp_path / "run"
    settings = config(
        train={"epochs": 8.0, "checkpoint_epochs": [0, 0.5, 8.0], "val_every_steps": 20}
    )
    summary = launch(
        run_pretraining,
        {"config": settings, "data_dir": stores, "out_dir": out},
        LaunchSettings(executor="local", ranks_per_node=2),
        folder=tmp_path / "submitit",
        poll_s=0.5,
    )
    assert summary["world_size"] == 2 and summary["nonfinite_steps"] == 0
    assert summary["steps"] == summary["total_steps"] > 10
    assert not (out / ".shared-check").exists()  # the ranks checked the folder and cleaned up
    # validation loss falls (first validation is the initialized model, step 0)
    losses = [
        (int(r["step"]), float(r["value"]))
        for r in read_validation(out / "validation.csv")
        if r["metric"] == "val/loss"
    ]
    assert losses[0][0] == 0 and losses[-1][0] == summary["steps"]
    assert losses[-1][1] < 0.8 * losses[0][1], losses
    # per-rank timings of every step, for both ranks
    with open(out / "timings.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {int(r["rank"]) for r in rows} == {0, 1}
    assert len(rows) == 2 * summary["steps"]
    assert all(float(r["compute_s"]) > 0 and float(r["atoms"]) > 0 for r in rows)
    # checkpoints at the requested fractional epochs, each enough to rebuild a calculator
    names = sorted(p.name for p in (out / "checkpoints").glob("*.pt"))
    assert names == ["epoch_0.5.pt", "epoch_0.pt", "epoch_8.pt", "last.pt"]
    initial, final = (
        load_checkpoint(out / "checkpoints" / "epoch_0.pt"),
        load_checkpoint(out / "checkpoints" / "epoch_8.pt"),
    )
    assert initial["heads"] == SUBSETS and initial["training"]["step"] == 0
    assert final["training"]["step"] == summary["steps"]
    changed = [
        k
        for k in final["model"]
        if k.startswith("encoder") and not torch.equal(initial["model"][k], final["model"][k])
    ]
    assert len(changed) > 5  # the encoder's weights were trained
    atoms = fcc111("Cu", size=(2, 2, 2), vacuum=5.0)
    atoms.calc = LaMMCalculator(out / "checkpoints" / "epoch_8.pt", head="oc20_s2ef")
    assert np.isfinite(atoms.get_potential_energy())
    assert atoms.get_forces().shape == (8, 3)


def final_state(out):
    payload = load_checkpoint(out / "checkpoints" / "last.pt")
    return payload["model"], payload["ema"], payload["training"]


def test_interrupted_and_resumed_run_ends_with_the_same_weights(stores, tmp_path):
    settings = config()
    uninterrupted = run_pretraining(settings, stores, tmp_path / "a")
    stopped = run_pretraining(settings, stores, tmp_path / "b", max_steps=13)  # stops mid-epoch
    assert stopped["steps"] == 13
    resumed = run_pretraining(settings, stores, tmp_path / "b", resume=True)
    assert resumed["steps"] == uninterrupted["steps"]
    model_a, ema_a, training_a = final_state(tmp_path / "a")
    model_b, ema_b, training_b = final_state(tmp_path / "b")
    for name in model_a:
        assert torch.equal(model_a[name], model_b[name]), name
        assert torch.equal(ema_a[name], ema_b[name]), name
    assert training_a["samples_seen"] == training_b["samples_seen"]
    # the CSV logs of the resumed run continue without duplicated steps
    steps = [
        int(r["step"])
        for r in read_validation(tmp_path / "b" / "validation.csv")
        if r["metric"] == "val/loss"
    ]
    assert steps == sorted(set(steps)) and steps[-1] == resumed["steps"]


def add_nan_energy(stores, tmp_path):
    """A copy of the stores in which one training structure of qmugs has a NaN energy."""
    directory = tmp_path / "nan-stores"
    directory.mkdir()
    for subset in SUBSETS:
        (directory / f"{subset}.lmdb").write_bytes((stores / f"{subset}.lmdb").read_bytes())
    source = StructureStore(stores / "qmugs.lmdb")
    with StructureStoreWriter(
        directory / "qmugs.lmdb", subset="qmugs", source="qmugs", extra_info={"task": "s2ef"}
    ) as writer:
        for index, record in enumerate(source):
            if index == 0:
                record = dataclasses.replace(record, energy=float("nan"))
            writer.add(record, "val" if source.split[index] == 1 else "train")
    return directory


def test_nan_batch_is_skipped_and_counted(stores, tmp_path):
    nan_stores = add_nan_energy(stores, tmp_path)
    # statistics must come from finite labels only; the poisoned structure is still trained on
    settings = config(
        data={"statistics_samples": 100}, train={"epochs": 1.0, "checkpoint_epochs": [1.0]}
    )
    summary = run_pretraining(settings, nan_stores, tmp_path / "run")
    assert summary["nonfinite_steps"] >= 1  # the structure is drawn at least once per epoch
    assert summary["steps"] == summary["total_steps"]
    weights = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["model"]
    assert all(torch.isfinite(v).all() for v in weights.values() if v.dtype.is_floating_point)
    strict = config(train={"epochs": 1.0, "checkpoint_epochs": [1.0], "max_nonfinite_steps": 0})
    with pytest.raises(NonFiniteLossError, match="non-finite"):
        run_pretraining(strict, nan_stores, tmp_path / "strict")


def test_trainer_config_errors_name_the_key():
    bad = tiny_trainer_config(sampler={"stratgy": "lamm"})
    with pytest.raises(
        ConfigError, match=r"unknown key sampler.stratgy \(did you mean sampler.strategy\?\)"
    ):
        validate_config(bad, SCHEMA)


def test_cli_refuses_to_overwrite_a_run_without_resume(stores, tmp_path, capsys):
    from lamm.cli import main

    path = tmp_path / "demo.yaml"
    path.write_text(json.dumps(tiny_trainer_config()))
    (tmp_path / "out" / "checkpoints").mkdir(parents=True)
    (tmp_path / "out" / "checkpoints" / "last.pt").write_bytes(b"")
    with pytest.raises(SystemExit, match="pass --resume"):
        main(
            [
                "pretrain",
                "--config",
                str(path),
                "--data",
                str(stores),
                "--out",
                str(tmp_path / "out"),
                "--launcher",
                "none",
            ]
        )


def test_total_steps_is_a_short_run_on_a_schedule_of_its_length(stores, tmp_path):
    # --max-steps stops early on the full schedule; train.total_steps (--total-steps) is the run's
    # length, so warmup and the cosine decay fit inside it and the last step reaches the floor
    settings = config(
        train={"total_steps": 12, "log_every_steps": 1, "checkpoint_epochs": [0]},
        optimizer={"lr": 3.0e-3, "warmup_steps": 2, "min_lr_ratio": 0.1, "ema_decay": 0.9},
    )
    summary = run_pretraining(settings, stores, tmp_path / "short")
    assert summary["steps"] == 12 and summary["total_steps"] == 12
    with open(tmp_path / "short" / "metrics.csv", newline="") as handle:
        rates = {int(row["step"]): float(row["lr"]) for row in csv.DictReader(handle)}
    # the lr logged after step k is the multiplier of step k: warmup (k + 1) / 2, then the
    # half cosine over the 10 remaining steps, ending at min_lr_ratio
    assert rates[12] == pytest.approx(3.0e-3 * 0.1)
    assert rates[7] == pytest.approx(3.0e-3 * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * 5 / 10))))
    stopped = run_pretraining(
        config(train={"log_every_steps": 1}), stores, tmp_path / "stopped", max_steps=12
    )
    assert (
        stopped["steps"] == 12 and stopped["total_steps"] > 12
    )  # the early stop kept the long schedule


def test_a_finished_run_leaves_no_loader_workers(stores, tmp_path):
    """The loader's persistent workers stop when fit returns, not whenever the loader is garbage
    collected: a later run in the same process would fork its workers with the old loader inside
    (and its first steps stalled 10 s at that collection)."""
    import multiprocessing

    before = set(multiprocessing.active_children())
    run_pretraining(config(train={"total_steps": 2}), stores, tmp_path / "run")
    assert config()["data"]["num_workers"] >= 1  # so the run had workers to stop
    assert set(multiprocessing.active_children()) - before == set()


def test_bf16_pretraining_runs_on_the_cpu(stores, tmp_path):
    """precision: bf16 autocasts on the CPU too, so the path is exercised before a GPU run."""
    settings = config(train={"precision": "bf16", "total_steps": 4, "log_every_steps": 1})
    summary = run_pretraining(settings, stores, tmp_path / "bf16")
    assert summary["steps"] == 4 and summary["nonfinite_steps"] == 0
    with open(tmp_path / "bf16" / "metrics.csv", newline="") as handle:
        losses = [float(row["loss"]) for row in csv.DictReader(handle)]
    assert len(losses) == 4 and all(np.isfinite(losses))
    fp32 = config(train={"total_steps": 4, "log_every_steps": 1})
    run_pretraining(fp32, stores, tmp_path / "fp32", max_steps=1)
    with open(tmp_path / "fp32" / "metrics.csv", newline="") as handle:
        reference = float(next(csv.DictReader(handle))["loss"])
    assert losses[0] != reference and losses[0] == pytest.approx(reference, rel=0.05)  # autocast
    first = load_checkpoint(tmp_path / "bf16" / "checkpoints" / "epoch_0.pt")["model"]
    last = load_checkpoint(tmp_path / "bf16" / "checkpoints" / "last.pt")["model"]
    floats = [k for k, v in last.items() if v.dtype.is_floating_point]
    weights = [k for k in floats if not k.startswith("normalizer.")]  # statistics: float64
    assert weights and all(last[k].dtype == torch.float32 for k in weights)  # weights stay fp32
    assert any(not torch.equal(first[k], last[k]) for k in floats)  # and they trained
    with pytest.raises(ValueError, match="fp16 needs a GPU"):
        run_pretraining(config(train={"precision": "fp16"}), stores, tmp_path / "fp16")


class FullDisk:
    """A file that takes a few writes, then fails as a full disk does."""

    def __init__(self, path, mode):
        self.handle = open(path, mode)
        self.writes = 0

    def write(self, data):
        self.writes += 1
        if self.writes > 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.handle.write(data)

    def __getattr__(self, name):
        return getattr(self.handle, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()


def test_a_full_disk_keeps_the_previous_last_checkpoint_and_stops_with_the_reason(
    stores, tmp_path, monkeypatch
):
    settings = config(train={"total_steps": 6, "checkpoint_epochs": [0]})
    run_pretraining(settings, stores, tmp_path / "run", max_steps=3)
    last = tmp_path / "run" / "checkpoints" / "last.pt"
    before = last.read_bytes()
    monkeypatch.setattr("lamm.models.checkpoint.open", FullDisk, raising=False)
    with pytest.raises(CheckpointWriteError) as caught:
        run_pretraining(settings, stores, tmp_path / "run", resume=True)
    message = str(caught.value)
    assert message.startswith(f"{last}: could not write the checkpoint: No space left on device")
    assert message.endswith("the previous last.pt is intact") and "GiB free there" in message
    assert last.read_bytes() == before and load_checkpoint(last)["training"]["step"] == 3
    assert sorted(p.name for p in last.parent.iterdir()) == ["epoch_0.pt", "last.pt"]
