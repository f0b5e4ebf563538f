"""Entry pages of the crowd backends: where MTurk frames a HIT and where a Prolific link lands.

Both only check the crowd site's parameters, make or find the worker and the assignment through
the services, and send the worker on to the token-authenticated task page.
"""
from __future__ import annotations

import re

from django.conf import settings
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from annotation import services
from annotation.errors import ApplicationError, Forbidden
from annotation.models import Study, Task
from annotation.permissions import crowd_framable, handles_errors
from annotation.recruiters.mturk import PREVIEW_ASSIGNMENT_ID, MTurkRecruiter
from annotation.recruiters.prolific import ENTRY_PARAMS, ProlificRecruiter, completion_url
from annotation.selectors import NotFound
from annotation.views_external import external_task_url, render_external_task

ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _param(request, name: str) -> str:
    value = request.GET.get(name, "")
    if not ID_RE.match(value):
        raise ApplicationError(f"the link's {name} is missing or malformed")
    return value


@require_GET
@crowd_framable
@handles_errors
def mturk_entry(request, task_pk: int):
    """MTurk's ExternalQuestion URL: preview without a form, or start/resume the worker's assignment."""
    task = Task.objects.select_related("study").filter(pk=task_pk, study__backend=MTurkRecruiter.nickname).first()
    if task is None or not task.external_id or request.GET.get("hitId") != task.external_id:
        raise NotFound("no such HIT")
    assignment_id = request.GET.get("assignmentId", PREVIEW_ASSIGNMENT_ID)
    if assignment_id == PREVIEW_ASSIGNMENT_ID:
        return render_external_task(request, None, preview=True, task=task)
    assignment_id = _param(request, "assignmentId")
    worker_id = _param(request, "workerId")
    submit_to = request.GET.get("turkSubmitTo", "").rstrip("/")
    if submit_to not in settings.SALIENT_MTURK_SUBMIT_ORIGINS:
        raise Forbidden(f"turkSubmitTo {submit_to!r} is not an MTurk address")
    worker = services.external_worker(backend=MTurkRecruiter.nickname, external_id=worker_id)
    assignment = services.assignment_start_external(
        task=task, worker=worker, external_id=assignment_id, backend=MTurkRecruiter.nickname,
        submit_to=submit_to, external_study_id=task.external_id,
    )
    return redirect(external_task_url(assignment))


@require_GET
@handles_errors
def prolific_entry(request, study_pk: int):
    """The Prolific study URL: one start per participant, then the study's tasks one by one."""
    pid, study_id, session_id = (_param(request, name) for name in ENTRY_PARAMS)
    study = Study.objects.filter(pk=study_pk, backend=ProlificRecruiter.nickname).first()
    if study is None:
        raise NotFound("no such study")
    expected = study.recruitment.get("prolific_study_id")
    if expected and expected != study_id:
        raise Forbidden("this link belongs to another Prolific study")
    worker = services.external_worker(backend=ProlificRecruiter.nickname, external_id=pid)
    services.external_session_start(study=study, worker=worker, backend=ProlificRecruiter.nickname,
                                    session_id=session_id, external_study_id=study_id)
    assignment = services.assignment_claim_next(worker=worker, study=study)
    if assignment is not None:
        return redirect(external_task_url(assignment))
    if worker.answers.filter(task__study=study).exists():
        services.external_session_complete(study=study, worker=worker)
        return redirect(completion_url(study.completion_code))
    return render(request, "annotation/ext_message.html", {
        "title": "No task left", "study": study,
        "message": "Every task of this study has all the answers it needs. Please return the study in Prolific.",
    }, status=409)
