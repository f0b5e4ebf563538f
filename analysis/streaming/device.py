"""Which device a pass runs on, and mixed precision for forward-only passes."""
from __future__ import annotations

import contextlib
import os

import torch

#: Environment variable naming the device of evidence passes (``cpu``, ``cuda``, ``cuda:1`` ...).
DEVICE_ENV = "SALIENT_DEVICE"


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else ``$SALIENT_DEVICE``, else ``cuda`` when available, else ``cpu``.

    Raises
    ------
    ValueError
        For a CUDA device on a machine without CUDA, or a name torch does not know.
    """
    name = device if device is not None else os.environ.get(DEVICE_ENV) or (
        "cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {name!r} (from {'the argument' if device is not None else DEVICE_ENV}): "
                         f"{exc}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} asked for, but torch sees no CUDA device on this machine")
    return resolved


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """Automatic mixed precision on ``device`` (float16 on CUDA, bfloat16 on CPU), or nothing."""
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)
