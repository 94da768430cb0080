"""data.downstream as a list: a user's dataset converted by its own rule, the fine-tuning sweep,
sample efficiency and zero-shot on every set, the first set on the paths of a single set."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lamm.config import ConfigError, load_yaml, validate_config
from lamm.downstream_sets import DownstreamSet, description_files, downstream_sets
from tests.conftest import ROOT

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def user_dataset(folder: Path, name: str = "my_set", *, described_as: str | None = None) -> Path:
    """A dataset description (and its empty files: the dry run only needs them to exist)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.xyz").touch()
    (folder / "test.xyz").touch()
    path = folder / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": described_as or name,
                "format": "extxyz",
                "files": {"train": "train.xyz", "test": ["test.xyz"]},
            }
        )
    )
    return path


def dry_run(tmp_path: Path, downstream) -> subprocess.CompletedProcess:
    config = tmp_path / "workflow.yaml"
    config.write_text(yaml.safe_dump({"data": {"downstream": downstream}}))
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-p", "--forceall", "--configfile", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def planned_jobs(result: subprocess.CompletedProcess) -> list[tuple[str, str, str]]:
    """(rule, outputs, shell command) of every job a `snakemake -n -p` run printed, sorted."""
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    jobs = []
    for block in re.split(r"\n\[[^\]]+\]\n", result.stdout)[1:]:
        rule = re.search(r"^(?:local)?rule (\S+):", block, re.M)
        output = re.search(r"^\s+output: (.*)$", block, re.M)
        shell = re.search(r"^Shell command: (.*)$", block, re.M)
        if rule:
            jobs.append((rule[1], output[1] if output else "", shell[1] if shell else ""))
    return sorted(jobs)


# --- the config and its checks ---------------------------------------------------------------


def test_schema_takes_a_name_or_a_list_and_rejects_unknown_keys():
    config = load_yaml(ROOT / "config" / "config.yaml")
    assert validate_config(config, SCHEMA)["data"]["downstream"] == "hme21"
    config["data"]["downstream"] = ["hme21", {"name": "my_set", "dataset": "my_set.yaml"}]
    assert validate_config(config, SCHEMA)["data"]["downstream"][1] == {
        "name": "my_set",
        "dataset": "my_set.yaml",
    }
    config["data"]["downstream"] = ["hme21", {"nmae": "my_set", "dataset": "my_set.yaml"}, "hme22"]
    with pytest.raises(ConfigError) as info:
        validate_config(config, SCHEMA)
    message = str(info.value)
    assert "unknown key data.downstream.1.nmae (did you mean data.downstream.1.name?)" in message
    assert "key data.downstream.2: 'hme22' is not one of ['hme21']" in message
    config["data"]["downstream"] = []
    with pytest.raises(ConfigError, match="data.downstream: \\[\\] should be non-empty"):
        validate_config(config, SCHEMA)


def test_sets_in_order_with_their_suffixes(tmp_path):
    description = user_dataset(tmp_path)
    assert downstream_sets("hme21", reserved={"hme21"}) == [DownstreamSet("hme21", first=True)]
    sets = downstream_sets(
        ["hme21", {"name": "my_set", "dataset": str(description)}], reserved={"hme21"}
    )
    assert [(s.name, s.description, s.suffix) for s in sets] == [
        ("hme21", None, ""),
        ("my_set", description, "_my_set"),
    ]
    assert description_files(description) == [tmp_path / "train.xyz", tmp_path / "test.xyz"]


def test_bad_entries_are_named(tmp_path):
    description = user_dataset(tmp_path)
    entry = {"name": "my_set", "dataset": str(description)}
    with pytest.raises(ValueError, match="lists 'my_set' twice"):
        downstream_sets([entry, entry], reserved={"hme21"})
    with pytest.raises(ValueError, match="'hme21' is a built-in dataset name"):
        downstream_sets([{"name": "hme21", "dataset": str(description)}], reserved={"hme21"})
    with pytest.raises(
        ValueError,
        match=r"data.downstream.0 \(my_set\): dataset description .*missing.yaml does not exist",
    ):
        downstream_sets(
            [{"name": "my_set", "dataset": str(tmp_path / "missing.yaml")}], reserved=()
        )


# --- the planned jobs ------------------------------------------------------------------------


def test_two_sets_plan_the_conversion_the_sweeps_and_the_tables_of_each(tmp_path):
    description = user_dataset(tmp_path / "mine")
    jobs = planned_jobs(
        dry_run(tmp_path, ["hme21", {"name": "my_set", "dataset": str(description)}])
    )
    by_rule = {}
    for rule, output, shell in jobs:
        by_rule.setdefault(rule, []).append((output, shell))

    [(output, shell)] = by_rule["data_convert_user"]
    assert output == "results/data/my_set.lmdb"
    assert re.fullmatch(
        rf"lamm .* data convert --dataset {re.escape(str(description))} --out "
        r"results/data/my_set.lmdb > results/logs/\S+ 2>&1",
        shell,
    )

    # the first set: today's run folders on the built-in store; the further set: its own folders on
    # its store
    first = sorted(re.search(r"--out (\S+)", shell)[1] for _, shell in by_rule["finetune"])
    further = sorted(
        re.search(r"--out (\S+)", shell)[1] for _, shell in by_rule["finetune_further"]
    )
    assert (
        "results/finetune/demo/scratch" in first
        and "results/finetune/demo/epoch_2_gradient" in first
    )
    assert all("--store results/data/hme21.lmdb" in shell for _, shell in by_rule["finetune"])
    assert further == sorted(
        f"results/finetune/demo/my_set/{label}"
        for label in [
            "scratch",
            "epoch_0",
            "epoch_0.5",
            "epoch_2",
            "lamm-mini",
            "scratch_frac0.25",
            "epoch_2_frac0.25",
        ]
    )
    assert all(
        "--store results/data/my_set.lmdb" in shell and "--parent-run demo/my_set" in shell
        for _, shell in by_rule["finetune_further"]
    )

    outputs = {output for _, output, _ in jobs}
    for plain in [
        "results/tables/table3_finetune.csv, results/tables/table3_summary.csv, "
        "results/figures/fig9_finetune.png",
        "results/tables/sample_efficiency.csv, "
        "results/tables/sample_efficiency_summary.csv, "
        "results/figures/sample_efficiency.png",
        "results/tables/zero_shot.csv",
    ]:
        assert plain in outputs
        assert re.sub(r"(\w+)\.(csv|png)", r"\1_my_set.\2", plain) in outputs
    [(_, report)] = by_rule["report"]
    assert "--downstream hme21 my_set" in report and f"--config {description}" in report
    assert (
        len(by_rule["evaluate_finetuned"]) == 1 and len(by_rule["dynamics"]) == 1
    )  # the first set only


def test_a_single_name_plans_what_it_always_did(tmp_path):
    # the demo's form (data.downstream: hme21) and the same as a one-entry list plan the same jobs
    single = planned_jobs(dry_run(tmp_path, "hme21"))
    assert single == planned_jobs(dry_run(tmp_path, ["hme21"]))
    rules = [rule for rule, _, _ in single]
    assert not [rule for rule in rules if rule.endswith("_further") or rule == "data_convert_user"]
    assert rules.count("finetune") == 8  # 7 + lamm-mini and rules.count("zero_shot") == 1
    outputs = " ".join(output for _, output, _ in single)
    assert "results/finetune/demo/scratch/checkpoints/last.pt" in outputs
    assert "results/tables/table3_finetune.csv" in outputs and "_hme21" not in outputs


def test_a_description_naming_another_dataset_fails_at_start(tmp_path):
    description = user_dataset(tmp_path, described_as="other")
    result = dry_run(tmp_path, ["hme21", {"name": "my_set", "dataset": str(description)}])
    assert result.returncode != 0
    assert (
        f"data.downstream.1 (my_set): {description} names the dataset 'other', the config 'my_set'"
        in result.stdout + result.stderr
    )
