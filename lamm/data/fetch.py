"""Downloading and unpacking release files: resumable, checksum-verified, atomic.

`download(url, dest, md5=...)` streams into `<dest>.part`, resumes a partial file with an HTTP
`Range` request (restarting when the server ignores it), retries dropped connections from where
they stopped, checks the published MD5 (computed while downloading) and only then renames the
file to `dest`. So `dest` exists only when complete and verified; a `.part` file is a resumable
partial; a file with a wrong checksum is deleted (resuming cannot repair it).

`unpack(...)` extracts `.tar`/`.tar.gz`/`.zip` into a staging directory and moves the entries into
place when complete, or decompresses `.xz` to a temporary name and renames it; a marker file
records a finished unpack so a rerun skips it. `fetch_source` does both for the chosen files of a
source and writes `fetch-manifest.json` (the Snakemake rule's output) last.
"""

from __future__ import annotations

import hashlib
import json
import logging
import lzma
import math
import os
import re
import shutil
import tarfile
import time
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from lamm.data.sources import ReleaseFile, Source
from lamm.log import progress

log = logging.getLogger(__name__)

CHUNK = 2**20  # bytes per read from disk
BLOCK = 2**16  # bytes per read from the network: a broken connection loses at most one block
MANIFEST = "fetch-manifest.json"
_TIMEOUT = (30.0, 120.0)  # seconds to connect, seconds between bytes


class FetchError(RuntimeError):
    """A download that cannot complete; the message says why and what is left on disk."""

    def __init__(self, message: str, *, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found


def _hash_prefix(path: Path, size: int) -> Any:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        remaining = size
        while remaining:
            block = handle.read(min(CHUNK, remaining))
            if not block:
                break
            digest.update(block)
            remaining -= len(block)
    return digest


def _total_from_content_range(value: str | None) -> int | None:
    """`bytes 100-199/200` or `bytes */200` -> 200."""
    if not value or "/" not in value:
        return None
    total = value.rsplit("/", 1)[1].strip()
    return int(total) if total.isdigit() else None


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    md5: str | None = None,
    retries: int = 3,
    backoff_s: float = 2.0,
    session: requests.Session | None = None,
) -> Path:
    """Fetch `url` into `dest` (see the module docstring); returns `dest`."""
    dest = Path(dest)
    if dest.exists():
        return dest  # only ever renamed into place complete and verified
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    session = session or requests.Session()
    digest, hashed = None, -1
    connected = False  # whether any attempt reached the server
    for attempt in range(retries + 1):
        offset = part.stat().st_size if part.exists() else 0
        try:
            headers = {"Range": f"bytes={offset}-"} if offset else {}
            with session.get(url, headers=headers, stream=True, timeout=_TIMEOUT) as response:
                connected = True
                if response.status_code == 416 and offset:
                    if _total_from_content_range(response.headers.get("Content-Range")) == offset:
                        break  # the partial file is already complete
                    part.unlink()  # larger than the file on the server: start over
                    continue
                if response.status_code == 404:
                    raise FetchError(f"{url}: not found on the server (HTTP 404)", not_found=True)
                response.raise_for_status()
                offset, mode = _resumed_at(url, response, offset)
                if digest is None or hashed != offset:
                    digest = _hash_prefix(part, offset) if offset else hashlib.md5()
                    hashed = offset
                length = response.headers.get("Content-Length")
                total = offset + int(length) if length is not None else None
                blocks = math.ceil((total - offset) / BLOCK) if total is not None else None
                with open(part, mode) as handle:
                    for block in progress(
                        response.iter_content(BLOCK), desc=dest.name, total=blocks, unit="x64KiB"
                    ):
                        handle.write(block)
                        digest.update(block)
                        hashed += len(block)
                if total is not None and hashed != total:
                    raise requests.ConnectionError(
                        f"connection closed after {hashed} of {total} bytes"
                    )
                break
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
        ) as err:
            received = part.stat().st_size if part.exists() else 0
            if attempt == retries:
                raise _gave_up(url, dest, part, received, connected, err) from None
            log.warning(
                "%s: %s; retrying from byte %d (attempt %d of %d)",
                dest.name,
                err,
                received,
                attempt + 2,
                retries + 1,
            )
            time.sleep(backoff_s * 2**attempt)
        except requests.HTTPError as err:
            raise FetchError(f"{url}: {err}") from None
    if md5 is not None:
        _check_md5(part, dest, md5, digest if hashed == part.stat().st_size else None)
    os.replace(part, dest)
    return dest


def _resumed_at(url: str, response: requests.Response, offset: int) -> tuple[int, str]:
    """(offset, file mode) of a response to a request from byte `offset`: append where the
    server honoured the Range header, start over where it sent the whole file."""
    if not (offset and response.status_code == 206):
        return 0, "wb"
    content_range = response.headers.get("Content-Range")
    start = (content_range or "").removeprefix("bytes ").split("-")[0]
    if start != str(offset):
        raise FetchError(f"{url}: asked for bytes from {offset}, server sent {content_range}")
    return offset, "ab"


def _gave_up(
    url: str, dest: Path, part: Path, received: int, connected: bool, err: Exception
) -> FetchError:
    """The error once the retries are spent: no connection at all, or a broken-off download."""
    if not connected:
        kept = f"the partial file {part} is kept" if received else "nothing was written"
        host = urlsplit(url).netloc
        return FetchError(
            f"cannot reach {host} to download {dest.name}: {err}. Is the network reachable "
            f"from this machine? Rerun `lamm data fetch` when it is ({kept})."
        )
    return FetchError(
        f"download of {url} broke off after {received} bytes ({err}); the partial file {part} "
        "is kept and the next run resumes from it"
    )


def _check_md5(part: Path, dest: Path, md5: str, digest: Any | None) -> None:
    """Compare the MD5 of the complete `part` (`digest` when it hashed the whole file, else read
    again) with the published one; a mismatch deletes the file."""
    digest = digest or _hash_prefix(part, part.stat().st_size)
    if digest.hexdigest() != md5:
        part.unlink()
        raise FetchError(
            f"{dest.name}: MD5 {digest.hexdigest()} does not match the published {md5}; the "
            "download was deleted (run again to download it anew)"
        )


def _move_into(source: Path, target: Path) -> None:
    """Move `source` to `target`, merging into an existing directory."""
    if source.is_dir() and target.is_dir():
        for child in source.iterdir():
            _move_into(child, target / child.name)
        source.rmdir()
        return
    if target.is_dir():
        shutil.rmtree(target)
    os.replace(source, target)


def unpack(archive: Path, kind: str, dest_dir: Path, unpacked_name: str | None = None) -> None:
    """Unpack `archive` into `dest_dir` (kinds: none, tar, tar.gz, zip, xz) unless done before."""
    if kind == "none":
        return
    marker = dest_dir / f".{archive.name}.unpacked"
    if marker.exists():
        return
    if kind == "xz":
        if not unpacked_name:
            raise ValueError(f"{archive}: an xz file needs unpacked_name")
        target = dest_dir / unpacked_name
        tmp = dest_dir / f".{unpacked_name}.tmp-{os.getpid()}"
        try:
            with lzma.open(archive) as source, open(tmp, "wb") as sink:
                for block in progress(
                    iter(lambda: source.read(CHUNK), b""), desc=f"unpack {archive.name}", unit="MiB"
                ):
                    sink.write(block)
            os.replace(tmp, target)
        except lzma.LZMAError as err:
            raise FetchError(f"{archive}: not a valid .xz file ({err})") from None
        finally:
            tmp.unlink(missing_ok=True)
    elif kind in ("tar", "tar.gz", "zip"):
        staging = dest_dir / f".{archive.name}.unpacking"
        if staging.exists():
            shutil.rmtree(staging)  # left by an interrupted unpack
        staging.mkdir(parents=True)
        try:
            if kind == "zip":
                with zipfile.ZipFile(archive) as bundle:
                    for member in progress(
                        bundle.infolist(), desc=f"unpack {archive.name}", unit="files"
                    ):
                        bundle.extract(member, staging)
            else:
                with tarfile.open(archive, "r:gz" if kind == "tar.gz" else "r:") as bundle:
                    for member in progress(bundle, desc=f"unpack {archive.name}", unit="files"):
                        bundle.extract(member, staging, filter="data")
            for entry in sorted(staging.iterdir()):
                _move_into(entry, dest_dir / entry.name)
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as err:
            raise FetchError(
                f"{archive}: cannot be unpacked ({type(err).__name__}: {err})"
            ) from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    else:
        raise ValueError(f"unknown unpack kind {kind!r}")
    marker.write_text(json.dumps({"archive": archive.name, "kind": kind}) + "\n")


def mirrored(release: ReleaseFile, mirror: str | None) -> str:
    """The URL to download from: the release URL, or `<mirror>/<file name>`."""
    return release.url if mirror is None else f"{mirror.rstrip('/')}/{release.name}"


# "1.7G (8.2G unpacked)", "344M": a size is a number with a unit that ends the text or precedes
# its "(... unpacked)" note or a comma; "about 9.6M frames" is a count, not a size.
_SIZE = re.compile(
    r"(?:about\s+)?([0-9]+(?:\.[0-9]+)?)\s*([KMGT])B?(?=\s*(?:\(|,|;|$))", re.IGNORECASE
)
_UNPACKED = re.compile(r"\(\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT])B?\s+unpacked", re.IGNORECASE)
_UNIT = {"K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}


def parse_size(text: str | None) -> tuple[float | None, float | None]:
    """(download bytes, unpacked bytes) of a release file's published size text, e.g.
    "1.7G (8.2G unpacked)" -> (1.7e9, 8.2e9); None where the text states no such number."""
    if not text:
        return None, None
    download = _SIZE.match(text.strip())
    unpacked = _UNPACKED.search(text)
    return _bytes(download), _bytes(unpacked)


def _bytes(match: re.Match[str] | None) -> float | None:
    return float(match.group(1)) * _UNIT[match.group(2).upper()] if match else None


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def fetch_plan(source: Source, names: list[str] | None = None) -> dict[str, Any]:
    """What `fetch_source` would download: every chosen file with its URL and published size, and
    the totals (download, and disk while the archive and its unpacked files coexist), where the
    release publishes sizes; files without a size are counted in `unknown_size`."""
    files, download, unpacked, unknown = [], 0.0, 0.0, 0
    for release in source.release_files(names):
        size_bytes, unpacked_bytes = parse_size(release.size)
        files.append(
            {
                "name": release.name,
                "url": release.url,
                "size": release.size,
                "bytes": size_bytes,
                "unpacked_bytes": unpacked_bytes,
            }
        )
        if size_bytes is None:
            unknown += 1
            continue
        download += size_bytes
        unpacked += unpacked_bytes if unpacked_bytes is not None else size_bytes
    return {
        "source": source.name,
        "files": files,
        "download_bytes": download,
        "unpacked_bytes": unpacked,
        "disk_bytes": download + unpacked,
        "unknown_size": unknown,
    }


def plan_line(plan: Mapping[str, Any]) -> str:
    """One line for a log or a Snakemake message: the files and the totals."""
    names = ", ".join(
        f"{f['name']} ({f['size'] or 'size not published'})" for f in plan["files"][:6]
    )
    more = f" and {len(plan['files']) - 6} more" if len(plan["files"]) > 6 else ""
    unknown = (
        f"; {plan['unknown_size']} file(s) without a published size" if plan["unknown_size"] else ""
    )
    return (
        f"{plan['source']}: {len(plan['files'])} file(s): {names}{more}; download "
        f"{human_bytes(plan['download_bytes'])}, "
        f"disk up to {human_bytes(plan['disk_bytes'])} with archives kept{unknown}"
    )


def fetch_source(
    source: Source,
    dest: str | os.PathLike,
    *,
    names: list[str] | None = None,
    mirror: str | None = None,
    unpack_files: bool = True,
    remove_archives: bool = False,
    retries: int = 3,
    backoff_s: float = 2.0,
) -> dict[str, Any]:
    """Download (and unpack) the chosen release files of `source` into `dest`; returns the
    manifest."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    session = requests.Session()
    # Chunks a release may lack (PubChem3D's numbering has gaps): reported and skipped.
    skippable = {
        f.name
        for e in source.files
        if e.chunks is not None and e.chunks.missing_ok
        for f in e.expand()
    }
    entries = []
    for release in source.release_files(names):
        marker = dest / f".{release.name}.unpacked"
        entry = {
            "name": release.name,
            "url": release.url,
            "md5": release.md5,
            "unpack": release.unpack,
        }
        if release.unpack != "none" and marker.exists():
            entries.append(
                {**entry, "status": "unpacked"}
            )  # archive may have been removed after unpacking
            continue
        try:
            path = download(
                mirrored(release, mirror),
                dest / release.name,
                md5=release.md5,
                retries=retries,
                backoff_s=backoff_s,
                session=session,
            )
        except FetchError as err:
            if err.not_found and release.name in skippable:
                log.warning("%s: %s (chunk skipped; the release has gaps)", source.name, err)
                entries.append({**entry, "status": "missing"})
                continue
            raise
        if unpack_files:
            unpack(path, release.unpack, dest, release.unpacked_name)
            if remove_archives and release.unpack != "none":
                path.unlink()
        entries.append(
            {
                **entry,
                "status": "unpacked" if unpack_files and release.unpack != "none" else "downloaded",
            }
        )
    manifest = {"source": source.name, "files": entries}
    tmp = dest / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, dest / MANIFEST)
    return manifest
