"""Headline figures in Markdown, generated from committed result tables, never typed.

A results block is the text between two markers in a Markdown file (README.md, a model card):

    <!-- lamm-results:start -->
    <!-- lamm-results:source path=models/lamm-mini/reproduction style=brief -->
    ... generated ...
    <!-- lamm-results:end -->

Its first line declares the source: `path`, a results directory (holding `tables/`, and
`report.html` when there is one) relative to the Markdown file's folder, and `style`: `brief`
(the findings, each claim's size against the paper and verdict: a README) or `full` (also the
spread of each, and the fine-tuning tables over seeds: a model card). Everything is computed from
the CSVs under `path` (`lamm.analysis.findings`). A third style, `transfer`, renders the
`summary.csv` of a `lamm transfer` folder (`path`): the fine-tuned model against scratch and the
anchors on a real DFT set, over seeds. A file may hold several blocks, one per source.
`write_block` (`lamm report --markdown`) regenerates one; `check_file` regenerates each in memory
and names the first line that differs, so a figure edited by hand, or a table changed without
regenerating, fails the check (`pytest -k numbers`). A model card declares its results
directory in its card.json (`"results"`, relative to the model's folder).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

import pandas as pd

from lamm.analysis.findings import findings
from lamm.analysis.verdicts import fmt_value

START = "<!-- lamm-results:start -->"
END = "<!-- lamm-results:end -->"
_BLOCK = re.compile(
    r"<!-- lamm-results:start -->\n(?P<body>.*?)<!-- lamm-results:end -->", re.DOTALL
)
_SOURCE = re.compile(r"<!-- lamm-results:source path=(?P<path>\S+) style=(?P<style>\w+) -->\n")
STYLES = ("brief", "full", "transfer")
TRANSFER_SUMMARY = "summary.csv"  # a `lamm transfer` folder's table, the `transfer` style's source
# figures a results claim is made of: a ratio (1.25x) or a value with an error or throughput unit
FIGURE = re.compile(r"\b\d+(?:\.\d+)?(?:x\b| ?meV/(?:atom|A|Å)| samples/s)")

E, F = "energy_mae_mev_per_atom", "forces_mae_mev_per_a"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _posix(path: str | os.PathLike) -> str:
    return Path(path).as_posix()


def _figure(value: float) -> str:
    """3 significant digits with their trailing zeros (19.0, 117, 0.950), so columns line up."""
    if not math.isfinite(value):
        return fmt_value(value)
    value = float(f"{value:.3g}")  # round first: 9.996 is 10.0, not 10.00
    if abs(value) >= 100:
        return f"{value:.0f}"
    digits = 2 - math.floor(math.log10(abs(value))) if value else 2
    return f"{value:.{max(digits, 0)}f}"


def _span(row: pd.Series, prefix: str) -> str:
    """'20.2 (19.0-21.5)': mean (min-max) over seeds; the mean alone for one seed, '' for none."""
    mean = row.get(f"{prefix}_mean")
    if mean is None or pd.isna(mean):
        return ""
    low, high = row.get(f"{prefix}_min"), row.get(f"{prefix}_max")
    if low is None or pd.isna(low) or math.isclose(low, high):
        return _figure(float(mean))
    return f"{_figure(float(mean))} ({_figure(float(low))}-{_figure(float(high))})"


def _start(checkpoint: str) -> str:
    try:
        float(checkpoint)
    except ValueError:
        return checkpoint
    return f"epoch {checkpoint}"


def findings_table(results: Path, style: str = "full") -> list[str]:
    """The claims, one row each: topic, size against the paper, (full: spread,) verdict."""
    full = style == "full"
    head = "| finding | here vs the paper |" + (" spread |" if full else "") + " verdict |"
    lines = [head, "|---|---|" + ("---|" if full else "") + "---|"]
    for item in findings(results):
        spread = f" {_cell(item.spread)} |" if full else ""
        lines.append(
            f"| {_cell(item.topic or item.claim)} | {_cell(item.size)} |{spread} "
            f"{_cell(item.verdict_text)} |"
        )
    return lines


def table3_lines(path: Path) -> list[str]:
    """Table 3 over seeds from table3_summary.csv: test MAE mean (min-max), steps to the force
    threshold; a budget column when the starts ran at several."""
    table = pd.read_csv(path, dtype={"checkpoint": str})
    budgets = "steps" in table and table["steps"].nunique() > 1
    threshold = fmt_value(float(table["forces_threshold"].iloc[0]))
    head = ["start", *(["steps"] if budgets else []), "seeds", "energy MAE (meV/atom)"]
    head += ["force MAE (meV/A)", f"validation steps to {threshold} meV/A"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, row in table.iterrows():
        reached = row.get("steps_to_forces_threshold_reached")
        steps = _span(row, "steps_to_forces_threshold")
        if reached is not None and not pd.isna(reached) and int(reached) < int(row["seeds"]):
            never = int(row["seeds"]) - int(reached)
            steps = f"{steps} ({never} never)" if steps else f"never ({never} of {never})"
        cells = [_start(row["checkpoint"]), *([str(int(row["steps"]))] if budgets else [])]
        cells += [str(int(row["seeds"])), _span(row, f"test_{E}"), _span(row, f"test_{F}"), steps]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def efficiency_lines(path: Path) -> list[str]:
    """Sample efficiency over seeds from sample_efficiency_summary.csv."""
    table = pd.read_csv(path, dtype={"checkpoint": str})
    lines = [
        "| start | training structures | seeds | energy MAE (meV/atom) | force MAE (meV/A) |",
        "|---|---|---|---|---|",
    ]
    for _, row in table.iterrows():
        cells = [
            _start(row["checkpoint"]),
            str(int(row["train_structures"])),
            str(int(row["seeds"])),
        ]
        cells += [_span(row, f"test_{E}"), _span(row, f"test_{F}")]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def missing_source(results: Path, style: str) -> str | None:
    """What a block of `style` needs from `results` and does not find there (None: all there)."""
    needed = results / TRANSFER_SUMMARY if style == "transfer" else results / "tables"
    return None if needed.exists() else f"no {'file' if style == 'transfer' else 'folder'} {needed}"


def transfer_markdown(results: Path, source: str) -> str:
    """The body of a `transfer` block: a `lamm transfer` folder's summary table (test MAE per
    method and training fraction, mean (min-max) over seeds, the ratio to scratch)."""
    from lamm.analysis.transfer import markdown_table

    table = pd.read_csv(results / TRANSFER_SUMMARY)
    entries = [
        {k: v for k, v in row.items() if not (isinstance(v, float) and math.isnan(v))}
        for row in table.to_dict("records")
    ]
    lines = [
        f"Generated by `lamm report --markdown` from [`{source}/{TRANSFER_SUMMARY}`]"
        f"({source}/{TRANSFER_SUMMARY}) (written by `lamm transfer`); do not edit by hand "
        "(`pytest -k numbers` compares this block with it). Test MAE, mean (min-max) over seeds; "
        "vs scratch: scratch's mean over the method's (above 1: better); apart: every seed "
        "better than every seed of scratch, at least 3 per side.",
        "",
        markdown_table(entries).rstrip("\n"),
    ]
    return "\n".join(lines) + "\n"


def results_markdown(results: Path, source: str, style: str = "full") -> str:
    """The block's body for results directory `results`, linked as `source` (relative to the
    Markdown file)."""
    if style not in STYLES:
        raise ValueError(f"unknown results block style {style!r}: one of {STYLES}")
    if style == "transfer":
        return transfer_markdown(results, source)
    tables = results / "tables"
    report = (results / "report.html").is_file()
    lines = [
        f"Generated by `lamm report --markdown` from the committed tables in [`{source}/tables/`]"
        f"({source}/tables/); do not edit by hand (`pytest -k numbers` compares this block with "
        "them)."
        + (f" Full report: [`{source}/report.html`]({source}/report.html)." if report else ""),
        "",
        "Supported: the effect points the paper's way and the ranges over seeds or repeats do "
        "not overlap, with at least 3 per side; not shown: overlapping ranges, or fewer than 3 "
        "(n too small).",
        "",
        *findings_table(results, style),
    ]
    if style == "full" and (tables / "table3_summary.csv").is_file():
        lines += [
            "",
            "Fine-tuning (Table 3), test MAE over seeds, mean (min-max), "
            f"[`table3_summary.csv`]({source}/tables/table3_summary.csv):",
            "",
            *table3_lines(tables / "table3_summary.csv"),
        ]
    if style == "full" and (tables / "sample_efficiency_summary.csv").is_file():
        lines += [
            "",
            "Sample efficiency, test MAE over seeds, mean (min-max), "
            f"[`sample_efficiency_summary.csv`]({source}/tables/sample_efficiency_summary.csv):",
            "",
            *efficiency_lines(tables / "sample_efficiency_summary.csv"),
        ]
    return "\n".join(lines) + "\n"


def block(markdown_file: Path, results: Path, style: str = "full") -> str:
    """The whole block, markers and source line included, for `markdown_file`."""
    source = _posix(os.path.relpath(results, markdown_file.parent))
    return (
        f"{START}\n<!-- lamm-results:source path={source} style={style} -->\n"
        f"{results_markdown(results, source, style)}{END}"
    )


def _declared(match: re.Match) -> tuple[str, str] | None:
    """(path, style) a block declares in its first line, or None."""
    source = _SOURCE.match(match["body"])
    return None if source is None else (source["path"], source["style"])


def card_results(folder: Path) -> Path:
    """The results directory a model card declares (card.json `"results"`, relative to its
    folder)."""
    card = folder / "card.json"
    declared = json.loads(card.read_text()).get("results") if card.is_file() else None
    if not declared:
        raise ValueError(
            f'{card}: no "results" key naming the results directory (relative to {folder}) '
            "whose committed tables the card quotes"
        )
    results = folder / declared
    if not (results / "tables").is_dir():
        raise FileNotFoundError(f"{card}: results {declared!r}: no folder {results / 'tables'}")
    return results


def write_block(markdown_file: Path, results: Path, style: str | None = None) -> None:
    """Replace the file's results block of `results` with a regenerated one (temp file, then
    rename): the block that declares `results` as its source, else the one block that declares
    none (new markers), else the file's only block. `style` None keeps the style the block
    declares (else full)."""
    text = markdown_file.read_text()
    blocks = list(_BLOCK.finditer(text))
    source = _posix(os.path.relpath(results, markdown_file.parent))
    mine = [b for b in blocks if (_declared(b) or ("",))[0] == source]
    fresh = [b for b in blocks if _declared(b) is None]
    candidates = next((c for c in (mine, fresh, blocks) if len(c) == 1), None)
    if candidates is None:
        raise ValueError(
            f"{markdown_file}: {len(blocks)} results blocks between '{START}' and '{END}', "
            f"{len(mine)} from {source}, {len(fresh)} without a source; put two empty markers "
            "where its results go"
        )
    target = candidates[0]
    declared = _declared(target)
    style = style or (declared[1] if declared else "full")
    new = text[: target.start()] + block(markdown_file, results, style) + text[target.end() :]
    tmp = markdown_file.with_name(f".{markdown_file.name}.tmp-{os.getpid()}")
    tmp.write_text(new)
    os.replace(tmp, markdown_file)


def check_file(markdown_file: Path, *, require_block: bool = False) -> list[str]:
    """What is wrong with the file's results blocks (empty: nothing): a block that does not
    declare its source, or whose text differs from the one its tables generate now."""
    text = markdown_file.read_text()
    problems = []
    blocks = list(_BLOCK.finditer(text))
    if require_block and not blocks:
        problems.append(f"{markdown_file}: no results block ('{START}' ... '{END}')")
    for match in blocks:
        declared = _declared(match)
        if declared is None or declared[1] not in STYLES:
            problems.append(
                f"{markdown_file}: a results block that does not declare its source (typed by "
                f"hand?); generate it: `lamm report --markdown --results <dir> --into "
                f"{markdown_file}`"
            )
            continue
        source, style = declared
        results = markdown_file.parent / source
        missing = missing_source(results, style)
        if missing:
            problems.append(f"{markdown_file}: source {source}: {missing}")
            continue
        expected = block(markdown_file, results, style)
        tables = f"{source}/{TRANSFER_SUMMARY}" if style == "transfer" else f"{source}/tables"
        problems += _differences(markdown_file, match[0], expected, source, tables)
    return problems


def _differences(
    markdown_file: Path, found: str, expected: str, source: str, tables: str
) -> list[str]:
    if found == expected:
        return []
    # the first line that differs; past the shorter one's end, the extra line against nothing
    pairs = list(zip(found.splitlines(), expected.splitlines(), strict=False))
    k = next((i for i, (a, b) in enumerate(pairs) if a != b), len(pairs))
    have, want = pairs[k] if k < len(pairs) else ("", "")
    return [
        f"{markdown_file}: the results block differs from what {tables} generates, at its "
        f"line {k + 1}:\n  in the file: {have}\n  generated:   {want}\nregenerate it with "
        f"`lamm report --markdown --results {markdown_file.parent / source} --into {markdown_file}`"
    ]


def figures_outside(markdown_file: Path) -> list[str]:
    """Result figures (ratios like 1.25x, values in meV/atom, meV/A, samples/s) quoted outside
    the file's results blocks: a card that declares its results quotes them only inside."""
    # a block becomes as many empty lines, so the line numbers stay the file's
    text = _BLOCK.sub(lambda m: "\n" * m[0].count("\n"), markdown_file.read_text())
    return [
        f"{markdown_file} line {number}: {match[0]!r}"
        for number, line in enumerate(text.splitlines(), start=1)
        for match in FIGURE.finditer(line)
    ]


def broken_report_links(page: Path) -> list[str]:
    """Relative links of an HTML report that do not resolve from where the page is (a page
    written outside its results directory and copied links into the machine that built it)."""
    hrefs = re.findall(r'href="([^"#]+)', page.read_text())
    return [
        f"{page}: link {href} does not resolve"
        for href in hrefs
        if not re.match(r"[a-z][a-z0-9+.-]*:", href) and not (page.parent / href).exists()
    ]


def check_repository(root: Path) -> list[str]:
    """README.md (which must hold a block), docs/results.md and every model card under models/:
    their blocks match their tables; a card whose card.json declares results holds a block, no
    block of other results (transfer tables on real DFT are welcome), quotes no result figure
    outside its blocks, and its results' report.html links only to files that are there."""
    problems = check_file(root / "README.md", require_block=True)
    results_page = root / "docs" / "results.md"  # the notes behind the README's results
    problems += check_file(results_page) if results_page.is_file() else []
    for card in sorted((root / "models").glob("*/README.md")):
        meta = card.parent / "card.json"
        declared = json.loads(meta.read_text()).get("results") if meta.is_file() else None
        problems += check_file(card, require_block=bool(declared))
        if declared:
            # its own results, plus transfer tables on real DFT (`lamm transfer` folders)
            blocks = [_declared(m) or ("?", "?") for m in _BLOCK.finditer(card.read_text())]
            sources = {source for source, style in blocks if style != "transfer"}
            if sources - {_posix(declared)}:
                problems.append(f"{card}: blocks from {sorted(sources)}, card.json says {declared}")
            problems += figures_outside(card)
            report = card.parent / declared / "report.html"
            problems += broken_report_links(report) if report.is_file() else []
    return problems
