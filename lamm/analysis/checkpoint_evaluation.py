"""`lamm evaluate`'s outputs for one checkpoint head on a store: metrics.json (every split),
metrics_per_element.csv, parity.png and the predictions. The predictions and the metric formulas
are `lamm.analysis.evaluation`'s; the per-element rows and the parity plot have modules of their
own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lamm.analysis.element_metrics import element_rows
from lamm.analysis.evaluation import (
    check_head,
    compute_metrics,
    evaluated_splits,
    main_split,
    predict_split,
    unreferenced_elements,
    write_json,
    write_predictions,
)
from lamm.analysis.parity import parity_plot
from lamm.data.store import StructureStore
from lamm.models.potential import Potential
from lamm.tables import write_csv


def evaluate_checkpoint(
    potential: Potential,
    store: StructureStore,
    out_dir: str | os.PathLike,
    *,
    split: str = "test",
    head: str | None = None,
    batch_size: int = 16,
    title: str = "",
    info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Predict `split` (or every non-empty split: `all`), then write into `out_dir`: metrics.json
    (the main split's metrics at the top, every split's under `per_split`), metrics_per_element.csv,
    parity.png, predictions.npz (the main split) and predictions_<split>.npz (the others);
    returns the metrics (with `info`, e.g. where the store came from, added)."""
    head = check_head(potential, head)
    splits = evaluated_splits(store, split)
    main = main_split(splits)
    predictions = {
        name: predict_split(potential, store, name, [head], batch_size=batch_size)[head]
        for name in splits
    }
    per_split = {name: {**compute_metrics(p), "split": name} for name, p in predictions.items()}
    out_dir = Path(out_dir)
    metrics = {
        **per_split[main],
        "head": head,
        "split": main,
        "evaluated_splits": splits,
        "store": str(store.path),
        "energy_kind": store.energy_kind,
        "force_mode": potential.force_mode,
        **(info or {}),
        "per_split": per_split,
    }
    unreferenced = unreferenced_elements(potential, head, store)
    if unreferenced:
        metrics["unreferenced_elements"] = unreferenced
    for name, p in predictions.items():
        write_predictions(
            p, out_dir / ("predictions.npz" if name == main else f"predictions_{name}.npz")
        )
    write_csv(
        [row for name, p in predictions.items() for row in element_rows(p, name)],
        out_dir / "metrics_per_element.csv",
    )
    parity_plot(
        predictions,
        out_dir / "parity.png",
        title=title or f"{store.subset} {'/'.join(splits)}, head {head}",
    )
    write_json(metrics, out_dir / "metrics.json")
    return metrics
