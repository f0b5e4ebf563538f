"""Task preview: a researcher sees any task of their own study as a worker would, in any state.

The page renders the kind's worker template with no assignment: nothing is claimed, shown or answered,
and its form has no submit target.
"""
from __future__ import annotations

from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation import selectors
from annotation.permissions import researcher_required
from annotation.views_worker import task_page_context


@require_GET
@researcher_required
def task_preview(request, pk: int):
    task = selectors.lookups.task_get(pk=pk, owner=request.user)
    if task is None:
        raise selectors.NotFound("no such task in your studies")
    neighbours = list(task.study.tasks.order_by("id").values_list("id", flat=True))
    at = neighbours.index(task.pk)
    return render(request, "annotation/task_preview.html", {
        **task_page_context(None, task, errors={}, values={}),
        "previous_task": neighbours[at - 1] if at > 0 else None,
        "next_task": neighbours[at + 1] if at + 1 < len(neighbours) else None,
        "position": at + 1, "count": len(neighbours),
    })
