"""`--device auto|cpu|cuda` for the commands a user runs by hand, and one line saying which device
is used (a user on a GPU node can tell whether the GPU is used)."""

from __future__ import annotations

import argparse
import logging

DEVICE_CHOICES = ("auto", "cpu", "cuda")
log = logging.getLogger(__name__)


def add_device_argument(parser: argparse.ArgumentParser, default: str | None = "auto") -> None:
    parser.add_argument(
        "--device",
        choices=DEVICE_CHOICES,
        default=default,
        help="auto: the GPU when CUDA is available, else the CPU; the device used is logged"
        + (" (default: auto)" if default == "auto" else " (default: the config's device)"),
    )


def resolve_device(name: str) -> str:
    """ "cpu" or "cuda" for `name` in DEVICE_CHOICES; "cuda" without CUDA is an error naming the
    fix."""
    import torch

    if name not in DEVICE_CHOICES:
        raise ValueError(f"device must be one of {', '.join(DEVICE_CHOICES)}, got {name!r}")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: CUDA is not available here; pass --device auto or cpu")
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def describe_device(device: object) -> str:
    """ "cuda:0 (NVIDIA H100 80GB HBM3)" or "cpu (2 threads)"."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def log_device(device: object, what: str) -> str:
    """Log and return the device line of a command."""
    line = describe_device(device)
    log.info("%s on %s", what, line)
    return line
