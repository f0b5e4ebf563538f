"""A worked example of a new task kind (see ARCHITECTURE.md), run through the real services end to end."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pytest
from django import forms

from analysis.aggregation import MajorityVote
from analysis.crowd_sim import noisy_choice
from annotation.task_kinds import TASK_KINDS, OutputFile, Progress, StudyContext, TaskKind, TaskSpec, register_task_kind
from annotation.task_kinds.fields import ChoiceField, IntField

PARITY = ("even", "odd")


class ParitySettingsForm(forms.Form):
    """The settings form is the kind's only place for defaults: its fields' initial values."""

    numbers = forms.IntegerField(min_value=1, max_value=50, initial=4, help_text="Tasks to make.")
    side = forms.IntegerField(min_value=8, max_value=64, initial=16, help_text="Pixels per image side.")


class Parity(TaskKind):
    """Is the number of bright pixels in the image even or odd?"""

    name = "parity_example"
    title = "Example: parity of bright pixels"
    template = "annotation/kinds/image_choice.html"
    label_field = "parity"
    settings_form = ParitySettingsForm

    def answer_fields(self, conf: Mapping[str, Any]) -> list:
        return [ChoiceField("parity", PARITY), IntField("confidence", 1, 5)]

    def build_tasks(self, ctx: StudyContext, progress: Progress) -> Iterable[TaskSpec | OutputFile]:
        rng = np.random.default_rng(ctx.id)
        side = int(ctx.conf["side"])
        for i in range(int(ctx.conf["numbers"])):
            progress(i, int(ctx.conf["numbers"]), "drawing")
            image = (rng.random((side, side)) > 0.9).astype(np.uint8) * 255
            yield TaskSpec(key=f"n{i}", payload={"images": ctx.store.images(image[None]), "question": "Parity?",
                                                 "options": [[p, p] for p in PARITY]},
                           truth={"parity": PARITY[int((image > 0).sum()) % 2]})
        yield OutputFile("drawn.txt", f"{ctx.conf['numbers']} images".encode(), "What was drawn")

    def aggregator(self, conf: Mapping[str, Any]) -> MajorityVote:
        return MajorityVote(min_votes=int(conf["workers_per_task"]), labels=PARITY)

    def build_outputs(self, ctx: StudyContext, labels: pd.DataFrame, progress: Progress) -> list[OutputFile]:
        odd = int((labels["label"] == "odd").sum())
        return [OutputFile("odd_share.txt", f"{odd}/{len(labels)}".encode(), "Share labelled odd")]

    def simulate_answer(self, task, conf, rng: np.random.Generator, accuracy: float) -> dict[str, Any]:
        return {"parity": noisy_choice(task.truth["parity"], PARITY, accuracy, rng), "confidence": 4}


@pytest.fixture
def parity_kind():
    register_task_kind(Parity)
    yield TASK_KINDS[Parity.name]
    TASK_KINDS.pop(Parity.name)


def test_the_example_kind_runs_end_to_end(parity_kind, researcher, make_worker, django_capture_on_commit_callbacks):
    from annotation import services
    from tests.study_helpers import aggregate, crowd_answers

    assert parity_kind.default_settings() == {"numbers": 4, "side": 16} and parity_kind.has_outputs
    study = services.study_create(owner=researcher, name="parity", kind=Parity.name, workers_per_task=3)
    with django_capture_on_commit_callbacks(execute=True):
        services.study_start_computing(study=study)
    study.refresh_from_db()
    assert study.state == "ready" and study.tasks.count() == 4
    assert set(study.outputs.values_list("name", flat=True)) == {"drawn.txt"}
    services.study_launch(study=study)
    assert crowd_answers(study, make_worker, n=3, accuracy=1.0) == 12
    files = aggregate(study, django_capture_on_commit_callbacks)
    expected = sum(t.truth["parity"] == "odd" for t in study.tasks.all())
    assert files["odd_share.txt"] == f"{expected}/4".encode()
    assert [r.label for r in study.results.order_by("task_id")] == [t.truth["parity"] for t in
                                                                   study.tasks.order_by("id")]
