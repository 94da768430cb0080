"""config/datasets/<source>.yaml: all eleven load; typos and wrong types fail naming file and
key."""

import pytest

from lamm.data.sources import SOURCE_NAMES, datasets_dir, load_source


def test_all_eleven_sources_load_with_their_conventions():
    sources = {name: load_source(name) for name in SOURCE_NAMES}
    assert len(sources) == 11
    assert {n for n, s in sources.items() if s.split.policy == "official"} == {
        "oc20_s2ef",
        "oc20_is2re",
        "oc22_s2ef",
        "oc22_is2re",
        "odac23_s2ef",
        "odac23_is2re",
        "hme21",
    }
    assert {n for n, s in sources.items() if s.energy.kind == "adsorption"} == {
        "oc20_is2re",
        "odac23_is2re",
    }
    assert {n: s.max_atoms for n, s in sources.items() if s.max_atoms} == {
        "odac23_s2ef": 300,
        "odac23_is2re": 300,
    }
    assert sources["pubchem3d"].task == "denoising" and sources["pubchem3d"].labels == ()
    assert sources["qmugs"].labels == ("energy",)
    assert sources["odac23_s2ef"].fields.energy == (
        "raw_y",
    )  # the total energy, not the adsorption `y`
    assert [f.md5 for f in sources["oc20_s2ef"].release_files()] == [
        "12a7087bfd189a06ccbec9bc7add2bcd",
        "f57f7f5c1302637940f2cc858e789410",
    ]  # train all, val_id
    assert sources["oc20_is2re"].reference(["oc20_ref.pkl"]) == "oc20_ref.pkl"
    assert len(sources["qm7x"].inputs("train")) == 8
    chunks = sources["pubchem3d"].release_files(["{first:08d}_{last:08d}.sdf.gz"])
    assert (
        chunks[0].name == "00000001_00025000.sdf.gz"
        and chunks[1].name == "00025001_00050000.sdf.gz"
    )
    assert chunks[0].url.endswith("/Compound_3D/01_conf_per_cmpd/SDF/00000001_00025000.sdf.gz")


def _variant(tmp_path, name, old, new):
    text = (datasets_dir() / f"{name}.yaml").read_text()
    assert old in text
    (tmp_path / f"{name}.yaml").write_text(text.replace(old, new, 1))
    return tmp_path


def test_unknown_key_wrong_type_and_bad_checksum_raise(tmp_path):
    with pytest.raises(
        ValueError, match=r"qm7x.yaml.max_atom: unknown key \(did you mean max_atoms\?\)"
    ):
        load_source("qm7x", _variant(tmp_path, "qm7x", "max_atoms: null", "max_atom: null"))
    with pytest.raises(ValueError, match=r"hme21.yaml.periodic: expected true or false"):
        load_source("hme21", _variant(tmp_path, "hme21", "periodic: true", "periodic: yes please"))
    with pytest.raises(ValueError, match=r"oc22_is2re.yaml.files\[0\].md5: 'B35DC24E"):
        load_source(
            "oc22_is2re",
            _variant(
                tmp_path,
                "oc22_is2re",
                "b35dc24e99ef3aeaee6c5c949903de94",
                "B35DC24E99EF3AEAEE6C5C949903DE94",
            ),
        )
    with pytest.raises(ValueError, match=r"task: 'S2EF' is not one of s2ef, is2re, denoising"):
        load_source("transition1x", _variant(tmp_path, "transition1x", "task: s2ef", "task: S2EF"))
    with pytest.raises(ValueError, match="unknown source 'qm7X' \\(did you mean qm7x\\?\\)"):
        load_source("qm7X")
    with pytest.raises(ValueError, match="no file qm7.dat|has no release file 'qm7.dat'"):
        load_source("qm7x").release_files(["qm7.dat"])
