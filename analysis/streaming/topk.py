"""Streaming top-k per (group, feature): the ``pool`` highest-valued images of every group and column.

Images arrive in batches with a group each (a class: predicted or labelled) and a value per
column (a feature).  Only the ``pool`` best per (group, column) are kept, so memory is bounded
by groups x pool x columns whatever the number of images.  Order: value descending, then
dataset index ascending, a total order, so merging shards in any grouping or order gives the
same result.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import torch


def _select(values: torch.Tensor, indices: torch.Tensor, pool: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Along dim 1 of (G, rows, columns): the ``pool`` best rows, highest value first, ties to the lower index."""
    by_index = indices.argsort(dim=1, stable=True)
    values, indices = values.gather(1, by_index), indices.gather(1, by_index)
    order = values.sort(dim=1, descending=True, stable=True).indices[:, :pool]
    return values.gather(1, order), indices.gather(1, order)


class GroupedTopK:
    """The top-``pool`` rows per group and column, merged batch by batch.

    Parameters
    ----------
    pool : int
        Rows kept per (group, column).
    columns : mapping of int to sequence of int, optional
        Track only these columns of each group (e.g. a class's chosen features); all otherwise.
    batched : bool, optional
        Sort all groups of a batch at once (padded) rather than one by one; default: on CUDA only.
        Both give the same result.
    """

    def __init__(self, pool: int, columns: Mapping[int, Iterable[int]] | None = None,
                 batched: bool | None = None) -> None:
        if pool < 1:
            raise ValueError(f"pool must be at least 1, got {pool}")
        self.pool = int(pool)
        self.columns = None if columns is None else {int(g): torch.as_tensor(list(c), dtype=torch.long)
                                                     for g, c in columns.items()}
        self.batched = batched
        self.groups: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    @property
    def nbytes(self) -> int:
        return sum(v.nbytes + i.nbytes for v, i in self.groups.values())

    def _merge_groups(self, pending: Mapping[int, list[tuple[torch.Tensor, torch.Tensor]]]) -> None:
        """Merge candidate rows into their groups.

        On CUDA all groups go through one batched sort (rows padded to the longest group), as one
        kernel per group would dominate; on the CPU each group is sorted alone (no padding).
        """
        if not pending:
            return
        names = sorted(pending)
        stacks = [list(pending[g]) + ([self.groups[g]] if g in self.groups else []) for g in names]
        first = stacks[0][0][0]
        if not (self.batched if self.batched is not None else first.device.type == "cuda"):
            for group, stack in zip(names, stacks):
                values, indices = _select(torch.cat([v for v, _ in stack])[None], torch.cat([i for _,
                                                                                             i in stack])[None],
                                          self.pool)
                self.groups[group] = (values[0], indices[0])
            return
        lengths = [sum(len(v) for v, _ in stack) for stack in stacks]
        values = torch.full((len(names), max(lengths), first.shape[1]), -torch.inf, device=first.device)
        indices = torch.full(values.shape, torch.iinfo(torch.int64).max, dtype=torch.int64, device=first.device)
        for row, stack in enumerate(stacks):
            offset = 0
            for v, i in stack:
                values[row, offset:offset + len(v)] = v
                indices[row, offset:offset + len(v)] = i
                offset += len(v)
        values, indices = _select(values, indices, self.pool)
        for row, (group, length) in enumerate(zip(names, lengths)):
            keep = min(length, self.pool)
            self.groups[group] = (values[row, :keep], indices[row, :keep])

    def add(self, groups: torch.Tensor, values: torch.Tensor, indices: torch.Tensor) -> "GroupedTopK":
        """Merge a batch: ``groups`` (B,), ``values`` (B, D), dataset ``indices`` (B,); kept on ``values``' device."""
        values = values.detach().float()
        groups, indices = groups.to(values.device), indices.to(values.device).long()
        order = groups.argsort(stable=True)
        names, counts = groups[order].unique_consecutive(return_counts=True)
        pending = {}
        for group, rows in zip(names.tolist(), order.split(counts.tolist())):
            if self.columns is not None and group not in self.columns:
                continue
            v = values[rows] if self.columns is None else values[rows][:, self.columns[group].to(values.device)]
            pending[group] = [(v, indices[rows][:, None].expand_as(v))]
        self._merge_groups(pending)
        return self

    def merge(self, others: Iterable["GroupedTopK"]) -> "GroupedTopK":
        """Merge other states (of the same pool and columns) into this one."""
        pending: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        for other in others:
            if other.pool != self.pool:
                raise ValueError(f"cannot merge top-k states of pool {other.pool} and {self.pool}")
            for group, pair in other.groups.items():
                pending.setdefault(group, []).append(pair)
        self._merge_groups(pending)
        return self

    def column(self, group: int, feature: int) -> int:
        if self.columns is None:
            return feature
        matches = (self.columns.get(group, torch.zeros(0)) == feature).nonzero()
        if len(matches) == 0:
            raise KeyError(f"feature {feature} of group {group} was not tracked")
        return int(matches[0, 0])

    def top(self, group: int, feature: int, k: int) -> np.ndarray:
        """Dataset indices of the ``k`` best images of ``group`` by ``feature``, best first (fewer if short)."""
        if group not in self.groups:
            return np.zeros(0, np.int64)
        return self.groups[group][1][:k, self.column(group, feature)].cpu().numpy().copy()

    def count(self, group: int) -> int:
        """Rows kept for ``group`` (``min(pool, images in the group)``)."""
        return len(self.groups[group][0]) if group in self.groups else 0

    # -- arrays ------------------------------------------------------------------------------
    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        names = sorted(self.groups)
        arrays = {
            f"{prefix}pool": np.array(self.pool, np.int64),
            f"{prefix}groups": np.array(names, np.int64),
            f"{prefix}counts": np.array([self.count(g) for g in names], np.int64),
        }
        width = next(iter(self.groups.values()))[0].shape[1] if self.groups else 0
        arrays[f"{prefix}values"] = (torch.cat([self.groups[g][0] for g in names]).cpu().numpy() if names
                                     else np.zeros((0, width), np.float32))
        arrays[f"{prefix}indices"] = (torch.cat([self.groups[g][1] for g in names]).cpu().numpy() if names
                                      else np.zeros((0, width), np.int64))
        if self.columns is not None:
            arrays[f"{prefix}column_groups"] = np.array(sorted(self.columns), np.int64)
            arrays[f"{prefix}columns"] = np.stack([self.columns[g].numpy() for g in sorted(self.columns)]) \
                if self.columns else np.zeros((0, 0), np.int64)
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], prefix: str) -> "GroupedTopK":
        columns = None
        if f"{prefix}columns" in arrays:
            columns = dict(zip(arrays[f"{prefix}column_groups"].tolist(), arrays[f"{prefix}columns"].tolist()))
        state = cls(int(arrays[f"{prefix}pool"]), columns)
        values = torch.from_numpy(np.array(arrays[f"{prefix}values"], np.float32))
        indices = torch.from_numpy(np.array(arrays[f"{prefix}indices"], np.int64))
        offset = 0
        for group, count in zip(arrays[f"{prefix}groups"].tolist(), arrays[f"{prefix}counts"].tolist()):
            state.groups[group] = (values[offset:offset + count], indices[offset:offset + count])
            offset += count
        return state
