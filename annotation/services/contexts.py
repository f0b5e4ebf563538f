"""What a task kind sees of a study: its settings, read-only loaders (from the selectors), and the two
writers it may use (a pass runner and an image sink); so it lives with the services."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from django.conf import settings as django_settings

from analysis.artifact_store import NamedObjects
from annotation import selectors
from annotation.artifacts import ArtifactImages, artifact_read, artifact_store
from annotation.models import Answer, Study, StudyOutput
from annotation.services.evidence import PassRunner
from annotation.services.registry import checkpoint_path, study_inputs
from annotation.task_kinds import StudyContext, TaskRecord

ANSWER_COLUMNS = ["answer", "task", "worker", "payload", "flag", "counted", "shown_at", "submitted_at"]
#: ``counted`` is read as the assignment state, then turned into "the answer counts".


def study_context(study: Study, job_id: int | None = None) -> StudyContext:
    """The :class:`StudyContext` of ``study``; tasks, labels, answers and outputs are read when asked for.

    ``job_id``: the evidence job whose passes may be spread over the ``evidence`` queue (else in-process).
    """

    def tasks() -> list[TaskRecord]:
        return [TaskRecord(pk, key, payload, truth, is_gold) for pk, key, payload, truth, is_gold in
                study.tasks.order_by("id").values_list("id", "key", "payload", "truth", "is_gold")]

    def labels() -> dict[int, str]:
        return dict(study.results.values_list("task_id", "label"))

    def answers() -> pd.DataFrame:
        rows = (Answer.objects.filter(task__study=study).order_by("id")
                .values_list("id", "task_id", "worker_id", "payload", "flag", "assignment__state", "shown_at",
                             "submitted_at"))
        frame = pd.DataFrame(list(rows), columns=ANSWER_COLUMNS)
        frame["counted"] = frame["counted"].isin(selectors.COUNTED)
        return frame

    def read_output(name: str) -> bytes | None:
        output = StudyOutput.objects.filter(study=study, name=name).select_related("artifact").first()
        return None if output is None else artifact_read(output.artifact)

    conf = selectors.study_conf(study=study)
    inputs = study_inputs(owner=study.owner, conf=conf)
    for entry in inputs.get("models", {}).values():
        entry["path"] = checkpoint_path(entry["checkpoint"]) if entry["checkpoint"] else ""
    if conf.get("labels_from"):
        inputs["labels_from"] = selectors.linked_study_labels(owner=study.owner, name=conf["labels_from"])
    return StudyContext(id=study.pk, name=study.name, conf=conf, work_dir=Path(django_settings.SALIENT_BENCHMARK_DIR),
                        store=ArtifactImages(), inputs=inputs, run_pass=PassRunner(job_id),
                        cache=NamedObjects(artifact_store(), "cache"), tasks=tasks, labels=labels, answers=answers,
                        read_output=read_output)

