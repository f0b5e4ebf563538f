"""Data model of crowd studies (SPEC §1): studies, tasks, assignments, answers, workers, artifacts.

Invariants that must survive concurrent requests are database constraints, not Python checks:
one assignment per (worker, task), one answer per assignment, and a task's counters never
exceeding the answers it wants.
"""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class TimestampedModel(models.Model):
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class Worker(TimestampedModel):
    """A crowd worker: an internal account, or an external id from a recruiting backend."""

    class Backend(models.TextChoices):
        INTERNAL = "internal", "Internal pool"
        MTURK = "mturk", "Amazon Mechanical Turk"
        PROLIFIC = "prolific", "Prolific"

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="worker"
    )
    backend = models.CharField(max_length=16, choices=Backend.choices, default=Backend.INTERNAL)
    external_id = models.CharField(max_length=128, blank=True, default="")
    blocked = models.BooleanField(default=False, help_text="Blocked workers get no tasks from any study.")
    blocked_reason = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["backend", "external_id"], condition=~Q(external_id=""), name="worker_unique_external_id"
            ),
            models.CheckConstraint(
                condition=Q(user__isnull=False) | ~Q(external_id=""), name="worker_has_identity"
            ),
        ]

    def __str__(self) -> str:
        return self.external_id or (self.user.get_username() if self.user_id else f"worker {self.pk}")


class Invitation(TimestampedModel):
    """A researcher's invitation for a worker to join the internal pool."""

    token = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="invitations")
    note = models.CharField(max_length=255, blank=True, default="")
    used_by = models.OneToOneField(Worker, null=True, blank=True, on_delete=models.SET_NULL)
    study = models.ForeignKey("Study", null=True, blank=True, on_delete=models.CASCADE)

    def __str__(self) -> str:
        return f"invitation {self.token}"


class StudyState(models.TextChoices):
    DRAFT = "draft"
    COMPUTING = "computing"
    READY = "ready"
    LIVE = "live"
    CLOSED = "closed"
    AGGREGATED = "aggregated"


class Study(TimestampedModel):
    """One experiment a researcher launches; its state machine lives in ``annotation.states``."""

    State = StudyState

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="studies")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=64, help_text="Task kind name from the registry.")
    settings = models.JSONField(default=dict, blank=True)
    backend = models.CharField(max_length=16, choices=Worker.Backend.choices, default=Worker.Backend.INTERNAL)
    reward_cents = models.PositiveIntegerField(default=0)
    workers_per_task = models.PositiveSmallIntegerField(default=5)
    assignment_seconds = models.PositiveIntegerField(default=30 * 60)
    auto_approve = models.BooleanField(default=True, help_text="Approve valid answers on submission.")
    state = models.CharField(max_length=16, choices=State.choices, default=State.DRAFT)
    error = models.TextField(blank=True, default="")
    excluded_workers = models.ManyToManyField(Worker, blank=True, related_name="excluded_from")

    class Meta:
        verbose_name_plural = "studies"
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="study_unique_name_per_owner"),
            models.CheckConstraint(condition=Q(workers_per_task__gte=1), name="study_workers_per_task_positive"),
            models.CheckConstraint(
                condition=Q(state__in=StudyState.values), name="study_state_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Job(TimestampedModel):
    """A Celery job of a study (evidence, aggregation, ...) with progress for the dashboard."""

    class State(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        DONE = "done"
        FAILED = "failed"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="jobs")
    name = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    message = models.CharField(max_length=255, blank=True, default="")
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(done__lte=F("total")) | Q(total=0), name="job_done_le_total")]

    @property
    def fraction(self) -> float:
        if self.state == self.State.DONE:
            return 1.0
        return self.done / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"{self.name} of {self.study} ({self.state})"


class Task(TimestampedModel):
    """One screen a worker answers (a HIT).

    ``filled`` counts the assignments holding a slot (assigned, submitted or approved);
    ``approved`` counts approved answers. Both are bounded by ``wanted`` in the database.
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="tasks")
    key = models.CharField(max_length=200, help_text="Stable key within the study; re-runs reuse it.")
    payload = models.JSONField(default=dict, help_text="What the task shows: artifact ids, prompt, options.")
    truth = models.JSONField(null=True, blank=True, help_text="Known answer (gold or simulation); never shown.")
    is_gold = models.BooleanField(default=False)
    wanted = models.PositiveSmallIntegerField(default=5)
    filled = models.PositiveSmallIntegerField(default=0)
    approved = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["study", "key"], name="task_unique_key_per_study"),
            models.CheckConstraint(condition=Q(filled__lte=F("wanted")), name="task_filled_le_wanted"),
            models.CheckConstraint(condition=Q(approved__lte=F("wanted")), name="task_approved_le_wanted"),
        ]

    def __str__(self) -> str:
        return f"{self.study_id}/{self.key}"


class Assignment(TimestampedModel):
    """One worker's go at one task."""

    class State(models.TextChoices):
        ASSIGNED = "assigned"
        SUBMITTED = "submitted"
        APPROVED = "approved"
        REJECTED = "rejected"
        EXPIRED = "expired"
        RETURNED = "returned"

    HOLDS_SLOT = (State.ASSIGNED, State.SUBMITTED, State.APPROVED)

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="assignments")
    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="assignments")
    state = models.CharField(max_length=16, choices=State.choices, default=State.ASSIGNED)
    external_id = models.CharField(max_length=128, blank=True, default="", help_text="e.g. MTurk AssignmentId")
    expires_at = models.DateTimeField()
    shown_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["worker", "task"], name="assignment_unique_worker_task"),
        ]
        indexes = [models.Index(fields=["state", "expires_at"])]

    def __str__(self) -> str:
        return f"assignment {self.pk} ({self.worker} on {self.task})"


class Answer(models.Model):
    """The validated form a worker submitted; exactly one per assignment."""

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="answer")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="answers")
    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="answers")
    payload = models.JSONField()
    shown_at = models.DateTimeField()
    submitted_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"answer {self.pk} of {self.worker} to {self.task}"


class Artifact(TimestampedModel):
    """A file made by an evidence step, stored once per content (sha256)."""

    sha256 = models.CharField(max_length=64, unique=True)
    ext = models.CharField(max_length=16)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=64, blank=True, default="", help_text="image, heatmap, mask, table, ...")

    @property
    def name(self) -> str:
        return f"{self.sha256}.{self.ext}"

    def __str__(self) -> str:
        return self.name


class StudyResult(TimestampedModel):
    """An aggregated label per task, written by the aggregation job."""

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="results")
    task = models.OneToOneField(Task, on_delete=models.CASCADE, related_name="result")
    label = models.CharField(max_length=200, blank=True, default="")
    tie = models.BooleanField(default=False)
    complete = models.BooleanField(default=False)
    n_answers = models.PositiveSmallIntegerField(default=0)
    counts = models.JSONField(default=dict)
