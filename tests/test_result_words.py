"""Results show words a researcher uses, never internal values (issue 28, item 6): a tie is a tie with no label
(not ``nan``), a gold task wants no number of answers."""
from __future__ import annotations

from django.urls import reverse

from annotation import services
from annotation.models import StudyResult
from annotation.tokens import assignment_token
from tests.study_helpers import read_csv


def test_a_tie_has_no_label_anywhere(make_study, make_worker, researcher_client, django_capture_on_commit_callbacks):
    study = make_study(images=["astronaut"], workers_per_task=2)
    for worker, choice in ((make_worker(), "person"), (make_worker(), "animal")):
        a = services.assignment_claim_next(worker=worker)
        services.assignment_submit(assignment_id=a.pk, worker=worker, token=assignment_token(a),
                                   payload={"choice": choice, "reason": "looks so", "confidence": 3})
    with django_capture_on_commit_callbacks(execute=True):
        services.study_close(study=study)
        services.study_aggregate(study=study)
    result = StudyResult.objects.get(study=study)
    assert (result.label, result.tie) == ("", True)
    page = researcher_client.get(reverse("study_detail", args=[study.pk])).content.decode()
    row = page.split('id="labels-table"')[1].split("</table>")[0]
    assert "nan" not in row and "<td>—</td><td>tie</td>" in row
    reply = researcher_client.get(reverse("study_export", args=[study.pk, "labels.csv"]))
    rows = read_csv(b"".join(reply.streaming_content) if reply.streaming else reply.content)
    assert rows[0]["label"] == "" and rows[0]["tie"] == "True"


def test_a_gold_task_wants_no_number_of_answers(make_study, researcher_client):
    study = make_study(images=["astronaut", "chelsea"], live=False)
    task = study.tasks.order_by("pk").first()
    reply = researcher_client.post(reverse("task_gold", args=[task.pk]), {"label": "person"})
    assert reply.status_code == 302
    page = researcher_client.get(reverse("study_detail", args=[study.pk])).content.decode()
    row = page.split(f'data-task="{task.pk}"')[1].split("</tr>")[0]
    assert "10000" not in row and "any worker" in row


def test_incomplete_tasks_say_a_worker_was_excluded(make_study, make_worker, researcher_client,
                                                    django_capture_on_commit_callbacks):
    study = make_study(images=["astronaut"], workers_per_task=1)
    worker = make_worker("sloppy")
    a = services.assignment_claim_next(worker=worker)
    services.assignment_submit(assignment_id=a.pk, worker=worker, token=assignment_token(a),
                               payload={"choice": "person", "reason": "looks so", "confidence": 3})
    services.worker_exclude_from_study(study=study, worker=worker)  # what the gold check does below its accuracy
    with django_capture_on_commit_callbacks(execute=True):
        services.study_close(study=study)
        services.study_aggregate(study=study)
    assert StudyResult.objects.get(study=study).complete is False
    page = researcher_client.get(reverse("study_detail", args=[study.pk])).content.decode()
    why = page.split('id="incomplete-why">')[1].split("</p>")[0]
    assert "1 excluded worker (sloppy)" in why and "not counted" in why


class _Outputs:
    """What a kind sees of a study (``StudyContext.read_output``): here one stored summary file."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    def read_output(self, name: str) -> bytes | None:
        return self.files.get(name)


def test_heatmap_validation_results_use_the_task_pages_words(db):
    import json

    from django.template.loader import render_to_string

    from annotation.task_kinds import get_task_kind
    from annotation.task_kinds.heatmap_validation import SUMMARY

    kind = get_task_kind("heatmap_validation")
    summary = {"features": 2, "decided": 1, "ties": 1, "validated": 0, "validated_percent": 0, "votes": 10,
               "answer_percent": {"same": 20, "a_unclear": 80}, "truth_agreement_percent": None}
    features = [{"task_key": "k1", "class_name": "Bag", "feature": 3, "label": "a_unclear", "tie": False,
                 "same": 1, "different": 0, "a_unclear": 4, "b_unclear": 0, "truth": None},
                {"task_key": "k2", "class_name": "Coat", "feature": 5, "label": float("nan"), "tie": True,
                 "same": 2, "different": 2, "a_unclear": 1, "b_unclear": 0, "truth": None}]
    ctx = _Outputs({SUMMARY: json.dumps({"summary": summary, "features": features}).encode()})
    html = render_to_string(kind.results_template, {"study": None, "images": None, **kind.results_context(ctx)})
    assert "a_unclear" not in html and "nan" not in html
    assert 'Answers "Set A is unclear"' in html
    rows = html.split('id="features-table"')[1]
    assert "<td>Set A is unclear</td>" in rows and "<td>— (tie)</td>" in rows


def test_labels_read_the_same_in_every_view_and_export(make_study, make_worker, researcher_client,
                                                       django_capture_on_commit_callbacks):
    from annotation.services.api_tokens import token_create
    from django.test import Client

    study = make_study(images=["astronaut"], workers_per_task=1)
    task = study.tasks.get()
    task.payload = {**task.payload, "class_name": "Astronaut"}  # a benchmark kind's payload names the class
    task.save()
    worker = make_worker()
    a = services.assignment_claim_next(worker=worker)
    services.assignment_submit(assignment_id=a.pk, worker=worker, token=assignment_token(a),
                               payload={"choice": "person", "reason": "looks so", "confidence": 3})
    with django_capture_on_commit_callbacks(execute=True):
        services.study_close(study=study)
        services.study_aggregate(study=study)
    page = researcher_client.get(reverse("study_detail", args=[study.pk])).content.decode()
    row = page.split('id="labels-table"')[1].split("</table>")[0]
    assert "img-astronaut (Astronaut)" in row and ">Person</a>" in row and "Person: 1" in row
    reply = researcher_client.get(reverse("study_export", args=[study.pk, "labels.csv"]))
    rows = read_csv(b"".join(reply.streaming_content) if reply.streaming else reply.content)
    assert (rows[0]["label"], rows[0]["label_words"], rows[0]["class_name"]) == ("person", "Person", "Astronaut")
    reply = researcher_client.get(reverse("study_export", args=[study.pk, "answers.csv"]))
    answers = read_csv(b"".join(reply.streaming_content) if reply.streaming else reply.content)
    assert answers[0]["class_name"] == "Astronaut"
    api = Client(HTTP_AUTHORIZATION=f"Bearer {token_create(user=study.owner, name='t')[1]}")
    labels = api.get(f"/api/studies/{study.pk}/labels").json()
    assert (labels[0]["label_words"], labels[0]["class_name"]) == ("Person", "Astronaut")
    assert api.get(f"/api/studies/{study.pk}/answers").json()["items"][0]["class_name"] == "Astronaut"


def test_feature_panel_dawid_skene_labels_say_core_or_spurious():
    from annotation.selectors.task_grid import LabelWords
    from annotation.task_kinds import get_task_kind

    kind = get_task_kind("feature_panel")
    words = LabelWords(kind.label_words(kind.default_settings()))
    assert words("core") == "core" and words("main_object") == "core (part of the main object)"
    assert words("background") == "spurious (background)" and words(float("nan")) == "" and words(None) == ""
