"""Aggregation and the export archive run as jobs: the request queues them and answers at once, the dashboard's
progress bar follows them, and without a broker they run within the request as before."""
from __future__ import annotations

import io
import zipfile

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation import services
from annotation.models import Job, Study
from tests.study_helpers import crowd_answers


@pytest.fixture
def closed_study(make_study, make_worker):
    study = make_study()
    crowd_answers(study, make_worker, n=3, accuracy=1.0)
    services.study_close(study=study)
    study.refresh_from_db()
    return study


def poll(client, study) -> dict:
    return client.get(reverse("study_progress", args=[study.pk])).json()


def test_the_aggregate_button_queues_a_job_that_the_progress_bar_follows(
        closed_study, researcher_client, django_capture_on_commit_callbacks, monkeypatch):
    from annotation.services import studies

    url = reverse("study_action", args=[closed_study.pk, "aggregate"])
    with django_capture_on_commit_callbacks(execute=False) as queued:  # a broker holds the job's message
        reply = researcher_client.post(url, HTTP_ACCEPT="application/json")
    assert reply.status_code == 200
    job = reply.json()["job"]
    assert reply.json()["state"] == "closed" and job["name"] == "aggregate" and job["state"] == "pending"
    assert len(queued) == 1 and not closed_study.results.exists() and closed_study.quality == {}
    assert poll(researcher_client, closed_study)["job"] == job
    with django_capture_on_commit_callbacks(execute=False) as again:  # a second click: the same job, no other
        assert researcher_client.post(url, HTTP_ACCEPT="application/json").json()["job"]["id"] == job["id"]
    assert not again and Job.objects.filter(name="aggregate").count() == 1

    seen = []
    quality_report = studies.study_quality_report

    def watched(**kwargs):  # what the dashboard shows while Dawid-Skene runs
        seen.append(poll(researcher_client, closed_study)["job"])
        return quality_report(**kwargs)

    monkeypatch.setattr(studies, "study_quality_report", watched)
    queued[0]()  # the worker runs the job
    assert [(j["id"], j["state"], j["done"], j["total"], j["message"]) for j in seen] == [
        (job["id"], "running", 2, 4, "Dawid-Skene and agreement")]
    done = poll(researcher_client, closed_study)
    assert done["state"] == "aggregated" and done["job"]["state"] == "done" and done["job"]["fraction"] == 1.0
    assert done["job"]["message"] == "3 of 3 tasks labelled"
    closed_study.refresh_from_db()
    assert closed_study.results.exclude(ds_label="").count() == 3 and closed_study.quality["answers"] == 9


@pytest.mark.django_db(transaction=True)
def test_without_a_broker_the_aggregate_button_aggregates_within_the_request(closed_study, researcher_client):
    """The embedded default (eager Celery): the job runs when the request's transaction commits, before it answers."""
    reply = researcher_client.post(reverse("study_action", args=[closed_study.pk, "aggregate"]),
                                   HTTP_ACCEPT="application/json")
    assert reply.json()["state"] == "aggregated" and reply.json()["job"]["state"] == "done"
    assert closed_study.results.count() == 3
    page = researcher_client.post(reverse("study_action", args=[closed_study.pk, "aggregate"]))  # re-aggregate
    assert page.status_code == 302 and Job.objects.filter(name="aggregate", state="done").count() == 2
    assert Study.objects.get(pk=closed_study.pk).state == "aggregated"


def test_aggregating_a_study_that_is_not_closed_queues_nothing(make_study, researcher_client):
    study = make_study()
    reply = researcher_client.post(reverse("study_action", args=[study.pk, "aggregate"]),
                                   HTTP_ACCEPT="application/json")
    assert reply.status_code == 409 and "cannot go from live to aggregated" in reply.json()["error"]
    assert not study.jobs.filter(name="aggregate").exists()


def test_a_study_reopened_before_its_job_runs_fails_the_job_visibly(closed_study, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as queued:
        services.study_start_aggregation(study=closed_study)
    services.study_launch(study=closed_study)  # reopened meanwhile
    with pytest.raises(Exception, match="cannot go from live to aggregated"):
        queued[0]()
    job = Job.objects.get(study=closed_study, name="aggregate")
    assert job.state == "failed" and "live to aggregated" in job.error  # shown on the dashboard and by the API
    assert not closed_study.results.exists()


def test_the_api_answers_with_the_job_and_the_client_can_poll_it(
        closed_study, researcher, django_capture_on_commit_callbacks):
    from annotation.services.api_tokens import token_create

    _, secret = token_create(user=researcher)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    with django_capture_on_commit_callbacks(execute=False) as queued:
        reply = api.post(f"/api/studies/{closed_study.pk}/aggregate")
    assert reply.status_code == 202 and reply.json()["state"] == "closed"
    job = reply.json()["job"]
    assert job["state"] == "pending" and job["file"] == ""
    queued[0]()
    polled = api.get(f"/api/studies/{closed_study.pk}/jobs/{job['id']}").json()
    assert polled["state"] == "done" and api.get(f"/api/studies/{closed_study.pk}").json()["state"] == "aggregated"
    assert len(api.get(f"/api/studies/{closed_study.pk}/labels").json()) == 3


def test_the_archive_is_made_by_a_job_and_downloaded_when_done(
        closed_study, researcher_client, other_researcher, django_capture_on_commit_callbacks):
    archive_url = reverse("study_export", args=[closed_study.pk, "archive.zip"])
    assert researcher_client.get(archive_url).status_code == 404  # none made yet
    with django_capture_on_commit_callbacks(execute=False) as queued:
        reply = researcher_client.post(archive_url, HTTP_ACCEPT="application/json")
    assert reply.status_code == 202 and reply.json()["job"]["state"] == "pending"
    assert researcher_client.get(archive_url).status_code == 404  # not made in the request
    queued[0]()
    job = poll(researcher_client, closed_study)["job"]
    assert job["name"] == "export" and job["state"] == "done"
    assert job["file"] == reverse("study_job_file", args=[closed_study.pk, job["id"]])
    download = researcher_client.get(job["file"])
    assert download["Content-Disposition"] == f'attachment; filename="study{closed_study.pk}-archive.zip"'
    data = b"".join(download.streaming_content)
    names = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert f"study{closed_study.pk}/answers.csv" in names and f"study{closed_study.pk}/labels.csv" in names
    assert b"".join(researcher_client.get(archive_url).streaming_content) == data
    stored = Job.objects.select_related("artifact").get(pk=job["id"]).artifact
    assert stored.kind == "export" and stored.size == len(data) and not stored.public
    page = researcher_client.get(reverse("study_detail", args=[closed_study.pk])).content.decode()
    assert f'href="{job["file"]}"' in page
    other = Client()
    other.force_login(other_researcher)
    assert other.get(job["file"]).status_code == 404 and other.get(archive_url).status_code == 404
    assert other.post(archive_url).status_code == 404
    assert Client().get(f"/artifacts/{stored.name}").status_code == 403  # the archive is not an artifact anyone sees
    assert other.get(f"/artifacts/{stored.name}").status_code == 404
    assert researcher_client.post(reverse("study_export", args=[closed_study.pk, "answers.csv"])).status_code == 405


def test_the_poll_stays_constant_in_queries_with_aggregation_and_export_jobs(
        closed_study, researcher_client, django_capture_on_commit_callbacks):
    def count() -> int:
        with CaptureQueriesContext(connection) as captured:
            poll(researcher_client, closed_study)
        return len(captured)

    before = count()  # the newest job is the recruitment job
    with django_capture_on_commit_callbacks(execute=True):
        services.study_start_aggregation(study=closed_study)
        services.study_start_export(study=closed_study)
    assert poll(researcher_client, closed_study)["job"]["file"]
    assert count() == before


def test_a_job_lost_by_the_broker_does_not_block_a_new_one(closed_study, settings, django_capture_on_commit_callbacks):
    import datetime as dt

    from django.utils import timezone

    with django_capture_on_commit_callbacks(execute=False):
        lost = services.study_start_aggregation(study=closed_study)
        assert services.study_start_aggregation(study=closed_study) == lost  # still fresh: the same job
    long_ago = timezone.now() - dt.timedelta(seconds=settings.SALIENT_JOB_STALE_SECONDS + 1)
    Job.objects.filter(pk=lost.pk).update(updated_at=long_ago)
    with django_capture_on_commit_callbacks(execute=True):
        fresh = services.study_start_aggregation(study=closed_study)
    fresh.refresh_from_db()
    assert fresh != lost and fresh.state == "done" and closed_study.results.count() == 3
