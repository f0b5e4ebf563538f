"""``manage.py replay_stopping NAME [--policy P] [--orders N]``: replay a study's answers under stopping policies
and print, per policy, the share of answers saved and the label agreement with the labels of all the answers.
The last line is ``saved=<fraction> agreement=<fraction>`` for the default policy.

Policies (``analysis.aggregation.stopping``): ``predictive`` (the default, and what live studies use:
``annotation.selectors.stopping_policy.policy``), ``settled``, ``bayes`` and ``margin``. Each non-gold task's
answers are
replayed in ``--orders`` random orders (the same orders for every policy). Worker reliability
(``--reliability answers``) is the live study's Dawid-Skene fit, here over all the study's answers with each
task's own answers left out; ``--reliability prior`` gives every worker the prior accuracy, as at a study's start.
"""
from __future__ import annotations

import attrs
import numpy as np
from django.core.management.base import BaseCommand, CommandError

from analysis.aggregation.stopping import POLICIES, replay
from annotation import selectors
from annotation.management.lookup import study_named
from annotation.selectors import stopping_policy
from annotation.task_kinds import get_task_kind

DEFAULT = "predictive"


class Command(BaseCommand):
    help = "Replay a study's answers under stopping policies: answers saved, agreement with all answers."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--owner", help="owner's user name, when several researchers use the same name")
        parser.add_argument("--policy", choices=[*POLICIES, "all"], default="all")
        parser.add_argument("--orders", type=int, default=10, help="random orders of each task's answers")
        parser.add_argument("--reliability", choices=["answers", "prior"], default="answers",
                            help="worker reliability: Dawid-Skene on the study's answers, or the prior for all")
        parser.add_argument("--confidence", type=float, default=None,
                            help="predictive: probability of the full-answer label needed to stop "
                                 "(default: SALIENT_STOP_CONFIDENCE, as live studies)")
        parser.add_argument("--threshold", type=float, default=0.99, help="bayes: posterior needed to stop")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, name: str, owner: str | None, policy: str, orders: int, reliability: str,
               confidence: float | None, threshold: float, seed: int, **options):
        if orders < 1:
            raise CommandError("--orders must be at least 1")
        if confidence is not None and not 0.5 < confidence <= 1:
            raise CommandError("--confidence must be within (0.5, 1]")
        study = study_named(name, owner)
        kind = get_task_kind(study.kind)
        answers = selectors.study_label_answers(study=study, label_field=kind.label_field).dropna(subset=["label"])
        answers = answers.astype({"label": str})
        if answers.empty or not kind.label_choices(selectors.study_conf(study=study)):
            raise CommandError(f"study {name!r} has no accepted answers with a label to replay")
        conf = {**selectors.study_conf(study=study), "workers_per_task": int(answers.groupby("task").size().max())}
        space = stopping_policy.vote_space(study.kind, conf)
        gold = stopping_policy.study_gold_values(study, kind.label_field)
        model = stopping_policy.fit_model(answers, space,
                                          gold) if reliability == "answers" else stopping_policy.prior_model(space)
        replayed = answers[~answers["task"].isin(list(study.tasks.filter(is_gold=True).values_list("pk", flat=True)))]
        tasks = [(task, g["label"].tolist(), g["worker"].tolist()) for task, g in replayed.groupby("task")]
        if not tasks:
            raise CommandError(f"study {name!r} has answers on gold tasks only; nothing to replay")
        rng = np.random.default_rng(seed)
        perms = [[rng.permutation(len(values)) for _ in range(orders)] for _, values, _ in tasks]
        policies = {"predictive": stopping_policy.policy(), "settled": POLICIES["settled"](),
                    "bayes": POLICIES["bayes"](threshold=threshold), "margin": POLICIES["margin"]()}
        if confidence is not None:
            policies["predictive"] = attrs.evolve(policies["predictive"], confidence=confidence)
        chosen = list(POLICIES) if policy == "all" else [policy]
        results = {}
        for policy_name in chosen:
            results[policy_name] = replay(space, tasks, policies[policy_name], model, perms)
            self.stdout.write(f"{policy_name:<10} saved {results[policy_name].saved:.3f}  "
                              f"agreement {results[policy_name].agreement:.4f}  ({len(tasks)} tasks x {orders} orders)")
        last = results[DEFAULT if DEFAULT in results else chosen[0]]
        self.stdout.write(f"saved={last.saved:.4f} agreement={last.agreement:.4f}")
