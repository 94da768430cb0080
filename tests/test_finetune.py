"""Fine-tuning: encoder loaded and heads reset (weights compared), --init-head, refitted
referencing, train fractions, layer-wise learning rates, a tiny run end to end, MLflow nesting,
and the Table 3 / sample-efficiency formulas on hand-made run folders."""

import csv
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
from ase.build import bulk

from lamm import keys as K
from lamm.analysis.finetune import (
    finetune_table,
    load_run,
    moving_average,
    sample_efficiency_table,
    speedup,
    steps_to_threshold,
)
from lamm.analysis.zero_shot import zero_shot_rows
from lamm.config import ConfigError, validate_config
from lamm.data.dataset import MultiStoreDataset
from lamm.data.graph import collate
from lamm.data.record import MAX_ATOMIC_NUMBER
from lamm.data.referencing import (
    compute_statistics,
    fit_element_references,
    load_or_compute_statistics,
)
from lamm.data.store import StructureStore, StructureStoreWriter
from lamm.models.build import build_potential
from lamm.models.checkpoint import checkpoint_dict, load_checkpoint, load_potential, save_checkpoint
from lamm.models.potential import edge_vectors
from lamm.tracking import find_or_create_parent_run
from lamm.training.change_bias import (
    choose_init_head,
    copyable_heads,
    predicted_energies,
    refit_references,
)
from lamm.training.finetune import (
    check_starting_checkpoint,
    finetune_schema,
    head_statistics,
    match_head_scale,
    parameter_groups,
    run_finetuning,
    same_steps_config,
    starting_potential,
    train_records,
)
from tests.helpers.training_data import SUBSETS, tiny_trainer_config
from tests.store_factory import MOLECULES, emt_record, rattled_molecule

MODEL = tiny_trainer_config()["model"]


def _cell(i):
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
    atoms.symbols[i % 4] = ["Au", "Ag", "Pd", "Ni"][i % 4]
    atoms.positions += np.random.default_rng(i).normal(0, 0.05, atoms.positions.shape)
    return atoms


@pytest.fixture(scope="module")
def downstream(tmp_path_factory):
    """hme21-like store: metal cells and molecules; 3 of every 5 train, then val, then test."""
    path = tmp_path_factory.mktemp("downstream") / "hme21.lmdb"
    with StructureStoreWriter(
        path, subset="hme21", source="hme21", energy_kind="total", extra_info={"task": "s2ef"}
    ) as writer:
        for i in range(30):
            atoms = _cell(i) if i % 2 else rattled_molecule(MOLECULES[i % 5], i)
            writer.add(emt_record(atoms), ["train", "train", "train", "val", "test"][i % 5])
    return StructureStore(path)


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A 'pre-training' checkpoint whose EMA weights differ from its raw weights, with
    statistics."""
    model = build_potential(MODEL, SUBSETS, seed=7)
    ema = build_potential(MODEL, SUBSETS, seed=8)
    for head in range(len(SUBSETS)):
        stats = {
            "element_references": {"1": -3.0 - head, "29": -4.0},
            "energy_mean": 0.5,
            "energy_std": 2.0,
            "force_rms": 0.7,
        }
        model.normalizer.set_head(head, stats)
        ema.normalizer.set_head(head, stats)
    payload = checkpoint_dict(model, MODEL, ema_state=ema.state_dict())
    path = save_checkpoint(tmp_path_factory.mktemp("pretrain") / "epoch_0.5.pt", payload)
    return path


def config(**overrides):
    raw = tiny_trainer_config(
        name="unit", data={"subset": "hme21", "statistics_samples": 100, "num_workers": 0}
    )
    raw.pop("data")
    raw["data"] = {"subset": "hme21", "statistics_samples": 100, "num_workers": 0}
    raw["sampler"] = {"strategy": "random", "batch_per_rank": 2, "num_splits": 1}
    raw["train"] = {
        "epochs": 6.0,
        "checkpoint_epochs": [],
        "val_every_steps": 9,
        "log_every_steps": 1,
    }
    raw["optimizer"] = {"lr": 1.0e-2, "warmup_steps": 3, "ema_decay": 0.8}
    for section, values in overrides.items():
        raw[section] = {**raw.get(section, {}), **values} if isinstance(values, dict) else values
    return validate_config(raw, finetune_schema())


def test_encoder_loaded_from_ema_and_heads_reinitialized(pretrained):
    payload = load_checkpoint(pretrained)
    model, model_config = starting_potential(MODEL, payload, "hme21", seed=3)
    assert (
        model.heads == ["hme21"]
        and model.energy_head.num_heads == 1
        and model.force_head.num_heads == 1
    )
    encoder = {
        k.removeprefix("encoder."): v for k, v in payload["ema"].items() if k.startswith("encoder.")
    }
    raw = {
        k.removeprefix("encoder."): v
        for k, v in payload["model"].items()
        if k.startswith("encoder.")
    }
    for name, value in model.encoder.state_dict().items():
        assert torch.equal(value, encoder[name]), name
    assert any(
        not torch.equal(encoder[k], raw[k]) for k in encoder
    )  # so EMA, not the raw weights, was loaded
    fresh = build_potential(model_config, ["hme21"], seed=3)
    for head in ("energy_head", "force_head"):
        for name, value in getattr(model, head).state_dict().items():
            assert torch.equal(value, getattr(fresh, head).state_dict()[name]), name
    # the pre-trained hidden layer is not what the new head starts from
    assert not torch.equal(
        model.energy_head.mlp[0].weight, payload["ema"]["energy_head.mlp.0.weight"]
    )
    # the normalizer is the identity until the downstream statistics are loaded
    assert (
        float(model.normalizer.energy_std[0]) == 1.0
        and float(model.normalizer.element_references.abs().sum()) == 0.0
    )


def test_gradient_mode_drops_the_direct_force_head(pretrained):
    model, model_config = starting_potential(
        None, load_checkpoint(pretrained), "hme21", force_mode="gradient"
    )
    assert (
        model.force_head is None
        and model.force_mode == "gradient"
        and model_config["force_mode"] == "gradient"
    )


def test_init_head_copies_that_channel(pretrained, downstream):
    payload = load_checkpoint(pretrained)
    source = load_potential(pretrained)
    channel = SUBSETS.index("transition1x")
    model, _ = starting_potential(MODEL, payload, "hme21", init_head="transition1x", seed=3)
    batch = collate([MultiStoreDataset([downstream], "train", cutoff=4.0)[i] for i in range(4)])
    vectors = edge_vectors(
        batch[K.POSITIONS],
        batch[K.CELL],
        batch[K.CELL_OFFSETS],
        batch[K.EDGE_INDEX],
        batch[K.BATCH],
    )
    features = source.encoder(batch[K.ATOMIC_NUMBERS], batch[K.EDGE_INDEX], vectors)
    s, v = features[K.NODE_FEATURES], features[K.NODE_VECTORS]
    with torch.no_grad():
        mine = model.energy_head(s, batch[K.BATCH], 4)[:, 0]
        theirs = source.energy_head(s, batch[K.BATCH], 4)[:, channel]
        torch.testing.assert_close(mine, theirs)
        torch.testing.assert_close(
            model.force_head(s, v)[..., 0], source.force_head(s, v)[..., channel]
        )
        other = source.energy_head(s, batch[K.BATCH], 4)[:, channel + 1]
    assert not torch.allclose(mine, other)


def test_copied_head_rescaled_to_predict_the_pretrained_ev(pretrained, downstream):
    """After the downstream statistics replace the pre-training ones, the copied head still
    predicts the pre-trained head's eV (up to mean and references) and eV/A."""
    payload = load_checkpoint(pretrained)
    source = load_potential(pretrained)
    channel = SUBSETS.index("oc20_s2ef")
    model, _ = starting_potential(MODEL, payload, "hme21", init_head="oc20_s2ef", seed=3)
    old = head_statistics(payload, "oc20_s2ef")
    assert old == {
        "energy_mean": 0.5,
        "energy_std": 2.0,
        "force_rms": 0.7,
        "element_references": {"1": -3.0, "29": -4.0},  # the fixture's head 0
    }
    new = {
        "element_references": {"29": -1.0},
        "energy_mean": 0.1,
        "energy_std": 5.0,
        "force_rms": 1.75,
    }
    model.normalizer.set_head(0, new)
    factors = match_head_scale(model, old, new)
    assert factors == pytest.approx({"energy": 2.0 / 5.0, "forces": 0.7 / 1.75})
    batch = collate([MultiStoreDataset([downstream], "train", cutoff=4.0)[i] for i in range(4)])
    vectors = edge_vectors(
        batch[K.POSITIONS],
        batch[K.CELL],
        batch[K.CELL_OFFSETS],
        batch[K.EDGE_INDEX],
        batch[K.BATCH],
    )
    features = source.encoder(batch[K.ATOMIC_NUMBERS], batch[K.EDGE_INDEX], vectors)
    s, v = features[K.NODE_FEATURES], features[K.NODE_VECTORS]
    with torch.no_grad():
        mine_ev = model.energy_head(s, batch[K.BATCH], 4)[:, 0] * 5.0
        theirs_ev = source.energy_head(s, batch[K.BATCH], 4)[:, channel] * 2.0
        torch.testing.assert_close(mine_ev, theirs_ev)
        torch.testing.assert_close(
            model.force_head(s, v)[..., 0] * 1.75, source.force_head(s, v)[..., channel] * 0.7
        )


@pytest.fixture(scope="module")
def cu_cells(tmp_path_factory):
    """Rattled Cu cells of 4, 8, 16 and 32 atoms: no per-element reference can stand in for a
    constant per structure here (the atom counts differ)."""
    path = tmp_path_factory.mktemp("cu") / "cu.lmdb"
    sizes = [(1, 1, 1), (2, 1, 1), (2, 2, 1), (2, 2, 2)]
    with StructureStoreWriter(path, subset="cu", source="cu", energy_kind="total") as writer:
        for i in range(16):
            atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat(sizes[i % 4])
            atoms.rattle(0.05 + 0.02 * (i % 3), seed=i)
            writer.add(emt_record(atoms), ["train", "train", "val", "test"][(i // 4 + i) % 4])
    return StructureStore(path)


def test_refit_references_adds_the_least_squares_shift_per_element(pretrained, cu_cells):
    """On Cu cells the shift is sum n_i r_i / sum n_i^2 (r: label - prediction, n: atoms), added
    to Cu's reference; the predictions move by n_i times it."""
    model, _ = starting_potential(MODEL, load_checkpoint(pretrained), "cu", init_head="oc20_s2ef")
    stats = {"element_references": {"29": -4.0}, "energy_mean": 0.5, "energy_std": 2.0,
             "force_rms": 0.7}  # fmt: skip
    model.normalizer.set_head(0, stats)
    records = cu_cells.indices("train")
    labels, before, counts = predicted_energies(model, cu_cells, records)
    natoms = counts[:, 29]
    assert len(set(natoms)) == 4
    expected = float(np.sum(natoms * (labels - before)) / np.sum(natoms**2))
    refit = refit_references(model, cu_cells, records, stats)
    assert refit["element_references"] == {"29": pytest.approx(-4.0 + expected)}
    assert stats["element_references"] == {"29": -4.0}  # the given statistics are left alone
    assert float(model.normalizer.element_references[0, 29]) == pytest.approx(-4.0 + expected)
    _, after, _ = predicted_energies(model, cu_cells, records)
    np.testing.assert_allclose(after, before + natoms * expected, rtol=0, atol=1e-6)
    # a second refit finds nothing left to shift
    again = refit_references(model, cu_cells, records, refit)
    assert again["element_references"]["29"] == pytest.approx(refit["element_references"]["29"])


def test_without_energy_labels_the_references_stay_and_auto_says_what_to_do(pretrained, tmp_path):
    path = tmp_path / "forces_only.lmdb"
    with StructureStoreWriter(path, subset="cu", source="cu", energy_kind="total") as writer:
        for i, split in enumerate(["train", "train", "val", "test"]):
            atoms = bulk("Cu", "fcc", a=3.6, cubic=True)
            atoms.rattle(0.05, seed=i)
            record = emt_record(atoms)
            writer.add(dataclasses.replace(record, energy=None), split)
    store = StructureStore(path)
    model, _ = starting_potential(MODEL, load_checkpoint(pretrained), "cu", init_head="oc20_s2ef")
    stats = {"element_references": {"29": -4.0}, "energy_std": 2.0, "force_rms": 0.7}
    assert refit_references(model, store, store.indices("train"), stats) == stats
    with pytest.raises(ValueError, match="no energy labels .* name the head"):
        choose_init_head(
            load_potential(pretrained), store, store.indices("train"), store.indices("val"), SUBSETS
        )


def test_a_copied_head_starts_at_its_zero_shot_energies(pretrained, cu_cells, tmp_path):
    """Step 0 of a run with init_head scores on validation what `lamm zero-shot` gives that head
    with its references refit on the training split: the pre-trained eV (its per-structure mean
    kept), shifted per element."""
    out = tmp_path / "run"
    run_finetuning(
        config(
            data={"subset": "cu"}, finetune={"init_head": "oc20_s2ef"}, train={"total_steps": 1}
        ),
        pretrained,
        cu_cells.path,
        out,
    )
    step0 = {
        r["metric"]: float(r["value"]) for r in _rows(out / "validation.csv") if r["step"] == "0"
    }
    [row] = zero_shot_rows(
        load_potential(pretrained), cu_cells, checkpoint="0.5", heads=["oc20_s2ef"],
        eval_split="val",
    )  # fmt: skip
    assert step0["val/cu/energy_mae_mev_per_atom"] == pytest.approx(
        row["energy_mae_mev_per_atom"], rel=1e-4
    )
    assert json.loads((out / "statistics.json").read_text())[0]["energy_mean"] == 0.5


def test_an_element_missing_from_training_keeps_its_pre_training_reference(pretrained, tmp_path):
    """Validation holds H, the training records only Cu: step 0 still scores what `lamm
    zero-shot` does, whose shift leaves H's pre-training reference (-3 eV) alone. A reference
    fitted to the downstream labels alone would put H at 0 eV."""
    path = tmp_path / "cu_h.lmdb"
    with StructureStoreWriter(path, subset="cu", source="cu", energy_kind="total") as writer:
        for i in range(8):
            atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat([(1, 1, 1), (2, 1, 1)][i % 2])
            atoms.rattle(0.05, seed=i)
            split = "train"
            if i >= 5:  # validation and test: Cu cells with an interstitial H atom
                atoms.append("H")
                atoms.positions[-1] = [0.9, 0.9, 0.0]
                split = ["val", "val", "test"][i - 5]
            writer.add(emt_record(atoms), split)
    store = StructureStore(path)
    out = tmp_path / "run"
    run_finetuning(
        config(data={"subset": "cu"}, finetune={"init_head": "oc20_s2ef"},
               train={"total_steps": 1}),
        pretrained,
        path,
        out,
    )  # fmt: skip
    step0 = {
        r["metric"]: float(r["value"]) for r in _rows(out / "validation.csv") if r["step"] == "0"
    }
    [row] = zero_shot_rows(
        load_potential(pretrained), store, checkpoint="0.5", heads=["oc20_s2ef"],
        eval_split="val",
    )  # fmt: skip
    assert step0["val/cu/energy_mae_mev_per_atom"] == pytest.approx(
        row["energy_mae_mev_per_atom"], rel=1e-4
    )
    references = json.loads((out / "statistics.json").read_text())[0]["element_references"]
    assert references["1"] == -3.0  # oc20_s2ef's (head 0 of the fixture), not refit: no H in train
    assert references["29"] != -4.0  # Cu was refit


def test_copyable_heads_are_those_that_learned_energies_and_forces():
    def stats(task, kind):
        return {"provenance": {"task": task, "energy_kind": kind}}

    heads = ["bulk", "mols", "adsorption", "relaxed_oxides", "noise", "old"]
    statistics = [stats("s2ef", "total"), stats("s2ef", "total"), stats("is2re", "adsorption"),
                  stats("is2re", "total"), stats("denoising", "none"), {}]  # fmt: skip
    assert copyable_heads(heads, statistics) == ["bulk", "mols", "old"]


def test_auto_head_is_the_best_zero_shot_head_on_validation(pretrained, cu_cells, tmp_path):
    """init_head auto scores each head as `lamm zero-shot` does (references refit on the training
    records, energies on validation) and copies the lowest; scratch has none to copy."""
    source = load_potential(pretrained)
    head, rows = choose_init_head(
        source, cu_cells, cu_cells.indices("train"), cu_cells.indices("val"), SUBSETS
    )
    zero_shot = zero_shot_rows(source, cu_cells, checkpoint="0.5", eval_split="val")
    expected = {row["head"]: row["energy_mae_mev_per_atom"] for row in zero_shot}
    assert {row["head"]: row["energy_mae_mev_per_atom"] for row in rows} == pytest.approx(expected)
    assert head == min(expected, key=expected.get)
    assert expected[SUBSETS[0]] != expected[SUBSETS[1]]  # the two heads differ: a real choice
    auto = config(data={"subset": "cu"}, finetune={"init_head": "auto"}, train={"total_steps": 1})
    summary = run_finetuning(auto, pretrained, cu_cells.path, tmp_path / "auto")
    assert summary["init_head"] == head
    summary = run_finetuning(auto, None, cu_cells.path, tmp_path / "scratch")
    assert summary["init_head"] is None and summary["checkpoint"] == "scratch"
    # a checkpoint with no head worth copying fails before any run starts
    payload = load_checkpoint(pretrained)
    noise = {"provenance": {"task": "denoising", "energy_kind": "none"}}
    payload["statistics"] = [noise for _ in payload["heads"]]
    path = save_checkpoint(tmp_path / "denoising_only.pt", payload)
    with pytest.raises(ValueError, match="init_head auto: .*denoising_only.pt has no head"):
        check_starting_checkpoint(auto, path)


def test_bad_init_head_and_mismatched_model_are_clear_errors(pretrained):
    payload = load_checkpoint(pretrained)
    with pytest.raises(
        ValueError,
        match=r"init_head 'oc99' is not a head of .*epoch_0.5.pt; its heads are oc20_s2ef, "
        r"transition1x",
    ):
        starting_potential(MODEL, payload, "hme21", init_head="oc99", source=str(pretrained))
    with pytest.raises(ValueError, match="needs a pre-training checkpoint"):
        starting_potential(MODEL, None, "hme21", init_head="oc20_s2ef")
    wider = {**MODEL, "painn": {**MODEL["painn"], "hidden_channels": 32}}
    with pytest.raises(ValueError, match="one architecture"):
        starting_potential(wider, payload, "hme21")
    with pytest.raises(ValueError, match="needs the model section"):
        starting_potential(None, None, "hme21")


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="finetune.train_fraction"):
        config(finetune={"train_fraction": 1.5})
    with pytest.raises(
        ConfigError, match=r"unknown key finetune.init_haed \(did you mean finetune.init_head\?\)"
    ):
        config(finetune={"init_haed": "x"})


def test_train_fraction_is_seeded_nested_and_sized(downstream):
    train = downstream.indices("train")
    assert len(train) == 18
    small, large = train_records(downstream, 0.3, seed=0), train_records(downstream, 0.6, seed=0)
    assert len(small) == round(0.3 * 18) == 5 and len(large) == round(0.6 * 18) == 11
    assert np.array_equal(small, train_records(downstream, 0.3, seed=0))  # deterministic
    assert set(small) <= set(large) <= set(train.tolist())  # nested, inside the split
    assert not np.array_equal(small, train_records(downstream, 0.3, seed=1))
    assert np.array_equal(train_records(downstream, 1.0, seed=0), train)
    assert len(train_records(downstream, 0.01, seed=0)) == 1
    with pytest.raises(ValueError, match="train_fraction"):
        train_records(downstream, 0.0, seed=0)
    dataset = MultiStoreDataset([downstream], "train", records=[small])
    assert len(dataset) == 5 and dataset.locate(0)[1] == small[0]
    with pytest.raises(ValueError, match="not in the 'train' split"):
        MultiStoreDataset([downstream], "train", records=[downstream.indices("test")])


def _direct_fit(store, records):
    counts = np.stack(
        [
            np.bincount(store.get_record(int(i)).atomic_numbers, minlength=MAX_ATOMIC_NUMBER + 1)
            for i in records
        ]
    )
    energies = np.array([store.get_record(int(i)).energy for i in records])
    references = fit_element_references(counts, energies)["references"]
    return references, energies - counts @ references


def test_referencing_is_refitted_on_the_downstream_records(downstream, pretrained):
    records = train_records(downstream, 0.6, seed=0)
    subset_stats = compute_statistics(downstream, indices=records)
    references, referenced = _direct_fit(downstream, records)
    for z, value in subset_stats["element_references"].items():
        assert value == pytest.approx(references[int(z)], abs=1e-8)
    assert subset_stats["energy_std"] == pytest.approx(referenced.std(), rel=1e-9)
    full = load_or_compute_statistics(downstream)
    assert (
        full["provenance"]["samples_used"] == 18
        and subset_stats["provenance"]["samples_used"] == 11
    )
    assert full["energy_mean"] != pytest.approx(subset_stats["energy_mean"]) or full[
        "energy_std"
    ] != pytest.approx(subset_stats["energy_std"])
    pretrain_stats = load_checkpoint(pretrained)["model"]
    assert float(pretrain_stats["normalizer.energy_std"][0]) != pytest.approx(full["energy_std"])


def test_layer_decay_and_frozen_encoder_groups():
    model = build_potential(MODEL, ["hme21"])
    groups = {g["name"]: g for g in parameter_groups(model, 1.0, layer_decay=0.5)}
    layers = MODEL["painn"]["num_layers"]
    assert groups["heads"]["lr"] == 1.0
    assert groups["encoder_layer_0"]["lr"] == pytest.approx(0.5 ** (layers + 1))  # the embedding
    assert groups[f"encoder_layer_{layers}"]["lr"] == pytest.approx(0.5)
    grouped = sum(p.numel() for g in groups.values() for p in g["params"])
    assert grouped == sum(p.numel() for p in model.parameters())
    frozen = parameter_groups(model, 1.0, freeze_encoder=True)
    assert [g["name"] for g in frozen] == ["heads"]
    assert not any(p.requires_grad for p in model.encoder.parameters())


def test_fraction_runs_keep_the_step_budget():
    settings = config()
    same = same_steps_config(
        settings, full_train=18, batches_per_epoch=3, world_size=1
    )  # 18 / 2 = 9 batches in full
    assert same["train"]["epochs"] * 3 == pytest.approx(settings["train"]["epochs"] * 9)
    assert same_steps_config(settings, 18, 9, 1)["train"]["epochs"] == settings["train"]["epochs"]


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_tiny_run_end_to_end(pretrained, downstream, tmp_path, tracking_db):
    out = tmp_path / "run"
    summary = run_finetuning(config(), pretrained, downstream.path, out, parent_run="sweep")
    for name in (
        "checkpoints/last.pt",
        "metrics.csv",
        "validation.csv",
        "summary.json",
        "test_metrics.json",
    ):
        assert (out / name).is_file(), name
    assert (
        summary["steps"] == 6 * 9
        and summary["checkpoint"] == "0.5"
        and summary["train_structures"] == 18
    )
    forces = [
        (int(r["step"]), float(r["value"]))
        for r in _rows(out / "validation.csv")
        if r["metric"] == "val/hme21/forces_mae_mev_per_a"
    ]
    assert forces[0][0] == 0 and forces[-1][0] == summary["steps"]
    assert forces[-1][1] < 0.8 * forces[0][1], forces
    test = json.loads((out / "test_metrics.json").read_text())
    assert (
        test["structures"] == 6
        and math.isfinite(test["forces_mae_mev_per_a"])
        and math.isfinite(test["energy_mae_mev_per_atom"])
    )
    final = load_checkpoint(out / "checkpoints" / "last.pt")
    assert final["heads"] == ["hme21"] and final["finetune"]["checkpoint"] == "0.5"
    # the refitted statistics are in the model, not the pre-training head's
    stats = json.loads((out / "statistics.json").read_text())[0]
    assert float(final["ema"]["normalizer.energy_std"][0]) == pytest.approx(stats["energy_std"])
    # the final model is the EMA one: the test metrics are reproduced by loading it
    potential = load_potential(out / "checkpoints" / "last.pt")
    assert potential.heads == ["hme21"]
    # nested under the sweep's parent run, found (not re-created) by the next job
    from mlflow.tracking import MlflowClient

    parent = find_or_create_parent_run("sweep", "finetune")
    client = MlflowClient(tracking_uri=f"sqlite:///{tracking_db}")
    children = client.search_runs(
        [client.get_experiment_by_name("lamm").experiment_id], "tags.stage = 'finetune'"
    )
    nested = [r for r in children if r.data.tags.get("mlflow.parentRunId") == parent]
    assert len(nested) == 1 and nested[0].data.metrics[
        "test/forces_mae_mev_per_a"
    ] == pytest.approx(test["forces_mae_mev_per_a"])


def test_frozen_encoder_on_a_fraction(pretrained, downstream, tmp_path):
    out = tmp_path / "frozen"
    summary = run_finetuning(
        config(finetune={"freeze_encoder": True, "train_fraction": 0.3}),
        pretrained,
        downstream.path,
        out,
    )
    assert (
        summary["train_structures"] == 5 and summary["steps"] == 6 * 9
    )  # same budget as the full run
    start, final = load_checkpoint(pretrained), load_checkpoint(out / "checkpoints" / "last.pt")
    for name, value in final["model"].items():
        if name.startswith("encoder."):
            assert torch.equal(value, start["ema"][name]), name
    assert not torch.equal(
        final["model"]["energy_head.mlp.0.weight"], start["ema"]["energy_head.mlp.0.weight"][:]
    )


def _hand_made_run(directory, checkpoint, curves, fraction=1.0, structures=64, test=(10.0, 100.0)):
    directory.mkdir(parents=True)
    (directory / "summary.json").write_text(
        json.dumps(
            {
                "checkpoint": checkpoint,
                "steps": 40,
                "train_fraction": fraction,
                "train_structures": structures,
                "force_mode": "direct",
            }
        )
    )
    (directory / "test_metrics.json").write_text(
        json.dumps(
            {"energy_mae_mev_per_atom": test[0], "forces_mae_mev_per_a": test[1], "structures": 8}
        )
    )
    with open(directory / "validation.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", "epoch", "metric", "value"])
        for step, (energy, forces) in zip((0, 10, 20, 30, 40), curves, strict=True):
            writer.writerow([step, step / 10, "val/loss", 1.0])
            writer.writerow([step, step / 10, "val/hme21/energy_mae_mev_per_atom", energy])
            writer.writerow([step, step / 10, "val/hme21/forces_mae_mev_per_a", forces])
    return load_run(directory)


def test_table3_formulas_on_hand_made_runs(tmp_path):
    scratch = _hand_made_run(
        tmp_path / "scratch", "scratch", [(90, 900), (50, 400), (30, 250), (26, 210), (24, 205)]
    )
    early = _hand_made_run(
        tmp_path / "epoch_0.1", "0.1", [(80, 800), (24, 300), (20, 200), (22, 190), (21, 185)]
    )
    never = _hand_made_run(
        tmp_path / "epoch_2", "2", [(80, 800), (60, 500), (40, 300), (30, 260), (28, 230)]
    )
    rows = {
        r["checkpoint"]: r
        for r in finetune_table([never, early, scratch], energy_threshold=25, forces_threshold=210)
    }
    assert list(rows) == ["scratch", "0.1", "2"]
    assert (
        rows["scratch"]["energy_mae_mev_per_atom"] == 24
        and rows["scratch"]["forces_mae_mev_per_a"] == 205
    )
    assert (
        rows["scratch"]["steps_to_energy_threshold"] == 40
        and rows["scratch"]["steps_to_forces_threshold"] == 30
    )
    assert (
        rows["0.1"]["steps_to_energy_threshold"] == 10
        and rows["0.1"]["steps_to_forces_threshold"] == 20
    )
    assert rows["0.1"]["energy_speedup"] == 4.0 and rows["0.1"]["forces_speedup"] == 1.5
    assert rows["scratch"]["energy_speedup"] == 1.0
    assert rows["2"]["steps_to_energy_threshold"] is None and rows["2"]["energy_speedup"] is None
    assert rows["2"]["forces_mae_mev_per_a"] == 230
    assert (
        steps_to_threshold([(0, 5.0)], 5.0) == 0
        and speedup(10, 0) == math.inf
        and speedup(None, 5) is None
    )
    # without a scratch run (of that seed and budget) the rows stand, with no speedups
    alone = finetune_table([early, never], 25, 210)
    assert len(alone) == 2 and all(row["energy_speedup"] is None for row in alone)


def test_sample_efficiency_rows_and_moving_average(tmp_path):
    runs = [
        _hand_made_run(
            tmp_path / "a", "scratch", [(1, 1)] * 5, fraction=1.0, structures=64, test=(5.0, 50.0)
        ),
        _hand_made_run(
            tmp_path / "b", "2", [(1, 1)] * 5, fraction=0.1, structures=6, test=(9.0, 90.0)
        ),
        _hand_made_run(
            tmp_path / "c", "scratch", [(1, 1)] * 5, fraction=0.1, structures=6, test=(20.0, 200.0)
        ),
    ]
    rows = sample_efficiency_table(runs)
    assert [(r["checkpoint"], r["train_structures"]) for r in rows] == [
        ("scratch", 6),
        ("scratch", 64),
        ("2", 6),
    ]
    assert rows[0]["test_forces_mae_mev_per_a"] == 200.0
    with pytest.raises(ValueError, match="several runs"):
        sample_efficiency_table(runs + [runs[0]])
    curve = [(i, float(i % 2)) for i in range(10)]
    smooth = moving_average(curve, window=3)
    assert (
        len(smooth) == 8
        and smooth[0] == (1, pytest.approx(1 / 3))
        and smooth[1] == (2, pytest.approx(2 / 3))
    )
    assert moving_average(curve[:2], window=31) == [
        (0, 0.5)
    ]  # shorter than the window: one mean of all points


def test_bf16_finetuning_runs_on_the_cpu(pretrained, downstream, tmp_path):
    """precision: bf16 autocasts on the CPU: a few steps, finite losses, fp32 weights that moved."""
    out = tmp_path / "bf16"
    summary = run_finetuning(
        config(train={"precision": "bf16", "total_steps": 4}), pretrained, downstream.path, out
    )
    assert summary["steps"] == 4
    rows = _rows(out / "metrics.csv")
    assert len(rows) == 4 and all(math.isfinite(float(row["loss"])) for row in rows)
    fp32 = config(train={"total_steps": 4})
    run_finetuning(fp32, pretrained, downstream.path, tmp_path / "fp32", max_steps=1)
    reference = float(_rows(tmp_path / "fp32" / "metrics.csv")[0]["loss"])
    first = float(rows[0]["loss"])
    assert first != reference and first == pytest.approx(reference, rel=0.05)  # autocast ran
    start, final = load_checkpoint(pretrained), load_checkpoint(out / "checkpoints" / "last.pt")
    name = "energy_head.mlp.0.weight"
    assert final["model"][name].dtype == torch.float32
    assert not torch.equal(final["model"][name], start["ema"][name])
