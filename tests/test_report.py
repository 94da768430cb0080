"""The HTML report: tables rendered, figures embedded, missing results named, runs linked."""

import base64
import json

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
    pd.DataFrame({"subset": ["oc20_s2ef", "qm7x"], "samples": [450, 134], "avg_atoms": [66.25, 16.0]}).to_csv(
        root / "tables" / "table2_datasets.csv", index=False
    )
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
    summary = write_report(results, results / "report.html", configs=[config], tracking_uri=tracking_uri())
    page = (results / "report.html").read_text()
    assert summary["found"] == ["tables/table2_datasets.csv", "figures/fig2_elements.png"]
    every_item = [item.path for section in SECTIONS for item in section.items]
    assert sorted(summary["missing"]) == sorted(set(every_item) - set(summary["found"]))
    assert "<td>oc20_s2ef</td>" in page and "66.25" in page
    png = base64.b64encode((results / "figures" / "fig2_elements.png").read_bytes()).decode()
    assert f"data:image/png;base64,{png}" in page
    assert "missing: tables/table3_finetune.csv" in page
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
    pd.DataFrame({"checkpoint": ["scratch", "epoch_2"], "energy_mae": [857.0, 648.0]}).to_csv(
        results / "tables" / "table3_finetune_my_set.csv", index=False)
    assert main(["report", "--results", str(results), "--downstream", "hme21", "my_set"]) == 0
    page = (results / "report.html").read_text()
    assert "<h2>Fine-tuning on hme21 (Table 3, Fig. 9)</h2>" in page
    assert "<h2>Fine-tuning on my_set (Table 3, Fig. 9)</h2>" in page
    assert page.index("Fine-tuning on hme21") < page.index("Fine-tuning on my_set")
    assert "my_set: Table 3: best validation errors" in page and "648" in page
    assert "missing: tables/table3_finetune.csv (hme21: Table 3" in page  # the first set keeps its paths
    for name in ["zero_shot_my_set.csv", "sample_efficiency_my_set.csv", "sample_efficiency_my_set.png", "fig9_finetune_my_set.png"]:
        assert f"missing: {'figures' if name.endswith('png') else 'tables'}/{name}" in page
    assert page.count("tables/nve_drift.csv") == 1  # dynamics: the first set only
