"""The REST API: every route answers JSON, reads through ``selectors`` and writes through ``services``.

Authentication is ``Authorization: Bearer <token>`` with a researcher's API token (``/api/tokens/`` or
``manage.py api_token``). A study of another researcher is answered 404, like one that does not exist.
Errors are ``{"error": message, "field": name}`` with the service's HTTP status.
"""
from __future__ import annotations

from django.http import FileResponse, HttpResponse
from django.urls import reverse
from ninja import NinjaAPI, Query, Router, Status
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.security import HttpBearer
from pydantic import create_model

from annotation import selectors, services
from annotation.api import schemas as s
from annotation.api.creation import study_create_from_json
from annotation.api.parsing import StorableJson
from annotation.artifacts import artifact_download, artifact_open
from annotation.errors import ApplicationError, TooLarge
from annotation.forms import DatasetRegistrationForm, ModelRegistrationForm
from annotation.models import Assignment, RegisteredDataset, RegisteredModel
from annotation.reports.ecosystem import ecosystem_files
from annotation.reports.export_files import study_export_files
from annotation.selectors import FilterError, NotFound
from annotation.selectors.task_grid import PAYLOAD_FILTERS
from annotation.services.api_tokens import token_user
from annotation.services.export_jobs import ARCHIVE
from annotation.task_kinds import TASK_KINDS
from annotation.upload_limits import refused

MAX_PAGE = 1000
MAX_OFFSET = 2**63 - 1  # PostgreSQL's OFFSET is a bigint
ERRORS = {400: s.ErrorOut, 404: s.ErrorOut, 409: s.ErrorOut}
REGISTRATION_FORMS = {"model": ModelRegistrationForm, "dataset": DatasetRegistrationForm}


class TokenAuth(HttpBearer):
    def authenticate(self, request, token):
        user = token_user(token)
        if user is not None:
            request.user = user
        return user


api = NinjaAPI(title="Salient Studio API", version="1", auth=TokenAuth(), urls_namespace="api", docs_url="/docs",
               parser=StorableJson())


def _error(request, message: str, status: int, field: str = "", **extra):
    return api.create_response(request, {"error": message, "field": field, **extra}, status=status)


@api.exception_handler(ApplicationError)
def _application_error(request, exc: ApplicationError):
    extra = {k: v for k, v in exc.extra.items() if k != "field"}
    return _error(request, exc.message, exc.status, exc.extra.get("field", ""), **extra)


@api.exception_handler(NotFound)
def _not_found(request, exc: NotFound):
    return _error(request, str(exc) or "not found", 404)


@api.exception_handler(FilterError)
def _bad_filter(request, exc: FilterError):
    return _error(request, exc.message, 400, exc.field)


@api.exception_handler(ValidationError)
def _invalid(request, exc: ValidationError):
    if stopped := getattr(request, "upload_refused", None):
        return _error(request, stopped[1], 413, stopped[0])
    first = exc.errors[0] if exc.errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path", "payload")]
    field = ".".join(loc)
    return _error(request, f"{field or 'request'}: {first.get('msg', 'invalid')}", 400, field, errors=exc.errors)


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    cause = exc.__cause__  # a body the parser refused
    if isinstance(cause, ApplicationError):
        return _application_error(request, cause)
    if cause is not None:
        return _error(request, f"the request body is not valid JSON: {cause}", exc.status_code)
    return _error(request, str(exc), exc.status_code)


@api.exception_handler(AuthenticationError)
def _unauthenticated(request, exc):
    return _error(request, "give a researcher's API token: Authorization: Bearer <token>", 401, "Authorization")


def _study(request, study_id: int):
    return selectors.study_get(user=request.auth, pk=study_id)


def _assignment(request, assignment_id: int) -> Assignment:
    assignment = selectors.lookups.assignment_get(pk=assignment_id, owner=request.auth)
    if assignment is None:
        raise NotFound("no such assignment in your studies")
    return assignment


def _page(offset: int, limit: int) -> tuple[int, int]:
    if not 0 <= offset <= MAX_OFFSET:
        raise FilterError(f"offset must be between 0 and {MAX_OFFSET}", "offset")
    if not 1 <= limit <= MAX_PAGE:
        raise FilterError(f"limit must be between 1 and {MAX_PAGE}", "limit")
    return offset, limit


# -- registry and kinds --------------------------------------------------------------------------------
registry = Router(tags=["registry"])


@registry.get("/models", response=list[s.RegistryModelOut])
def registry_models(request):
    return [{"name": m.name, "title": m.title, "shared": m.owner_id is None, "architecture": m.architecture,
             "num_classes": m.num_classes, "input_size": m.input_size}
            for m in services.registry.visible(RegisteredModel, request.auth)]


@registry.get("/datasets", response=list[s.RegistryDatasetOut])
def registry_datasets(request):
    return [{"name": d.name, "title": d.title, "shared": d.owner_id is None, "builtin": d.builtin,
             "num_classes": d.num_classes} for d in services.registry.visible(RegisteredDataset, request.auth)]


def _registration(request, what: str):
    """Register from a multipart (or url-encoded) body with the registry page's form and services."""
    if stopped := refused(request):
        raise TooLarge(stopped[1], extra={"field": stopped[0]})
    form_class = REGISTRATION_FORMS[what]
    data = request.POST.copy()
    for name, field in form_class.base_fields.items():  # a field left out takes the page's initial value
        if name not in data and field.initial not in (None, ""):
            data[name] = field.initial
    form = form_class(data, request.FILES)
    if not form.is_valid():
        field, errors = next(iter(form.errors.items()))
        raise ApplicationError(f"{field}: {errors[0]}" if field != "__all__" else errors[0],
                               extra={"field": "" if field == "__all__" else field})
    return services.registry_uploads.entry_register(owner=request.auth, what=what, data=form.cleaned_data)


_MULTIPART = {"requestBody": {"content": {"multipart/form-data": {"schema": {"type": "object"}}}}}


@registry.post("/models", response={201: s.RegistryModelOut, **ERRORS, 413: s.ErrorOut}, openapi_extra=_MULTIPART)
def registry_model_register(request):
    """Register a model (multipart/form-data): ``name``, ``architecture``, and either ``checkpoint`` (a server
    path or ``s3://bucket/key``) or the file ``checkpoint_file`` (streamed; ``SALIENT_UPLOAD_MAX_CHECKPOINT_MB``);
    optional ``format``, ``input_size``, ``mean``, ``std`` (3 comma-separated numbers), ``title``. The checkpoint
    is loaded once with ``torch.load(weights_only=True)``; a refusal names the field at fault."""
    m = _registration(request, "model")
    return Status(201, {"name": m.name, "title": m.title, "shared": m.owner_id is None,
                        "architecture": m.architecture, "num_classes": m.num_classes, "input_size": m.input_size})


@registry.post("/datasets", response={201: s.RegistryDatasetOut, **ERRORS, 413: s.ErrorOut},
               openapi_extra=_MULTIPART)
def registry_dataset_register(request):
    """Register an image folder (multipart/form-data): ``name`` and either ``root`` (a server folder or an
    ``s3://bucket/prefix``, optional ``val_root``) or the file ``archive`` (a zip or tar of class folders, or of
    ``train/`` and ``val/``; checked for path traversal, links, non-images, ``SALIENT_UPLOAD_MAX_IMAGES`` and
    ``SALIENT_UPLOAD_MAX_DATASET_MB``; every image must decode); optional ``class_metadata`` (path) or
    ``class_metadata_file``, ``title``."""
    d = _registration(request, "dataset")
    return Status(201, {"name": d.name, "title": d.title, "shared": d.owner_id is None, "builtin": d.builtin,
                        "num_classes": d.num_classes})


@registry.get("/kinds", response=list[s.KindOut])
def kinds(request):
    return [{"name": k.name, "title": k.title, "label_field": k.label_field, "defaults": k.default_settings()}
            for k in sorted(TASK_KINDS.values(), key=lambda k: k.name)]


def _file_reply(description: str, *content_types: str) -> dict:
    """The OpenAPI 200 of a route answering a file (not a schema the API serialises)."""
    return {"responses": {200: {"description": description, "content": {
        t: {"schema": {} if t == "application/json" else {"type": "string", "format": "binary"}}
        for t in content_types}}}}


# -- studies -------------------------------------------------------------------------------------------
studies = Router(tags=["studies"])


@studies.get("", response=list[s.StudyOut])
def study_list(request):
    return selectors.study_list(user=request.auth)


@studies.post("", response={201: s.StudyOut, **ERRORS})
def study_create(request, body: s.StudyIn):
    return Status(201, study_create_from_json(owner=request.auth, data=body.dict()))


@studies.get("/{study_id}", response={200: s.StudyOut, **ERRORS})
def study_detail(request, study_id: int):
    return _study(request, study_id)


ACTIONS = {
    "compute": lambda study: services.study_start_computing(study=study),
    "launch": lambda study: services.study_launch(study=study),
    "close": lambda study: services.study_close(study=study),
}


def _action_route(action: str):
    def run(request, study_id: int):
        study = _study(request, study_id)
        ACTIONS[action](study)
        study.refresh_from_db()
        return study

    run.__name__ = f"study_{action}"
    studies.post(f"/{{study_id}}/{action}", response={200: s.StudyOut, **ERRORS}, operation_id=f"study_{action}",
                 summary=f"{action.capitalize()} the study")(run)


for _action in ACTIONS:
    _action_route(_action)


@studies.post("/{study_id}/aggregate", response={202: s.StudyJobOut, **ERRORS}, operation_id="study_aggregate",
              summary="Aggregate the study (a job)")
def study_aggregate(request, study_id: int):
    """Queue the aggregation job (majority vote, Dawid-Skene, agreement) of a closed or aggregated study.

    Answers at once with the study and the job; poll ``/studies/{id}/jobs/{job.id}`` until the job is done (the
    study is then ``aggregated``). Without a broker the job has run already. A job already queued is returned.
    """
    study = _study(request, study_id)
    job = services.study_start_aggregation(study=study)
    study.refresh_from_db()
    job.refresh_from_db()
    study.job = _job(job)
    return Status(202, study)


def _job(job) -> dict:
    return selectors.job_summary(job, file_url="api:job_file")


@studies.get("/{study_id}/progress", response={200: s.ProgressOut, **ERRORS})
def study_progress(request, study_id: int):
    return selectors.study_progress_summary(study=_study(request, study_id), file_url="api:job_file")


@studies.get("/{study_id}/jobs", response={200: list[s.JobOut], **ERRORS})
def job_list(request, study_id: int):
    return [_job(j) for j in _study(request, study_id).jobs.order_by("-created_at")]


@studies.get("/{study_id}/jobs/{job_id}", response={200: s.JobOut, **ERRORS})
def job_detail(request, study_id: int, job_id: int):
    job = selectors.lookups.study_job(study=_study(request, study_id), pk=job_id)
    if job is None:
        raise NotFound("no such job in this study")
    return _job(job)


@studies.get("/{study_id}/jobs/{job_id}/file", url_name="job_file", response={404: s.ErrorOut},
             openapi_extra=_file_reply("The file the job made", "*/*"))
def job_file(request, study_id: int, job_id: int):
    """The file a job made (an export archive), once the job is done."""
    study = _study(request, study_id)
    job = selectors.lookups.study_job(study=study, pk=job_id, with_file=True)
    if job is None:
        raise NotFound("this job made no file (yet)")
    return _job_download(study, job)


def _job_download(study, job):
    return artifact_download(job.artifact, filename=f"study{study.pk}-{job.params.get('file', job.name)}")


@studies.get("/{study_id}/tasks", response={200: s.TaskPage, **ERRORS})
def task_list(request, study_id: int, key: str = "", gold: bool | None = None, order: str = "id",
              offset: int = 0, limit: int = 100):
    offset, limit = _page(offset, limit)
    tasks = selectors.study_tasks_filtered(study=_study(request, study_id), key=key, gold=gold, order=order)
    return {"count": tasks.count(), "offset": offset, "limit": limit, "items": list(tasks[offset:offset + limit])}


class PageQuery(s.Schema):
    offset: int = 0
    limit: int = 100


class GridColumns(PageQuery):
    label: str = ""
    key: str = ""
    class_name: str = ""
    tie: str = ""
    gold: str = ""
    worker: str = ""
    agreement_min: str = ""
    agreement_max: str = ""
    order: str = "key"


#: The grid's filters: its columns and the task-payload fields the results pages' rows link with
#: (``PAYLOAD_FILTERS``: variant, condition, cluster, ...), as on the grid page.
GridFilters = create_model("GridFilters", __base__=GridColumns, **{name: (str, "") for name in PAYLOAD_FILTERS})


@studies.get("/{study_id}/grid", response={200: s.GridPage, **ERRORS})
def task_grid(request, study_id: int, filters: Query[GridFilters]):
    """The task grid of the results pages: tasks with their label, tie, agreement (percent) and answers, filtered
    by label, key, class_name, tie (yes/no), gold (yes/no), worker, agreement_min/agreement_max (percent) and the
    payload fields the results rows link with (variant, condition, cluster, ...), sorted by ``order`` (key,
    agreement, answers; a leading ``-`` reverses)."""
    offset, limit = _page(filters.offset, filters.limit)
    study = _study(request, study_id)
    grid = selectors.task_grid
    tasks = grid.task_grid(study=study, filters=grid.GridFilters.parse(filters.dict()))
    words = grid.LabelWords.of(study)
    items = []
    for task in tasks[offset:offset + limit]:
        row = grid.task_grid_row(task, words)
        items.append({**row, "image": reverse("artifact_file", args=[row["thumbnail"]]) if row["thumbnail"] else None})
    return {"count": tasks.count(), "offset": offset, "limit": limit, "items": items}


class AnswerFilters(PageQuery):
    task: str = ""
    worker: str = ""
    status: str = ""
    label: str = ""
    order: str = "newest"


@studies.get("/{study_id}/answers", response={200: s.AnswerPage, **ERRORS})
def answer_list(request, study_id: int, filters: Query[AnswerFilters]):
    """Answers, newest first; filter by task (id or key), worker (name or crowd id), status, label."""
    offset, limit = _page(filters.offset, filters.limit)
    study = _study(request, study_id)
    answers = selectors.study_answers_filtered(study=study, task=filters.task, worker=filters.worker,
                                               state=filters.status, label=filters.label, order=filters.order)
    label_field = TASK_KINDS[study.kind].label_field
    items = [{"id": a.pk, "task": a.task_id, "task_key": a.task.key,
              "class_name": selectors.task_grid.task_class_name(a.task.payload), "worker": str(a.worker),
              "worker_id": a.worker_id, "assignment": a.assignment_id, "status": a.assignment.state,
              "flag": a.flag, "gold": a.task.is_gold, "label": a.payload.get(label_field), "fields": a.payload,
              "shown_at": a.shown_at, "submitted_at": a.submitted_at}
             for a in answers[offset:offset + limit]]
    return {"count": answers.count(), "offset": offset, "limit": limit, "items": items}


@studies.get("/{study_id}/labels", response={200: list[dict], **ERRORS})
def label_list(request, study_id: int):
    """One row per task from the last aggregation (``label``, ``tie``, ``count_<value>``, Dawid-Skene)."""
    table = selectors.tables.study_labels_table(study=_study(request, study_id))
    return table.astype(object).where(table.notna(), None).to_dict(orient="records")


@studies.get("/{study_id}/outputs", response={200: list[s.OutputOut], **ERRORS})
def output_list(request, study_id: int):
    study = _study(request, study_id)
    return [{"name": o.name, "title": o.title, "stage": o.stage, "content_type": o.artifact.content_type,
             "size": o.artifact.size, "url": reverse("api:output_download", args=[study.pk, o.name])}
            for o in selectors.lookups.study_outputs(study=study).order_by("name")]


@studies.get("/{study_id}/outputs/{name}", url_name="output_download", response={404: s.ErrorOut},
             openapi_extra=_file_reply("The output file, of its own content type", "*/*"))
def output_download(request, study_id: int, name: str):
    study = _study(request, study_id)
    output = selectors.lookups.study_output(study=study, name=name)
    if output is None:
        raise NotFound(f"study {study.name!r} has no output {name!r}")
    response = FileResponse(artifact_open(output.artifact), content_type=output.artifact.content_type)
    response["Content-Disposition"] = f'attachment; filename="study{study.pk}-{name}"'
    return response


@studies.post("/{study_id}/kind-jobs/{name}", response={202: s.JobOut, **ERRORS}, operation_id="study_kind_job",
              summary="Start one of the kind's own jobs")
def kind_job_start(request, study_id: int, name: str, body: s.KindJobIn):
    """Queue one of the study kind's own jobs (e.g. the recovered-sample study's ``hyperparameter_search``) with
    ``params`` as its form on the results page takes them; poll ``/studies/{id}/jobs/{job.id}``."""
    job = services.study_start_kind_job_from_data(study=_study(request, study_id), name=name, data=body.params)
    job.refresh_from_db()
    return Status(202, _job(job))


@studies.post("/{study_id}/archive", response={202: s.JobOut, **ERRORS})
def archive_make(request, study_id: int):
    """Queue the job that makes a zip of the study's export files (answers, labels, workers, quality) and its
    outputs; poll ``/studies/{id}/jobs/{job.id}`` and download its ``file`` when it is done."""
    job = services.study_start_export(study=_study(request, study_id), file=ARCHIVE)
    job.refresh_from_db()
    return Status(202, _job(job))


@studies.get("/{study_id}/archive", response={404: s.ErrorOut},
             openapi_extra=_file_reply("The newest zip of the export and output files", "application/zip"))
def archive(request, study_id: int):
    """The newest archive made (``POST`` to this address makes one)."""
    study = _study(request, study_id)
    latest = selectors.study_export_latest(study=study, file=ARCHIVE)
    if latest is None:
        raise NotFound(f"no archive was made yet: POST /api/studies/{study.pk}/archive makes one")
    return _job_download(study, latest)


@studies.get("/{study_id}/exports/{filename}", response={404: s.ErrorOut},
             openapi_extra=_file_reply("The export file", "text/csv", "application/json", "application/xml"))
def export_file(request, study_id: int, filename: str):
    """One export file: answers/labels (.csv, .json), workers.csv, quality.json, answers_crowdkit.csv,
    label_studio.json, label_studio_config.xml."""
    study = _study(request, study_id)
    files = {**study_export_files(study=study),
             **ecosystem_files(study=study, base_url=request.build_absolute_uri("/"))}
    if filename not in files:
        raise NotFound(f"unknown export {filename!r}; exports are {', '.join(sorted(files))}")
    response = HttpResponse(files[filename], content_type=EXPORT_TYPES[filename.rsplit(".", 1)[-1]])
    response["Content-Disposition"] = f'attachment; filename="study{study.pk}-{filename}"'
    return response


EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json", "xml": "application/xml"}


# -- assignments ---------------------------------------------------------------------------------------
assignments = Router(tags=["assignments"])


@assignments.post("/{assignment_id}/approve", response={200: s.AssignmentOut, **ERRORS})
def assignment_approve(request, assignment_id: int):
    assignment = services.assignment_approve(assignment=_assignment(request, assignment_id))
    assignment.refresh_from_db()
    return {"id": assignment.pk, "status": assignment.state}


@assignments.post("/{assignment_id}/reject", response={200: s.AssignmentOut, **ERRORS})
def assignment_reject(request, assignment_id: int):
    assignment = _assignment(request, assignment_id)
    services.assignment_reject(assignment=assignment)
    assignment.refresh_from_db()
    return {"id": assignment.pk, "status": assignment.state}


@assignments.post("/{assignment_id}/bonus", response={200: s.AssignmentOut, **ERRORS})
def assignment_bonus(request, assignment_id: int, body: s.BonusIn):
    assignment = _assignment(request, assignment_id)
    services.assignment_pay_bonus(researcher=request.auth, assignment=assignment, cents=body.cents,
                                  reason=body.reason[:255])
    return {"id": assignment.pk, "status": assignment.state}


api.add_router("/registry", registry)
api.add_router("/studies", studies)
api.add_router("/assignments", assignments)
