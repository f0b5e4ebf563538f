"""What a pass computes (:class:`PassSpec`, hashed into a digest); how it runs is :mod:`.execution`.

A pass kind is a small class registered by name with :func:`register_pass`.  It turns one batch
into arrays (:meth:`StreamPass.batch`), combines arrays of consecutive position ranges
(:meth:`StreamPass.combine`; the same function merges batches within a shard and shards into
the whole) and reads the merged arrays into its result (:meth:`StreamPass.finish`).
"""
from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import attrs
import numpy as np

from .execution import Batch, Execution  # noqa: F401 - re-exported: analysis.streaming.spec.Batch
from .partial import Partial
from .shards import finish, merge, plan_shards, run_shard
from .sources import DataSource, ModelSource, cached_dataset, canonical_json

#: Bumped when a pass's arrays change meaning, so old shard artifacts are not reused.
FORMAT_VERSION = 1

_PASSES: dict[str, type["StreamPass"]] = {}


class Accumulator(ABC):
    """What a shard keeps while its batches stream by."""

    @abstractmethod
    def add(self, handle, batch: Batch) -> None:
        """Take one batch into account."""

    @abstractmethod
    def arrays(self) -> dict[str, np.ndarray]:
        """The shard's arrays (``{}`` when no image could be read)."""


class StreamPass(ABC):
    """A pass kind.  Subclasses are attrs classes whose fields are the pass's parameters.

    Per-image passes implement :meth:`batch` (their shard arrays are the batches concatenated by
    :meth:`combine`); summarising passes return their own :meth:`accumulator`.
    """

    name: ClassVar[str]

    @property
    def forward_only(self) -> bool:
        """No gradients needed: runs under ``torch.no_grad`` and may use mixed precision."""
        return True

    def batch(self, handle, batch: Batch) -> dict[str, np.ndarray]:
        """Arrays of one batch (per-image passes)."""
        raise NotImplementedError

    def accumulator(self) -> Accumulator:
        return _Concatenation(self)

    @abstractmethod
    def combine(self, parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Arrays of consecutive position ranges, in order -> arrays of their union."""

    @abstractmethod
    def finish(self, merged: Partial) -> Any:
        """The pass's result from the arrays over the whole index."""


class _Concatenation(Accumulator):
    def __init__(self, stream: StreamPass) -> None:
        self.stream = stream
        self.parts: list[dict[str, np.ndarray]] = []

    def add(self, handle, batch: Batch) -> None:
        self.parts.append(self.stream.batch(handle, batch))

    def arrays(self) -> dict[str, np.ndarray]:
        return self.stream.combine(self.parts) if self.parts else {}


class PerImagePass(StreamPass):
    """A pass keeping rows per image: ``indices``, ``labels`` and what :meth:`image_arrays` returns.

    Its result is ``result(**arrays, skipped=...)``, rows in pass order.
    """

    result: ClassVar[type]

    @abstractmethod
    def image_arrays(self, handle, batch: Batch) -> dict[str, np.ndarray]:
        """Per-image arrays of one batch (first axis: the batch)."""

    def batch(self, handle, batch: Batch) -> dict[str, np.ndarray]:
        return {"indices": batch.indices.numpy(), "labels": batch.labels.cpu().numpy(),
                **self.image_arrays(handle, batch)}

    def combine(self, parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        parts = [p for p in parts if p]
        if not parts:
            return {}
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}

    def finish(self, merged: Partial) -> Any:
        return self.result(**merged.arrays, skipped=merged.skipped)


def register_pass(name: str) -> Callable[[type[StreamPass]], type[StreamPass]]:
    """Class decorator: ``@register_pass("salient")``."""
    def decorate(cls: type[StreamPass]) -> type[StreamPass]:
        cls.name = name
        _PASSES[name] = cls
        return cls
    return decorate


def pass_kinds() -> list[str]:
    return sorted(_PASSES)


def make_pass(kind: str, params: Mapping[str, Any]) -> StreamPass:
    if kind not in _PASSES:
        raise ValueError(f"unknown pass kind {kind!r}; known: {', '.join(pass_kinds())}")
    cls = _PASSES[kind]
    known = {f.name for f in attrs.fields(cls)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for the {kind!r} pass; it takes {sorted(known)}")
    return cls(**params)


def _indices(value: Sequence[int] | np.ndarray | None) -> tuple[int, ...] | None:
    if value is None:
        return None
    array = np.asarray(value, dtype=np.int64).reshape(-1)
    if len(array) == 0:
        raise ValueError("indices must not be empty (use None for every image)")
    if (array < 0).any():
        raise ValueError("indices must be non-negative dataset indices")
    return tuple(array.tolist())


@attrs.frozen
class PassSpec:
    """One pass: which computation, on which model and images.

    Attributes
    ----------
    kind : str
        A registered pass kind (``salient``, ``predictions``, ``prototype_features``, ``lrp``).
    model : ModelSource
    data : DataSource
    params : dict
        The pass's parameters (see its class); JSON-able.
    indices : tuple of int or None
        Dataset indices to read, in this order; None = every image.
    amp : bool
        Automatic mixed precision (forward-only passes only).
    """

    kind: str
    model: ModelSource
    data: DataSource
    params: dict = attrs.field(factory=dict, converter=dict)
    indices: tuple[int, ...] | None = attrs.field(default=None, converter=_indices)
    amp: bool = False

    def __attrs_post_init__(self) -> None:
        stream = self.make_pass()  # checks the kind and the parameters
        if self.amp and not stream.forward_only:
            raise ValueError(f"the {self.kind!r} pass takes gradients; it cannot run with amp=True")

    def make_pass(self) -> StreamPass:
        return make_pass(self.kind, self.params)

    def plan(self, n_shards: int, execution: "Execution") -> list:
        """Shards aligned to the batch size (see :func:`analysis.streaming.plan_shards`)."""
        return plan_shards(len(self), n_shards, execution.batch_size)

    def compute(self, shard, *, execution: "Execution", progress=None, handle=None, digest: str | None = None):
        """One shard's :class:`Partial` (:func:`analysis.streaming.run_shard`)."""
        return run_shard(self, shard, execution=execution, progress=progress, handle=handle, digest=digest)

    def result(self, partials, digest: str | None = None) -> Any:
        """The pass's result from partials covering it (merged, then finished)."""
        return finish(self, merge(self, partials, digest))

    def index(self) -> np.ndarray:
        """Dataset indices of the pass, position by position."""
        if self.indices is not None:
            return np.asarray(self.indices, dtype=np.int64)
        return np.arange(len(cached_dataset(self.data)), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index())

    def digest(self) -> str:
        """SHA-256 naming the pass's content: kind, model and data fingerprints, parameters, indices, amp."""
        indices = None if self.indices is None else hashlib.sha256(
            np.asarray(self.indices, np.int64).tobytes()).hexdigest()
        blob = canonical_json({"version": FORMAT_VERSION, "kind": self.kind, "model": self.model.fingerprint(),
                               "data": self.data.fingerprint(), "params": self.params, "indices": indices,
                               "amp": self.amp})
        return hashlib.sha256(blob.encode()).hexdigest()

    def to_dict(self) -> dict:
        """JSON-able form (e.g. a Celery task argument); :meth:`from_dict` reads it back."""
        return {"kind": self.kind, "model": self.model.to_dict(), "data": self.data.to_dict(),
                "params": self.params, "indices": None if self.indices is None else list(self.indices),
                "amp": self.amp}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> "PassSpec":
        return cls(kind=value["kind"], model=ModelSource(**value["model"]), data=DataSource(**value["data"]),
                   params=value.get("params", {}), indices=value.get("indices"), amp=bool(value.get("amp", False)))
