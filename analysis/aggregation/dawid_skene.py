"""Dawid-Skene: labels and per-worker confusion matrices by EM, through crowd-kit.

A thin attrs wrapper of ``crowdkit.aggregation.DawidSkene`` that adds each worker's accuracy
(the diagonal of the worker's confusion matrix weighted by the label priors) and the posterior
of the chosen label. Input is the long ``task, worker, label`` table.
"""
from __future__ import annotations

import warnings

import attrs
import numpy as np
import pandas as pd

from analysis.aggregation.majority_vote import check_answers

__all__ = ["DawidSkene"]


@attrs.define
class DawidSkene:
    """Dawid & Skene (1979) EM aggregation with per-worker confusion matrices."""

    n_iter: int = 100
    """Most EM iterations."""

    tol: float = 1e-5
    """Stop when the evidence lower bound per answer improves by less than this."""

    labels_: pd.Series = attrs.field(init=False)
    probas_: pd.DataFrame = attrs.field(init=False)
    errors_: pd.DataFrame = attrs.field(init=False)
    priors_: pd.Series = attrs.field(init=False)
    worker_accuracy_: pd.Series = attrs.field(init=False)
    confidence_: pd.Series = attrs.field(init=False)

    def fit(self, answers: pd.DataFrame) -> "DawidSkene":
        # deferred: loads crowd-kit
        from crowdkit.aggregation import DawidSkene as CrowdKitDawidSkene

        data = check_answers(answers).dropna(subset=["label"])
        if data.empty:
            self.labels_ = pd.Series(dtype=object, name="agg_label")
            self.probas_ = pd.DataFrame()
            self.errors_ = pd.DataFrame()
            self.priors_ = pd.Series(dtype=float)
            self.worker_accuracy_ = pd.Series(dtype=float, name="ds_accuracy")
            self.confidence_ = pd.Series(dtype=float, name="ds_probability")
            return self
        with warnings.catch_warnings():  # crowd-kit 1.4 uses pandas keywords that pandas 3 deprecates
            warnings.simplefilter("ignore", category=DeprecationWarning)
            warnings.simplefilter("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", message=".*(inplace|copy) keyword.*")
            model = CrowdKitDawidSkene(n_iter=self.n_iter, tol=self.tol).fit(data)
        self.labels_ = model.labels_
        self.probas_ = model.probas_
        self.errors_ = model.errors_
        self.priors_ = model.priors_
        self.confidence_ = model.probas_.max(axis=1).rename("ds_probability")
        self.worker_accuracy_ = worker_accuracy(model.errors_, model.priors_)
        return self

    def fit_predict(self, answers: pd.DataFrame) -> pd.Series:
        return self.fit(answers).labels_


def worker_accuracy(errors: pd.DataFrame, priors: pd.Series) -> pd.Series:
    """P(worker answers the true label) = sum over labels of prior(l) * errors[worker, l, l].

    ``errors`` is crowd-kit's frame indexed by (worker, observed label) with a column per true label.
    """
    labels = list(errors.columns)
    observed = errors.index.get_level_values(1)
    diagonal = np.zeros(len(errors))
    for label in labels:
        diagonal += np.where(observed == label, errors[label].to_numpy() * float(priors.get(label, 0.0)), 0.0)
    per_worker = pd.Series(diagonal, index=errors.index.get_level_values(0)).groupby(level=0).sum()
    per_worker.index.name = "worker"
    return per_worker.rename("ds_accuracy")
