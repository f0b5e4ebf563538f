"""MTurk test helpers: a Stubber-wrapped client, a live MTurk study whose HITs were made through it, entry URLs.

The fixtures are registered in ``tests/conftest.py``.
"""
from __future__ import annotations

from urllib.parse import urlencode

import boto3
import pytest
from botocore.stub import Stubber
from django.urls import reverse

PUBLIC = "https://studio.example.org"
SANDBOX_SUBMIT = "https://workersandbox.mturk.com"
QUESTION = ('<ExternalQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/'
            'ExternalQuestion.xsd"><ExternalURL>https://studio.example.org/ext/mturk/{task}/</ExternalURL>'
            "<FrameHeight>0</FrameHeight></ExternalQuestion>")
GOOD = {"choice": "person", "reason": "a face", "confidence": "4"}


@pytest.fixture
def mturk(settings, monkeypatch):
    """A sandbox mturk client wrapped by a Stubber; every recruiter made from now on uses it."""
    from annotation.recruiters.mturk_client import SANDBOX_ENDPOINT, MTurkService

    settings.SALIENT_PUBLIC_URL = PUBLIC
    settings.SALIENT_MTURK_SANDBOX = True
    client = boto3.client("mturk", region_name="us-east-1", endpoint_url=SANDBOX_ENDPOINT,
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    stubber = Stubber(client)
    monkeypatch.setattr(MTurkService, "make_client", classmethod(lambda cls, sandbox: client))
    with stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def expected_hit(study, task, n=3):
    from annotation.recruiters.mturk import unique_request_token

    return {
        "Title": study.name,
        "Description": f"Answer a short question about images ({study.name})",
        "Keywords": "image, classification, labeling",
        "Reward": "0.12",
        "MaxAssignments": n,
        "AssignmentDurationInSeconds": study.assignment_seconds,
        "LifetimeInSeconds": 7 * 24 * 3600,
        "AutoApprovalDelayInSeconds": 3 * 24 * 3600,
        "Question": QUESTION.format(task=task.pk),
        "RequesterAnnotation": f"salient study {study.pk} task {task.pk}",
        "UniqueRequestToken": unique_request_token(study, task),
        "QualificationRequirements": [
            {"QualificationTypeId": "000000000000000000L0", "Comparator": "GreaterThanOrEqualTo",
             "IntegerValues": [95], "ActionsGuarded": "Accept"},
            {"QualificationTypeId": "00000000000000000040", "Comparator": "GreaterThanOrEqualTo",
             "IntegerValues": [100], "ActionsGuarded": "Accept"},
            {"QualificationTypeId": "00000000000000000071", "Comparator": "In",
             "LocaleValues": [{"Country": "US"}], "ActionsGuarded": "Accept"},
        ],
    }


@pytest.fixture
def mturk_study(make_study, mturk, django_capture_on_commit_callbacks):
    """A live MTurk study of two tasks whose HITs H0, H1 were created at launch (through the stub)."""
    from annotation import services

    study = make_study(images=["astronaut", "chelsea"], workers_per_task=3, reward_cents=12, backend="mturk",
                       live=False)
    for i, task in enumerate(study.tasks.order_by("id")):
        mturk.add_response("create_hit", {"HIT": {"HITId": f"H{i}"}}, expected_hit(study, task))
    with django_capture_on_commit_callbacks(execute=True):
        services.study_launch(study=study)
    study.refresh_from_db()
    return study


def entry_url(task, **params):
    query = {"hitId": task.external_id, "assignmentId": "A1", "workerId": "W1", "turkSubmitTo": SANDBOX_SUBMIT}
    query.update(params)
    return reverse("mturk_entry", args=[task.pk]) + "?" + urlencode(query)


def confirms(stubber, assignment_id="A1", worker_id="W1", hit_id="H0"):
    """MTurk's GetAssignment answers that the pair is this HIT's assignment."""
    stubber.add_response("get_assignment", {"Assignment": {
        "AssignmentId": assignment_id, "WorkerId": worker_id, "HITId": hit_id, "AssignmentStatus": "Submitted"}},
        {"AssignmentId": assignment_id})


def claim_of(location: str) -> str:
    return location.split("t=")[1]
