"""The real-data rules' arguments, from the validated paper config."""

import pytest

from lamm.config import ConfigError, load_yaml, validate_config
from lamm.data.real_workflow import convert_arguments, fetch_arguments
from tests.conftest import ROOT

SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"


def paper_real(**changes):
    config = load_yaml(ROOT / "config" / "paper.yaml")
    config["data"]["real"].update(changes)
    return validate_config(config, SCHEMA)["data"]["real"]


def test_paper_config_fetches_and_converts_as_the_paper_did():
    real = paper_real()
    assert fetch_arguments(real, "oc20_s2ef") == "--file s2ef_train_all.tar --file s2ef_val_id.tar"
    assert fetch_arguments(real, "qm7x") == ""  # the defaults of config/datasets/qm7x.yaml
    args = convert_arguments(real, "odac23_s2ef", "raw", seed=0)
    assert (
        "--input raw/odac23_s2ef/odac23_s2ef/train --val-input "
        "raw/odac23_s2ef/odac23_s2ef/val --max-atoms 300" in args
    )
    args = convert_arguments(real, "transition1x", "raw", seed=7)
    assert (
        args == "--input raw/transition1x/Transition1x.h5 --min-distance 0.5 --val-fraction "
        "0.01 --seed 7"
    )
    assert convert_arguments(real, "hme21", "raw", 0).startswith(
        "--input raw/hme21/hme21_train.xyz --val-input raw/hme21/hme21_val.xyz "
        "--test-input raw/hme21/hme21_test.xyz"
    )


def test_totals_overrides_and_typos():
    real = paper_real(
        total_energies=["oc20_is2re"],
        inputs={"oc22_s2ef": {"train": ["my/train"]}},
        max_atoms={"odac23_s2ef": None},
        mirror="http://mirror.local/lamm",
    )
    assert fetch_arguments(real, "oc20_is2re") == (
        "--file is2res_train_val_test_lmdbs.tar.gz --file oc20_ref.pkl --mirror http://mirror.local/lamm"
    )
    assert "--reference-energies raw/oc20_is2re/oc20_ref.pkl" in convert_arguments(
        real, "oc20_is2re", "raw", 0
    )
    assert convert_arguments(real, "oc22_s2ef", "raw", 0).startswith(
        "--input raw/oc22_s2ef/my/train --min-distance"
    )
    assert "--max-atoms none" in convert_arguments(real, "odac23_s2ef", "raw", 0)
    with pytest.raises(ConfigError, match="unknown key data.real.max_atom"):
        paper_real(max_atom={})
