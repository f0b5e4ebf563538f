"""Early-stopping policies: after each answer, may a task stop collecting answers, and with which label?

Answers are votes for labels: an answer value votes for the label a crowd unanimous on it would get
(feature panels: ``main_object`` votes *core*, ``separate_object`` and ``background`` vote *spurious*).
The label of a task with all its answers (the *full-answer label*) is the kind's own aggregation; a
:class:`VoteSpace` evaluates it on vote counts. Policies (all refuse to stop before ``min_answers``
answers or on a tie of the leading labels; :class:`Settled` needs no such guard):

* :class:`Predictive` (the default, what live studies use): stop once the full-answer label is predicted
  with probability >= ``confidence``: the true label's posterior from the answers so far, each weighted by
  its worker's confusion matrix (:mod:`analysis.aggregation.reliability`), then every way the remaining
  answers could go, weighted by the crowd's mean confusion. This is the "will the rest change the result"
  test of CDAS's online early termination (Liu et al., VLDB 2012) with Dawid-Skene workers; ``confidence=1``
  is :class:`Settled`.
* :class:`Settled`: stop once no way the remaining answers could go changes the label (exact).
* :class:`Bayes`: stop once the true label's posterior reaches ``threshold`` (Welinder & Perona's online
  labelling, CVPR-W 2010); the label is the most probable true label, not a prediction of the full one.
* :class:`Margin`: stop once the leading label is ``lead`` votes ahead, workers unweighted (the vote-lead
  stopping rules of Abraham et al., SIGIR 2016, for anonymous workers).
"""
from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Hashable, Mapping, Sequence

import attrs
import numpy as np
import pandas as pd

from analysis.aggregation.reliability import CrowdModel

__all__ = ["VoteSpace", "Decision", "Predictive", "Settled", "Bayes", "Margin", "POLICIES", "ReplayResult", "replay"]


class VoteSpace:
    """Answer values as votes for labels, and the full-answer label of vote counts, from an aggregation rule.

    ``aggregate`` maps a long ``task, worker, label`` table (answer values) to a table with ``label``
    (and optionally ``tie``) per task, as the task kinds' aggregation does; ``wanted`` is the number of
    answers a task is meant to get. The full-answer label is taken to depend on the answers only through
    the votes they give (true of the kinds' threshold and majority rules).
    """

    def __init__(self, values: Sequence[str], aggregate: Callable[[pd.DataFrame], pd.DataFrame], wanted: int):
        self.values, self.aggregate, self.wanted = list(values), aggregate, int(wanted)
        unanimous = self.labels_of([[v] * self.wanted for v in self.values])
        self.labels: tuple[str, ...] = tuple(dict.fromkeys(str(x) for x in unanimous if x is not None))
        #: answer value -> index of the label it votes for (values no unanimous crowd labels do not vote)
        self.vote = {v: self.labels.index(str(x)) for v, x in zip(self.values, unanimous) if x is not None}
        self._example = {i: v for v, i in reversed(list(self.vote.items()))}  # one answer value per label
        self._outcomes: dict[int, dict[tuple[int, ...], str | None]] = {}

    def labels_of(self, tasks: list[list[str]]) -> list[str | None]:
        """The aggregation's label of each list of answer values (``None``: undecided or a tie)."""
        if not tasks:
            return []
        rows = [(i, f"w{j}", value) for i, values in enumerate(tasks) for j, value in enumerate(values)]
        table = self.aggregate(pd.DataFrame(rows, columns=["task", "worker", "label"]))
        out = []
        for i in range(len(tasks)):
            if i not in table.index or pd.isna(table.at[i, "label"]):
                out.append(None)
            elif "tie" in table.columns and bool(table.at[i, "tie"]):
                out.append(None)
            else:
                out.append(str(table.at[i, "label"]))
        return out

    def counts(self, values: Sequence[str]) -> np.ndarray:
        """Votes per label of these answer values."""
        counts = np.zeros(len(self.labels), dtype=np.int64)
        for value in values:
            if value in self.vote:
                counts[self.vote[value]] += 1
        return counts

    def outcome(self, counts: Sequence[int]) -> str | None:
        """The full-answer label of these vote counts (``None``: undecided or a tie)."""
        total = int(sum(counts))
        if total not in self._outcomes:
            every = compositions(total, len(self.labels))
            labels = self.labels_of([[self._example[i] for i, n in enumerate(c) for _ in range(n)] for c in every])
            self._outcomes[total] = dict(zip(every, labels))
        return self._outcomes[total][tuple(int(c) for c in counts)]


@functools.lru_cache(maxsize=256)
def compositions(total: int, parts: int) -> tuple[tuple[int, ...], ...]:
    """Every way ``total`` votes can fall into ``parts`` labels, as count vectors."""
    out = []
    for combo in itertools.combinations_with_replacement(range(parts), total):
        out.append(tuple(np.bincount(np.asarray(combo, dtype=np.int64), minlength=parts).tolist()))
    return tuple(out)


@attrs.frozen
class Decision:
    stop: bool
    label: str | None = None
    probability: float = float("nan")
    """The policy's confidence in ``label`` (1 when settled)."""


def _tied(counts: np.ndarray) -> bool:
    top = np.sort(counts)[::-1]
    return len(top) > 1 and top[0] == top[1]


def truth_posterior(space: VoteSpace, values: Sequence[str], workers: Sequence[Hashable],
                    model: CrowdModel) -> np.ndarray:
    """P(true label) given the answers so far, each weighted by its worker's confusion matrix."""
    log_post = np.log(model.prior).copy()
    for value, worker in zip(values, workers):
        if value in space.vote:
            log_post += np.log(model.of(worker)[:, space.vote[value]])
    post = np.exp(log_post - log_post.max())
    return post / post.sum()


def full_label_chances(space: VoteSpace, values: Sequence[str], workers: Sequence[Hashable], remaining: int,
                       model: CrowdModel) -> dict[str | None, float]:
    """P(full-answer label) over every way the ``remaining`` answers could vote, weighted by the crowd's model."""
    counts = space.counts(values)
    post = truth_posterior(space, values, workers, model)
    future = model.future
    chances: dict[str | None, float] = {}
    log_fact = math.lgamma(remaining + 1)
    for extra in compositions(remaining, len(space.labels)):
        coef = log_fact - sum(math.lgamma(n + 1) for n in extra)
        per_truth = np.exp(coef + np.log(future) @ np.asarray(extra, dtype=float))  # multinomial, per true label
        label = space.outcome(counts + np.asarray(extra))
        chances[label] = chances.get(label, 0.0) + float(post @ per_truth)
    return chances


@attrs.frozen
class Predictive:
    """Stop once the full-answer label is predicted with probability >= ``confidence``."""

    confidence: float = 0.975
    min_answers: int = 2
    name = "predictive"

    def decide(self, space: VoteSpace, values: Sequence[str], workers: Sequence[Hashable], remaining: int,
               model: CrowdModel) -> Decision:
        counts = space.counts(values)
        if remaining <= 0 or counts.sum() < self.min_answers or _tied(counts):
            return Decision(False)
        chances = full_label_chances(space, values, workers, remaining, model)
        label = max((k for k in chances if k is not None), key=chances.get, default=None)
        if label is None:
            return Decision(False)
        probability = chances[label]
        return Decision(probability >= self.confidence, label, probability)


@attrs.frozen
class Settled:
    """Stop once every way the remaining answers could go leaves the same full-answer label."""

    name = "settled"

    def decide(self, space: VoteSpace, values: Sequence[str], workers: Sequence[Hashable], remaining: int,
               model: CrowdModel) -> Decision:
        counts = space.counts(values)
        if remaining <= 0:
            return Decision(False)
        labels = {space.outcome(counts + np.asarray(extra)) for extra in compositions(remaining, len(space.labels))}
        if len(labels) != 1 or None in labels:
            return Decision(False)
        return Decision(True, labels.pop(), 1.0)


@attrs.frozen
class Bayes:
    """Stop once the true label's posterior reaches ``threshold``; its label is that most probable true label."""

    threshold: float = 0.99
    min_answers: int = 2
    name = "bayes"

    def decide(self, space: VoteSpace, values: Sequence[str], workers: Sequence[Hashable], remaining: int,
               model: CrowdModel) -> Decision:
        counts = space.counts(values)
        if remaining <= 0 or counts.sum() < self.min_answers or _tied(counts):
            return Decision(False)
        post = truth_posterior(space, values, workers, model)
        best = int(np.argmax(post))
        return Decision(bool(post[best] >= self.threshold), space.labels[best], float(post[best]))


@attrs.frozen
class Margin:
    """Stop once the leading label is ``lead`` votes ahead of the next, workers unweighted."""

    lead: int = 2
    min_answers: int = 2
    name = "margin"

    def decide(self, space: VoteSpace, values: Sequence[str], workers: Sequence[Hashable], remaining: int,
               model: CrowdModel) -> Decision:
        counts = space.counts(values)
        if remaining <= 0 or counts.sum() < self.min_answers:
            return Decision(False)
        ordered = np.sort(counts)[::-1]
        ahead = ordered[0] - (ordered[1] if len(ordered) > 1 else 0)
        return Decision(bool(ahead >= self.lead), space.labels[int(np.argmax(counts))], float("nan"))


#: The policies by name; the first is the default.
POLICIES = {"predictive": Predictive, "settled": Settled, "bayes": Bayes, "margin": Margin}


@attrs.frozen
class ReplayResult:
    saved: float
    """Share of the answers the policy did not need."""
    agreement: float
    """Share of (task, order) cases whose label is the full-answer label."""
    cases: int
    accuracy: float = float("nan")
    """Share of cases whose label is the true one (when the truth is given)."""


def replay(space: VoteSpace, tasks: Sequence[tuple[Hashable, Sequence[str], Sequence[Hashable]]], policy,
           model: CrowdModel, orders: Sequence[Sequence[np.ndarray]],
           truth: Mapping[Hashable, str] | None = None) -> ReplayResult:
    """Replay each task's answers in the given orders (``orders[i]``: permutations of task ``i``'s answers),
    each task's own answers left out of the crowd model (``CrowdModel.without``), as live studies do.

    A case agrees when the policy's label is the full-answer label; a task whose full label is undecided
    (``None``) agrees only when the policy used every answer.
    """
    used = total = agree = cases = right = 0
    fulls = space.labels_of([list(values) for _, values, _ in tasks])
    for (task, values, workers), perms, full in zip(tasks, orders, fulls):
        own = model.without(task)
        for order in perms:
            vals, who = [values[i] for i in order], [workers[i] for i in order]
            n, label = len(vals), full
            for k in range(1, n):
                decision = policy.decide(space, vals[:k], who[:k], n - k, own)
                if decision.stop:
                    n, label = k, decision.label
                    break
            used, total, cases = used + n, total + len(vals), cases + 1
            agree += (n == len(vals)) if full is None else (label == full)
            right += truth is not None and label == truth.get(task)
    return ReplayResult(saved=1 - used / total if total else 0.0, agreement=agree / cases if cases else 1.0,
                        cases=cases, accuracy=right / cases if truth is not None and cases else float("nan"))
