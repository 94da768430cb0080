"""One self-contained HTML page with every table and figure of a workflow run.

Figures are embedded (base64 PNG) so the file can be mailed or archived alone; tables are
rendered from the CSVs; the configs are shown verbatim; the MLflow runs are listed with links
into `mlflow ui`. A missing result is shown as missing with its path, never skipped silently.
"""

from __future__ import annotations

import base64
import datetime
import html
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lamm import __version__
from lamm.analysis.findings import Finding, findings


@dataclass(frozen=True)
class Item:
    """A table (CSV) or a figure (PNG) of the report, relative to the results directory."""

    path: str
    caption: str


@dataclass(frozen=True)
class Section:
    title: str
    text: str
    items: tuple[Item, ...]


FINETUNE_TITLE = "Fine-tuning (Table 3, Fig. 9)"
FINETUNE_TEXT = "Fine-tuning on the downstream set from scratch and from every pre-training checkpoint, same budget and seed."


def _finetune_items(suffix: str, name: str | None = None) -> tuple[Item, ...]:
    """Table 3, Fig. 9, zero-shot and sample efficiency of one downstream set; `suffix` is ''
    for the first set and '_<name>' for a further one, `name` prefixes the captions."""
    on = "" if name is None else f"{name}: "
    return (
        Item(f"tables/table3_finetune{suffix}.csv", f"{on}Table 3: best validation errors and speedups to the thresholds."),
        Item(f"figures/fig9_finetune{suffix}.png", f"{on}Fig. 9: learning curves (31-point moving average on training curves)."),
        Item(f"tables/zero_shot{suffix}.csv", f"{on}Zero-shot: every pre-training head on the downstream test set."),
        Item(f"tables/sample_efficiency{suffix}.csv", f"{on}Test error against downstream training-set size."),
        Item(f"figures/sample_efficiency{suffix}.png", f"{on}Sample efficiency, pre-trained against scratch."),
    )


NVE_ITEM = Item("tables/nve_drift.csv", "BFGS relaxation and NVE with the gradient-force fine-tuned model: total-energy drift.")

# The paper's tables and figures, in the paper's order, plus what the platform adds.
SECTIONS: tuple[Section, ...] = (
    Section(
        "Datasets (Table 2, Figs. 2 and 4)",
        "The pre-training subsets and the downstream set: samples before and after temperature "
        "sampling (T = 2), atoms per structure, elements.",
        (
            Item("tables/table2_datasets.csv", "Table 2: the joint pre-training dataset."),
            Item("figures/fig2_elements.png", "Fig. 2: number of subsets containing each element."),
            Item("figures/fig4_natoms.png", "Fig. 4: atoms per structure, kernel density per subset."),
        ),
    ),
    Section(
        "Load balancing (Fig. 6)",
        "Measured DDP training steps with the random, greedy and LaMM samplers, and the "
        "simulation of larger clusters calibrated on them.",
        (
            Item("tables/throughput.csv", "Measured throughput per sampler, dataset and per-rank batch; every sampler is timed on the same structures (whole lamm groups), so `compute_us_per_edge` shows what the batching itself costs."),
            Item("figures/fig6_step_time.png", "Fig. 6: step-time distributions and forward+backward per rank."),
            Item("tables/throughput_scaling.csv", "The balance simulation with the cost model calibrated on the measured steps, at 2 (measured), 16 and 64 ranks."),
            Item("tables/balance_simulation.csv", "Simulated efficiency at 4, 16 and 64 ranks."),
        ),
    ),
    Section(
        "Denoising (Fig. 7)",
        "Training on the unlabeled conformers alone with baseline and relative (LaMM) noise labels.",
        (
            Item("tables/denoising.csv", "Validation error (Angstrom) per step: val_error_a each run against its own "
                 "labels (the paper's metric), val_error_centered_a with the mean displacement removed (like with like)."),
            Item("figures/fig7_denoising.png", "Fig. 7: learning curves of baseline and relative denoising."),
        ),
    ),
    Section(
        "Atom representations (Fig. 8)",
        "UMAP of the pre-trained encoder's invariant atom features.",
        (Item("figures/fig8_umap.png", "Fig. 8: UMAP by subset, element, group, and chosen elements."),),
    ),
    Section(
        FINETUNE_TITLE,
        FINETUNE_TEXT,
        (*_finetune_items(""), NVE_ITEM),
    ),
    Section(
        "Component benchmarks",
        "Store reads, model throughput.",
        (
            Item("tables/batching_throughput.csv", "Stores to Batch objects (structures per second) with 0 and 2 DataLoader workers."),
            Item("tables/data_throughput.csv", "Structure store against pickled torch_geometric Data (`lamm bench data`, not part of the demo DAG)."),
            Item("tables/model_throughput.csv", "Forward+backward throughput and peak memory of the encoders (`lamm bench model`, not part of the demo DAG)."),
        ),
    ),
)



def report_sections(downstream: Sequence[str] = ()) -> tuple[Section, ...]:
    """SECTIONS for these downstream sets (the workflow's data.downstream, in order): the
    fine-tuning section named after the first set, then one section per further set with its
    own Table 3, Fig. 9, zero-shot and sample efficiency (their `_<name>` files). No sets: SECTIONS."""
    if not downstream:
        return SECTIONS
    first, *further = downstream
    out = []
    for section in SECTIONS:
        if section.title != FINETUNE_TITLE:
            out.append(section)
            continue
        out.append(Section(f"Fine-tuning on {first} (Table 3, Fig. 9)", FINETUNE_TEXT.replace("the downstream set", first),
                           (*_finetune_items("", first), NVE_ITEM)))
        out += [Section(f"Fine-tuning on {name} (Table 3, Fig. 9)", FINETUNE_TEXT.replace("the downstream set", name),
                        _finetune_items(f"_{name}", name)) for name in further]
    return tuple(out)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; } th { background: #f2f2f2; }
td:first-child, th:first-child { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption, .caption { font-size: 0.9em; color: #555; margin-bottom: 0.3em; }
.missing, .fails { color: #a00; } .holds { color: #070; } pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
"""


def _table(path: Path, caption: str, max_rows: int) -> str:
    frame = pd.read_csv(path)
    note = f" (first {max_rows} of {len(frame)} rows; full table in {path.name})" if len(frame) > max_rows else ""
    body = frame.head(max_rows).to_html(index=False, float_format=lambda v: f"{v:.4g}", border=0)
    return f'<p class="caption">{html.escape(caption)}{note}</p>{body}'


def _figure(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(path.name)}"><figcaption>{html.escape(caption)}</figcaption></figure>'


def _findings_table(items: Sequence[Finding]) -> str:
    """The headline: each claim of the paper, the numbers measured here, and the verdict."""
    verdicts = {True: ('holds', "supported"), False: ('fails', "not supported"), None: ('missing', "no result")}
    rows = []
    for item in items:
        css, verdict = verdicts[item.holds]
        rows.append(
            f"<tr><td>{html.escape(item.claim)}</td><td style=\"text-align:left\">{html.escape(item.measured)}</td>"
            f"<td class=\"{css}\">{verdict}</td><td>{html.escape(item.source)}</td></tr>"
        )
    header = "<tr><th>claim (paper)</th><th>measured here</th><th>verdict</th><th>from</th></tr>"
    return f"<table>{header}{''.join(rows)}</table>"


def _runs_table(tracking_uri: str | None, ui_url: str) -> str:
    """Every MLflow run of every experiment, with a link into `mlflow ui`."""
    if tracking_uri is None:
        return '<p class="missing">no MLflow store given</p>'
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    rows = []
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id], max_results=5000, order_by=["attributes.start_time ASC"]):
            info, tags = run.info, run.data.tags
            link = f"{ui_url}/#/experiments/{experiment.experiment_id}/runs/{info.run_id}"
            start = datetime.datetime.fromtimestamp(info.start_time / 1000).strftime("%Y-%m-%d %H:%M:%S")
            rows.append(
                f"<tr><td><a href=\"{html.escape(link)}\">{html.escape(info.run_name or info.run_id)}</a></td>"
                f"<td>{html.escape(tags.get('stage', ''))}</td><td>{html.escape(tags.get('snakemake_rule', ''))}</td>"
                f"<td>{html.escape(info.status)}</td><td>{start}</td><td>{html.escape(experiment.name)}</td></tr>"
            )
    if not rows:
        return '<p class="missing">the MLflow store holds no runs</p>'
    header = "<tr><th>run</th><th>stage</th><th>rule</th><th>status</th><th>started</th><th>experiment</th></tr>"
    return f"<p class=\"caption\">Open the links with <code>mlflow ui --backend-store-uri {html.escape(tracking_uri)}</code> running.</p><table>{header}{''.join(rows)}</table>"


def write_report(
    results: str | os.PathLike,
    out: str | os.PathLike,
    *,
    configs: Sequence[str | os.PathLike] = (),
    tracking_uri: str | None = None,
    ui_url: str = "http://127.0.0.1:5000",
    max_rows: int = 60,
    downstream: Sequence[str] = (),
) -> dict[str, list[str]]:
    """Write the HTML report; returns which items were found and which were missing.

    `downstream`: the downstream set names in config order, one fine-tuning section each
    (`report_sections`); empty: the single set's section, unnamed."""
    results, out = Path(results), Path(out)
    found: list[str] = []
    missing: list[str] = []
    parts = [
        f"<!doctype html><html><head><meta charset=\"utf-8\"><title>LaMM report</title><style>{_STYLE}</style></head><body>",
        "<h1>LaMM: pre-training and fine-tuning report</h1>",
        f"<p>Results in <code>{html.escape(str(results))}</code>, written {datetime.datetime.now():%Y-%m-%d %H:%M} by lamm {__version__}.</p>",
        "<h2>Key results</h2>",
        _findings_table(findings(results)),
    ]
    for section in report_sections(downstream):
        parts.append(f"<h2>{html.escape(section.title)}</h2><p>{html.escape(section.text)}</p>")
        for item in section.items:
            path = results / item.path
            if not path.is_file():
                missing.append(item.path)
                parts.append(f'<p class="missing">missing: {html.escape(item.path)} ({html.escape(item.caption)})</p>')
                continue
            found.append(item.path)
            parts.append(_table(path, item.caption, max_rows) if path.suffix == ".csv" else _figure(path, item.caption))
    parts.append("<h2>MLflow runs</h2>")
    parts.append(_runs_table(tracking_uri, ui_url))
    parts.append("<h2>Configs</h2>")
    for config in configs:
        config = Path(config)
        parts.append(f"<p class=\"caption\">{html.escape(str(config))}</p><pre>{html.escape(config.read_text())}</pre>")
    parts.append("</body></html>")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("\n".join(parts))
    os.replace(tmp, out)
    return {"found": found, "missing": missing}
