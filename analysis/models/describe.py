"""What loading a checkpoint found: classes, feature dimension, last conv map, layout — for a model registry."""
from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from typing import Any

import torch

from .checkpoints import CheckpointError, read_checkpoint
from .handle import FeatureMapsUnavailableError
from .loading import load_model

#: The checkpoint layouts a registry entry can declare, and the unwrapping step that shows each.
FORMAT_MARKERS = {"robustness": "robustness", "dataparallel": "dataparallel"}


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def describe_checkpoint(arch: str, path: str | os.PathLike, *, fmt: str = "auto", input_size: int | None = None,
                        mean: Sequence[float] | None = None, std: Sequence[float] | None = None) -> dict[str, Any]:
    """Load ``path`` as ``arch`` once and report what it holds; raises ``CheckpointError`` (or
    ``UnknownArchitectureError``, ``OSError``) with the loader's message when it does not load."""
    parsed = read_checkpoint(path)
    marker = FORMAT_MARKERS.get(fmt)
    if marker and marker not in parsed.layout:
        raise CheckpointError(f"the checkpoint is declared {fmt!r} but its layout is {' + '.join(parsed.layout)}")
    handle = load_model(arch, parsed, mean=mean, std=std, input_size=input_size)
    size = handle.input_size
    with torch.no_grad():
        try:
            out = handle.features_and_maps(torch.zeros(1, 3, size, size))
            maps = out.feature_maps
        except FeatureMapsUnavailableError:
            out, maps = None, None
    return {
        "num_classes": int(handle.num_classes), "feature_dim": int(handle.feature_dim),
        "conv_map": None if maps is None else [int(d) for d in maps.shape[1:]],
        "mean": [float(v) for v in handle.mean], "std": [float(v) for v in handle.std], "input_size": size,
        "layout": list(parsed.layout), "sha256": file_sha256(path),
    }
