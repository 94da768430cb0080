"""Headline numbers are generated from committed tables (`lamm report --markdown`), and a figure
in README.md or a model card that differs from its table fails here (`pytest -k numbers`)."""

import json
import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from lamm.analysis import report_markdown as md
from lamm.analysis.finetune import sample_efficiency_summary, table3_summary
from lamm.cli import main
from tests.helpers.finetune_results import throughput_table

ROOT = Path(__file__).resolve().parents[1]
E, F = "energy_mae_mev_per_atom", "forces_mae_mev_per_a"


def test_numbers_in_the_repository_readme_and_model_cards_match_their_tables():
    assert md.check_repository(ROOT) == []


def _results(root: Path) -> Path:
    """A results directory with Table 3 (3 seeds), sample efficiency and throughput tables."""
    tables = root / "tables"
    tables.mkdir(parents=True)
    errors = {
        "scratch": [(20.5, 16.5), (19.0, 13.7), (21.5, 15.1)],
        "36": [(19.6, 12.3), (17.7, 11.6), (21.0, 12.0)],
    }
    rows = [
        {
            "checkpoint": checkpoint,
            "seed": seed,
            E: energy,
            F: forces,
            "steps_to_energy_threshold": 200 + 10 * seed,
            "steps_to_forces_threshold": (500 if checkpoint == "scratch" else 260) + 10 * seed,
            "energy_threshold": 30.0,
            "forces_threshold": 30.0,
            f"test_{E}": energy,
            f"test_{F}": forces,
            "steps": 1152,
        }
        for checkpoint, per_seed in errors.items()
        for seed, (energy, forces) in enumerate(per_seed)
    ]
    pd.DataFrame(rows).to_csv(tables / "table3_finetune.csv", index=False)
    pd.DataFrame(table3_summary(rows)).to_csv(tables / "table3_summary.csv", index=False)
    efficiency = [
        {
            **{k: row[k] for k in ("checkpoint", "seed", f"test_{E}", f"test_{F}")},
            "train_fraction": 0.1,
            "train_structures": 19,
        }
        for row in rows
    ]
    pd.DataFrame(efficiency).to_csv(tables / "sample_efficiency.csv", index=False)
    pd.DataFrame(sample_efficiency_summary(efficiency)).to_csv(
        tables / "sample_efficiency_summary.csv", index=False
    )
    throughput_table(tables / "throughput.csv")
    return root


def _readme(path: Path) -> Path:
    path.write_text(f"# A project\n\n## Results\n\n{md.START}\n{md.END}\n\n## More\n")
    return path


def test_numbers_generated_block_holds_the_tables_figures_and_verdicts(tmp_path):
    results = _results(tmp_path / "results")
    readme = _readme(tmp_path / "README.md")
    md.write_block(readme, results)
    text = readme.read_text()
    assert text.startswith(
        "# A project\n\n## Results\n\n<!-- lamm-results:start -->\n"
        "<!-- lamm-results:source path=results style=full -->\n"
    )
    assert text.endswith("<!-- lamm-results:end -->\n\n## More\n")
    # scratch 20.33 (19.0-21.5), 15.1 (13.7-16.5); 36: 19.43, 11.97 (11.6-12.3); 15.1 / 11.97 = 1.26
    assert "| scratch | 3 | 20.3 (19.0-21.5) | 15.1 (13.7-16.5) | 510 (500-520) |" in text
    assert "| epoch 36 | 3 | 19.4 (17.7-21.0) | 12.0 (11.6-12.3) | 270 (260-280) |" in text
    assert (
        "| Table 3 error, forces | force MAE 1.26x lower than scratch vs the paper's 1.14x | "
        "3 seeds; force MAE: scratch 13.7-16.5, epoch 36 11.6-12.3 meV/A (apart); 1 pre-training "
        "run | supported |" in text
    )
    assert "| Table 3 error, energies |" in text and "| not shown (inside the spread) |" in text
    assert "[`table3_summary.csv`](results/tables/table3_summary.csv)" in text
    assert md.check_file(readme) == []


def test_numbers_a_figure_edited_by_hand_fails_the_check(tmp_path):
    results = _results(tmp_path / "results")
    readme = _readme(tmp_path / "README.md")
    md.write_block(readme, results)
    good = readme.read_text()
    readme.write_text(good.replace("force MAE 1.26x lower", "force MAE 1.25x lower"))
    [problem] = md.check_file(readme)
    assert "differs from what results/tables generates" in problem
    assert "force MAE 1.25x lower" in problem and "force MAE 1.26x lower" in problem
    assert "lamm report --markdown --results" in problem
    readme.write_text(good.replace("| 12.0 (11.6-12.3) |", "| 11.9 (11.6-12.3) |"))
    assert len(md.check_file(readme)) == 1
    # a table changed without regenerating fails too; regenerating fixes it
    readme.write_text(good)
    table = pd.read_csv(results / "tables" / "table3_summary.csv")
    table.loc[0, f"test_{F}_mean"] = 15.3
    table.to_csv(results / "tables" / "table3_summary.csv", index=False)
    assert len(md.check_file(readme)) == 1
    md.write_block(readme, results)
    assert md.check_file(readme) == [] and "15.3 (13.7-16.5)" in readme.read_text()


def test_numbers_blocks_without_source_or_markers_are_refused(tmp_path):
    readme = _readme(tmp_path / "README.md")
    [problem] = md.check_file(readme)
    assert "a results block that does not declare its source (typed by hand?)" in problem
    plain = tmp_path / "plain.md"
    plain.write_text("no block\n")
    assert md.check_file(plain) == [] and md.check_file(plain, require_block=True)
    with pytest.raises(ValueError, match="0 results blocks .* put two empty markers"):
        md.write_block(plain, _results(tmp_path / "results"))


def _transfer_folder(folder: Path) -> Path:
    """A `lamm transfer` folder's summary.csv: scratch and a model over 3 seeds, the anchor."""
    from lamm.analysis.transfer import summarize

    rows = [
        {"method": method, "fraction": 1.0, "seed": seed, E: energy, F: forces}
        for method, values in {
            "scratch": [(130.0, 44.0), (120.0, 41.0), (140.0, 46.0)],
            "m-epoch_5": [(100.0, 30.0), (110.0, 31.0), (105.0, 32.0)],
        }.items()
        for seed, (energy, forces) in enumerate(values)
    ]
    rows.append({"method": "sevennet-0 (zero-shot)", "fraction": 1.0, "seed": 0, E: 99.0, F: 124.0})
    folder.mkdir(parents=True)
    pd.DataFrame(summarize(rows)).to_csv(folder / "summary.csv", index=False)
    return folder


def test_numbers_a_transfer_table_block_is_generated_beside_another_block_and_checked(tmp_path):
    results = _results(tmp_path / "results")
    ta = _transfer_folder(tmp_path / "transfer" / "ta")
    readme = _readme(tmp_path / "README.md")
    md.write_block(readme, results, "brief")
    # empty markers beside a block of another source: filled (the command line sees a transfer
    # folder and writes its style), and then found by their source
    readme.write_text(readme.read_text() + f"\n## Transfer\n\n{md.START}\n{md.END}\n")
    assert main(["report", "--markdown", "--results", str(ta), "--into", str(readme)]) == 0
    md.write_block(readme, ta)
    text = readme.read_text()
    assert text.count(md.START) == 2 and "path=transfer/ta style=transfer -->" in text
    # scratch 130.0 (120.0-140.0), 43.7 (41.0-46.0); the model 105.0, 31.0: 130/105 = 1.24x,
    # 43.67/31 = 1.41x, every seed better: apart; the anchor one value: a ratio, never apart
    assert "| scratch | 100% | 3 | 130.0 (120.0-140.0) | - | 43.7 (41.0-46.0) | - |" in text
    assert "| m-epoch_5 | 100% | 3 | 105.0 (100.0-110.0) | 1.24x apart | 31.0 (30.0-32.0) |" in text
    assert "| sevennet-0 (zero-shot) | 100% | 1 | 99.0 | 1.31x | 124.0 | 0.35x |" in text
    assert "style=brief -->" in text and md.check_file(readme) == []
    readme.write_text(text.replace("| 1.24x apart |", "| 1.30x apart |"))
    [problem] = md.check_file(readme)
    assert "differs from what transfer/ta/summary.csv generates" in problem
    assert "in the file: | m-epoch_5 | 100% | 3 | 105.0 (100.0-110.0) | 1.30x apart" in problem
    (ta / "summary.csv").unlink()
    assert any("no file" in p and "summary.csv" in p for p in md.check_file(readme))
    other = _transfer_folder(tmp_path / "transfer" / "inp")
    with pytest.raises(ValueError, match="2 results blocks .* 0 from transfer/inp, 0 without"):
        md.write_block(readme, other, "transfer")


def _card(root: Path, results_key: str | None) -> Path:
    folder = root / "models" / "tiny"
    folder.mkdir(parents=True)
    shutil.copytree(_results(tmp := root / "built"), folder / "reproduction")
    shutil.rmtree(tmp)
    card = {"name": "tiny"} | ({"results": results_key} if results_key else {})
    (folder / "card.json").write_text(json.dumps(card))
    (folder / "README.md").write_text(f"# tiny\n\n{md.START}\n{md.END}\n")
    return folder


def test_numbers_a_card_declares_its_tables_and_quotes_no_figure_outside_its_block(tmp_path):
    folder = _card(tmp_path, "reproduction")
    _readme(tmp_path / "README.md")
    md.write_block(tmp_path / "README.md", folder / "reproduction")
    assert main(["report", "--markdown", "--card", str(folder)]) == 0
    assert (
        "<!-- lamm-results:source path=reproduction style=full -->"
        in (folder / "README.md").read_text()
    )
    assert md.check_repository(tmp_path) == []
    card = folder / "README.md"
    card.write_text(card.read_text() + "\nForces are 1.26x lower, 12.0 meV/A.\n")
    problems = md.check_repository(tmp_path)
    assert [p.split(": ", 1)[1] for p in problems] == ["'1.26x'", "'12.0 meV/A'"]
    assert main(["report", "--markdown", "--check", str(card)]) == 0  # the block itself is fine
    # a committed report whose links point into the machine that built it
    page = folder / "reproduction" / "report.html"
    page.write_text('<a href="tables/throughput.csv">ok</a> <a href="../../../work/x.csv">no</a>')
    assert md.broken_report_links(page) == [f"{page}: link ../../../work/x.csv does not resolve"]
    card.write_text(card.read_text().replace("| supported |", "| not shown |", 1))
    assert main(["report", "--markdown", "--check", str(card)]) == 1


def test_numbers_a_card_may_hold_transfer_tables_but_no_other_results(tmp_path):
    folder = _card(tmp_path, "reproduction")
    _readme(tmp_path / "README.md")
    md.write_block(tmp_path / "README.md", folder / "reproduction")
    ta = _transfer_folder(tmp_path / "docs" / "transfer" / "ta")
    card = folder / "README.md"
    assert main(["report", "--markdown", "--card", str(folder)]) == 0
    card.write_text(card.read_text() + f"\n## On real DFT\n\n{md.START}\n{md.END}\n")
    assert main(["report", "--markdown", "--results", str(ta), "--into", str(card)]) == 0
    assert main(["report", "--markdown", "--card", str(folder)]) == 0  # finds its own block
    text = card.read_text()
    assert "path=../../docs/transfer/ta style=transfer -->" in text
    assert "path=reproduction style=full -->" in text and "| m-epoch_5 | 100% | 3 |" in text
    assert md.check_repository(tmp_path) == []  # the transfer table's figures are in a block
    other = _results(tmp_path / "other")
    card.write_text(card.read_text() + f"\n{md.START}\n{md.END}\n")
    md.write_block(card, other, "brief")
    [problem] = md.check_repository(tmp_path)
    assert "blocks from ['../../other', 'reproduction'], card.json says reproduction" in problem


def test_numbers_the_brief_style_keeps_the_verdicts_and_a_regeneration_keeps_the_style(tmp_path):
    results = _results(tmp_path / "results")
    readme = _readme(tmp_path / "README.md")
    md.write_block(readme, results, "brief")
    text = readme.read_text()
    assert "<!-- lamm-results:source path=results style=brief -->" in text
    assert "| finding | here vs the paper | verdict |" in text and "table3_summary.csv" not in text
    assert (
        "| Table 3 error, forces | force MAE 1.26x lower than scratch vs the paper's 1.14x | "
        "supported |" in text
    )
    md.write_block(readme, results)  # no style given: the block's own
    assert readme.read_text() == text and md.check_file(readme) == []
    readme.write_text(text.replace("| supported |", "| not shown |"))
    assert len(md.check_file(readme)) == 1


def test_numbers_a_card_without_declared_results_is_named(tmp_path):
    folder = _card(tmp_path, None)
    with pytest.raises(ValueError, match='no "results" key'):
        md.card_results(folder)


def test_numbers_the_card_writer_uses_the_same_markers():
    from lamm.models.model_card import RESULTS_END, RESULTS_START

    assert (RESULTS_START, RESULTS_END) == (md.START, md.END)


def test_numbers_a_start_that_never_reached_the_threshold_says_so(tmp_path):
    rows = [
        {
            "checkpoint": checkpoint,
            "seed": seed,
            E: 20.0 + seed,
            F: 30.0 + seed,
            "steps_to_energy_threshold": float("nan"),
            "steps_to_forces_threshold": steps,
            "energy_threshold": 30.0,
            "forces_threshold": 30.0,
            f"test_{E}": 20.0 + seed,
            f"test_{F}": 30.0 + seed,
        }
        for checkpoint, per_seed in {
            "scratch": [float("nan")] * 3,
            "5": [400.0, float("nan"), 440.0],
        }.items()
        for seed, steps in enumerate(per_seed)
    ]
    path = tmp_path / "table3_summary.csv"
    pd.DataFrame(table3_summary(rows)).to_csv(path, index=False)
    scratch, epoch = md.table3_lines(path)[2:]
    assert scratch.endswith("| never (3 of 3) |")
    assert epoch.endswith("| 420 (400-440) (1 never) |")
    from lamm.analysis.verdicts import Comparison, Side

    never = [math.inf] * 3
    both = Comparison("steps to 30 meV/A", "steps", Side.of("scratch", never), Side.of("e5", never))
    assert both.range_text() == "steps to 30 meV/A: reached by neither scratch nor e5"
