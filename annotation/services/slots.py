"""Task slots: an assignment that leaves a slot-holding state gives its task the slot back, once; reopening."""
from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from annotation.models import Assignment, Task

A = Assignment.State


def release_slot(*, assignment_id: int, to: str, frm: tuple[str, ...] = (A.ASSIGNED,)) -> bool:
    """Move an assignment out of a slot-holding state and give the task its slot back, once."""
    with transaction.atomic():
        assignment = Assignment.objects.select_for_update().filter(pk=assignment_id, state__in=frm).first()
        if assignment is None:
            return False
        was_approved = assignment.state == A.APPROVED
        assignment.state = to
        assignment.decided_at = timezone.now()
        assignment.save(update_fields=["state", "decided_at", "updated_at"])
        changes = {"filled": F("filled") - 1}
        if was_approved:
            changes["approved"] = F("approved") - 1
        Task.objects.filter(pk=assignment.task_id).update(**changes)
        # A task stopped early does not offer the slot again; if an answer it rested on stops counting,
        # ``services.quality.early_stop_check`` decides whether it reopens.
        Task.objects.filter(pk=assignment.task_id, stopped_early=True).update(wanted=F("filled"))
    return True


def task_reopen(*, task_id: int) -> bool:
    """An early-stopped task offers its slots again, up to the study's workers per task; False if not stopped."""
    wanted = Task.objects.filter(pk=task_id).values_list("study__workers_per_task", flat=True).first()
    return bool(Task.objects.filter(pk=task_id, stopped_early=True).update(
        stopped_early=False, wanted=wanted, stop_label=""))

