"""One self-contained HTML page with every table and figure of a workflow run.

It opens with the paper's claims checked against the run (`lamm.analysis.findings`: size against
the paper, spread, verdict). Each section then shows its figure, a table of the few columns that
answer its question with units in the headers (`lamm.analysis.report_views`), and a relative
link to the full CSV. Figures are embedded (base64 PNG) so the page reads alone. The page lives
inside its results directory and links every file relative to itself, so the links keep working
wherever the directory is copied or committed (a page written elsewhere would link back into the
machine that built it). The configs are shown verbatim; the MLflow runs are listed with links
into `mlflow ui`. A missing result is shown as missing with its path, never skipped.
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
from lamm.analysis.report_views import render_table


@dataclass(frozen=True)
class Item:
    """A table (CSV) or a figure (PNG) of the report, relative to the results directory;
    `links`: further full CSVs behind a table (e.g. the per-seed rows behind a summary)."""

    path: str
    caption: str
    links: tuple[str, ...] = ()


@dataclass(frozen=True)
class Section:
    title: str
    text: str
    items: tuple[Item, ...]


FINETUNE_TITLE = "Fine-tuning (Table 3, Fig. 9)"
FINETUNE_TEXT = (
    "Fine-tuning on the downstream set from scratch and from every pre-training "
    "checkpoint, same budget, "
    "once per seed of finetune.seeds."
)


def _finetune_items(suffix: str, name: str | None = None) -> tuple[Item, ...]:
    """Fig. 9, Table 3 over seeds, zero-shot and sample efficiency of one downstream set; `suffix`
    is '' for the first set and '_<name>' for a further one, `name` prefixes the captions."""
    on = "" if name is None else f"{name}: "
    return (
        Item(
            f"figures/fig9_finetune{suffix}.png",
            f"{on}Fig. 9: validation learning curves per starting checkpoint (top) and "
            "training loss terms, 31-point moving average (bottom).",
        ),
        Item(
            f"tables/table3_summary{suffix}.csv",
            f"{on}Table 3 over seeds: test errors of the final models (mean ± std), "
            "their ratio to scratch (> 1: lower than scratch), and validation steps to the "
            "thresholds.",
            links=(f"tables/table3_finetune{suffix}.csv",),
        ),
        Item(
            f"tables/zero_shot{suffix}.csv",
            f"{on}Zero-shot: every pre-training head on the downstream test set, before any "
            "fine-tuning.",
        ),
        Item(
            f"figures/sample_efficiency{suffix}.png",
            f"{on}Sample efficiency: test error against training structures, pre-trained "
            "against scratch.",
        ),
        Item(
            f"tables/sample_efficiency_summary{suffix}.csv",
            f"{on}Test errors per train fraction over seeds.",
            links=(f"tables/sample_efficiency{suffix}.csv",),
        ),
    )


NVE_ITEM = Item(
    "tables/nve_drift.csv",
    "BFGS relaxation and NVE with the gradient-force fine-tuned model: total-energy drift.",
)

# The paper's tables and figures, in the paper's order, plus what the platform adds.
SECTIONS: tuple[Section, ...] = (
    Section(
        "Datasets (Table 2, Figs. 2 and 4)",
        "The pre-training subsets and the downstream set: samples before and after temperature "
        "sampling (T = 2), atoms per structure, elements.",
        (
            Item("figures/fig2_elements.png", "Fig. 2: number of subsets containing each element."),
            Item(
                "figures/fig4_natoms.png", "Fig. 4: atoms per structure, kernel density per subset."
            ),
            Item("tables/table2_datasets.csv", "Table 2: the joint pre-training dataset."),
        ),
    ),
    Section(
        "Load balancing (Fig. 6)",
        "Measured DDP training steps with the random, greedy and LaMM samplers, and the "
        "simulation of larger clusters calibrated on them.",
        (
            Item(
                "figures/fig6_step_time.png",
                "Fig. 6: step-time distributions and forward+backward per rank.",
            ),
            Item(
                "tables/throughput.csv",
                "Measured throughput per sampler, dataset and per-rank batch; every sampler is "
                "timed on the "
                "same structures (whole lamm groups), the cases' order rotated per repeat. The "
                "capped lamm row runs a larger "
                "batch under random's memory per rank; its speedup is against random at the "
                "reference batch (the same memory), "
                "and the full CSV's speedup_vs_random_same_batch against random at its own batch "
                "when that ran (the balance "
                "alone). The full CSV has step-time statistics and compute per edge.",
            ),
            Item(
                "tables/throughput_scaling.csv",
                "The balance simulation with the cost model calibrated on the measured "
                "steps, at 2 (measured), 16 and 64 ranks.",
            ),
            Item("tables/balance_simulation.csv", "Simulated efficiency at 4, 16 and 64 ranks."),
        ),
    ),
    Section(
        "Denoising (Fig. 7)",
        "Training on the unlabeled conformers alone with baseline and relative (LaMM) "
        "noise labels.",
        (
            Item(
                "figures/fig7_denoising.png",
                "Fig. 7: learning curves of baseline and relative denoising.",
            ),
            Item(
                "tables/denoising.csv",
                "The last validation point of each run: error against its own labels (the paper's "
                "metric) and with the mean displacement removed (like with like). The full "
                "CSV holds every step.",
            ),
        ),
    ),
    Section(
        "Atom representations (Fig. 8)",
        "UMAP of the pre-trained encoder's invariant atom features.",
        (
            Item(
                "figures/fig8_umap.png",
                "Fig. 8: UMAP by subset, element, group, and chosen elements.",
            ),
        ),
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
            Item(
                "tables/batching_throughput.csv",
                "Stores to Batch objects (structures per second) with 0 and 2 DataLoader workers.",
            ),
            Item(
                "tables/data_throughput.csv",
                "Structure store against pickled torch_geometric Data, both decoded to the same "
                "Data object and each "
                "to its own (`lamm bench data`, not part of the demo DAG).",
            ),
            Item(
                "tables/model_throughput.csv",
                "Forward+backward throughput and peak memory of the encoders (`lamm bench "
                "model`, not part of the demo DAG).",
            ),
        ),
    ),
)


def report_sections(downstream: Sequence[str] = ()) -> tuple[Section, ...]:
    """SECTIONS for these downstream sets (the workflow's data.downstream, in order): the
    fine-tuning section named after the first set, then one section per further set with its
    own Table 3, Fig. 9, zero-shot and sample efficiency (their `_<name>` files). No sets:
    SECTIONS."""
    if not downstream:
        return SECTIONS
    first, *further = downstream
    out = []
    for section in SECTIONS:
        if section.title != FINETUNE_TITLE:
            out.append(section)
            continue
        out.append(
            Section(
                f"Fine-tuning on {first} (Table 3, Fig. 9)",
                FINETUNE_TEXT.replace("the downstream set", first),
                (*_finetune_items("", first), NVE_ITEM),
            )
        )
        out += [
            Section(
                f"Fine-tuning on {name} (Table 3, Fig. 9)",
                FINETUNE_TEXT.replace("the downstream set", name),
                _finetune_items(f"_{name}", name),
            )
            for name in further
        ]
    return tuple(out)


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 1.5em auto; padding: 0 1em;
  color: #222; line-height: 1.4; }
h1 { border-bottom: 2px solid #444; font-size: 1.6em; }
h2 { margin-top: 1.8em; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.3em 0 0.4em; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; vertical-align: top; }
th { background: #f2f2f2; font-weight: 600; }
td:first-child, th:first-child { text-align: left; white-space: nowrap; }
table.claims td, table.claims th { text-align: left; white-space: normal; }
table.claims td.verdict { white-space: nowrap; font-weight: 600; }
figure { margin: 1em 0 0.5em; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption, .caption { font-size: 0.9em; color: #555; margin: 0.2em 0; }
.full { font-size: 0.85em; margin: 0 0 1.2em; }
.missing { color: #a00; } .v-supported { color: #070; } .v-contradicted { color: #a00; }
.v-not-shown { color: #a60; } .v-not-run, .v-not-testable-here { color: #777; }
details summary { cursor: pointer; color: #555; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
"""

VERDICT_LEGEND = (
    "supported: the effect points the paper's way and lies outside the spread (the ranges over "
    "seeds or "
    "repeats do not overlap), with at least 3 per side; not shown: inside the spread, fewer than "
    "3 per side "
    "(n too small), or a diverged run that breaks the rule when counted as a failure; "
    "contradicted: the other "
    "way, outside the spread, 3 per side; not run: the result is missing; not testable here: "
    "needs hardware "
    "this run did not have."
)


def _shown(path: str | os.PathLike) -> str:
    """A path as the page shows it: relative to the working directory when under it, so the page
    names no directory of the machine that built it."""
    path = Path(path)
    if path.is_absolute():
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            return str(path)
    return str(path)


def _shown_uri(uri: str) -> str:
    """A sqlite tracking URI with its file relative to the working directory when under it."""
    prefix = "sqlite:///"
    return prefix + _shown(uri.removeprefix(prefix)) if uri.startswith(prefix) else uri


def _check_inside(results: Path, out: Path) -> None:
    """The page must sit inside its results directory: its links are relative to it."""
    try:
        out.resolve().parent.relative_to(results.resolve())
    except ValueError:
        raise ValueError(
            f"report {out}: write it inside the results directory {results} (e.g. "
            f"{results / 'report.html'}); its links to the tables are relative to the page, so a "
            "page outside would point into this machine's directories once copied"
        ) from None


def _link(target: Path, page: Path) -> str:
    """A relative link from the page to a result file, so the page and its results move together."""
    href = os.path.relpath(target, page.parent)
    return f'<a href="{html.escape(href)}">{html.escape(href)}</a>'


def _table(path: Path, item: Item, page: Path, max_rows: int) -> str:
    """The columns that answer the section's question, then the link(s) to the full CSV(s)."""
    frame = pd.read_csv(path, dtype={"checkpoint": str})
    headers, rows = render_table(frame, path.stem)
    note = f" (first {max_rows} of {len(rows)} rows)" if len(rows) > max_rows else ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>"
        for row in rows[:max_rows]
    )
    links = []
    for target in (path, *(path.parent.parent / extra for extra in item.links)):
        if target.is_file():
            full = frame if target == path else pd.read_csv(target)
            links.append(f"{_link(target, page)} ({len(full.columns)} columns, {len(full)} rows)")
    caption = item.caption + _thresholds(frame)
    return (
        f'<p class="caption">{html.escape(caption)}{note}</p><table><tr>{head}</tr>{body}</table>'
        f'<p class="full">Full table: {"; ".join(links)}</p>'
    )


def _thresholds(frame: pd.DataFrame) -> str:
    """Table 3's validation thresholds, which its steps columns count to."""
    if not {"energy_threshold", "forces_threshold"} <= set(frame.columns) or frame.empty:
        return ""
    energy, forces = frame["energy_threshold"].iloc[0], frame["forces_threshold"].iloc[0]
    return f" Thresholds: {energy:g} meV/atom, {forces:g} meV/Å."


def _figure(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" '
        f'alt="{html.escape(path.name)}"><figcaption>{html.escape(caption)}</figcaption></figure>'
    )


def _findings_table(items: Sequence[Finding], tables: Path, page: Path) -> str:
    """The headline: each claim of the paper, its size here against the paper's, the spread, the
    verdict, and the numbers behind it (folded, so the table fits the first screen)."""
    rows = []
    for item in items:
        css = "v-" + item.verdict.replace(" ", "-")
        source = tables / item.source
        where = _link(source, page) if source.is_file() else html.escape(item.source)
        rows.append(
            f"<tr><td>{html.escape(item.claim)}</td><td>{html.escape(item.size)}</td><td>{html.escape(item.spread)}</td>"
            f'<td class="verdict {css}">{html.escape(item.verdict_text)}</td>'
            f"<td><details><summary>numbers</summary>{html.escape(item.measured)}</details></td><td>{where}</td></tr>"
        )
    header = (
        "<tr><th>claim (paper)</th><th>here vs the "
        "paper</th><th>spread</th><th>verdict</th><th>measured</th><th>from</th></tr>"
    )
    return (
        f'<table class="claims">{header}{"".join(rows)}</table><p '
        f'class="caption">{html.escape(VERDICT_LEGEND)}</p>'
    )


def _runs_table(tracking_uri: str | None, ui_url: str) -> str:
    """Every MLflow run of every experiment, with a link into `mlflow ui`."""
    if tracking_uri is None:
        return '<p class="missing">no MLflow store given</p>'
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    rows = []
    for experiment in client.search_experiments():
        for run in client.search_runs(
            [experiment.experiment_id], max_results=5000, order_by=["attributes.start_time ASC"]
        ):
            info, tags = run.info, run.data.tags
            link = f"{ui_url}/#/experiments/{experiment.experiment_id}/runs/{info.run_id}"
            start = datetime.datetime.fromtimestamp(info.start_time / 1000).strftime(
                "%Y-%m-%d %H:%M:%S"
            )
            rows.append(
                "<tr><td><a "
                f'href="{html.escape(link)}">{html.escape(info.run_name or info.run_id)}</a></td>'
                f"<td>{html.escape(tags.get('stage', ''))}</td>"
                f"<td>{html.escape(tags.get('snakemake_rule', ''))}</td>"
                f"<td>{html.escape(info.status)}</td><td>{start}</td>"
                f"<td>{html.escape(experiment.name)}</td></tr>"
            )
    if not rows:
        return '<p class="missing">the MLflow store holds no runs</p>'
    names = ("run", "stage", "rule", "status", "started", "experiment")
    header = "<tr>" + "".join(f"<th>{name}</th>" for name in names) + "</tr>"
    return (
        '<p class="caption">Open the links with <code>mlflow ui --backend-store-uri '
        f"{html.escape(_shown_uri(tracking_uri))}</code> running.</p>"
        f"<table>{header}{''.join(rows)}</table>"
    )


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
    _check_inside(results, out)
    found: list[str] = []
    missing: list[str] = []
    parts = [
        '<!doctype html><html><head><meta charset="utf-8"><title>LaMM '
        f"report</title><style>{_STYLE}</style></head><body>",
        "<h1>LaMM: pre-training and fine-tuning report</h1>",
        f"<p>Results in <code>{html.escape(_shown(results))}</code>, written "
        f"{datetime.datetime.now():%Y-%m-%d %H:%M} by lamm {__version__}.</p>",
        "<h2>Key results: the paper's claims, checked</h2>",
        _findings_table(
            findings(results, downstream[0] if downstream else None), results / "tables", out
        ),
    ]
    for section in report_sections(downstream):
        parts.append(f"<h2>{html.escape(section.title)}</h2><p>{html.escape(section.text)}</p>")
        for item in section.items:
            path = results / item.path
            if not path.is_file():
                missing.append(item.path)
                parts.append(
                    f'<p class="missing">missing: {html.escape(item.path)} '
                    f"({html.escape(item.caption)})</p>"
                )
                continue
            found.append(item.path)
            parts.append(
                _table(path, item, out, max_rows)
                if path.suffix == ".csv"
                else _figure(path, item.caption)
            )
    parts.append("<h2>MLflow runs</h2>")
    parts.append(_runs_table(tracking_uri, ui_url))
    parts.append("<h2>Configs</h2>")
    for config in configs:
        config = Path(config)
        parts.append(
            f'<p class="caption">{html.escape(_shown(config))}</p>'
            f"<pre>{html.escape(config.read_text())}</pre>"
        )
    parts.append("</body></html>")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text("\n".join(parts))
    os.replace(tmp, out)
    return {"found": found, "missing": missing}
