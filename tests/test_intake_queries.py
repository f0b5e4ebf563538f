"""What one answer costs the database: the SQL statements of a crowd-site answer post (``/ext/a/<id>/``, the
page ``bench/intake.py`` drives), pinned so that a query added to the submit path fails here."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.models import Answer, Assignment, Worker
from annotation.tokens import assignment_token
from tests.mturk_helpers import GOOD

#: Statements of one answer post once the study's version is cached, inside the test's transaction. PostgreSQL
#: (``services.intake``): SAVEPOINT, the locked read (assignment, task, worker, study state), one statement that
#: takes the task's slot, approves the assignment and stores the answer, RELEASE. SQLite (the study-wide read,
#: no row locks): SAVEPOINT, the read with the study's columns, the answer's INSERT, the task's counter UPDATE,
#: the assignment's UPDATE, RELEASE.
STATEMENTS = {"postgresql": 4, "sqlite": 6}


@pytest.fixture
def crowd_assignments(make_study):
    study = make_study(workers_per_task=3)
    tasks = list(study.tasks.order_by("id")[:2])
    out = []
    for i, task in enumerate(tasks):
        worker = Worker.objects.create(backend="prolific", external_id=f"q{i}")
        out.append(Assignment.objects.create(task=task, worker=worker, expires_at=task.created_at.replace(year=2999)))
    return out


def test_one_crowd_answer_post_makes_few_statements(crowd_assignments):
    client = Client()
    first, second = crowd_assignments
    reply = client.post(reverse("ext_task", args=[first.pk]), {"token": assignment_token(first), **GOOD})
    assert reply.status_code == 200, reply.content[:300]  # the study's version is now cached
    with CaptureQueriesContext(connection) as queries:
        reply = client.post(reverse("ext_task", args=[second.pk]), {"token": assignment_token(second), **GOOD})
    assert reply.status_code == 200 and Answer.objects.count() == 2
    statements = [q["sql"].split()[0].upper() for q in queries.captured_queries]
    assert len(statements) == STATEMENTS[connection.vendor], "\n".join(q["sql"][:120] for q in queries)
    writes = ["WITH"] if connection.vendor == "postgresql" else ["INSERT", "UPDATE", "UPDATE"]
    assert [s for s in statements if s not in ("SAVEPOINT", "RELEASE", "BEGIN", "COMMIT")] == ["SELECT", *writes]
    stored = Answer.objects.get(assignment=second)
    second.refresh_from_db()
    assert stored.payload["choice"] == GOOD["choice"] and stored.flag == "" and stored.submitted_at == second.decided_at
    assert second.state == Assignment.State.APPROVED and second.task.approved == 1  # the first went to another task
