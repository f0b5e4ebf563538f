"""Malformed input gets a 4xx naming the field, never a 500 (issue 29, finding 8): NUL bytes (which
PostgreSQL refuses in text) in addresses, filters and forms, and ids too large for a 64-bit column (which
SQLite refuses). Runs on the suite's database: SQLite by default, PostgreSQL under ``make test``."""
from __future__ import annotations

import pytest
from django.test import Client

from tests.test_api import api_client

HUGE = "9" * 30


@pytest.fixture
def study(make_study):
    return make_study()


@pytest.mark.parametrize("route, field", [
    ("/artifacts/ab%00c.png", "name"),
    ("/studies/{id}/?worker=a%00b", "worker"),
    ("/studies/{id}/?task=a%00b", "task"),
    ("/studies/{id}/?tkey=a%00b", "tkey"),
    ("/studies/{id}/?label=a%00b", "label"),
    ("/studies/{id}/outputs/a%00b.csv", "name"),
    ("/studies/{id}/export/a%00b.csv", "filename"),
    ("/studies/{id}/progress.json?tasks=1,a%00", "tasks"),
], ids=["artifact", "worker", "task", "tkey", "label", "output", "export", "progress"])
def test_a_nul_byte_gets_a_400_naming_the_field(study, researcher_client, route, field):
    reply = researcher_client.get(route.format(id=study.pk), HTTP_ACCEPT="application/json")
    assert reply.status_code == 400, reply.content[:300]
    assert reply.json()["field"] == field and "NUL" in reply.json()["error"]


def test_a_nul_byte_in_the_api_gets_a_400_naming_the_field(study, researcher):
    reply = api_client(researcher).get(f"/api/studies/{study.pk}/outputs/a%00b.csv")
    assert reply.status_code == 400 and reply.json()["field"] == "name"


def test_a_nul_byte_in_the_block_list_form_stores_nothing(study, researcher_client):
    from annotation.models import BlockedWorker, Worker

    before = (Worker.objects.count(), BlockedWorker.objects.count())
    reply = researcher_client.post("/blocklist/", {"backend": "mturk", "ids": "A1\x00B2", "reason": "x"},
                                   HTTP_ACCEPT="application/json")
    assert reply.status_code == 400 and reply.json()["field"] == "ids"
    assert (Worker.objects.count(), BlockedWorker.objects.count()) == before
    page = researcher_client.post("/blocklist/", {"backend": "mturk", "ids": "A1", "reason": "r\x00"})
    assert page.status_code == 400 and "reason" in page.content.decode()


@pytest.mark.parametrize("route", [
    "/studies/{id}/?task=" + HUGE, "/studies/{id}/?worker=" + HUGE, "/studies/{id}/progress.json?tasks=" + HUGE,
])
def test_a_30_digit_id_in_a_filter_matches_nothing(study, researcher_client, route):
    reply = researcher_client.get(route.format(id=study.pk))
    assert reply.status_code == 200
    if "progress" in route:
        assert reply.json()["task_rows"] == []


@pytest.mark.parametrize("route, field", [
    ("/studies/{huge}/", "pk"), ("/studies/{huge}/progress.json", "pk"), ("/work/a/{huge}/", "pk"),
    ("/ext/a/{huge}/", "pk"), ("/ext/mturk/{huge}/", "task_pk"), ("/api/studies/{huge}", "study_id"),
])
def test_a_30_digit_id_in_the_address_is_a_404_naming_it(study, researcher, route, field):
    client = api_client(researcher) if route.startswith("/api/") else Client()
    client.force_login(researcher)
    reply = client.get(route.format(huge=HUGE), HTTP_ACCEPT="application/json")
    assert reply.status_code == 404, reply.content[:300]
    assert reply.json()["field"] == field
