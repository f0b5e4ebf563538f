"""Early stopping's reads: the policy, a study's vote space and crowd model, shared by live studies and the replay.

Live studies and ``manage.py replay_stopping`` use the same :func:`policy` (``analysis.aggregation.stopping``):
stop a task once its full-answer label is predicted with probability >= ``SALIENT_STOP_CONFIDENCE`` (0.975),
never before ``SALIENT_STOP_MIN_ANSWERS`` (2) answers nor on a tie. 0.975 is the lowest confidence whose replays
kept a mean agreement >= 99 % with the full-answer labels on the three simulated crowds of ``bench/stopping.py``
(most stops are near-certain, so the agreement is above the per-stop confidence).

Worker reliability: a Dawid-Skene fit over the study's counted answers so far, gold tasks held at their known
label, each worker's confusion shrunk (2 answers' worth) towards the crowd's pooled one (itself shrunk towards
0.8 accuracy), and each task's own answers left out when deciding that task. A live study refits it (one EM in
numpy over the study's answers) when a worker it has not seen answers, else once every
``SALIENT_STOP_REFIT_ANSWERS`` (25) new answers, and keeps the fit in the cache in between.
"""
from __future__ import annotations

import functools
import json
from collections.abc import Collection, Mapping
from typing import Any

import pandas as pd
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured

from analysis.aggregation.reliability import CrowdModel, fit_crowd_model
from analysis.aggregation.stopping import Predictive, VoteSpace
from annotation.models import Answer, Study
from annotation.selectors import studies
from annotation.task_kinds import get_task_kind

PRIOR_ACCURACY, PRIOR_WEIGHT = 0.8, 2.0
MODEL_SECONDS = 24 * 3600


def policy() -> Predictive:
    """The stopping policy of live studies and the replay's default, from the settings."""
    confidence, least = float(settings.SALIENT_STOP_CONFIDENCE), int(settings.SALIENT_STOP_MIN_ANSWERS)
    if not 0.5 < confidence <= 1.0:
        raise ImproperlyConfigured(f"SALIENT_STOP_CONFIDENCE={confidence} must be within (0.5, 1]")
    if least < 1:
        raise ImproperlyConfigured(f"SALIENT_STOP_MIN_ANSWERS={least} must be at least 1")
    return Predictive(confidence=confidence, min_answers=least)


def vote_space(kind_name: str, conf: Mapping[str, Any]) -> VoteSpace:
    """The kind's answer values as votes for its labels, under the study's settings (cached per settings)."""
    return _vote_space(kind_name, json.dumps(conf, sort_keys=True, default=str))


@functools.lru_cache(maxsize=64)
def _vote_space(kind_name: str, conf_json: str) -> VoteSpace:
    kind, conf = get_task_kind(kind_name), json.loads(conf_json)
    return VoteSpace(kind.label_choices(conf), lambda table: kind.aggregate(table, conf), int(conf["workers_per_task"]))


def fit_model(answers: pd.DataFrame, space: VoteSpace, gold: Mapping[int, str]) -> CrowdModel:
    """Dawid-Skene over a ``task, worker, label`` table of answer values; ``gold`` maps task -> known value."""
    voting = answers[answers["label"].isin(list(space.vote))]
    return fit_crowd_model(voting["task"].tolist(), voting["worker"].tolist(),
                           [space.vote[v] for v in voting["label"]], len(space.labels),
                           gold={t: space.vote[v] for t, v in gold.items() if v in space.vote},
                           prior_accuracy=PRIOR_ACCURACY, prior_weight=PRIOR_WEIGHT)


def prior_model(space: VoteSpace) -> CrowdModel:
    """Every worker, and every answer to come, at the prior accuracy (what a study knows before any answer)."""
    return CrowdModel(n_labels=len(space.labels), prior_accuracy=PRIOR_ACCURACY)


def study_gold_values(study: Study, field: str) -> dict[int, str]:
    """Known answer values of the study's gold tasks (task id -> value)."""
    rows = study.tasks.filter(is_gold=True).values_list("pk", "truth")
    return {pk: str(truth[field]) for pk, truth in rows if truth and truth.get(field) is not None}


def crowd_model(study: Study, space: VoteSpace, workers: Collection = ()) -> CrowdModel:
    """The study's crowd model, refit when one of ``workers`` is new to it or ``SALIENT_STOP_REFIT_ANSWERS``
    answers arrived since the last fit (or some stopped counting)."""
    counted = Answer.objects.filter(task__study=study, assignment__state__in=studies.COUNTED).count()
    key = f"stopping-model:{study.pk}:{study.created_at.timestamp()}"
    kept = cache.get(key)
    if (kept is not None and kept[0] <= counted < kept[0] + int(settings.SALIENT_STOP_REFIT_ANSWERS)
            and all(worker in kept[1].counts for worker in workers)):
        return kept[1]
    field = get_task_kind(study.kind).label_field
    rows = Answer.objects.filter(task__study=study, assignment__state__in=studies.COUNTED).values_list(
        "task_id", "worker_id", f"payload__{field}")
    answers = pd.DataFrame([(t, w, str(v)) for t, w, v in rows if v is not None], columns=["task", "worker", "label"])
    model = fit_model(answers, space, study_gold_values(study, field))
    cache.set(key, (counted, model), MODEL_SECONDS)
    return model


def with_stop_labels(study: Study, table: pd.DataFrame) -> pd.DataFrame:
    """The aggregated table with each early-stopped task labelled as the policy labelled it when it stopped."""
    stops = dict(study.tasks.filter(stopped_early=True).exclude(stop_label="").values_list("pk", "stop_label"))
    present = [pk for pk in stops if pk in table.index]
    if not present:
        return table
    table = table.copy()
    table["label"] = table["label"].astype(object)
    table.loc[present, "label"] = [stops[pk] for pk in present]
    return table
