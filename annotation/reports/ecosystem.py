"""Exports for other tools: crowd-kit's answers table and a Label Studio import (tasks + majority labels).

* ``answers_crowdkit.csv`` — accepted answers as ``task, worker, label``, exactly what crowd-kit's
  aggregators read: ``MajorityVote().fit_predict(pd.read_csv("answers_crowdkit.csv"))``.
* ``label_studio.json`` + ``label_studio_config.xml`` — one Label Studio task per task that shows images
  (``data.image`` is the first image's URL, ``data.images`` all of them), its majority label (if any) as an
  annotation of the ``Choices`` control named after the kind's label field; the XML is the labeling config.
"""
from __future__ import annotations

import re
from typing import Any
from xml.sax.saxutils import quoteattr

from analysis.exports import records_to_json, table_to_safe_csv
from annotation import selectors
from annotation.models import Study
from annotation.task_kinds import get_task_kind

ARTIFACT_NAME = re.compile(r"^[0-9a-f]{64}\.[a-z0-9]+$")


def _artifact_names(value: Any) -> list[str]:
    """Artifact names anywhere in a task payload, in order (images, heatmaps, …)."""
    if isinstance(value, str):
        return [value] if ARTIFACT_NAME.match(value) else []
    if isinstance(value, dict):
        return [n for v in value.values() for n in _artifact_names(v)]
    if isinstance(value, (list, tuple)):
        return [n for v in value for n in _artifact_names(v)]
    return []


def crowdkit_answers_csv(*, study: Study) -> str:
    kind = get_task_kind(study.kind)
    return table_to_safe_csv(selectors.study_label_answers(study=study, label_field=kind.label_field))


def label_studio_tasks(*, study: Study, base_url: str) -> list[dict]:
    field = get_task_kind(study.kind).label_field
    labels = dict(study.results.exclude(label="").values_list("task_id", "label"))
    records = []
    for task in study.tasks.order_by("id"):
        images = [f"{base_url.rstrip('/')}/artifacts/{n}" for n in _artifact_names(task.payload)]
        if not images:
            continue
        record = {"id": task.pk, "data": {"image": images[0], "images": images, "key": task.key}}
        if task.pk in labels:
            record["annotations"] = [{"completed_by": "majority vote", "result": [{
                "from_name": field, "to_name": "image", "type": "choices", "value": {"choices": [labels[task.pk]]}}]}]
        records.append(record)
    return records


def label_studio_config(*, study: Study) -> str:
    kind = get_task_kind(study.kind)
    choices = "".join(f"\n    <Choice value={quoteattr(c)}/>"
                      for c in kind.label_choices(selectors.study_conf(study=study)))
    return (f'<View>\n  <Image name="image" value="$image"/>\n  <Choices name={quoteattr(kind.label_field)} '
            f'toName="image" choice="single">{choices}\n  </Choices>\n</View>\n')


def ecosystem_files(*, study: Study, base_url: str) -> dict[str, str]:
    return {"answers_crowdkit.csv": crowdkit_answers_csv(study=study),
            "label_studio.json": records_to_json(label_studio_tasks(study=study, base_url=base_url)),
            "label_studio_config.xml": label_studio_config(study=study)}
