import subprocess
import sys

import pytest

from lamm import __version__
from lamm.cli import main
from tests.conftest import ROOT


def run_lamm(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lamm", *args], capture_output=True, text=True, cwd=ROOT, timeout=120
    )


def test_version_from_the_installed_command():
    result = run_lamm("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"lamm {__version__}"


def test_help_lists_global_options():
    result = run_lamm("--help")
    assert result.returncode == 0
    for option in ("--version", "--verbose", "--quiet", "--tag"):
        assert option in result.stdout


def test_no_subcommand_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: lamm" in capsys.readouterr().err


def test_tag_must_be_key_value():
    result = run_lamm("--tag", "novalue", "--version")
    assert result.returncode == 2
    assert "expected KEY=VALUE" in result.stderr


def test_tags_are_handed_to_child_processes(monkeypatch):
    import json
    import os

    from lamm import cli

    monkeypatch.setattr(cli, "COMMAND_MODULES", ())
    monkeypatch.setenv("LAMM_RUN_TAGS", json.dumps({"inherited": "1"}))
    with pytest.raises(SystemExit):
        main(["--tag", "snakemake_rule=all", "--tag", "x=a=b", "--version"])
    # --version exits during parsing, before tags are exported: nothing changed
    assert json.loads(os.environ["LAMM_RUN_TAGS"]) == {"inherited": "1"}
    assert main(["--tag", "snakemake_rule=all", "--tag", "x=a=b"]) == 2
    assert json.loads(os.environ["LAMM_RUN_TAGS"]) == {
        "inherited": "1",
        "snakemake_rule": "all",
        "x": "a=b",
    }


def test_parser_is_built_without_torch():
    # every `lamm` call builds every subcommand's parser: heavy libraries load only in the
    # command that runs, or each workflow job would pay seconds of imports first
    code = (
        "import sys; from lamm.cli import build_parser; build_parser(); print(sorted(m "
        "for m in ('torch', 'ase.build', 'mlflow') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["data", "demo", "--out", "unused", "--subsets", "oc21_s2ef"],
            "unknown subset(s) ['oc21_s2ef'] for --labels light; expected some of",
        ),
        (["bench", "model", "--preset", "lamm-xl"], "unknown preset 'lamm-xl'; expected one of"),
        (
            ["bench", "model", "--phases", "train,eval"],
            "expected a comma-separated subset of train,infer",
        ),
    ],
)
def test_names_checked_when_the_command_runs(args, message, capsys):
    if args[0] == "bench":  # an argparse type error: usage and exit status 2
        with pytest.raises(SystemExit) as exit_info:
            main(args)
        assert exit_info.value.code == 2
    else:
        assert main(args) == 2
    assert message in capsys.readouterr().err


def _options(parser, path=("lamm",)):
    """(command path, action) of every option of every (sub)command."""
    import argparse

    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, (*path, name))
        elif not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            yield path, action, parser


def test_every_option_has_a_description_and_states_its_default():
    from lamm.cli import build_parser

    undescribed, silent = [], []
    for path, action, parser in _options(build_parser()):
        name = f"{' '.join(path)} {'/'.join(action.option_strings) or action.dest}"
        if not action.help:
            undescribed.append(name)
            continue
        formatted = parser._get_formatter()._expand_help(action)
        stated = action.default is not None and action.default is not False and action.default != []
        if action.option_strings and stated and "default" not in formatted.lower():
            silent.append(name)
    assert not undescribed, f"options without a description: {undescribed}"
    assert not silent, f"options that do not state their default: {silent}"


def test_data_always_names_a_folder_of_stores_and_store_a_store():
    # one meaning per option name: --data is a folder of <subset>.lmdb stores wherever it shows
    # in --help; a single store is --store (evaluate, zero-shot, dynamics, finetune, bench ...)
    from lamm.cli import build_parser

    for path, action, _ in _options(build_parser()):
        if "--data" in action.option_strings and action.help != "==SUPPRESS==":
            assert "directory of <subset>.lmdb" in action.help, (path, action.help)
        if "--store" in action.option_strings:
            assert "folder" not in action.help and "directory" not in action.help, (
                path,
                action.help,
            )


def test_the_old_data_name_of_evaluate_still_reads_a_store(tmp_path, caplog):
    from lamm.cli import build_parser

    args = build_parser().parse_args(["evaluate", "model.pt", "--data", "x.lmdb"])
    assert args.data == "x.lmdb"
    assert "--data is now --store" in caplog.text


def test_user_errors_of_any_command_are_one_line(tmp_path, capsys):
    from lamm.cli import main

    fake = tmp_path / "frames.extxyz"
    fake.write_text("1\nProperties=species:S:1:pos:R:3\nH 0 0 0\n")
    assert (
        main(
            [
                "zero-shot",
                str(tmp_path / "model.pt"),
                "--store",
                str(fake),
                "--out",
                str(tmp_path / "z.csv"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("lamm zero-shot: error: ") and "frames.extxyz" in err and "\n" not in err
    assert (
        main(
            [
                "dynamics",
                str(tmp_path / "missing.pt"),
                "--store",
                str(fake),
                "--out",
                str(tmp_path / "d"),
            ]
        )
        == 1
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("lamm dynamics: error: ") and "\n" not in err
