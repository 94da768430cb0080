"""Transfer to a user's real DFT set: a pre-trained model fine-tuned vs the same model trained from
scratch, and vs the universal potentials a user would pick instead, measured in one run.

`lamm transfer` runs, on one labeled file (extended XYZ or anything ASE reads):
1. the store (`prepare_store`): every frame, split train/val/test 80/10/10 by contiguous blocks
   within each group (`--group-key`, e.g. FitSNAP's `config_group`; `lamm.data.splitting`), so
   near-duplicate neighbouring frames never straddle two splits;
2. fine-tuning runs (`plan_runs`), each `lamm finetune` with the same config and budget:
   - `scratch`: the model's architecture from random weights (`scratch_config`: no head to copy);
   - the model (`--model`, a shipped name or a checkpoint): encoder and all, a new head, or a
     pre-training head copied with its references refit (the config's `init_head`, `auto` to
     choose it on validation, or `--init-head`);
   - `<model>+frozen-encoder` (full training split only): the encoder frozen, only the head
     trained: what the pre-trained representation knows before any of it is fine-tuned;
   for every training fraction and seed;
3. the composition fit: the per-element linear energy model on the training split (zero forces);
4. the anchors zero-shot (`lamm.analysis.anchors`): SevenNet-0, CHGNet, energies shifted per
   element on the training split;
5. on request, an anchor fine-tuned with its own trainer on each run's training records
   (`lamm.analysis.anchor_finetune`, method `<anchor> (fine-tuned)`).
Every model is scored once on the test split (`test_metrics.json` of each run). Settings are
chosen on the validation split (`validation.csv` of each run), never on the test split.

`summarize` gives, per (method, fraction): seeds, mean, min and max of each MAE, the ratio
scratch / method of the means, and whether the two seed ranges are apart.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lamm.analysis.verdicts import MIN_N
from lamm.data.record import StructureRecord
from lamm.data.splitting import split_by_groups
from lamm.data.store import StructureStore, StructureStoreWriter

METRICS = ("energy_mae_mev_per_atom", "forces_mae_mev_per_a", "stress_mae_gpa")
SCRATCH = "scratch"
FROZEN = "+frozen-encoder"
COMPOSITION = "composition fit"
FINETUNED_ANCHOR = "(fine-tuned)"  # the method suffix of an anchor fine-tuned by its own trainer


@dataclass(frozen=True)
class TransferRun:
    """One fine-tuning run: from `init` (scratch, a model, or a model with FROZEN) on
    `fraction` of the training split with `seed`."""

    init: str  # the method as the tables name it: scratch, a model's name, name + FROZEN
    fraction: float
    seed: int
    source: str = ""  # the checkpoint `init` names, when it is not the checkpoint itself

    @property
    def label(self) -> str:
        init = self.init.replace("/", "_").replace("+", "_")
        return f"{init}_f{self.fraction:g}_s{self.seed}"

    @property
    def frozen(self) -> bool:
        return self.init.endswith(FROZEN)

    @property
    def checkpoint(self) -> str:
        return self.source or self.init.removesuffix(FROZEN)


def model_name(model: str) -> str:
    """A short name for `model` in tables and run folders: a shipped model's own name; for a
    checkpoint file, its pre-training run and file (`<run>/checkpoints/epoch_5.pt` ->
    `<run>-epoch_5`), so that two runs' checkpoints of one epoch stay apart."""
    path = Path(model)
    if path.suffix != ".pt":
        return model
    if path.parent.name == "checkpoints" and path.parent.parent.name:
        return f"{path.parent.parent.name}-{path.stem}"
    return path.stem


def plan_runs(
    model: str,
    fractions: Sequence[float],
    seeds: Sequence[int],
    *,
    frozen: bool = True,
    name: str | None = None,
) -> list[TransferRun]:
    """scratch and `model` at every fraction and seed; `model`+frozen at the full set. The
    model's rows and folders carry `name` (default `model_name(model)`)."""
    name = name or model_name(model)
    source = "" if name == model else model
    runs = [
        run
        for f in fractions
        for run in (
            *(TransferRun(SCRATCH, float(f), int(s)) for s in seeds),
            *(TransferRun(name, float(f), int(s), source) for s in seeds),
        )
    ]
    if frozen:
        runs += [TransferRun(name + FROZEN, 1.0, int(s), source) for s in seeds]
    return runs


def file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def prepare_store(
    dataset: Path,
    name: str,
    out: Path,
    *,
    group_key: str | None,
    split_seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> StructureStore:
    """`out` as a store of every frame of `dataset` with block-within-group splits (module
    docstring); kept when it exists for the same file, key and seed (a rerun resumes)."""
    from ase.io import read

    digest = file_digest(dataset)
    settings = {"sha256": digest, "group_key": group_key, "split_seed": split_seed}
    if out.exists():
        store = StructureStore(out)
        if store.info.get("transfer") == settings:
            return store
    frames = read(str(dataset), index=":")
    groups = [a.info.get(group_key, "all") if group_key else "all" for a in frames]
    splits = split_by_groups(groups, val_fraction, test_fraction, seed=split_seed, mode="blocks")
    with StructureStoreWriter(
        out,
        subset=name,
        source="user",
        energy_kind="total",
        extra_info={"dataset": str(dataset), "transfer": settings, "split_mode": "blocks"},
    ) as writer:
        for index, (atoms, split) in enumerate(zip(frames, splits, strict=True)):
            source = f"{dataset.name}/{groups[index]}/{index:06d}"
            writer.add(StructureRecord.from_atoms(atoms, source_id=source), str(split))
        writer.close()
    return StructureStore(out)


def finetune_command(
    run: TransferRun,
    *,
    config: Path,
    store: Path,
    out: Path,
    lamm: Sequence[str],
    init_head: str | None = None,
) -> list[str]:
    """The `lamm finetune` command line of one run (a frozen run's config comes beside it);
    `init_head`, a pre-training head to start the new head from, for the model's runs only."""
    head = ["--init-head", init_head] if init_head and run.init != SCRATCH else []
    return [
        *lamm,
        "finetune",
        "--config",
        str(config),
        "--checkpoint",
        run.checkpoint,
        "--store",
        str(store),
        "--train-fraction",
        f"{run.fraction:g}",
        "--seed",
        str(run.seed),
        "--out",
        str(out),
        "--launcher",
        "none",
        *head,
    ]


def frozen_config(config: dict[str, Any]) -> dict[str, Any]:
    """`config` with the encoder frozen (only the new head trains)."""
    finetune = {**config.get("finetune", {}), "freeze_encoder": True}
    return {**config, "finetune": finetune}


# Settings that only mean something for a pre-trained start: a copied pre-training head
# (`init_head`), a learning rate per encoder layer (`layer_decay`).
PRETRAINED_ONLY = ("init_head", "layer_decay")


def scratch_config(config: dict[str, Any]) -> dict[str, Any]:
    """`config` for the scratch runs: the pre-trained-only settings unset (random weights have
    no head to copy and no layers worth keeping), everything else, the budget included, alike."""
    finetune = {**config.get("finetune", {}), **{key: None for key in PRETRAINED_ONLY}}
    return {**config, "finetune": finetune}


def run_kind(run: TransferRun) -> str:
    """Which config a run takes: 'scratch', 'frozen' or 'model'."""
    if run.init == SCRATCH:
        return "scratch"
    return "frozen" if run.frozen else "model"


def run_row(run: TransferRun, run_dir: Path) -> dict[str, Any] | None:
    """The test metrics of a finished run (None when it has not finished)."""
    path = run_dir / "test_metrics.json"
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    row: dict[str, Any] = {
        "method": run.init,
        "fraction": run.fraction,
        "seed": run.seed,
        "run": run.label,
    }
    for key in METRICS:
        value = metrics.get(key)
        row[key] = float(value) if value is not None else float("nan")
    return row


def _finite(values: Iterable[float]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def summarize(rows: Sequence[dict[str, Any]], *, reference: str = SCRATCH) -> list[dict[str, Any]]:
    """Per (method, fraction): seeds, mean/min/max of every metric, and against `reference` at
    the same fraction the ratio of means (reference / method: above 1 is better) and whether the
    seed ranges are apart (every seed of the method better than every seed of the reference, with
    at least MIN_N seeds on each side, the rule of `lamm.analysis.verdicts`: a deterministic
    zero-shot anchor, one value, is never "apart"). A run that diverged (NaN) counts as a seed;
    its metric is reported as not finite and the method is then never apart."""
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["method"], float(row["fraction"])), []).append(row)
    out = []
    for (method, fraction), members in groups.items():
        entry: dict[str, Any] = {"method": method, "fraction": fraction, "seeds": len(members)}
        base = groups.get((reference, fraction), [])
        for key in METRICS:
            values = [float(m.get(key, float("nan"))) for m in members]
            finite = _finite(values)
            if not finite:
                continue
            entry[f"{key}_mean"] = float(np.mean(finite))
            entry[f"{key}_min"] = float(np.min(finite))
            entry[f"{key}_max"] = float(np.max(finite))
            entry[f"{key}_diverged"] = len(values) - len(finite)
            ref = [float(m.get(key, float("nan"))) for m in base]
            if method != reference and ref and len(_finite(ref)) == len(ref) == len(base):
                entry[f"{key}_ratio"] = float(np.mean(ref) / np.mean(finite))
                enough = min(len(values), len(ref)) >= MIN_N
                entry[f"{key}_apart"] = bool(
                    enough and len(finite) == len(values) and max(finite) < min(ref)
                )
        out.append(entry)
    return out


def _cell(entry: dict[str, Any], key: str, digits: int = 1) -> str:
    """'mean (min-max)' of a metric, or the single value, or '-'."""
    mean = entry.get(f"{key}_mean")
    if mean is None:
        return "-"
    low, high = entry[f"{key}_min"], entry[f"{key}_max"]
    text = f"{mean:.{digits}f}"
    if entry["seeds"] > 1:
        text += f" ({low:.{digits}f}-{high:.{digits}f})"
    if entry.get(f"{key}_diverged"):
        text += f", {entry[f'{key}_diverged']} diverged"
    return text


def _versus(entry: dict[str, Any], key: str) -> str:
    ratio = entry.get(f"{key}_ratio")
    if ratio is None:
        return "-"
    return f"{ratio:.2f}x{' apart' if entry.get(f'{key}_apart') else ''}"


def markdown_table(summary: Sequence[dict[str, Any]]) -> str:
    """The summary as a markdown table: per method and training fraction, the test MAEs as mean
    (min-max over seeds) and the ratio scratch / method ('apart': every seed of the method
    better than every seed of scratch)."""
    stress = any("stress_mae_gpa_mean" in entry for entry in summary)
    header = ["method", "train", "seeds", "energy meV/atom", "vs scratch", "forces meV/A",
              "vs scratch"]  # fmt: skip
    if stress:
        header += ["stress GPa", "vs scratch"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    order = sorted(summary, key=lambda e: (-float(e["fraction"]), _method_rank(e["method"])))
    for entry in order:
        cells = [
            entry["method"],
            f"{float(entry['fraction']):.0%}",
            str(entry["seeds"]),
            _cell(entry, "energy_mae_mev_per_atom"),
            _versus(entry, "energy_mae_mev_per_atom"),
            _cell(entry, "forces_mae_mev_per_a"),
            _versus(entry, "forces_mae_mev_per_a"),
        ]
        if stress:
            cells += [_cell(entry, "stress_mae_gpa", 2), _versus(entry, "stress_mae_gpa")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _method_rank(method: str) -> tuple[int, str]:
    if method == SCRATCH:
        return (0, method)
    if method == COMPOSITION:
        return (3, method)
    if method.endswith("(zero-shot)"):
        return (4, method)
    if method.endswith(FINETUNED_ANCHOR):
        return (5, method)
    return (2 if method.endswith(FROZEN) else 1, method)
