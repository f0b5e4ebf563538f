"""Reading checkpoint files in the formats met in practice.

Supported layouts (they may be combined, e.g. a ``model`` dict holding a
DataParallel state dict):

* a plain ``state_dict`` (``{"conv1.weight": tensor, ...}``);
* a checkpoint dict with the weights under ``"state_dict"`` or ``"model"``
  (other entries such as ``epoch`` or ``optimizer`` are ignored, ``arch``,
  ``mean``/``std`` and ``class_names`` are kept as metadata);
* a :class:`torch.nn.DataParallel` state dict (keys prefixed ``module.``);
* the *robustness* library format used by the Salient ImageNet robust models:
  ``module.model.*`` holds the classifier, ``module.normalizer.new_mean`` /
  ``new_std`` the input normalization and ``module.attacker.*`` a copy used by
  the attacker, which is dropped.

The project's own checkpoints (:func:`save_checkpoint`) are dicts with a
``state_dict`` key plus ``arch``, ``arch_kwargs``, ``mean``, ``std``,
``class_names`` and ``input_size``.
"""
from __future__ import annotations

import io
import os
from collections import OrderedDict
from typing import Any, BinaryIO, Mapping, Sequence

import attrs
import torch
from torch import nn

CHECKPOINT_FORMAT = "salient-studio-checkpoint"
CHECKPOINT_VERSION = 1

#: Keys under which checkpoint dicts commonly keep the weights, in order of preference.
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "net")

_ROBUSTNESS_DROPPED = ("normalizer.", "attacker.")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or understood."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint whose keys or shapes do not fit the chosen architecture.

    Attributes
    ----------
    missing, unexpected : list of str
        Keys the model needs but the checkpoint lacks, and the reverse.
    mismatched : list of tuple
        ``(key, checkpoint_shape, model_shape)`` for keys present in both.
    """

    def __init__(self, arch: str, missing: Sequence[str], unexpected: Sequence[str],
                 mismatched: Sequence[tuple[str, tuple, tuple]], examples: int = 5) -> None:
        self.arch = arch
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing key(s) (e.g. {_examples(self.missing, examples)})")
        if self.unexpected:
            parts.append(
                f"{len(self.unexpected)} unexpected key(s) (e.g. {_examples(self.unexpected, examples)})"
            )
        if self.mismatched:
            shown = "; ".join(
                f"{key}: checkpoint {tuple(ckpt)} vs model {tuple(model)}"
                for key, ckpt, model in self.mismatched[:examples]
            )
            more = ", ..." if len(self.mismatched) > examples else ""
            parts.append(f"{len(self.mismatched)} shape mismatch(es) ({shown}{more})")
        super().__init__(
            f"checkpoint does not fit architecture {arch!r}: " + "; ".join(parts)
            + ". Is this the right architecture for this checkpoint?"
        )


def _examples(keys: Sequence[str], count: int) -> str:
    shown = ", ".join(repr(k) for k in keys[:count])
    return shown + (", ..." if len(keys) > count else "")


@attrs.define
class ParsedCheckpoint:
    """Weights and metadata recovered from a checkpoint.

    Attributes
    ----------
    state_dict : OrderedDict
        Weights with wrapper prefixes removed.
    layout : tuple of str
        What was unwrapped, e.g. ``("dict[model]", "robustness")``.
    mean, std : tuple of float or None
        Input normalization if the checkpoint records it.
    arch : str or None
        Architecture name if recorded.
    arch_kwargs : dict
        Factory arguments if recorded (demo ResNet width ...).
    class_names : list of str or None
        Class names if recorded.
    input_size : int or None
        Image side the model was trained at, if recorded.
    metadata : dict
        Any other JSON-like entries (metrics, training config).
    """

    state_dict: "OrderedDict[str, torch.Tensor]"
    layout: tuple[str, ...] = ()
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    arch: str | None = None
    arch_kwargs: dict = attrs.field(factory=dict)
    class_names: list[str] | None = None
    input_size: int | None = None
    metadata: dict = attrs.field(factory=dict)


def read_checkpoint(source: str | os.PathLike | BinaryIO | bytes | Mapping, *,
                    trusted: bool = False) -> ParsedCheckpoint:
    """Load a checkpoint from a path, file object, bytes or an in-memory dict.

    Parameters
    ----------
    source : path, file object, bytes or mapping
        The checkpoint.
    trusted : bool
        If False (default) the file is read with ``torch.load(weights_only=True)``,
        which refuses arbitrary pickled objects.  Pass True only for files from a
        trusted source that pickle whole modules.

    Returns
    -------
    ParsedCheckpoint

    Raises
    ------
    CheckpointError
        If the file cannot be read or holds no tensors.
    """
    if isinstance(source, Mapping):
        obj: Any = source
    else:
        if isinstance(source, (bytes, bytearray)):
            source = io.BytesIO(source)
        try:
            obj = torch.load(source, map_location="cpu", weights_only=not trusted)
        except FileNotFoundError:
            raise
        except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ...
            hint = ("" if trusted else
                    " If the file pickles whole objects and comes from a trusted source, "
                    "load it with trusted=True.")
            raise CheckpointError(f"cannot read checkpoint: {exc}.{hint}") from exc
    return parse_checkpoint(obj)


def parse_checkpoint(obj: Any) -> ParsedCheckpoint:
    """Unwrap a loaded checkpoint object into a :class:`ParsedCheckpoint`."""
    layout: list[str] = []
    meta: dict[str, Any] = {}
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
        layout.append("module")
    while isinstance(obj, Mapping) and not _looks_like_state_dict(obj):
        key = next((k for k in WRAPPER_KEYS if k in obj), None)
        if key is None:
            raise CheckpointError(
                "checkpoint is a dict without tensors and without any of the keys "
                f"{', '.join(WRAPPER_KEYS)}; found keys: {_examples(sorted(map(str, obj)), 10)}"
            )
        for k, v in obj.items():
            if k != key and k not in meta:
                meta[k] = v
        obj = obj[key]
        if isinstance(obj, nn.Module):
            obj = obj.state_dict()
        layout.append(f"dict[{key}]")
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"checkpoint holds no state dict (got {type(obj).__name__})")

    state = OrderedDict((str(k), v) for k, v in obj.items() if isinstance(v, torch.Tensor))
    mean = std = None
    if state and all(k.startswith("module.") for k in state):
        state = OrderedDict((k[len("module."):], v) for k, v in state.items())
        layout.append("dataparallel")
    if any(k.startswith(_ROBUSTNESS_DROPPED) for k in state) and any(k.startswith("model.") for k in state):
        mean_t = state.get("normalizer.new_mean")
        std_t = state.get("normalizer.new_std")
        if mean_t is not None and std_t is not None:
            mean = tuple(float(v) for v in mean_t.flatten())
            std = tuple(float(v) for v in std_t.flatten())
        state = OrderedDict((k[len("model."):], v) for k, v in state.items() if k.startswith("model."))
        layout.append("robustness")

    mean = _float_tuple(meta.get("mean")) or mean
    std = _float_tuple(meta.get("std")) or std
    class_names = meta.get("class_names")
    known = {"arch", "arch_kwargs", "mean", "std", "class_names", "input_size", "format", "version"}
    return ParsedCheckpoint(
        state_dict=state,
        layout=tuple(layout) or ("state_dict",),
        mean=mean,
        std=std,
        arch=meta.get("arch") if isinstance(meta.get("arch"), str) else None,
        arch_kwargs=dict(meta.get("arch_kwargs") or {}),
        class_names=list(class_names) if class_names is not None else None,
        input_size=int(meta["input_size"]) if meta.get("input_size") else None,
        metadata=_metadata(meta, known),
    )


def _metadata(meta: Mapping[str, Any], known: set[str]) -> dict:
    nested = meta.get("metadata")
    metadata = dict(nested) if isinstance(nested, Mapping) else {}
    for key, value in meta.items():
        if key not in known and key != "metadata" and isinstance(value, (str, int, float, bool)):
            metadata.setdefault(key, value)
    return metadata


def _looks_like_state_dict(obj: Mapping) -> bool:
    return bool(obj) and any(isinstance(v, torch.Tensor) for v in obj.values()) and not any(
        k in obj and not isinstance(obj[k], torch.Tensor) for k in WRAPPER_KEYS
    )


def _float_tuple(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        value = value.flatten().tolist()
    return tuple(float(v) for v in value)


def check_state_dict(model: nn.Module, state_dict: Mapping[str, torch.Tensor], arch: str) -> None:
    """Raise :class:`CheckpointMismatchError` unless ``state_dict`` fits ``model``.

    Missing ``num_batches_tracked`` buffers (absent from old checkpoints) are tolerated.
    """
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state_dict if k not in expected]
    mismatched = [
        (k, tuple(v.shape), tuple(expected[k].shape))
        for k, v in state_dict.items()
        if k in expected and tuple(v.shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or mismatched:
        raise CheckpointMismatchError(arch, missing, unexpected, mismatched)


def save_checkpoint(path: str | os.PathLike | BinaryIO, model: nn.Module, *, arch: str,
                    mean: Sequence[float], std: Sequence[float], class_names: Sequence[str],
                    arch_kwargs: Mapping[str, Any] | None = None, input_size: int | None = None,
                    metadata: Mapping[str, Any] | None = None) -> None:
    """Write a self-describing checkpoint readable by :func:`read_checkpoint`.

    Parameters
    ----------
    path : path or binary file
        Destination.
    model : nn.Module
        The bare classifier (without normalization).
    arch : str
        Name accepted by :func:`analysis.models.build_architecture`.
    mean, std : sequence of float
        Per-channel input normalization for [0, 1] images.
    class_names : sequence of str
        Names in output order.
    arch_kwargs : mapping, optional
        Extra factory arguments (e.g. ``{"width": 32}``).
    input_size : int, optional
        Square image side the model expects.
    metadata : mapping, optional
        JSON-like extras (metrics, training configuration).
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "arch": arch,
        "arch_kwargs": dict(arch_kwargs or {}),
        "state_dict": OrderedDict((k, v.detach().cpu()) for k, v in model.state_dict().items()),
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
        "class_names": [str(c) for c in class_names],
        "input_size": input_size,
        "metadata": dict(metadata or {}),
    }
    if isinstance(path, (str, os.PathLike)):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        tmp = f"{path}.tmp"
        torch.save(payload, tmp)
        os.replace(tmp, path)
    else:
        torch.save(payload, path)
