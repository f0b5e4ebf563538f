"""Worker reliability for early stopping: smoothed Dawid-Skene confusion matrices over label indices, gold clamped.

Dawid & Skene (1979) by EM, in numpy so that a live study can refit it cheaply: each worker has a
confusion matrix ``P(vote j | true label t)`` with a Dirichlet prior worth ``prior_weight`` answers per row,
so that a worker with few answers stays near the prior's centre. The centre is the crowd's pooled confusion
(empirical Bayes, itself shrunk towards ``prior_accuracy`` on the diagonal and the rest spread evenly), or
that fixed matrix with ``pooled=False``. Tasks whose label is known (gold) keep it through the EM.
Votes are label indices ``0..L-1``.
"""
from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import attrs
import numpy as np
import pandas as pd

__all__ = ["CrowdModel", "fit_crowd_model", "prior_confusion"]

#: Every vote keeps at least this chance of any label (no worker is ever taken as certain).
FLOOR = 0.01


def prior_confusion(n_labels: int, accuracy: float) -> np.ndarray:
    """The confusion matrix of a worker right with probability ``accuracy``, wrong evenly otherwise."""
    if n_labels < 2:
        return np.ones((1, 1))
    off = (1.0 - accuracy) / (n_labels - 1)
    return np.full((n_labels, n_labels), off) + np.eye(n_labels) * (accuracy - off)


def _normalise(counts: np.ndarray) -> np.ndarray:
    """Rows of counts as probabilities, floored at :data:`FLOOR`."""
    L = counts.shape[-1]
    return (1 - FLOOR * L) * counts / counts.sum(axis=-1, keepdims=True) + FLOOR


def _centre(crowd: np.ndarray, prior_accuracy: float, prior_weight: float, pooled: bool) -> np.ndarray:
    """The prior's centre: the pooled confusion of ``crowd`` (summed raw counts) shrunk to the fixed prior."""
    fixed = prior_confusion(crowd.shape[0], prior_accuracy)
    if not pooled:
        return fixed
    pooled_counts = crowd + fixed * prior_weight
    return pooled_counts / pooled_counts.sum(axis=1, keepdims=True)


@attrs.frozen
class CrowdModel:
    """What the stopping policies know of a crowd: each worker's confusion, the confusion of the answers
    still to come (the answer-weighted mean of the workers seen) and the label prior, with what the fit
    counted of each task so that a task's own answers can be left out (:meth:`without`)."""

    n_labels: int
    prior_accuracy: float = 0.8
    prior_weight: float = 2.0
    pooled: bool = True
    counts: Mapping[Hashable, np.ndarray] = attrs.field(factory=dict)
    """Per worker: ``P(task is t)`` summed at ``[t, v]`` over their votes ``v``."""
    posterior: Mapping[Hashable, np.ndarray] = attrs.field(factory=dict)
    """Per task of the fit: P(true label)."""
    votes: Mapping[Hashable, tuple[tuple[Hashable, int], ...]] = attrs.field(factory=dict)
    """Per task of the fit: its ``(worker, vote)`` pairs."""
    label_sum: np.ndarray | None = None
    """Sum of the posteriors of the tasks the model counts (all of ``posterior`` when None)."""
    n_tasks: int | None = None
    centre: np.ndarray = attrs.field(init=False)
    confusion: dict = attrs.field(init=False)
    future: np.ndarray = attrs.field(init=False)
    prior: np.ndarray = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        L = self.n_labels
        crowd = sum(self.counts.values(), np.zeros((L, L)))
        centre = _centre(crowd, self.prior_accuracy, self.prior_weight, self.pooled)
        confusion = {w: _normalise(c + centre * self.prior_weight) for w, c in self.counts.items()}
        total = crowd.sum()
        future = (sum(c.sum() * confusion[w] for w, c in self.counts.items()) / total if total > 1e-9
                  else _normalise(centre))
        label_sum, n_tasks = self._label_totals()
        object.__setattr__(self, "centre", centre)
        object.__setattr__(self, "confusion", confusion)
        object.__setattr__(self, "future", future)
        object.__setattr__(self, "prior", (label_sum + 1.0) / (n_tasks + L))

    def _label_totals(self) -> tuple[np.ndarray, int]:
        """The summed posteriors and the number of the tasks the model counts."""
        if self.label_sum is not None and self.n_tasks is not None:
            return self.label_sum, self.n_tasks
        return sum(self.posterior.values(), np.zeros(self.n_labels)), len(self.posterior)

    def of(self, worker: Hashable) -> np.ndarray:
        """The worker's confusion matrix (the prior's centre for a worker not seen yet)."""
        found = self.confusion.get(worker)
        return found if found is not None else _normalise(self.centre)

    def accuracy(self) -> pd.Series:
        """Each worker's chance of voting for the true label, under the label prior."""
        return pd.Series({w: float(np.diag(m) @ self.prior) for w, m in self.confusion.items()}, dtype=float)

    def without(self, task: Hashable) -> "CrowdModel":
        """The model with ``task``'s own answers taken out (of its workers, the crowd's centre and the label
        prior), so that a task's answers are not weighed by reliabilities they helped estimate."""
        post = self.posterior.get(task)
        if post is None:
            return self
        counts = dict(self.counts)
        for worker, vote in self.votes.get(task, ()):
            if worker in counts:
                counts[worker] = counts[worker].copy()
                counts[worker][:, vote] = np.maximum(counts[worker][:, vote] - post, 0.0)
        label_sum, n_tasks = self._label_totals()
        return attrs.evolve(self, counts=counts, label_sum=label_sum - post, n_tasks=n_tasks - 1)


def fit_crowd_model(tasks: Sequence, workers: Sequence, votes: Sequence[int], n_labels: int, *,
                    gold: Mapping[Hashable, int] | None = None, prior_accuracy: float = 0.8,
                    prior_weight: float = 2.0, pooled: bool = True, n_iter: int = 50, tol: float = 1e-5) -> CrowdModel:
    """Fit the confusion matrices by EM on ``(task, worker, vote)`` triples; ``gold`` maps task -> known label."""
    votes = np.asarray(votes, dtype=np.int64)
    settings = {"n_labels": n_labels, "prior_accuracy": prior_accuracy, "prior_weight": prior_weight, "pooled": pooled}
    if len(votes) == 0:
        return CrowdModel(**settings)
    if votes.min() < 0 or votes.max() >= n_labels:
        raise ValueError(f"votes must be label indices within 0..{n_labels - 1}")
    t_codes, t_index = pd.factorize(pd.Index(list(tasks)))
    w_codes, w_index = pd.factorize(pd.Index(list(workers)))
    n_tasks, n_workers, L = len(t_index), len(w_index), n_labels
    known = np.full(n_tasks, -1)
    for task, label in (gold or {}).items():
        where = t_index.get_indexer([task])[0]
        if where >= 0:
            known[where] = label
    clamped = known >= 0
    post = np.full((n_tasks, L), 1e-3)
    np.add.at(post, (t_codes, votes), 1.0)  # start from the vote shares
    post /= post.sum(axis=1, keepdims=True)
    post[clamped] = np.eye(L)[known[clamped]]
    confusion = np.zeros((n_workers, L, L))
    for _ in range(n_iter):
        counts = _counts(n_workers, L, w_codes, votes, post[t_codes])
        centre = _centre(counts.sum(axis=0), prior_accuracy, prior_weight, pooled)
        new = _normalise(counts + centre * prior_weight)
        label_prior = (post.sum(axis=0) + 1.0) / (n_tasks + L)
        log_lik = np.log(new[w_codes, :, votes])  # log P(vote | t), per answer and t
        log_post = np.log(label_prior) + np.stack(
            [np.bincount(t_codes, weights=log_lik[:, t], minlength=n_tasks) for t in range(L)], axis=1)
        post = np.exp(log_post - log_post.max(axis=1, keepdims=True))
        post /= post.sum(axis=1, keepdims=True)
        post[clamped] = np.eye(L)[known[clamped]]
        done = np.abs(new - confusion).max() < tol
        confusion = new
        if done:
            break
    counts = _counts(n_workers, L, w_codes, votes, post[t_codes])
    pairs: dict = {t: [] for t in t_index}
    for code, worker, vote in zip(t_codes, w_index[w_codes], votes.tolist()):
        pairs[t_index[code]].append((worker, vote))
    return CrowdModel(**settings, counts={w: counts[i] for i, w in enumerate(w_index)},
                      posterior={t: post[i] for i, t in enumerate(t_index)},
                      votes={t: tuple(p) for t, p in pairs.items()}, label_sum=post.sum(axis=0), n_tasks=n_tasks)


def _counts(n_workers: int, L: int, w_codes: np.ndarray, votes: np.ndarray, answer_post: np.ndarray) -> np.ndarray:
    """Per worker, P(task is t) summed at [t, v] over their votes v."""
    cell = w_codes * L + votes
    added = np.stack([np.bincount(cell, weights=answer_post[:, t], minlength=n_workers * L) for t in range(L)],
                     axis=1)  # (worker * L + vote, t)
    return added.reshape(n_workers, L, L).transpose(0, 2, 1)
