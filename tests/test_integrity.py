"""Files cut short or corrupted give one clear error naming the file, never a crash (SIGBUS)."""

import subprocess
import sys

import pytest
import torch

from lamm.data.lmdb_check import expected_size
from lamm.data.store import StructureStore
from lamm.models.checkpoint import load_checkpoint, save_checkpoint
from tests.conftest import ROOT
from tests.store_factory import demo_like_stores


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    return demo_like_stores(tmp_path_factory.mktemp("stores"), slabs=30, molecules=2, conformers=2)[
        0
    ].path


def _cut(source, target, size):
    target.write_bytes(source.read_bytes()[:size])
    return target


def test_a_whole_store_matches_its_header(store_path):
    expected, page, size = expected_size(store_path)
    assert page == 4096 and size == expected and size > 8 * page
    assert (
        len(
            [
                StructureStore(store_path).get_record(i)
                for i in range(len(StructureStore(store_path)))
            ]
        )
        == 30
    )


def test_a_store_cut_in_half_is_an_error_not_a_bus_error(store_path, tmp_path):
    # before the check, opening this copy and reading it killed Python with SIGBUS
    half = _cut(store_path, tmp_path / "half.lmdb", store_path.stat().st_size // 2)
    code = (
        "import sys\nfrom lamm.data.store import StructureStore\n"
        "try:\n    s = StructureStore(sys.argv[1]); [s.get_record(i) for i in range(len(s))]\n"
        "except ValueError as err:\n    print(err); sys.exit(3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(half)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 3, (result.returncode, result.stderr)
    full = store_path.stat().st_size
    assert (
        f"{half} is not a readable structure store: truncated LMDB file: its header says "
        f"{full} bytes" in result.stdout
    )
    assert f"the file has {full // 2} bytes (50%)" in result.stdout


@pytest.mark.parametrize("keep", ["one page less", "header only", "a few bytes", "empty"])
def test_any_truncation_names_the_file(store_path, tmp_path, keep):
    full = store_path.stat().st_size
    size = {
        "one page less": full - 4096,
        "header only": 4096 + 200,
        "a few bytes": 100,
        "empty": 0,
    }[keep]
    cut = _cut(store_path, tmp_path / "cut.lmdb", size)
    with pytest.raises(
        ValueError, match=r"cut\.lmdb is not a readable structure store: (truncated|not an LMDB)"
    ):
        StructureStore(cut)


def test_not_an_lmdb_file(tmp_path):
    junk = tmp_path / "junk.lmdb"
    junk.write_bytes(b"x" * 10000)
    with pytest.raises(
        ValueError, match="junk.lmdb is not a readable structure store: not an LMDB file"
    ):
        StructureStore(junk)


def _checkpoint(tmp_path):
    state = {
        "model_config": {"encoder": "painn"},
        "heads": ["a"],
        "model": {"w": torch.arange(20000.0)},
    }
    return save_checkpoint(tmp_path / "last.pt", state)


@pytest.mark.parametrize("keep", [0.5, 0.99, 0.1])
def test_a_checkpoint_cut_short_names_the_file(tmp_path, keep):
    path = _checkpoint(tmp_path)
    raw = path.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(
        ValueError,
        match=r"cut\.pt: not a readable lamm checkpoint: the file is cut short "
        rf"\({int(len(raw) * keep)} bytes",
    ):
        load_checkpoint(cut)
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.arange(20000.0))


def test_a_flipped_byte_in_the_weights_is_caught(tmp_path):
    # torch.load itself would load this file, with one wrong weight
    path = _checkpoint(tmp_path)
    raw = bytearray(path.read_bytes())
    position = raw.index(torch.arange(20000.0)[1000:1002].numpy().tobytes())
    raw[position] ^= 0xFF
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(bytes(raw))
    with pytest.raises(
        ValueError,
        match=r"flipped\.pt: not a readable lamm checkpoint: corrupted .*fails the CRC check",
    ):
        load_checkpoint(bad)
