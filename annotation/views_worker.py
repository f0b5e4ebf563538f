"""Crowd-worker pages of the internal pool: sign up, next task, answer, return."""
from __future__ import annotations

import json
import uuid

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.http import FileResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from analysis.artifact_store import ArtifactNotFoundError
from annotation import selectors, services
from annotation.artifacts import artifact_open
from annotation.errors import AnswerInvalid, ApplicationError
from annotation.forms import SignupForm
from annotation.models import Assignment
from annotation.permissions import error_response, handles_errors, is_researcher, wants_json, worker_required
from annotation.task_kinds import get_task_kind
from annotation.task_kinds.fields import ChoiceField, PointField
from annotation.tokens import assignment_token, assignment_token_check


def home(request):
    if not request.user.is_authenticated:
        return redirect("login")
    if is_researcher(request.user):
        return redirect("study_list")
    return redirect("worker_home")


@handles_errors
def signup(request):
    token = request.GET.get("invite") or request.POST.get("invite")
    invitation = None
    if token:
        invitation = selectors.lookups.invitation_open(token=token) if _is_uuid(token) else None
        if invitation is None:
            return error_response(request, "this invitation link is invalid or already used", 404)
    elif not settings.SALIENT_WORKER_SIGNUP_OPEN:
        return error_response(request, "sign-up is by invitation only", 403)
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            worker = services.worker_signup(
                username=form.cleaned_data["username"], password=form.cleaned_data["password"], invitation=invitation
            )
        except ApplicationError as exc:
            form.add_error("username", exc.message)
        else:
            login(request, worker.user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("worker_home")
    status = 400 if request.method == "POST" else 200
    return render(request, "annotation/signup.html", {"form": form, "invite": token or ""}, status=status)


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


@require_GET
@worker_required
def worker_home(request):
    worker = request.worker
    done = selectors.lookups.worker_answered(worker=worker)
    open_assignment = selectors.assignment_open_for(worker=worker)
    return render(request, "annotation/worker_home.html", {
        "worker": worker, "done": done, "open_assignment": open_assignment,
    })


@require_POST
@worker_required
def next_task(request):
    assignment = services.assignment_claim_next(worker=request.worker)
    if assignment is None:
        if wants_json(request):
            return JsonResponse({"assignment": None, "message": "no task is available for you right now"})
        messages.info(request, "No task is available for you right now. Thank you!")
        return redirect("worker_home")
    if wants_json(request):
        return JsonResponse({"assignment": assignment.pk, "url": assignment_url(assignment)})
    return redirect("assignment_page", pk=assignment.pk)


def assignment_url(assignment: Assignment) -> str:
    return reverse("assignment_page", kwargs={"pk": assignment.pk})


def _own_assignment(request, pk: int) -> Assignment:
    assignment = selectors.lookups.assignment_get(pk=pk, worker=request.worker)
    if assignment is None:
        raise selectors.NotFound("no such assignment of yours")
    return assignment


@worker_required
def assignment_page(request, pk: int):
    if request.method == "POST":
        return _submit(request, pk)
    assignment = _own_assignment(request, pk)
    if assignment.state != Assignment.State.ASSIGNED:
        return error_response(request, f"this assignment is {assignment.state}", 409)
    if selectors.consent_needed(worker=request.worker, study=assignment.task.study):
        return redirect("assignment_consent", pk=assignment.pk)
    services.assignment_mark_shown(assignment=assignment)
    return _render_task(request, assignment, errors={}, values={}, status=200)


@worker_required
def assignment_consent(request, pk: int):
    """The study's information and consent text, before the worker's first task of it: agree or decline."""
    assignment = _own_assignment(request, pk)
    study = assignment.task.study
    if request.method == "POST":
        assignment_token_check(token=request.POST.get("token"), assignment=assignment)
        decision = request.POST.get("decision")
        if decision not in ("agree", "decline"):
            return error_response(request, "choose to agree or to decline", 400)
        services.consent_record(worker=request.worker, study=study, agreed=decision == "agree")
        if decision == "agree":
            return redirect("assignment_page", pk=assignment.pk)
        messages.info(request, f"You declined study “{study.name}”: you get none of its tasks.")
        return redirect("worker_home")
    if not selectors.consent_needed(worker=request.worker, study=study):
        return redirect("assignment_page", pk=assignment.pk)
    return render(request, "annotation/consent_page.html", {
        "study": study, "token": assignment_token(assignment),
        "form_action": reverse("assignment_consent", args=[assignment.pk])})


def answer_field_labels(fields) -> dict[str, str]:
    """Each answer field's name in words, as the page shows it beside the field and in the error summary."""
    labels = {}
    for field in fields:
        if isinstance(field, ChoiceField) and field.name == "choice":
            labels[field.name] = "Your answer"
        elif isinstance(field, PointField):
            labels[field.name] = field.legend
        else:
            labels[field.name] = field.name.replace("_", " ").capitalize()
    return labels


def task_page_context(assignment: Assignment | None, task, *, errors: dict, values: dict) -> dict:
    """What every task page shows: the kind's template and fields, the assignment token, errors beside their
    fields (and named in words in a summary), and the facts a worker asks for: study, tasks left, pay, due time."""
    kind = get_task_kind(task.study.kind)
    fields = kind.answer_fields(selectors.study_conf(study=task.study))
    labels = answer_field_labels(fields)
    worker = assignment.worker if assignment is not None else None
    return {
        "assignment": assignment,
        "task": task,
        "study": task.study,
        "kind_template": kind.template,
        "fields": fields,
        "token": assignment_token(assignment) if assignment is not None else "",
        "errors": errors,
        "field_labels": labels,
        "error_items": [(name, labels.get(name, name.replace("_", " ").capitalize()), message)
                        for name, message in errors.items()],
        "values": values,
        "tasks_left": (selectors.tasks_open_for(worker=worker, study=task.study).count() + 1
                       if worker is not None else None),
    }


def _render_task(request, assignment: Assignment, *, errors: dict, values: dict, status: int):
    context = task_page_context(assignment, assignment.task, errors=errors, values=values)
    return render(request, "annotation/task_page.html", context, status=status)


def form_payload(request) -> dict:
    """The posted form as a dict; a field sent twice is refused rather than silently taking the last value."""
    repeated = sorted(k for k, values in request.POST.lists() if len(values) > 1)
    if repeated:
        raise ApplicationError(f"each field may be sent once; repeated: {', '.join(repeated)}")
    return {k: request.POST.get(k) for k in request.POST}


def json_payload(request) -> dict:
    """The JSON body as an object; malformed, too deeply nested or not an object is refused."""
    try:
        payload = json.loads(request.body or b"{}")
    except (ValueError, RecursionError) as exc:
        raise ApplicationError("the answer is not valid JSON (or is nested too deeply)") from exc
    if not isinstance(payload, dict):
        raise ApplicationError("the answer must be a JSON object")
    return payload


def _submit(request, pk: int):
    payload = json_payload(request) if request.content_type == "application/json" else form_payload(request)
    token = payload.get("token")
    try:
        answer = services.assignment_submit(assignment_id=pk, worker=request.worker, payload=payload, token=token)
    except AnswerInvalid as exc:
        if wants_json(request):
            return JsonResponse({"error": exc.message, "errors": exc.errors}, status=400)
        assignment = _own_assignment(request, pk)
        return _render_task(request, assignment, errors=exc.errors, values=payload, status=400)
    if wants_json(request):
        return JsonResponse({"answer": answer.pk, "state": answer.assignment.state}, status=201)
    if payload.get("then") == "stop":
        messages.success(request, "Answer saved. Thank you! Come back any time for more tasks.")
        return redirect("worker_home")
    following = services.assignment_claim_next(worker=request.worker)
    if following is None:
        messages.success(request, "Answer saved. No other task is available for you right now. Thank you!")
        return redirect("worker_home")
    messages.success(request, "Answer saved. Here is your next task.")
    return redirect("assignment_page", pk=following.pk)


@require_POST
@worker_required
def assignment_return(request, pk: int):
    services.assignment_return(assignment_id=pk, worker=request.worker, token=request.POST.get("token"))
    messages.info(request, "Task returned; it goes to someone else.")
    return redirect("worker_home")


@require_GET
@handles_errors
def artifact_file(request, name: str):
    """An artifact by its content hash. A public one (a launched study shows it) for anyone: crowd task pages
    carry no session; a non-public one only for those :func:`selectors.artifact_visible_to` names (else 404)."""
    sha, _, ext = name.partition(".")
    artifact = selectors.lookups.artifact_by_name(sha=sha, ext=ext)
    if not request.user.is_authenticated and (artifact is None or not artifact.public):
        return error_response(request, "sign in to see this file", 403)
    if artifact is None or not selectors.artifact_visible_to(user=request.user, artifact=artifact):
        return error_response(request, "no such artifact", 404)
    try:
        handle = artifact_open(artifact)
    except ArtifactNotFoundError as exc:
        raise selectors.NotFound("this artifact's file is missing from the store") from exc
    response = FileResponse(handle, content_type=artifact.content_type)
    response["Cache-Control"] = "private, max-age=31536000, immutable"
    return response
