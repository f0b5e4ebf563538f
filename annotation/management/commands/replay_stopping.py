"""``manage.py replay_stopping NAME [--policy P] [--orders N]``: replay a finished study's answers under a
stopping policy and print, per policy, the share of answers saved and the label agreement with the labels
of all the answers. The last line is ``saved=<fraction> agreement=<fraction>`` for the default policy.

Policies:

* ``settled`` (default; what live studies use, ``services.early_stop_check``): stop once no way the remaining
  answers could go changes the aggregated label (``analysis.aggregation.early_stopping.label_settled``).
* ``bayes``: stop once the posterior of the leading label reaches ``--threshold``, each answer weighted by
  its worker's reliability (a one-coin model: right with probability p, else any other value alike), p from
  the worker's agreement with Dawid-Skene labels of the whole study, shrunk towards 0.8 by 2 pseudo-answers.

Tasks without a label from all their answers count as agreeing only when the policy used every answer.
"""
from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd
from django.core.management.base import BaseCommand, CommandError

from analysis.aggregation.early_stopping import label_settled
from annotation import selectors
from annotation.management.lookup import study_named
from annotation.task_kinds import get_task_kind

POLICIES = ("settled", "bayes")
PRIOR_ACCURACY, PRIOR_WEIGHT = 0.8, 2.0


def worker_reliability(answers: pd.DataFrame) -> dict:
    """Each worker's chance of giving the Dawid-Skene label, shrunk towards :data:`PRIOR_ACCURACY`."""
    from crowdkit.aggregation import DawidSkene

    ds = DawidSkene(n_iter=100).fit_predict(answers)
    right = answers["label"].to_numpy() == answers["task"].map(ds).to_numpy()
    per = pd.DataFrame({"worker": answers["worker"], "right": right}).groupby("worker")["right"].agg(["sum", "count"])
    p = (per["sum"] + PRIOR_ACCURACY * PRIOR_WEIGHT) / (per["count"] + PRIOR_WEIGHT)
    return p.clip(0.5, 0.99).to_dict()


def bayes_leader(labels, workers, values, reliability) -> tuple[str, float]:
    """The leading value and its posterior under the one-coin model with a uniform prior."""
    k = len(values)
    logp = dict.fromkeys(values, 0.0)
    for label, worker in zip(labels, workers):
        p = reliability.get(worker, PRIOR_ACCURACY)
        for value in values:
            logp[value] += math.log(p) if value == label else math.log((1 - p) / (k - 1))
    top = max(logp.values())
    weights = {v: math.exp(x - top) for v, x in logp.items()}
    leader = max(weights, key=weights.get)
    return leader, weights[leader] / sum(weights.values())


class Command(BaseCommand):
    help = "Replay a finished study's answers under stopping policies: answers saved, agreement with all answers."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--owner", help="owner's user name, when several researchers use the same name")
        parser.add_argument("--policy", choices=[*POLICIES, "all"], default="all")
        parser.add_argument("--orders", type=int, default=10, help="random orders of each task's answers")
        parser.add_argument("--threshold", type=float, default=0.99, help="bayes: posterior needed to stop")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, name: str, owner: str | None, policy: str, orders: int, threshold: float, seed: int,
               **options):
        if orders < 1:
            raise CommandError("--orders must be at least 1")
        study = study_named(name, owner)
        kind = get_task_kind(study.kind)
        conf = selectors.study_conf(study=study)
        answers = selectors.study_label_answers(study=study, label_field=kind.label_field).dropna(subset=["label"])
        values = kind.label_choices(conf)
        if answers.empty or not values:
            raise CommandError(f"study {name!r} has no accepted answers with a label to replay")
        conf = {**conf, "workers_per_task": int(answers.groupby("task").size().max())}
        full = kind.aggregate(answers, conf)["label"].to_dict()
        reliability = worker_reliability(answers)
        rng = np.random.default_rng(seed)
        label_of = functools.lru_cache(maxsize=None)(lambda labels: _label(kind, conf, labels))
        groups = [(task, g["label"].astype(str).tolist(), g["worker"].tolist()) for task, g in answers.groupby("task")]

        def stop_at(policy_name, labels, workers) -> tuple[int, object]:
            """How many answers the policy uses and the label it ends with."""
            n = len(labels)
            for k in range(1, n):
                if policy_name == "settled":
                    if label_settled(labels[:k], conf["workers_per_task"] - k, values,
                                     lambda table: kind.aggregate(table, conf)):
                        return k, label_of(tuple(labels[:k]))
                else:
                    leader, posterior = bayes_leader(labels[:k], workers[:k], values, reliability)
                    if posterior >= threshold:  # the label the kind gives a unanimous leader (e.g. background: spurious)
                        return k, label_of((leader,) * conf["workers_per_task"])
            return n, full.get(task)

        chosen = POLICIES if policy == "all" else (policy,)
        results = {}
        for policy_name in chosen:
            used = total = agree = cases = 0
            for task, labels, workers in groups:
                for _ in range(orders):
                    order = rng.permutation(len(labels))
                    k, label = stop_at(policy_name, [labels[i] for i in order], [workers[i] for i in order])
                    used, total, cases = used + k, total + len(labels), cases + 1
                    truth = full.get(task)
                    agree += (k == len(labels)) if truth is None else (str(label) == str(truth))
            results[policy_name] = (1 - used / total, agree / cases)
            self.stdout.write(f"{policy_name:<8} saved {results[policy_name][0]:.3f}  "
                              f"agreement {results[policy_name][1]:.4f}  ({len(groups)} tasks x {orders} orders)")
        default = "settled" if "settled" in results else chosen[0]
        saved, agreement = results[default]
        self.stdout.write(f"saved={saved:.4f} agreement={agreement:.4f}")


def _label(kind, conf, labels: tuple):
    """The kind's label of these answers alone."""
    table = kind.aggregate(pd.DataFrame({"task": 0, "worker": [f"w{i}" for i in range(len(labels))],
                                         "label": list(labels)}), {**conf, "workers_per_task": len(labels)})
    return table["label"].iloc[0] if len(table) else None
