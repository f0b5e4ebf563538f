"""Reads about a study's consent text: its fingerprint, whether a worker still has to answer it, the record."""
from __future__ import annotations

import hashlib

from annotation.models import Consent, Study, Worker


def consent_text_sha256(text: str) -> str:
    """The fingerprint stored with each consent: the SHA-256 of the exact text shown."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def consent_needed(*, worker: Worker, study: Study) -> bool:
    """Whether the study asks for consent and the worker has not agreed to its current text."""
    if not study.consent_text.strip():
        return False
    digest = consent_text_sha256(study.consent_text)
    return not Consent.objects.filter(worker=worker, study=study, agreed=True, text_sha256=digest).exists()


def consent_rows(*, study: Study) -> list[dict]:
    """Every worker's consent answer of the study, oldest first: the rows of the consent export."""
    consents = Consent.objects.filter(study=study).select_related("worker__user").order_by("created_at", "pk")
    return [{"worker": str(c.worker), "agreed": "yes" if c.agreed else "no",
             "answered_at": c.created_at.isoformat(), "text_sha256": c.text_sha256} for c in consents]
