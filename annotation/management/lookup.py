"""Finding the study a command names: by id or by name, narrowed to an owner when names repeat."""
from __future__ import annotations

from django.core.management.base import CommandError

from annotation.models import Study


def study_named(ref: str | None, owner: str | None = None) -> Study:
    """The one study ``ref`` (an id or a name) of ``owner`` (any owner when None); a clear error otherwise."""
    if not ref:
        raise CommandError("name the study (its id or name)")
    studies = Study.objects.filter(pk=int(ref)) if ref.isdigit() else Study.objects.filter(name=ref)
    if owner:
        studies = studies.filter(owner__username=owner)
    found = list(studies[:2])
    if not found:
        raise CommandError(f"no study named {ref!r}" + (f" of {owner!r}" if owner else ""))
    if len(found) > 1:
        raise CommandError(f"several studies are named {ref!r}; give --owner")
    return found[0]
