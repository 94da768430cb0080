"""Downloads against a real HTTP server on loopback that honours Range requests."""

import hashlib
import io
import json
import lzma
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lamm.cli import main
from lamm.data.fetch import FetchError, download, fetch_source, unpack
from lamm.data.sources import datasets_dir, load_source


class Server:
    """Serves `files` (path -> bytes); can cut a response short or ignore Range headers."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cut_after: dict[str, int] = {}  # path -> bytes to send before closing, once
        self.ignore_range = False
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                header = self.headers.get("Range")
                if header and not server.ignore_range:
                    start = int(header.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                payload = body[start:]
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                cut = server.cut_after.pop(self.path, None)
                if cut is not None:
                    self.wfile.write(payload[:cut])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = Server()
    yield srv
    srv.close()


def payload(size: int = 300_000, seed: int = 0) -> bytes:
    return bytes((i * 7 + seed) % 251 for i in range(size))


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_download_verifies_md5_and_renames_when_complete(server, tmp_path):
    data = payload()
    server.files["/a.bin"] = data
    path = download(f"{server.url}/a.bin", tmp_path / "a.bin", md5=md5(data), retries=0)
    assert path.read_bytes() == data
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin"]
    download(f"{server.url}/a.bin", tmp_path / "a.bin", md5=md5(data))  # present: no request
    assert len(server.requests) == 1


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    data = payload()
    server.files["/big.tar"] = data
    server.cut_after["/big.tar"] = 100_000
    with pytest.raises(FetchError, match=r"broke off after 65536 bytes .* the next run resumes"):
        download(f"{server.url}/big.tar", tmp_path / "big.tar", md5=md5(data), retries=0)
    assert not (tmp_path / "big.tar").exists()
    assert (tmp_path / "big.tar.part").read_bytes() == data[:65536]  # whole 64 KiB blocks only
    download(f"{server.url}/big.tar", tmp_path / "big.tar", md5=md5(data), retries=0)
    assert server.requests[-1] == ("/big.tar", "bytes=65536-")
    assert (tmp_path / "big.tar").read_bytes() == data
    assert not (tmp_path / "big.tar.part").exists()


def test_dropped_connection_is_retried_from_where_it_stopped(server, tmp_path):
    data = payload()
    server.files["/x"] = data
    server.cut_after["/x"] = 200_000
    download(f"{server.url}/x", tmp_path / "x", md5=md5(data), retries=2, backoff_s=0)
    assert [r for _, r in server.requests] == [
        None,
        "bytes=196608-",
    ]  # three whole 64 KiB blocks kept
    assert (tmp_path / "x").read_bytes() == data


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    data = payload()
    server.files["/x"] = data
    (tmp_path / "x.part").write_bytes(b"stale bytes of an older file")
    server.ignore_range = True
    download(f"{server.url}/x", tmp_path / "x", md5=md5(data), retries=0)
    assert (tmp_path / "x").read_bytes() == data


def test_complete_partial_file_is_finished_without_download(server, tmp_path):
    data = payload(1000)
    server.files["/x"] = data
    (tmp_path / "x.part").write_bytes(data)  # the previous run died between download and rename
    download(f"{server.url}/x", tmp_path / "x", md5=md5(data), retries=0)
    assert (tmp_path / "x").read_bytes() == data


def test_wrong_md5_deletes_the_download(server, tmp_path):
    server.files["/x"] = payload()
    with pytest.raises(FetchError, match=r"x: MD5 [0-9a-f]{32} does not match the published 0{32}"):
        download(f"{server.url}/x", tmp_path / "x", md5="0" * 32, retries=0)
    assert list(tmp_path.iterdir()) == []


def test_unreachable_host_and_missing_file(server, tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(FetchError, match=r"cannot reach 127.0.0.1:\d+ .*nothing was written"):
        download(f"http://127.0.0.1:{port}/x", tmp_path / "x", retries=1, backoff_s=0)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(FetchError, match="not found on the server"):
        download(f"{server.url}/missing", tmp_path / "y", retries=0)
    assert list(tmp_path.iterdir()) == []


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as bundle:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            bundle.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


def test_unpack_tar_gz_and_xz_and_a_broken_archive(tmp_path):
    archive = tmp_path / "a.tar.gz"
    archive.write_bytes(_tar_gz({"top/train/data.lmdb": b"1234", "top/README": b"readme"}))
    unpack(archive, "tar.gz", tmp_path)
    assert (tmp_path / "top" / "train" / "data.lmdb").read_bytes() == b"1234"
    assert (tmp_path / ".a.tar.gz.unpacked").exists()
    (tmp_path / "1000.xz").write_bytes(lzma.compress(b"hdf5 bytes"))
    unpack(tmp_path / "1000.xz", "xz", tmp_path, "1000.hdf5")
    assert (tmp_path / "1000.hdf5").read_bytes() == b"hdf5 bytes"
    broken = tmp_path / "b.tar.gz"
    broken.write_bytes(_tar_gz({"other/file": b"x" * 5000})[:60])
    with pytest.raises(FetchError, match="b.tar.gz: cannot be unpacked"):
        unpack(broken, "tar.gz", tmp_path)
    assert not (tmp_path / "other").exists() and not (tmp_path / ".b.tar.gz.unpacking").exists()
    assert not (tmp_path / ".b.tar.gz.unpacked").exists()


def test_fetch_command_through_a_mirror(server, tmp_path, monkeypatch, capsys):
    """`lamm data fetch` with the QM7-X description (our checksums) served from loopback."""
    hdf5 = b"\x89HDF fake contents"
    xz = lzma.compress(hdf5)
    server.files["/1000.xz"] = xz
    server.files["/DupMols.dat"] = dupmols = b"Geom-m1-i1-c1\n"
    text = (datasets_dir() / "qm7x.yaml").read_text()  # the real description, with our checksums
    text = text.replace("b50c6a5d0a4493c274368cf22285503e", md5(xz)).replace(
        "5d886ccac38877c8cb26c07704dd1034", md5(dupmols)
    )
    datasets = tmp_path / "datasets"
    datasets.mkdir()
    (datasets / "qm7x.yaml").write_text(text)
    monkeypatch.setenv("LAMM_DATASETS_DIR", str(datasets))
    dest = tmp_path / "raw" / "qm7x"
    argv = [
        "data",
        "fetch",
        "qm7x",
        "--dest",
        str(dest),
        "--mirror",
        server.url,
        "--file",
        "1000.xz",
        "--file",
        "DupMols.dat",
    ]
    assert main(argv) == 0
    manifest = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [(f["name"], f["status"]) for f in manifest["files"]] == [
        ("1000.xz", "unpacked"),
        ("DupMols.dat", "downloaded"),
    ]
    assert (dest / "1000.hdf5").read_bytes() == hdf5
    assert json.loads((dest / "fetch-manifest.json").read_text()) == manifest
    from mlflow.tracking import MlflowClient

    from lamm.tracking import tracking_uri

    client = MlflowClient(tracking_uri())
    (run,) = client.search_runs([client.get_experiment_by_name("lamm").experiment_id])
    assert run.info.run_name == "fetch-qm7x" and run.info.status == "FINISHED"
    assert run.data.metrics == {"files_unpacked": 1.0, "files_downloaded": 1.0}
    requests = len(server.requests)
    assert main(argv) == 0  # everything present: nothing is downloaded again
    assert len(server.requests) == requests
    assert (
        main(
            [
                "data",
                "fetch",
                "qm7x",
                "--dest",
                str(dest),
                "--mirror",
                server.url,
                "--file",
                "2000.xz",
            ]
        )
        == 1
    )
    assert "2000.xz: not found on the server" in capsys.readouterr().err
    assert not (dest / "2000.xz").exists() and not (dest / "2000.xz.part").exists()


def test_missing_chunks_of_a_chunked_release_are_reported_and_skipped(server, tmp_path):
    source = load_source("pubchem3d")
    names = ["00000001_00025000.sdf.gz", "00025001_00050000.sdf.gz"]
    server.files[f"/{names[0]}"] = b"\x1f\x8b chunk one"
    manifest = fetch_source(source, tmp_path, names=names, mirror=server.url, retries=0)
    assert [(f["name"], f["status"]) for f in manifest["files"]] == [
        (names[0], "downloaded"),
        (names[1], "missing"),
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "00000001_00025000.sdf.gz",
        "fetch-manifest.json",
    ]


def test_published_sizes_and_the_dry_run_plan(capsys):
    from lamm.cli import main
    from lamm.data.fetch import fetch_plan, parse_size
    from lamm.data.sources import load_source

    assert parse_size("1.7G (8.2G unpacked)") == pytest.approx((1.7e9, 8.2e9))
    assert parse_size("225G (1.1T unpacked), 133,934,018 frames") == pytest.approx((225e9, 1.1e12))
    assert parse_size("344M") == (pytest.approx(344e6), None)
    assert parse_size("about 9.6M frames, ~10k reactions") == (None, None)  # a count, not a size
    assert parse_size(None) == (None, None)
    plan = fetch_plan(load_source("oc20_s2ef"))
    assert [f["name"] for f in plan["files"]] == ["s2ef_train_all.tar", "s2ef_val_id.tar"]
    assert plan["download_bytes"] == pytest.approx(225e9 + 1.7e9)
    assert plan["disk_bytes"] == pytest.approx(
        225e9 + 1.7e9 + 1.1e12 + 8.3e9
    )  # archives kept beside what they unpack to
    assert main(["data", "fetch", "oc20_s2ef", "--dest", "unused", "--dry-run"]) == 0
    out = capsys.readouterr()
    assert "s2ef_train_all.tar\t225G" in out.out and "disk up to 1.3 TB" in out.err
    assert json.loads(out.out.strip().splitlines()[-1])["download_bytes"] == pytest.approx(226.7e9)
