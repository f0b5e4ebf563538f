"""How a pass runs (:class:`Execution`: batch size, loader processes, device), none of which changes its result,
and the :class:`Batch` a pass kind is given."""
from __future__ import annotations

import attrs
import torch


@attrs.frozen
class Batch:
    """One loader batch: dataset ``indices`` (B,), ``images`` (B, 3, H, W) in [0, 1] on the device, ``labels`` (B,)."""

    indices: torch.Tensor
    images: torch.Tensor
    labels: torch.Tensor


@attrs.frozen
class Execution:
    """How a shard runs; none of it changes the result's digest.

    Attributes
    ----------
    batch_size : int
        Images per forward pass (shards are aligned to it, see :func:`plan_shards`).
    num_workers : int
        DataLoader processes decoding images (0: decode in this process).
    device : str or None
        None: ``$SALIENT_DEVICE``, else CUDA when available, else CPU.
    pin_memory : bool or None
        None: pin on CUDA.
    prefetch_factor : int or None
        Batches each loader worker reads ahead (torch's default when None).
    threads : int or None
        ``torch.set_num_threads`` for this process (None: leave as is).
    """

    batch_size: int = 64
    num_workers: int = 0
    device: str | None = None
    pin_memory: bool | None = None
    prefetch_factor: int | None = None
    threads: int | None = None

    def __attrs_post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {self.num_workers}")
