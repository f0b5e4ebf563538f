"""Task pages for workers who arrive from a crowd site (MTurk, Prolific): no session, a signed token.

The page is authenticated by the signed per-assignment token (``?t=`` on the page, ``token`` in the
form), never by a cookie, so it works inside a crowd site's frame. The submit is exempt from CSRF
only because the token proves the assignment; a tampered id or token is refused and changes nothing.
After the answer is stored, the study's recruiter says what comes next (post to MTurk, next task,
Prolific's completion page).
"""
from __future__ import annotations

from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt

from annotation import services
from annotation.errors import AnswerInvalid
from annotation.models import Assignment
from annotation.permissions import crowd_framable, error_response, handles_errors
from annotation.recruiters import recruiter_for
from annotation.selectors import NotFound
from annotation.tokens import assignment_token, assignment_token_check
from annotation.views_worker import task_page_context


def external_task_url(assignment: Assignment) -> str:
    return reverse("ext_task", args=[assignment.pk]) + "?t=" + assignment_token(assignment)


def render_external_task(request, assignment: Assignment, *, errors: dict | None = None, values: dict | None = None,
                         preview: bool = False, status: int = 200, task=None):
    task = task or assignment.task
    context = task_page_context(assignment, task, errors=errors or {}, values=values or {})
    return render(request, "annotation/ext_task_page.html", {**context, "preview": preview}, status=status)


@csrf_exempt  # token-authenticated: the signed per-assignment token proves the assignment, no cookie is read
@crowd_framable
@handles_errors
def task_page(request, pk: int):
    if request.method not in ("GET", "POST"):
        return error_response(request, "use GET to see the task and POST to answer it", 405)
    token = request.POST.get("token") if request.method == "POST" else request.GET.get("t")
    assignment = Assignment.objects.select_related("task__study", "worker").filter(pk=pk).first()
    if assignment is None:
        raise NotFound("no such assignment")
    assignment_token_check(token=token, assignment=assignment)
    if request.method == "GET":
        if assignment.state != Assignment.State.ASSIGNED:
            return error_response(request, f"this assignment is {assignment.state}", 409)
        services.assignment_mark_shown(assignment=assignment)
        return render_external_task(request, assignment)
    payload = {k: request.POST.get(k) for k in request.POST}
    try:
        services.assignment_submit(assignment_id=pk, worker=assignment.worker, payload=payload, token=token)
    except AnswerInvalid as exc:
        return render_external_task(request, assignment, errors=exc.errors, values=payload, status=400)
    assignment = Assignment.objects.select_related("task__study", "worker", "answer").get(pk=pk)
    response = recruiter_for(assignment.task.study).after_submit(request, assignment)
    if response is None:
        response = render(request, "annotation/ext_message.html", {
            "title": "Thank you", "message": "Your answer is saved.", "study": assignment.task.study})
    return response
