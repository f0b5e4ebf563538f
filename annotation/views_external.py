"""Pages for workers who arrive from a crowd site (MTurk, Prolific): entry pages and the task page.

The entry pages only check the crowd site's parameters and send the worker on to a token-authenticated
task page. Prolific: the entry makes or finds the worker and the assignment. MTurk: the entry stores
nothing; it signs the (assignment id, worker id) pair MTurk sent into a claim, and the answer is stored
when posted, counted only once MTurk confirms the pair (``services.mturk_answer_submit``).

The page is authenticated by the signed per-assignment token (``?t=`` on the page, ``token`` in the
form), never by a cookie, so it works inside a crowd site's frame. The submit is exempt from CSRF
only because the token proves the assignment; a tampered id or token is refused and changes nothing.
After the answer is stored, the study's recruiter says what comes next (post to MTurk, next task,
Prolific's completion page).
"""
from __future__ import annotations

import re

from django.conf import settings
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET

from annotation import selectors, services
from annotation.errors import AnswerInvalid, ApplicationError, Forbidden
from annotation.models import Assignment
from annotation.permissions import crowd_framable, error_response, handles_errors
from annotation.recruiters import NextStep, recruiter_for
from annotation.recruiters.mturk import PREVIEW_ASSIGNMENT_ID, MTurkRecruiter
from annotation.recruiters.prolific import ENTRY_PARAMS, ProlificRecruiter, completion_url
from annotation.selectors import NotFound
from annotation.tokens import EXTERNAL, assignment_token, assignment_token_check, mturk_claim_check, mturk_claim_token
from annotation.views_worker import form_payload, task_page_context


def external_task_url(assignment: Assignment) -> str:
    return reverse("ext_task", args=[assignment.pk]) + "?t=" + assignment_token(assignment)


def render_external_task(request, assignment: Assignment | None, *, errors: dict | None = None,
                         values: dict | None = None, preview: bool = False, status: int = 200, task=None,
                         claim: str = ""):
    """The framed task page: of an assignment (Prolific), of an MTurk worker's signed ``claim``, or a preview."""
    task = task or assignment.task
    context = task_page_context(assignment, task, errors=errors or {}, values=values or {})
    if claim:
        context.update(token=claim, form_action=reverse("mturk_task", args=[task.pk]),
                       consent_inline=_mturk_consent_needed(task, mturk_claim_check(token=claim, task=task)))
    elif assignment is not None:
        context["form_action"] = reverse("ext_task", args=[assignment.pk])
    return render(request, "annotation/ext_task_page.html", {**context, "preview": preview}, status=status)


@csrf_exempt  # token-authenticated: the signed per-assignment token proves the assignment, no cookie is read
@crowd_framable
@handles_errors
def task_page(request, pk: int):
    if request.method not in ("GET", "POST"):
        return error_response(request, "use GET to see the task and POST to answer it", 405)
    if request.method == "POST":
        return _submit(request, pk)
    assignment = _assignment(pk, token=request.GET.get("t"))
    if assignment.state != Assignment.State.ASSIGNED:
        return error_response(request, f"this assignment is {assignment.state}", 409)
    if selectors.consent_needed(worker=assignment.worker, study=assignment.task.study):
        return _consent_page(request, assignment)
    services.assignment_mark_shown(assignment=assignment)
    return render_external_task(request, assignment)


def _consent_page(request, assignment: Assignment):
    return render(request, "annotation/consent_page.html", {
        "study": assignment.task.study, "external": True, "token": request.GET.get("t"),
        "form_action": reverse("ext_consent", args=[assignment.pk])})


@csrf_exempt  # token-authenticated like the task page: the signed per-assignment token proves the assignment
@crowd_framable
@handles_errors
def consent(request, pk: int):
    """A crowd-site worker agrees to or declines the study's consent text (shown before their first task)."""
    if request.method != "POST":
        return error_response(request, "post your decision (agree or decline)", 405)
    assignment = _assignment(pk, token=request.POST.get("token"))
    decision = request.POST.get("decision")
    if decision not in ("agree", "decline"):
        return error_response(request, "choose to agree or to decline", 400)
    study = assignment.task.study
    services.consent_record(worker=assignment.worker, study=study, agreed=decision == "agree")
    if decision == "agree":
        return redirect(external_task_url(assignment))
    return render(request, "annotation/ext_message.html", {
        "title": "Thank you", "study": study,
        "message": "You declined to take part, so you get no task of this study. Please return it on the crowd site.",
    })


def _mturk_consent_needed(task, claim) -> bool:
    """Whether an MTurk worker's page asks for consent with the answer (MTurk workers have no row before it)."""
    if not task.study.consent_text:
        return False
    worker = selectors.lookups.external_worker_get(backend=task.study.backend, external_id=claim["w"])
    return worker is None or selectors.consent_needed(worker=worker, study=task.study)


def _assignment(pk: int, *, token) -> Assignment:
    assignment = selectors.lookups.assignment_get(pk=pk)
    if assignment is None:
        raise NotFound("no such assignment")
    assignment_token_check(token=token, assignment=assignment, purpose=EXTERNAL)
    return assignment


def _submit(request, pk: int):
    """Store the answer: the service reads and locks the assignment once and checks the token."""
    token = request.POST.get("token")
    payload = form_payload(request)
    try:
        answer = services.assignment_submit(assignment_id=pk, worker=None, payload=payload, token=token,
                                            purpose=EXTERNAL)
    except AnswerInvalid as exc:
        return render_external_task(request, _assignment(pk, token=token), errors=exc.errors, values=payload,
                                    status=400)
    assignment = answer.assignment  # the stored row, its task, study, worker and answer loaded
    step = recruiter_for(assignment.task.study).after_submit(assignment)
    if step is None:
        return render(request, "annotation/ext_message.html", {
            "title": "Thank you", "message": "Your answer is saved.", "study": assignment.task.study})
    return _follow(request, assignment, step)


def _follow(request, assignment: Assignment, step: NextStep):
    """Carry out the recruiter's next step for a worker whose answer was stored."""
    if step.action == "post":
        return render(request, "annotation/ext_mturk_submit.html", {
            "action": step.url, "fields": step.fields, "study": assignment.task.study})
    if step.action == "next_task":
        study, worker = assignment.task.study, assignment.worker
        following = services.assignment_claim_next(worker=worker, study=study)
        if following is not None:
            return redirect(external_task_url(following))
        services.external_session_complete(study=study, worker=worker)
        return redirect(step.url)
    raise ValueError(f"unknown next step {step.action!r}")


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
    task = selectors.lookups.task_get(pk=task_pk, backend=MTurkRecruiter.nickname)
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
    services.mturk_entry_check(task=task, assignment_id=assignment_id, worker_id=worker_id)
    claim = mturk_claim_token(task=task, assignment_id=assignment_id, worker_id=worker_id, submit_to=submit_to)
    return redirect(reverse("mturk_task", args=[task.pk]) + "?t=" + claim)


@csrf_exempt  # token-authenticated: the signed claim proves the (assignment id, worker id) pair MTurk sent
@crowd_framable
@handles_errors
def mturk_task(request, task_pk: int):
    """An MTurk worker's task page; the answer is stored (and checked with MTurk) only when it is posted."""
    if request.method not in ("GET", "POST"):
        return error_response(request, "use GET to see the task and POST to answer it", 405)
    task = selectors.lookups.task_get(pk=task_pk, backend=MTurkRecruiter.nickname)
    if task is None:
        raise NotFound("no such HIT")
    token = request.POST.get("token") if request.method == "POST" else request.GET.get("t")
    claim = mturk_claim_check(token=token, task=task)
    if request.method == "GET":
        return render_external_task(request, None, task=task, claim=token)
    payload = form_payload(request)
    agreed = payload.pop("consent", None) == "agree"
    if _mturk_consent_needed(task, claim) and not agreed:
        errors = {"consent": "tick the box to agree to the information and consent text, or return the HIT"}
        return render_external_task(request, None, task=task, claim=token, errors=errors, values=payload, status=400)
    try:
        assignment = services.mturk_answer_submit(task=task, claim=claim, payload=payload, consent=agreed)
    except AnswerInvalid as exc:
        return render_external_task(request, None, task=task, claim=token, errors=exc.errors, values=payload,
                                    status=400)
    assignment = selectors.lookups.assignment_with_answer(pk=assignment.pk)
    return _follow(request, assignment, recruiter_for(task.study).after_submit(assignment))


@require_GET
@handles_errors
def prolific_entry(request, study_pk: int):
    """The Prolific study URL: one start per participant, then the study's tasks one by one."""
    pid, study_id, session_id = (_param(request, name) for name in ENTRY_PARAMS)
    study = selectors.lookups.study_on_backend(pk=study_pk, backend=ProlificRecruiter.nickname)
    if study is None:
        raise NotFound("no such study")
    if study_id != study.recruitment.get("prolific_study_id"):
        raise Forbidden("this link belongs to another Prolific study (STUDY_ID does not match)")
    verified = services.external_entry_confirm(study=study, session_id=session_id, participant_id=pid)
    worker, _session = services.external_entry_start(study=study, backend=ProlificRecruiter.nickname,
                                                     participant_id=pid, session_id=session_id,
                                                     external_study_id=study_id, verified=verified)
    assignment = services.assignment_claim_next(worker=worker, study=study)
    if assignment is not None:
        return redirect(external_task_url(assignment))
    if selectors.lookups.worker_answered(worker=worker, study=study):
        services.external_session_complete(study=study, worker=worker)
        return redirect(completion_url(study.completion_code))
    return render(request, "annotation/ext_message.html", {
        "title": "No task left", "study": study,
        "message": "Every task of this study has all the answers it needs. Please return the study in Prolific.",
    }, status=409)
