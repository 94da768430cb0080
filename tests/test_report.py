"""The HTML report: tables rendered, figures embedded, missing results named, runs linked."""

import base64
import json
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from lamm.analysis.report import SECTIONS, write_report  # noqa: E402
from lamm.cli import main  # noqa: E402
from lamm.tracking import RunTracker, tracking_uri  # noqa: E402


def make_results(root):
    (root / "tables").mkdir(parents=True)
    (root / "figures").mkdir()
    pd.DataFrame(
        {"subset": ["oc20_s2ef", "qm7x"], "samples": [450, 134], "avg_atoms": [66.25, 16.0]}
    ).to_csv(root / "tables" / "table2_datasets.csv", index=False)
    figure, axis = plt.subplots(figsize=(2, 2))
    axis.plot([0, 1], [1, 0])
    figure.savefig(root / "figures" / "fig2_elements.png")
    plt.close(figure)


def test_report_embeds_what_exists_and_names_what_is_missing(tmp_path):
    results = tmp_path / "results"
    make_results(results)
    config = tmp_path / "config.yaml"
    config.write_text("data:\n  scale: <small>\n")
    with RunTracker("data", "data-stats", tags={"snakemake_rule": "data_stats"}) as run:
        pass
    summary = write_report(
        results, results / "report.html", configs=[config], tracking_uri=tracking_uri()
    )
    page = (results / "report.html").read_text()
    assert summary["found"] == [
        "figures/fig2_elements.png",
        "tables/table2_datasets.csv",
    ]  # the figure, then its table
    every_item = [item.path for section in SECTIONS for item in section.items]
    assert sorted(summary["missing"]) == sorted(set(every_item) - set(summary["found"]))
    assert (
        "<td>oc20_s2ef</td>" in page
        and "<td>66.2</td>" in page
        and "<th>atoms per structure (mean)</th>" in page
    )
    assert (
        'Full table: <a href="tables/table2_datasets.csv">tables/table2_datasets.csv</a> '
        "(3 columns, 2 rows)" in page
    )
    png = base64.b64encode((results / "figures" / "fig2_elements.png").read_bytes()).decode()
    assert f"data:image/png;base64,{png}" in page
    assert "missing: tables/table3_summary.csv" in page
    assert f"/runs/{run.run_id}" in page and "data_stats" in page
    assert "scale: &lt;small&gt;" in page  # configs are escaped, not interpreted


def test_report_command(tmp_path, capsys):
    results = tmp_path / "results"
    make_results(results)
    assert main(["report", "--results", str(results)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["report"] == str(results / "report.html")
    assert (results / "report.html").read_text().startswith("<!doctype html>")


def test_report_shows_one_fine_tuning_section_per_downstream_set(tmp_path):
    results = tmp_path / "results"
    make_results(results)
    pd.DataFrame(
        {
            "checkpoint": ["scratch", "2"],
            "seeds": [1, 1],
            "test_energy_mae_mev_per_atom_mean": [857.0, 648.0],
        }
    ).to_csv(results / "tables" / "table3_summary_my_set.csv", index=False)
    assert main(["report", "--results", str(results), "--downstream", "hme21", "my_set"]) == 0
    page = (results / "report.html").read_text()
    assert "<h2>Fine-tuning on hme21 (Table 3, Fig. 9)</h2>" in page
    assert "<h2>Fine-tuning on my_set (Table 3, Fig. 9)</h2>" in page
    assert page.index("Fine-tuning on hme21") < page.index("Fine-tuning on my_set")
    assert "my_set: Table 3 over seeds" in page and "<td>epoch 2</td><td>1</td><td>648</td>" in page
    assert (
        "missing: tables/table3_summary.csv (hme21: Table 3" in page
    )  # the first set keeps its paths
    for name in [
        "zero_shot_my_set.csv",
        "sample_efficiency_summary_my_set.csv",
        "sample_efficiency_my_set.png",
        "fig9_finetune_my_set.png",
    ]:
        assert f"missing: {'figures' if name.endswith('png') else 'tables'}/{name}" in page
    assert page.count("tables/nve_drift.csv") == 1  # dynamics: the first set only


def test_report_tables_show_the_columns_that_answer_the_question_with_units_and_link_the_csv(
    tmp_path,
):
    from tests.helpers.finetune_results import throughput_table

    results = tmp_path / "results"
    make_results(results)
    throughput_table(results / "tables" / "throughput.csv")
    pd.DataFrame(
        {
            "checkpoint": ["scratch", "2"],
            "seeds": [3, 3],
            "energy_threshold": [1000.0] * 2,
            "forces_threshold": [750.0] * 2,
            "test_energy_mae_mev_per_atom_mean": [856.0, 626.0],
            "test_energy_mae_mev_per_atom_std": [25.0, 15.0],
            "test_energy_mae_mev_per_atom_ratio_vs_scratch": [1.0, 1.3674],
        }
    ).to_csv(results / "tables" / "table3_summary.csv", index=False)
    out = results / "pages" / "report.html"  # the links are relative to the page
    write_report(results, out)
    page = out.read_text()
    section = page[page.index("<h2>Load balancing") : page.index("<h2>Denoising")]
    header = re.search(r"<table><tr>(.*?)</tr>", section)[1]
    assert re.findall(r"<th>(.*?)</th>", header) == [
        "dataset",
        "sampler",
        "per-rank batch B&#x27;",
        "memory cap (atoms/rank)",
        "throughput (samples/s)",
        "samples/s over repeats (min–max)",
        "balance efficiency (mean / max rank compute)",
        "speedup vs random (samples/s ratio)",
    ]
    assert (
        "<td>joint</td><td>lamm</td><td>8</td><td>1200</td><td>52</td><td>50–54</td><td>0.93</td><td>1.30x</td>"
        in section
    )
    assert (
        '<a href="../tables/throughput.csv">../tables/throughput.csv</a> (18 columns, 14 rows)'
        in section
    )
    assert "<td>epoch 2</td><td>3</td><td>626 ± 15</td>" in page and "<td>1.37x</td>" in page
    assert "Thresholds: 1000 meV/atom, 750 meV/Å." in page
    # the claims come first, each with its size against the paper, spread and verdict
    claims = page[page.index("Key results") : page.index("<h2>Datasets")]
    assert "<th>here vs the paper</th><th>spread</th><th>verdict</th>" in claims
    assert "vs the paper&#x27;s up to 1.80x" in claims and "3 repeats per case" in claims


def test_report_links_work_from_a_copy_of_the_results_and_refuse_a_page_outside(
    tmp_path, monkeypatch
):
    import shutil

    import pytest

    from tests.helpers.finetune_results import throughput_table

    results = tmp_path / "results"
    make_results(results)
    throughput_table(results / "tables" / "throughput.csv")
    config = results / "config.yaml"
    config.write_text("seed: 0\n")
    monkeypatch.chdir(tmp_path)
    write_report(results, results / "report.html", configs=[tmp_path / "results" / "config.yaml"])
    copy = tmp_path / "committed" / "reproduction"
    shutil.copytree(results, copy)  # as a reproduction is committed under models/<name>/
    page = (copy / "report.html").read_text()
    links = [h for h in re.findall(r'href="([^"]+)"', page) if not h.startswith("http")]
    assert links and all((copy / link).is_file() for link in links)
    assert str(tmp_path) not in page  # no directory of the machine that built it
    with pytest.raises(ValueError, match="inside the results directory"):
        write_report(results, tmp_path / "elsewhere" / "report.html")
