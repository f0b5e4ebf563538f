"""Researcher pages: create, compute, launch, watch, close, aggregate and export studies."""
from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import FileResponse, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation import selectors, services
from annotation.artifacts import artifact_download, artifact_open
from annotation.errors import ApplicationError
from annotation.forms import StudyForm
from annotation.models import Assignment, Job, RegisteredDataset, RegisteredModel, Worker
from annotation.permissions import error_response, researcher_required
from annotation.recruiters import recruiter_for
from annotation.reports.export_files import study_export_files
from annotation.reports.study_report import PageImages, results_sections, study_report_html
from annotation.services.export_jobs import ARCHIVE, JOB_EXPORTS
from annotation.states import allowed_transitions
from annotation.task_kinds import TASK_KINDS, get_task_kind


@require_GET
@researcher_required
def study_list(request):
    return render(request, "annotation/study_list.html", {
        "studies": selectors.study_list(user=request.user), "kinds": {n: k.title for n, k in TASK_KINDS.items()},
        "with_results": {name for name, kind in TASK_KINDS.items() if kind.results_template},
        "backends": Worker.Backend.choices})


@researcher_required
def study_create(request):
    """The new-study form; its settings part follows the kind (``?kind=…&part=settings`` is that part alone,
    fetched by the page's script when the kind changes). A POST whose settings were shown for another kind
    (no script) shows the chosen kind's settings instead of errors about fields never displayed."""
    kind_name = request.POST.get("kind") or request.GET.get("kind") or "image_choice"
    if kind_name not in TASK_KINDS:
        return error_response(request, f"unknown task kind {kind_name!r}; kinds are {', '.join(sorted(TASK_KINDS))}",
                              400)
    settings_form_class = get_task_kind(kind_name).settings_form
    notice = ""
    shown_for = request.POST.get("settings_kind", kind_name)
    if request.method == "POST" and shown_for == kind_name:
        form = StudyForm(request.POST)
        settings_form = settings_form_class(request.POST, prefix="s")
        if form.is_valid() and settings_form.is_valid():
            data = form.cleaned_data
            try:
                study = services.study_create(
                    owner=request.user, name=data["name"], kind=data["kind"], settings=settings_form.cleaned_data,
                    workers_per_task=data["workers_per_task"], reward_cents=data["reward_cents"],
                    assignment_seconds=data["assignment_minutes"] * 60, backend=data["backend"],
                    recruitment=form.recruitment(), **form.quality_settings(),
                )
            except ApplicationError as exc:
                field = exc.extra.get("field")
                (settings_form if field in settings_form.fields else form).add_error(
                    field if field in settings_form.fields else "name", exc.message)
            else:
                messages.success(request, f"Study {study.name!r} created.")
                return redirect("study_detail", pk=study.pk)
        status = 400
    elif request.method == "POST":  # the settings on the page were another kind's: show this kind's defaults
        form = StudyForm(request.POST)
        settings_form = settings_form_class(prefix="s")
        notice = f"These are the settings of {get_task_kind(kind_name).title}: check them, then create the study."
        status = 200
    else:
        form = StudyForm(initial={"kind": kind_name})
        settings_form = settings_form_class(prefix="s")
        status = 200
    registry_choices(settings_form, request.user)
    context = {"form": form, "settings_form": settings_form, "kind_name": kind_name, "notice": notice}
    if request.method == "GET" and request.GET.get("part") == "settings":
        return render(request, "annotation/_kind_settings.html", context)
    return render(request, "annotation/study_form.html", context, status=status)


def registry_choices(form, user) -> None:
    """List the researcher's own and the shared registry entries in the form's dataset/model fields."""
    for field in form.fields.values():
        registry = getattr(field, "registry", None)
        if registry is None:
            continue
        model = RegisteredDataset if registry == "dataset" else RegisteredModel
        choices = [(e.name, f"{e.name} — {e.title}" if e.title else e.name)
                   for e in services.registry.visible(model, user)]
        if not field.required and registry == "dataset":
            choices = [("", "— none —"), *choices]
        field.choices = choices
        field.widget.choices = choices


#: Rows per page of the dashboard's task and answer tables.
PAGE_SIZE = 50


def _task_filters(request) -> dict:
    return {"key": request.GET.get("tkey", "").strip(), "gold": {"yes": True,
                                                                 "no": False}.get(request.GET.get("tgold")),
            "order": request.GET.get("torder") or "id"}


def _answer_filters(data) -> dict:
    """The answers table's filters from a query string or a bulk-decision form (same names)."""
    return {"task": data.get("task", "").strip(), "worker": data.get("worker", "").strip(),
            "state": data.get("state", "").strip(), "label": data.get("label", "").strip(),
            "order": data.get("order") or "newest"}


@require_GET
@researcher_required
def study_detail(request, pk: int):
    study = selectors.study_get(user=request.user, pk=pk)
    try:
        tasks = selectors.study_tasks_filtered(study=study, **_task_filters(request))
        answers = selectors.study_answers_filtered(study=study, **_answer_filters(request.GET))
    except selectors.FilterError as exc:
        return error_response(request, exc.message, 400, {"field": exc.field})
    task_page = Paginator(tasks, PAGE_SIZE).get_page(request.GET.get("tpage"))
    task_rows = selectors.task_progress_rows(tasks=tasks.filter(pk__in=[t.pk for t in task_page]))
    return render(request, "annotation/study_detail.html", {
        "study": study,
        "progress": selectors.study_progress_summary(study=study),
        "allowed": allowed_transitions(study.state),
        "answers": Paginator(answers, PAGE_SIZE).get_page(request.GET.get("page")),
        "answer_filters": _answer_filters(request.GET),
        "answer_states": Assignment.State.values,
        "answer_orders": list(selectors.ANSWER_ORDERS),
        "task_orders": list(selectors.TASK_ORDERS),
        "task_page": task_page,
        "task_rows": task_rows,
        "task_filters": _task_filters(request),
        "results": (study.results.select_related("task").filter(task__in=[r["id"] for r in task_rows])
                    .order_by("task_id")),
        "kind": get_task_kind(study.kind), "words": selectors.task_grid.LabelWords.of(study),
        "grid_url": reverse("study_tasks", args=[study.pk]),
        "cost": selectors.quality.study_cost_estimate(study=study),
        "recruitment": recruiter_for(study).describe(study, request.build_absolute_uri("/").rstrip("/")),
        "qc": selectors.quality.study_quality_live(study=study),
        "gold_editable": study.state in ("draft", "ready"),
        "gold_choices": _label_choices(study),
        "outputs": selectors.lookups.study_outputs(study=study),
        "archive": selectors.study_export_latest(study=study, file=ARCHIVE),
        "bonuses": selectors.lookups.study_bonuses(study=study),
    })


@require_POST
@researcher_required
def answers_decide(request, pk: int):
    """Approve or reject every answer the dashboard's filters select (those whose state allows it)."""
    study = selectors.study_get(user=request.user, pk=pk)
    decision = request.POST.get("decision")
    allowed = {"approve": (Assignment.State.SUBMITTED,),
               "reject": (Assignment.State.SUBMITTED, Assignment.State.APPROVED)}
    if decision not in allowed:
        return error_response(request, f"unknown decision {decision!r}; use approve or reject", 400)
    try:
        answers = selectors.study_answers_filtered(study=study, **_answer_filters(request.POST))
    except selectors.FilterError as exc:
        return error_response(request, exc.message, 400, {"field": exc.field})
    decide = services.assignment_approve if decision == "approve" else services.assignment_reject
    targets = selectors.lookups.assignments_of_answers(answers=answers, states=allowed[decision])
    done = 0
    for assignment in targets:
        decide(assignment=assignment)
        done += 1
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse({"decision": decision, "assignments": done})
    messages.success(request, f"{done} answers {decision}d.")
    return redirect(request.POST.get("next") if _safe_next(request) else reverse("study_detail", args=[study.pk]))


@require_GET
@researcher_required
def study_results(request, pk: int):
    """The kind's analysis results page (e.g. SpRAy's class ranking and cluster views)."""
    study = selectors.study_get(user=request.user, pk=pk)
    kind = get_task_kind(study.kind)
    if kind.results_template is None:
        return error_response(request, f"studies of kind {study.kind!r} have no results page", 404)
    outputs = {o.name: o for o in selectors.lookups.study_outputs(study=study)}
    ctx = services.study_context(study)
    job_forms = {name: (job.title, job.form(ctx)(prefix=name)) for name, job in kind.jobs.items()}
    context = {
        "study": study, "kind": kind, "outputs": outputs, "job_forms": job_forms, "images": PageImages(study),
        "jobs": selectors.lookups.study_kind_jobs(study=study), "grid_url": reverse("study_tasks", args=[study.pk]),
        "label_rows": selectors.task_grid.study_label_summary(study=study),
        **kind.results_context(ctx),
    }
    findings = render_to_string(kind.results_template, context, request) if context.get("summary") else ""
    return render(request, "annotation/study_results.html", {
        **context, "findings": findings, "sections": results_sections(findings)})


#: Tiles per page of the task grid.
GRID_PAGE_SIZE = 48


@require_GET
@researcher_required
def study_tasks(request, pk: int):
    """The task grid (Label Studio's data manager): thumbnails, filtered by label, tie, agreement, gold and
    worker, sorted and paged in the database; a tile opens the task with every answer."""
    study = selectors.study_get(user=request.user, pk=pk)
    grid = selectors.task_grid
    try:
        filters = grid.GridFilters.parse(request.GET)
        tasks = grid.task_grid(study=study, filters=filters)
    except selectors.FilterError as exc:
        return error_response(request, exc.message, 400, {"field": exc.field})
    page = Paginator(tasks, GRID_PAGE_SIZE).get_page(request.GET.get("page"))
    words = grid.LabelWords.of(study)
    return render(request, "annotation/study_tasks.html", {
        "study": study, "kind": get_task_kind(study.kind), "page": page, "filters": filters,
        "rows": [grid.task_grid_row(t, words) for t in page], "query": filters.query_string(),
        "labels": grid.study_label_values(study=study), "orders": grid.GRID_ORDER_WORDS,
        "filtered": bool(set(filters.query(only_set=True)) - {"order"}),
        "field_filters": [(name, grid.PAYLOAD_FILTERS[name], value) for name, value in filters.fields],
    })


@require_GET
@researcher_required
def study_task(request, pk: int, task_pk: int):
    """One task of the grid: its images and every answer; previous/next follow the grid's filters and order."""
    study = selectors.study_get(user=request.user, pk=pk)
    task = study.tasks.select_related("study").filter(pk=task_pk).first()
    if task is None:
        raise selectors.NotFound(f"study {study.name!r} has no task {task_pk}")
    grid = selectors.task_grid
    try:
        filters = grid.GridFilters.parse(request.GET)
        previous, following = grid.task_neighbours(tasks=grid.task_grid(study=study, filters=filters), task=task)
    except selectors.FilterError as exc:
        return error_response(request, exc.message, 400, {"field": exc.field})
    words = grid.LabelWords.of(study)
    return render(request, "annotation/study_task.html", {
        "study": study, "task": task, "row": grid.task_grid_row(task, words),
        "images": grid.task_images(task.payload), "answers": grid.task_answer_rows(task=task, words=words),
        "previous": previous, "next": following, "query": filters.query_string(),
    })


@require_POST
@researcher_required
def study_job_start(request, pk: int, name: str):
    """Start one of the kind's own jobs with the parameters of its form."""
    study = selectors.study_get(user=request.user, pk=pk)
    kind = get_task_kind(study.kind)
    if name not in kind.jobs:
        return error_response(request, f"studies of kind {study.kind!r} have no job {name!r}", 404)
    form = kind.jobs[name].form(services.study_context(study))(request.POST, prefix=name)
    if not form.is_valid():
        errors = "; ".join(f"{field}: {' '.join(e)}" for field, e in form.errors.items())
        return error_response(request, f"invalid {name} parameters: {errors}", 400)
    job = services.study_start_kind_job(study=study, name=name, params=form.cleaned_data)
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse({"job": job.pk, "name": job.name}, status=202)
    messages.success(request, f"{kind.jobs[name].title}: queued.")
    return redirect("study_results", pk=study.pk)


@require_GET
@researcher_required
def study_progress(request, pk: int):
    """The dashboard's poll: totals and the latest job, plus the rows of the tasks named in ``?tasks=1,2``
    (the page on screen, at most :data:`PAGE_SIZE`), in a number of queries that does not grow with the study."""
    study = selectors.study_get(user=request.user, pk=pk)
    ids = [i for t in request.GET.get("tasks", "").split(",") if (i := selectors.as_id(t.strip()))][:PAGE_SIZE]
    rows = selectors.task_progress_rows(tasks=study.tasks.filter(pk__in=ids)) if ids else []
    return JsonResponse({**selectors.study_progress_summary(study=study), "task_rows": rows})


ACTIONS = {
    "compute": lambda study: services.study_start_computing(study=study),
    "launch": lambda study: services.study_launch(study=study),
    "close": lambda study: services.study_close(study=study),
    "aggregate": lambda study: services.study_start_aggregation(study=study),
}


@require_POST
@researcher_required
def study_action(request, pk: int, action: str):
    """A lifecycle verb; compute and aggregate queue a job (its progress shows on the dashboard)."""
    study = selectors.study_get(user=request.user, pk=pk)
    if action not in ACTIONS:
        return error_response(request, f"unknown action {action!r}; actions are {', '.join(ACTIONS)}", 400)
    job = ACTIONS[action](study)
    job = job if isinstance(job, Job) else None
    study.refresh_from_db()
    if job is not None:
        job.refresh_from_db()
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse({"state": study.state, **({"job": selectors.job_summary(job)} if job else {})})
    queued = f" ({job.name} job {job.state})" if job is not None and job.state != Job.State.DONE else ""
    messages.success(request, f"{action}: study is now {study.state}{queued}.")
    return redirect("study_detail", pk=study.pk)


@require_POST
@researcher_required
def assignment_decide(request, pk: int, decision: str):
    assignment = selectors.lookups.assignment_get(pk=pk)
    if assignment is None or assignment.task.study.owner_id != request.user.pk:
        return error_response(request, "no such assignment in your studies", 404)
    if decision == "approve":
        services.assignment_approve(assignment=assignment)
    elif decision == "reject":
        services.assignment_reject(assignment=assignment)
    else:
        return error_response(request, f"unknown decision {decision!r}; use approve or reject", 400)
    messages.success(request, f"Assignment {pk}: {decision}d.")
    return redirect("study_detail", pk=assignment.task.study_id)


@require_POST
@researcher_required
def invitation_create(request):
    invitation = services.invitation_create(researcher=request.user, note=request.POST.get("note", "")[:255])
    url = request.build_absolute_uri(reverse("worker_signup") + f"?invite={invitation.token}")
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse({"url": url})
    messages.success(request, f"Invitation link: {url}")
    return redirect("study_list")


EXPORTS = {
    "answers.csv": "text/csv",
    "answers.json": "application/json",
    "labels.csv": "text/csv",
    "labels.json": "application/json",
    "workers.csv": "text/csv",
    "quality.json": "application/json",
    "consent.csv": "text/csv",
    "consent.txt": "text/plain",
}


@require_http_methods(["GET", "POST"])
@researcher_required
def study_export(request, pk: int, filename: str):
    """One export file, made in the request; the archive is made by a job (POST) and served when it is done (GET)."""
    study = selectors.study_get(user=request.user, pk=pk)
    if filename in JOB_EXPORTS:
        return _export_job(request, study, filename)
    if filename != "report.html" and filename not in EXPORTS:
        return error_response(request, f"unknown export {filename!r}", 404)
    if request.method != "GET":
        return error_response(request, f"{filename} is downloaded directly (GET); a job makes "
                                       f"{', '.join(JOB_EXPORTS)}", 405)
    if filename == "report.html":  # the study report alone, as the archive has it
        response = HttpResponse(study_report_html(study=study), content_type="text/html; charset=utf-8")
    else:
        files = study_export_files(study=study)
        if filename not in files:
            return error_response(request, f"study {study.name!r} has no {filename} (it asks for no consent)", 404)
        response = HttpResponse(files[filename],
                                content_type=f"{EXPORTS[filename]}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="study{study.pk}-{filename}"'
    return response


def _export_job(request, study, filename: str):
    if request.method == "POST":
        job = services.study_start_export(study=study, file=filename)
        job.refresh_from_db()
        if request.headers.get("Accept", "").startswith("application/json"):
            return JsonResponse({"job": selectors.job_summary(job)}, status=202)
        messages.success(request, f"{filename}: {'ready' if job.state == Job.State.DONE else 'being made'}.")
        return redirect(reverse("study_detail", args=[study.pk]) + "#exports")
    latest = selectors.study_export_latest(study=study, file=filename)
    if latest is None:
        return error_response(request, f"no {filename} was made yet: make one on the study's page", 404)
    return _job_file(study, latest)


@require_GET
@researcher_required
def study_job_file(request, pk: int, job_id: int):
    """The file a job of the study made (an export archive)."""
    study = selectors.study_get(user=request.user, pk=pk)
    job = selectors.lookups.study_job(study=study, pk=job_id, with_file=True)
    if job is None:
        return error_response(request, "this job made no file", 404)
    return _job_file(study, job)


def _job_file(study, job):
    return artifact_download(job.artifact, filename=f"study{study.pk}-{job.params.get('file', job.name)}")


@require_GET
@researcher_required
def study_output(request, pk: int, name: str):
    study = selectors.study_get(user=request.user, pk=pk)
    output = selectors.lookups.study_output(study=study, name=name)
    if output is None:
        return error_response(request, f"study {study.name!r} has no output {name!r}", 404)
    response = FileResponse(artifact_open(output.artifact), content_type=output.artifact.content_type)
    if not output.is_image:
        response["Content-Disposition"] = f'attachment; filename="study{study.pk}-{name}"'
    return response


def _label_choices(study) -> list[str]:
    return get_task_kind(study.kind).label_choices(selectors.study_conf(study=study))


@require_POST
@researcher_required
def task_gold(request, pk: int):
    """Mark a task gold with its known label (``label`` empty: unmark it); before launch only."""
    task = selectors.lookups.task_get(pk=pk, owner=request.user)
    if task is None:
        return error_response(request, "no such task in your studies", 404)
    label = request.POST.get("label") or None
    services.task_set_gold(researcher=request.user, task=task, truth_label=label)
    messages.success(request, f"Task {task.key}: {'gold, answer ' + label if label else 'not gold'}.")
    return redirect("study_detail", pk=task.study_id)


@require_POST
@researcher_required
def worker_block(request, pk: int):
    """Block a worker who answered in one of the researcher's studies."""
    worker = selectors.lookups.worker_of_owner(pk=pk, owner=request.user)
    if worker is None:
        return error_response(request, "no such worker in your studies", 404)
    services.worker_block(researcher=request.user, worker=worker, reason=request.POST.get("reason", "")[:255])
    messages.success(request, f"Worker {worker} is blocked from your studies.")
    return redirect(request.POST.get("next") if _safe_next(request) else "study_list")


@require_POST
@researcher_required
def block_list(request):
    """Block many workers at once: one id per line (user names, or crowd-site worker ids)."""
    backend = request.POST.get("backend", "")
    if backend not in dict(Worker.Backend.choices):
        return error_response(request, f"unknown backend {backend!r}", 400)
    ids = request.POST.get("ids", "").split()
    entries = services.worker_block_list(researcher=request.user, backend=backend, ids=ids,
                                        reason=request.POST.get("reason", "")[:255])
    if request.headers.get("Accept", "").startswith("application/json"):
        return JsonResponse({"blocked": [str(e.worker) for e in entries]})
    messages.success(request, f"{len(entries)} workers blocked from your studies.")
    return redirect(request.POST.get("next") if _safe_next(request) else "study_list")


@require_POST
@researcher_required
def assignment_bonus(request, pk: int):
    assignment = selectors.lookups.assignment_get(pk=pk, owner=request.user)
    if assignment is None:
        return error_response(request, "no such assignment in your studies", 404)
    try:
        cents = int(request.POST.get("cents", ""))
    except ValueError:
        return error_response(request, "cents must be a whole number", 400)
    services.assignment_pay_bonus(researcher=request.user, assignment=assignment, cents=cents,
                                  reason=request.POST.get("reason", "")[:255])
    messages.success(request, f"Bonus of {cents}¢ sent for assignment {pk}.")
    return redirect("study_detail", pk=assignment.task.study_id)


def _safe_next(request) -> bool:
    target = request.POST.get("next", "")
    return bool(target) and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()})
