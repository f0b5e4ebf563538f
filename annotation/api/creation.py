"""Creating a study from JSON with the form's validation: the study form, then the kind's settings form,
then ``services.study_create``; the first refusal names its field (settings as ``settings.<name>``)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from annotation import services
from annotation.errors import ApplicationError
from annotation.forms import StudyForm
from annotation.models import Study
from annotation.task_kinds import TASK_KINDS, get_task_kind
from annotation.views_researcher import registry_choices

SETTINGS_PREFIX = "s"


class FieldError(ApplicationError):
    """A refused field: ``extra`` carries ``field`` and every form error."""

    def __init__(self, field: str, message: str, errors: Mapping[str, list[str]] | None = None,
                 status: int = 400) -> None:
        super().__init__(f"{field}: {message}", extra={"field": field, "errors": dict(errors or {field: [message]})})
        self.status = status


def _first_error(form, prefix: str = "") -> FieldError:
    errors = {f"{prefix}{name}": [str(m) for m in messages] for name, messages in form.errors.items()}
    field, messages = next(iter(errors.items()))
    return FieldError("name" if field.endswith("__all__") else field, " ".join(messages), errors)


def _raw_initial(form_class) -> dict[str, Any]:
    initial = {name: field.initial() if callable(field.initial) else field.initial
               for name, field in form_class.base_fields.items()}
    return {k: v for k, v in initial.items() if v is not None}


def study_create_from_json(*, owner, data: Mapping[str, Any]) -> Study:
    """Validate ``data`` (the fields of :class:`annotation.api.schemas.StudyIn`) as the form does and create."""
    kind_name = data.get("kind")
    if kind_name not in TASK_KINDS:
        raise FieldError("kind", f"unknown task kind {kind_name!r}; kinds are {', '.join(sorted(TASK_KINDS))}")
    study_data = {k: v for k, v in data.items() if k != "settings" and v is not None and v is not False}
    form = StudyForm(study_data)
    if not form.is_valid():
        raise _first_error(form)
    settings_form_class = get_task_kind(kind_name).settings_form
    given = dict(data.get("settings") or {})
    unknown = sorted(set(given) - set(settings_form_class.base_fields))
    if unknown:
        raise FieldError(f"settings.{unknown[0]}", f"unknown setting for {kind_name}; its settings are "
                                                    f"{', '.join(settings_form_class.base_fields)}")
    merged = {**_raw_initial(settings_form_class), **given}
    settings_form = settings_form_class({f"{SETTINGS_PREFIX}-{k}": v for k, v in merged.items()},
                                        prefix=SETTINGS_PREFIX)
    _registry_choices(settings_form, owner)
    if not settings_form.is_valid():
        raise _first_error(settings_form, "settings.")
    cleaned = form.cleaned_data
    try:
        return services.study_create(
            owner=owner, name=cleaned["name"], kind=cleaned["kind"], settings=settings_form.cleaned_data,
            workers_per_task=cleaned["workers_per_task"], reward_cents=cleaned["reward_cents"],
            assignment_seconds=cleaned["assignment_minutes"] * 60, backend=cleaned["backend"],
            **form.quality_settings(),
        )
    except ApplicationError as exc:
        field = exc.extra.get("field") or "name"
        if field in settings_form.fields:
            field = f"settings.{field}"
        raise FieldError(field, exc.message, status=exc.status) from exc


def _registry_choices(form, owner) -> None:
    registry_choices(form, owner)
