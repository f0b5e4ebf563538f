"""Researcher pages: create from the form, isolation between researchers, exports, escaping."""
import csv
import io
import json

from django.test import Client
from django.urls import reverse

from annotation.models import Study
from annotation.services import assignment_claim_next, assignment_submit, study_aggregate, study_close
from annotation.tokens import assignment_token
from tests.study_helpers import made_archive


def answer_all(study, workers, reason="ok"):
    for worker in workers:
        while (a := assignment_claim_next(worker=worker)) is not None:
            truth = a.task.truth["choice"]
            payload = {"choice": truth, "reason": reason, "confidence": 5}
            assignment_submit(assignment_id=a.pk, worker=worker, payload=payload, token=assignment_token(a))


def test_create_compute_launch_from_the_form(researcher, django_capture_on_commit_callbacks):
    client = Client()
    client.force_login(researcher)
    form = {
        "name": "Form study", "kind": "image_choice", "workers_per_task": 2, "reward_cents": 5,
        "assignment_minutes": 10, "backend": "internal", "s-question": "Subject?",
        "s-options": "person, animal", "s-images": ["astronaut", "chelsea"], "s-images_per_task": 1,
        "s-image_size": 48,
    }
    reply = client.post(reverse("study_create"), form)
    assert reply.status_code == 302
    study = Study.objects.get(name="Form study")
    assert study.settings["options"] == [["person", "person"], ["animal", "animal"]]
    assert study.assignment_seconds == 600
    with django_capture_on_commit_callbacks(execute=True):
        assert client.post(reverse("study_action", args=[study.pk, "compute"])).status_code == 302
    study.refresh_from_db()
    assert study.state == "ready"
    assert study.tasks.count() == 2
    progress = client.get(reverse("study_progress", args=[study.pk])).json()
    assert progress["wanted"] == 4 and progress["job"]["state"] == "done" and progress["job"]["fraction"] == 1.0
    # An illegal action answers 409 and leaves the state alone.
    reply = client.post(reverse("study_action", args=[study.pk, "aggregate"]), HTTP_ACCEPT="application/json")
    assert reply.status_code == 409 and "cannot go from ready to aggregated" in reply.json()["error"]
    assert Study.objects.get(pk=study.pk).state == "ready"


def test_bad_study_form_names_the_field(researcher):
    client = Client()
    client.force_login(researcher)
    reply = client.post(reverse("study_create"), {"name": "", "kind": "image_choice", "s-options": "only"})
    assert reply.status_code == 400
    body = reply.content.decode()
    assert "This field is required" in body and "at least two options" in body
    assert not Study.objects.exists()


def test_researchers_see_only_their_own_studies(make_study, other_researcher):
    study = make_study()
    client = Client()
    client.force_login(other_researcher)
    assert study.name not in client.get(reverse("study_list")).content.decode()
    for url in [reverse("study_detail", args=[study.pk]), reverse("study_progress", args=[study.pk]),
                reverse("study_export", args=[study.pk, "answers.csv"])]:
        assert client.get(url).status_code == 404
    assert client.post(reverse("study_action", args=[study.pk, "close"])).status_code == 404
    assert Study.objects.get(pk=study.pk).state == "live"


def test_exports_are_long_format_with_labels(make_study, make_worker, researcher, django_capture_on_commit_callbacks):
    study = make_study(workers_per_task=2)
    answer_all(study, [make_worker(), make_worker()])
    study_close(study=study)
    study_aggregate(study=study)
    client = Client()
    client.force_login(researcher)
    answers = list(csv.DictReader(io.StringIO(
        client.get(reverse("study_export", args=[study.pk, "answers.csv"])).content.decode())))
    assert len(answers) == 6
    assert set(answers[0]) >= {"task", "worker", "choice", "reason", "confidence", "shown_at", "submitted_at"}
    records = json.loads(client.get(reverse("study_export", args=[study.pk, "answers.json"])).content)
    assert records[0]["fields"]["confidence"] == 5
    labels = list(csv.DictReader(io.StringIO(
        client.get(reverse("study_export", args=[study.pk, "labels.csv"])).content.decode())))
    truth = {str(t.pk): t.truth["choice"] for t in study.tasks.all()}
    assert {row["task"]: row["label"] for row in labels} == truth
    assert all(row["complete"] == "True" and row["tie"] == "False" for row in labels)
    archive = made_archive(client, study, django_capture_on_commit_callbacks)
    assert sorted(n.split("/")[-1] for n in archive.namelist()) == ["answers.csv", "answers.json", "labels.csv",
                                                                    "labels.json",
                                                                       "quality.json", "report.html", "workers.csv"]
    assert client.get(reverse("study_export", args=[study.pk, "secrets.txt"])).status_code == 404


def test_reason_with_script_is_escaped_on_the_dashboard(make_study, make_worker, researcher):
    study = make_study(images=["astronaut"], workers_per_task=1)
    answer_all(study, [make_worker()], reason="<script>alert('x')</script>")
    client = Client()
    client.force_login(researcher)
    body = client.get(reverse("study_detail", args=[study.pk])).content.decode()
    assert "<script>alert(" not in body
    assert "&lt;script&gt;alert(" in body


def test_reject_frees_the_slot_and_drops_the_answer_from_labels(make_study, make_worker, researcher):
    study = make_study(images=["astronaut"], workers_per_task=1)
    answer_all(study, [make_worker()])
    assignment = study.tasks.get().assignments.get()
    client = Client()
    client.force_login(researcher)
    assert client.post(reverse("assignment_decide", args=[assignment.pk, "reject"])).status_code == 302
    task = study.tasks.get()
    assert (task.filled, task.approved) == (0, 0)
    assert assignment_claim_next(worker=make_worker()) is not None  # re-offered
