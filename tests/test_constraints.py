"""Database constraints hold even when Python checks are bypassed."""
import datetime as dt

import pytest
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from annotation.models import Answer, Assignment, Task


def _assignment(task, worker):
    return Assignment.objects.create(task=task, worker=worker, expires_at=timezone.now() + dt.timedelta(hours=1))


def test_one_assignment_per_worker_and_task(make_study, make_worker):
    task = make_study().tasks.first()
    worker = make_worker()
    _assignment(task, worker)
    with pytest.raises(IntegrityError), transaction.atomic():
        _assignment(task, worker)


def test_one_answer_per_assignment(make_study, make_worker):
    task = make_study().tasks.first()
    worker = make_worker()
    assignment = _assignment(task, worker)
    now = timezone.now()
    Answer.objects.create(assignment=assignment, task=task, worker=worker, payload={}, shown_at=now, submitted_at=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        Answer.objects.create(assignment=assignment, task=task, worker=worker, payload={}, shown_at=now,
                              submitted_at=now)


@pytest.mark.parametrize("counter", ["approved", "filled"])
def test_task_counters_never_exceed_wanted(make_study, counter):
    task = make_study(workers_per_task=2).tasks.first()
    Task.objects.filter(pk=task.pk).update(**{counter: 2})
    with pytest.raises(IntegrityError), transaction.atomic():
        Task.objects.filter(pk=task.pk).update(**{counter: F(counter) + 1})
    assert getattr(Task.objects.get(pk=task.pk), counter) == 2
