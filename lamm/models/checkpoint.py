"""The checkpoint format: written by training, read by the calculator, fine-tuning and analysis.

A torch file holding only tensors and plain Python values (loadable with weights_only=True):

    {"format": "lamm-checkpoint", "version": 1,
     "model_config": {...},          # the mapping `build_potential` takes (resolved)
     "heads": [names],               # one per output channel, in channel order
     "model": state_dict,            # of the Potential, normalizer statistics included
     "ema": state_dict,              # optional: the EMA weights, used for evaluation
     "statistics": [...],            # training: the referencing/normalization statistics per head
     "training": {...}}              # training: optimizer, scheduler, sampler position, RNG,
     step...
                                     # (what an exact resume needs; readers of the model ignore it)

Modules are rebuilt from `model_config` and `heads`, never unpickled.
"""

from __future__ import annotations

import os
import shutil
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from lamm.models.build import build_potential, resolve_model_config
from lamm.models.potential import Potential
from lamm.models.pretrained import resolve_checkpoint
from lamm.run_labels import epoch_label as epoch_label  # its old home: keep importing it

CHECKPOINT_FORMAT = "lamm-checkpoint"
CHECKPOINT_VERSION = 1


def checkpoint_dict(
    potential: Potential,
    model_config: Mapping[str, Any],
    ema_state: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """The required keys of a checkpoint for `potential`, built from `model_config`."""
    checkpoint: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model_config": resolve_model_config(model_config),
        "heads": list(potential.heads),
        "model": potential.state_dict(),
    }
    if ema_state is not None:
        checkpoint["ema"] = dict(ema_state)
    return checkpoint


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, a quota, an I/O error); the file it was
    to replace is untouched."""


def save_checkpoint(path: str | os.PathLike, checkpoint: Mapping[str, Any]) -> Path:
    """Write atomically (a temporary name in the same folder, flushed to disk, then renamed),
    stamped with the format and version. A failed write raises CheckpointWriteError with the
    reason and leaves the previous file at `path` as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial-{os.getpid()}")
    try:
        with open(partial, "wb") as handle:
            torch.save(
                {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **checkpoint}, handle
            )
            handle.flush()
            os.fsync(handle.fileno())  # on disk before it replaces the previous file
        os.replace(partial, path)
    except (OSError, RuntimeError) as err:  # torch reports a failed write as RuntimeError
        raise CheckpointWriteError(_write_failure(path, err)) from err
    finally:
        partial.unlink(missing_ok=True)
    return path


def _write_failure(path: Path, err: BaseException) -> str:
    cause: BaseException | None = err
    while cause is not None and not (isinstance(cause, OSError) and cause.errno):
        cause = cause.__cause__ or cause.__context__
    reason = os.strerror(cause.errno) if cause is not None else str(err).splitlines()[0]
    try:
        free = f"{shutil.disk_usage(path.parent).free / 2**30:.2f} GiB free there"
    except OSError:
        free = "free space unknown"
    kept = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} yet"
    return f"{path}: could not write the checkpoint: {reason} ({free}); {kept}"


def _plain_state(state: Mapping[str, Any]) -> dict[str, Any]:
    # torch.optim.swa_utils.AveragedModel keeps the model under "module." plus a counter.
    if "n_averaged" in state and all(
        key == "n_averaged" or key.startswith("module.") for key in state
    ):
        return {key[len("module.") :]: value for key, value in state.items() if key != "n_averaged"}
    return dict(state)


def check_archive(path: str | os.PathLike) -> None:
    """Raise ValueError if `path` is a torch archive that is cut short (no directory at its end:
    an interrupted copy or write) or corrupted (a record fails its CRC-32). torch.load reports
    the first with a page of advice and loads the second with wrong weights. Files that are no
    zip archive at all are left to torch.load (a legacy torch file, or not a checkpoint)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        if handle.read(4) != b"PK\x03\x04":
            return
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()  # reads every record and checks its CRC (as fast as torch.load)
    except zipfile.BadZipFile:
        raise ValueError(
            f"{path}: not a readable lamm checkpoint: the file is cut short ({size} bytes, "
            "the archive's "
            "directory at its end is missing); an interrupted copy or write? Copy it again"
        ) from None
    except (EOFError, OSError, zlib.error) as err:
        raise ValueError(
            f"{path}: not a readable lamm checkpoint: corrupted ({size} bytes): {err}"
        ) from None
    if bad is not None:
        raise ValueError(
            f"{path}: not a readable lamm checkpoint: corrupted ({size} bytes): its record "
            f"{bad} fails the CRC check"
        )


def load_checkpoint(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint (weights_only=True); errors name the file and the problem.

    `path` may also name a shipped model (`lamm.models.pretrained`, e.g. "lamm-mini")."""
    path = resolve_checkpoint(path)
    check_archive(path)
    try:
        checkpoint = torch.load(path, map_location=device, weights_only=True)
    except Exception as err:  # unpickling refused or a corrupt file
        raise ValueError(f"{path}: not a readable lamm checkpoint ({err})") from err
    if not isinstance(checkpoint, Mapping) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a lamm checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    if checkpoint.get("version") != CHECKPOINT_VERSION:
        raise ValueError(
            f"{path}: checkpoint version {checkpoint.get('version')!r}, this lamm reads "
            f"{CHECKPOINT_VERSION}"
        )
    missing = [key for key in ("model_config", "heads", "model") if key not in checkpoint]
    if missing:
        raise ValueError(f"{path}: checkpoint lacks {', '.join(missing)}")
    return dict(checkpoint)


def potential_from_checkpoint(
    checkpoint: Mapping[str, Any], use_ema: bool = True, source: str = "checkpoint"
) -> Potential:
    """Rebuild the potential and load its weights (the EMA weights when present and `use_ema`)."""
    heads: Sequence[str] = checkpoint["heads"]
    potential = build_potential(checkpoint["model_config"], heads)
    state = (
        checkpoint["ema"] if use_ema and checkpoint.get("ema") is not None else checkpoint["model"]
    )
    try:
        potential.load_state_dict(_plain_state(state), strict=True)
    except RuntimeError as err:
        raise ValueError(f"{source}: weights do not match its model_config: {err}") from err
    return potential


def load_potential(
    path: str | os.PathLike, device: str | torch.device = "cpu", use_ema: bool = True
) -> Potential:
    """`load_checkpoint` + `potential_from_checkpoint`, on `device`, in eval mode."""
    potential = potential_from_checkpoint(
        load_checkpoint(path, device), use_ema=use_ema, source=str(path)
    )
    return potential.to(device).eval()
