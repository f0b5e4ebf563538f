"""Shard-map: split a pass's image index into shards, run each through a DataLoader, merge, finish.

The same functions serve every runner: a Celery worker calls :func:`run_shard` for one shard and
stores ``partial.to_bytes()`` under :func:`shard_name`; the merge step calls :func:`merge` and
:func:`finish`.  :func:`run_pass` does all of it in this process (the platform's no-broker mode),
reusing shards already in a :class:`ShardStore`.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import attrs
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from analysis.datasets.indexed import IndexedImages, collate_indexed

from .device import autocast, resolve_device
from .partial import Partial
from .sources import cached_dataset, cached_handle
from .execution import Batch, Execution

if TYPE_CHECKING:  # annotations only: spec.PassSpec runs its shards with the functions here
    from .spec import PassSpec

Progress = Callable[[int, int, str], None]


@attrs.frozen
class Shard:
    """Positions ``start:stop`` of a pass's index."""

    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


def plan_shards(n: int, n_shards: int, align: int = 1) -> list[Shard]:
    """``n`` positions in at most ``n_shards`` contiguous shards whose bounds are multiples of ``align``.

    Aligning to the batch size makes every image meet the same batch neighbours whatever the
    shard count, so per-image results are bit-identical for 1 or many shards.  There are fewer
    shards than asked when ``n`` holds fewer than ``n_shards`` blocks of ``align``.
    """
    if n < 1 or n_shards < 1 or align < 1:
        raise ValueError(f"need n >= 1, n_shards >= 1 and align >= 1, got {n}, {n_shards}, {align}")
    blocks = -(-n // align)
    bounds = sorted({min(n, (i * blocks // n_shards) * align) for i in range(n_shards)} | {n})
    return [Shard(a, b) for a, b in zip(bounds, bounds[1:])]


def shard_name(spec, shard: Shard, digest: str | None = None) -> str:
    """Storage name of a shard's partial: ``<kind>/<spec digest>/<start>-<stop>.npz`` (a pass or panels)."""
    return f"{spec.kind}/{digest or spec.digest()}/{shard.start:010d}-{shard.stop:010d}.npz"


class ProgressSum:
    """One progress callback per shard, reported to ``progress`` as the sum over all shards."""

    def __init__(self, progress: Progress | None, totals: Sequence[int]) -> None:
        self.progress = progress
        self.totals = list(totals)
        self.done = [0] * len(self.totals)

    def shard(self, i: int) -> Progress:
        def report(done: int, total: int, message: str) -> None:
            self.done[i] = min(done, self.totals[i])
            if self.progress is not None:
                self.progress(sum(self.done), sum(self.totals), message)
        return report


def image_loader(dataset: Dataset, indices: np.ndarray, execution: Execution, device: torch.device) -> DataLoader:
    """Batches of :class:`IndexedImages` in index order; images decoded in ``execution.num_workers`` processes."""
    kwargs: dict[str, Any] = {}
    if execution.num_workers > 0:
        kwargs["worker_init_fn"] = _one_thread
        if execution.prefetch_factor is not None:
            kwargs["prefetch_factor"] = execution.prefetch_factor
    pin = execution.pin_memory if execution.pin_memory is not None else device.type == "cuda"
    return DataLoader(IndexedImages(dataset, indices), batch_size=execution.batch_size, shuffle=False,
                      num_workers=execution.num_workers, collate_fn=collate_indexed, pin_memory=pin, **kwargs)


def _one_thread(_worker_id: int) -> None:
    torch.set_num_threads(1)  # decoding workers must not compete with the model's threads


def run_shard(spec: PassSpec, shard: Shard, *, execution: Execution = Execution(), progress: Progress | None = None,
              handle=None, digest: str | None = None) -> Partial:
    """Run the pass over one shard and return its partial (``to_bytes()`` it to store it).

    ``handle`` overrides the model of ``spec`` (already on its device); ``digest`` saves
    recomputing :meth:`PassSpec.digest`.
    """
    stream = spec.make_pass()
    index = spec.index()
    if not 0 <= shard.start < shard.stop <= len(index):
        raise ValueError(f"shard {shard.start}:{shard.stop} is outside the pass's {len(index)} positions")
    device = resolve_device(execution.device)
    if execution.threads:
        torch.set_num_threads(execution.threads)
    handle = handle if handle is not None else cached_handle(spec.model, device)
    device = handle.device
    loader = image_loader(cached_dataset(spec.data), index[shard.start:shard.stop], execution, device)
    accumulator = stream.accumulator()
    skipped: list[torch.Tensor] = []
    done = 0
    grad = torch.no_grad() if stream.forward_only else contextlib.nullcontext()
    with grad:
        for item in loader:
            if len(item["skipped"]):
                skipped.append(item["skipped"])
            done += len(item["indices"]) + len(item["skipped"])
            if item["images"] is not None:
                batch = Batch(indices=item["indices"], images=item["images"].to(device, non_blocking=True),
                              labels=item["labels"].to(device, non_blocking=True))
                with autocast(device, spec.amp):
                    accumulator.add(handle, batch)
            if progress is not None:
                progress(done, len(shard), f"{spec.kind} pass: {done}/{len(shard)} images of shard "
                                           f"{shard.start}-{shard.stop}")
    arrays = accumulator.arrays()
    return Partial(kind=spec.kind, digest=digest or spec.digest(), start=shard.start, stop=shard.stop,
                   arrays=arrays, skipped=torch.cat(skipped).numpy() if skipped else np.zeros(0, np.int64))


def in_order(partials: Sequence[Partial]) -> list[Partial]:
    """Partials sorted by position; an error names any two that overlap or leave a gap."""
    ordered = sorted(partials, key=lambda p: p.start)
    for before, after in zip(ordered, ordered[1:]):
        if before.stop != after.start:
            problem = "overlap" if after.start < before.stop else "leave a gap"
            raise ValueError(f"shards {before.start}-{before.stop} and {after.start}-{after.stop} {problem}")
    return ordered


def merge(spec: PassSpec, partials: Sequence[Partial], digest: str | None = None) -> Partial:
    """One partial over the union of contiguous shards (given in any order)."""
    if not partials:
        raise ValueError("nothing to merge: no partials given")
    digest = digest or spec.digest()
    foreign = [p for p in partials if p.digest != digest or p.kind != spec.kind]
    if foreign:
        raise ValueError(f"{len(foreign)} partial(s) belong to another pass (kind {foreign[0].kind!r}, "
                         f"digest {foreign[0].digest[:12]}…) than {spec.kind!r} {digest[:12]}…")
    ordered = in_order(partials)
    stream = spec.make_pass()
    return Partial(kind=spec.kind, digest=digest, start=ordered[0].start, stop=ordered[-1].stop,
                   arrays=stream.combine([p.arrays for p in ordered if p.arrays]),
                   skipped=np.concatenate([p.skipped for p in ordered]).astype(np.int64))


def finish(spec: PassSpec, merged: Partial) -> Any:
    """The pass's result from a partial covering its whole index."""
    n = len(spec)
    if merged.start != 0 or merged.stop != n:
        raise ValueError(f"the merged shards cover positions {merged.start}-{merged.stop}, not all {n}")
    if not merged.arrays:
        raise ValueError(f"none of the {n} images of the {spec.kind!r} pass could be read")
    return spec.make_pass().finish(merged)


class ShardStore(Protocol):
    """Where finished shards are kept: ``get(name) -> bytes | None`` and ``put(name, bytes)``."""

    def get(self, name: str) -> bytes | None: ...

    def put(self, name: str, data: bytes) -> None: ...


class DirectoryShardStore:
    """Shard partials as files under ``root`` (written atomically)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def get(self, name: str) -> bytes | None:
        path = self.root / name
        return path.read_bytes() if path.is_file() else None

    def put(self, name: str, data: bytes) -> None:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as tmp:
            tmp.write(data)
        os.replace(tmp.name, path)


def run_work(work, n_shards: int = 1, *, execution: Execution = Execution(), progress: Progress | None = None,
             store: ShardStore | None = None, handle=None) -> Any:
    """Every shard of ``work`` (a :class:`PassSpec`, or any spec with its surface such as
    :class:`~analysis.streaming.panels.PanelsSpec`) in this process, reusing finished shards in ``store``.

    Each partial goes through its byte form, as it does between Celery tasks.  ``progress`` gets
    ``(units done, units in the work, message)`` summed over the shards.
    """
    digest = work.digest()
    shards = work.plan(n_shards, execution)
    summed = ProgressSum(progress, [len(s) for s in shards])
    partials = []
    for i, shard in enumerate(shards):
        name = shard_name(work, shard, digest)
        data = store.get(name) if store is not None else None
        if data is None:
            data = work.compute(shard, execution=execution, progress=summed.shard(i), handle=handle,
                                digest=digest).to_bytes()
            if store is not None:
                store.put(name, data)
        else:
            summed.shard(i)(len(shard), len(shard), f"{work.kind}: reused shard {shard.start}-{shard.stop}")
        partials.append(Partial.from_bytes(data))
    return work.result(partials, digest)


def run_pass(spec: PassSpec, n_shards: int = 1, *, execution: Execution = Execution(),
             progress: Progress | None = None, store: ShardStore | None = None, handle=None) -> Any:
    """Every shard of the pass in this process (finished shards in ``store`` are reused), merged and finished."""
    return run_work(spec, n_shards, execution=execution, progress=progress, store=store, handle=handle)
