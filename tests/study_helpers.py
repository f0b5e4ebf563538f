"""Steps shared by the study tests: a simulated crowd answering through the services, aggregation with outputs."""
from __future__ import annotations

import csv
import io
import zipfile

from django.test import Client
from django.urls import reverse

from analysis.crowd_sim import simulated_crowd
from annotation import selectors, services
from annotation.models import Assignment
from annotation.task_kinds import get_task_kind
from annotation.tokens import assignment_token


def crowd_answers(study, make_worker, n: int = 5, accuracy: float = 0.9, seed: int = 3) -> int:
    """``n`` simulated workers answer every task they are offered; returns the answers given."""
    kind = get_task_kind(study.kind)
    given = 0
    for sim in simulated_crowd(n, accuracy, seed=seed):
        worker, rng = make_worker(f"{sim.name}-{study.pk}"), sim.rng()
        while (a := services.assignment_claim_next(worker=worker)) is not None:
            a = Assignment.objects.select_related("task__study").get(pk=a.pk)
            answer = kind.simulate_answer(a.task, selectors.study_conf(study=a.task.study), rng, sim.accuracy)
            services.assignment_submit(assignment_id=a.pk, worker=worker, token=assignment_token(a), payload=answer)
            given += 1
    return given


def aggregate(study, capture) -> dict[str, bytes]:
    """Close and aggregate (running the outputs job); returns the study's output files by name."""
    with capture(execute=True):
        services.study_close(study=study)
        services.study_aggregate(study=study)
    study.refresh_from_db()
    job = study.jobs.get(name="outputs")
    assert job.state == "done", job.error
    return output_files(study)


def made_archive(client, study, capture) -> zipfile.ZipFile:
    """Make the study's archive through the dashboard's button (a job, run here) and download it."""
    with capture(execute=True):
        assert client.post(reverse("study_export", args=[study.pk, "archive.zip"])).status_code == 302
    reply = client.get(reverse("study_export", args=[study.pk, "archive.zip"]))
    assert reply.status_code == 200, reply.content
    return zipfile.ZipFile(io.BytesIO(b"".join(reply.streaming_content)))


def output_files(study) -> dict[str, bytes]:
    client = Client()
    client.force_login(study.owner)
    return {o.name: b"".join(client.get(reverse("study_output", args=[study.pk, o.name])).streaming_content)
            for o in study.outputs.all()}


def read_csv(data: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(data.decode())))


def sign_in(page, base: str, username: str, password: str | None = None) -> None:
    """Sign in through the login page of a real browser (Playwright ``page``)."""
    from tests.conftest import PASSWORD

    page.goto(f"{base}/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password or PASSWORD)
    page.click("button[type=submit]")


def study_from_form(client, form: dict, capture):
    """Create a study through the researcher form and compute its evidence (eager job); returns it, ready."""
    from annotation.models import Study

    reply = client.post(reverse("study_create"), form)
    assert reply.status_code == 302, reply.content.decode()[:2000]
    study = Study.objects.get(pk=int(reply["Location"].rstrip("/").rsplit("/", 1)[-1]))
    with capture(execute=True):
        client.post(reverse("study_action", args=[study.pk, "compute"]))
    study.refresh_from_db()
    assert study.state == "ready", study.error
    return study


def computed_study(owner, kind: str, name: str, settings: dict, capture, *, workers_per_task: int = 5,
                   live: bool = True):
    """Create a study through the services, compute its evidence (eager job) and, if ``live``, launch it."""
    study = services.study_create(owner=owner, name=name, kind=kind, settings=settings,
                                  workers_per_task=workers_per_task)
    with capture(execute=True):
        services.study_start_computing(study=study)
    study.refresh_from_db()
    assert study.state == "ready", study.error
    if live:
        services.study_launch(study=study)
    return study
