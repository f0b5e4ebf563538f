"""A worker's answer to a study's consent text: recorded once per worker and study, with the text's fingerprint.

Agreeing lets the worker take the study's tasks; declining keeps every task of the study away from them
(``selectors.tasks_open_for``) and hands back the assignment they held, if any.
"""
from __future__ import annotations

from django.db import transaction

from annotation.errors import ApplicationError
from annotation.models import Assignment, Consent, Study, Worker
from annotation.selectors.consent import consent_text_sha256
from annotation.services.slots import release_slot


def consent_record(*, worker: Worker, study: Study, agreed: bool) -> Consent:
    """Store (or replace) the worker's answer to the study's current consent text."""
    if not study.consent_text.strip():
        raise ApplicationError(f"study {study.name!r} asks for no consent")
    with transaction.atomic():
        consent, _ = Consent.objects.update_or_create(
            worker=worker, study=study,
            defaults={"agreed": agreed, "text_sha256": consent_text_sha256(study.consent_text)})
        if not agreed:
            held = Assignment.objects.filter(worker=worker, task__study=study, state=Assignment.State.ASSIGNED)
            for pk in list(held.values_list("pk", flat=True)):
                release_slot(assignment_id=pk, to=Assignment.State.RETURNED)
    return consent
