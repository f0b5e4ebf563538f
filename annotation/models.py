"""Data model of crowd studies: studies, tasks, assignments, answers, workers, artifacts.

Invariants that must survive concurrent requests are database constraints, not Python checks:
one assignment per (worker, task), one answer per assignment, and a task's counters never
exceeding the answers it wants.
"""
from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models import F, Q

#: ``wanted`` of a gold task: every worker may answer it (gold is served at the study's gold rate).
GOLD_SLOTS = 10_000


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
        IMPORTED = "imported", "Imported answers"

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
    artifacts = models.ManyToManyField("Artifact", blank=True, related_name="studies",
                                       help_text="Images the study's own evidence stored: the only artifacts its "
                                                 "launch publishes and its tasks serve.")
    # Quality control: gold mix-in and threshold, caps, time filters, early stopping.
    gold_rate = models.FloatField(default=0.0, help_text="Share of a worker's tasks that are gold (0 = none).")
    gold_min_accuracy = models.FloatField(default=0.6, help_text="Workers below this gold accuracy are excluded.")
    gold_min_answers = models.PositiveSmallIntegerField(default=3, help_text="Gold answers before judging a worker.")
    max_tasks_per_worker = models.PositiveIntegerField(null=True, blank=True, help_text="Cap per worker; empty = none.")
    min_answer_seconds = models.FloatField(default=0.0, help_text="Faster answers are kept but flagged, not counted.")
    max_answer_seconds = models.FloatField(null=True, blank=True, help_text="Slower answers are flagged; empty = none.")
    early_stopping = models.BooleanField(
        default=False, help_text="Stop collecting a task's answers once its full-answer label is predicted well enough."
    )
    completion_code = models.CharField(max_length=64, blank=True, default="", help_text="Prolific completion code.")
    recruitment = models.JSONField(default=dict, blank=True, help_text="The recruiter's own state and options.")
    quality = models.JSONField(default=dict, blank=True, help_text="Agreement and worker report of the aggregation.")
    consent_text = models.TextField(
        blank=True, default="",
        help_text="Information and consent text shown once before a worker's first task; empty = no consent page.")

    class Meta:
        verbose_name_plural = "studies"
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="study_unique_name_per_owner"),
            models.CheckConstraint(condition=Q(workers_per_task__gte=1), name="study_workers_per_task_positive"),
            models.CheckConstraint(
                condition=Q(state__in=StudyState.values), name="study_state_valid"
            ),
            models.CheckConstraint(condition=Q(gold_rate__gte=0) & Q(gold_rate__lt=1), name="study_gold_rate_0_1"),
            models.CheckConstraint(
                condition=Q(gold_min_accuracy__gte=0) & Q(gold_min_accuracy__lte=1), name="study_gold_min_accuracy_0_1"
            ),
            models.CheckConstraint(
                condition=Q(max_answer_seconds__isnull=True) | Q(max_answer_seconds__gt=F("min_answer_seconds")),
                name="study_answer_seconds_ordered",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Job(TimestampedModel):
    """A Celery job of a study (evidence, aggregation, ...) with progress for the dashboard."""

    class State(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        WAITING = "waiting"  # an evidence job whose shards run on other workers
        DONE = "done"
        FAILED = "failed"

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="jobs")
    name = models.CharField(max_length=64)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    done = models.PositiveIntegerField(default=0)
    total = models.PositiveIntegerField(default=0)
    message = models.CharField(max_length=255, blank=True, default="")
    params = models.JSONField(default=dict, blank=True, help_text="Parameters of a kind's own job (e.g. un-Hans)")
    error = models.TextField(blank=True, default="")
    attempts = models.PositiveSmallIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    artifact = models.ForeignKey("Artifact", null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
                                 help_text="The file the job made (an export archive), downloaded by the study's owner")

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
    external_id = models.CharField(max_length=128, blank=True, default="", db_index=True, help_text="e.g. MTurk HITId")
    stopped_early = models.BooleanField(default=False, help_text="Early stopping lowered ``wanted``: label predicted.")
    stop_label = models.CharField(max_length=200, blank=True, default="",
                                  help_text="The label early stopping predicted when it stopped the task.")
    exclusion_group = models.CharField(
        max_length=200, blank=True, default="", editable=False,
        help_text="``payload['exclusion_group']``, kept on save: a worker gets one task of a group per study.")

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["study", "exclusion_group"], name="task_study_exclusion_group")]
        constraints = [
            models.UniqueConstraint(fields=["study", "key"], name="task_unique_key_per_study"),
            models.CheckConstraint(condition=Q(filled__lte=F("wanted")), name="task_filled_le_wanted"),
            models.CheckConstraint(condition=Q(approved__lte=F("wanted")), name="task_approved_le_wanted"),
        ]

    def __str__(self) -> str:
        return f"{self.study_id}/{self.key}"

    def save(self, *args, **kwargs) -> None:
        self.exclusion_group = str((self.payload or {}).get("exclusion_group") or "")[:200]
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "payload" in update_fields:
            kwargs["update_fields"] = {*update_fields, "exclusion_group"}
        super().save(*args, **kwargs)


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
    platform_status = models.CharField(max_length=32, blank=True, default="", help_text="What the crowd site says.")
    platform_checked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["worker", "task"], name="assignment_unique_worker_task"),
        ]
        indexes = [models.Index(fields=["state", "expires_at"])]

    def __str__(self) -> str:
        return f"assignment {self.pk} ({self.worker} on {self.task})"


class Answer(models.Model):
    """The validated form a worker submitted; exactly one per assignment.

    A flagged answer is kept but does not count (its assignment is rejected): answered too fast
    or too slow, or given by a worker who failed the study's gold tasks.
    """

    class Flag(models.TextChoices):
        NONE = "", "none"
        TOO_FAST = "too_fast", "answered too fast"
        TOO_SLOW = "too_slow", "answered too slowly"
        GOLD_FAILED = "gold_failed", "worker failed the gold tasks"
        UNCONFIRMED = "unconfirmed", "the crowd site has not confirmed the assignment"

    assignment = models.OneToOneField(Assignment, on_delete=models.CASCADE, related_name="answer")
    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="answers")
    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="answers")
    payload = models.JSONField()
    shown_at = models.DateTimeField()
    submitted_at = models.DateTimeField()
    flag = models.CharField(max_length=32, choices=Flag.choices, blank=True, default="")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"answer {self.pk} of {self.worker} to {self.task}"


class Bonus(TimestampedModel):
    """A bonus paid for an assignment: who paid it, when (``created_at``) and how much."""

    assignment = models.ForeignKey(Assignment, on_delete=models.CASCADE, related_name="bonuses")
    paid_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="bonuses_paid")
    cents = models.PositiveIntegerField()
    reason = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.CheckConstraint(condition=Q(cents__gte=1), name="bonus_cents_positive")]

    def __str__(self) -> str:
        return f"bonus of {self.cents} cents for {self.assignment}"


class Artifact(TimestampedModel):
    """A file made by an evidence step, stored once per content (sha256)."""

    sha256 = models.CharField(max_length=64, unique=True)
    ext = models.CharField(max_length=16)
    content_type = models.CharField(max_length=100)
    size = models.PositiveBigIntegerField()
    kind = models.CharField(max_length=64, blank=True, default="", help_text="image, heatmap, mask, table, ...")
    public = models.BooleanField(default=False, help_text="Shown by a launched study: served without sign-in.")

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
    ds_label = models.CharField(max_length=200, blank=True, default="", help_text="Dawid-Skene label.")
    ds_probability = models.FloatField(null=True, blank=True, help_text="Dawid-Skene posterior of ds_label.")
    agreement = models.FloatField(null=True, blank=True, db_index=True,
                                  help_text="Share of the counted answers that chose the most chosen value.")

    @staticmethod
    def agreement_of(counts: dict, n_answers: int) -> float | None:
        """The task's agreement: the largest answer count over the answers counted (none without answers)."""
        return round(max(counts.values()) / n_answers, 6) if n_answers and counts else None


class StudyOutput(TimestampedModel):
    """A file a study's job made (a mask dataset, a table, a plot), by name.

    ``stage`` is the job that made it: ``evidence`` (analysis results shown before the crowd answers),
    ``outputs`` (made from the aggregated labels) or the name of a kind's own job; a job's rerun
    replaces only the files of its stage.
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="outputs")
    name = models.CharField(max_length=200, help_text="File name in the export, e.g. core_spurious.png")
    stage = models.CharField(max_length=64, default="outputs")
    artifact = models.ForeignKey(Artifact, on_delete=models.PROTECT, related_name="+")
    title = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["study", "name"], name="output_unique_name_per_study")]

    @property
    def is_image(self) -> bool:
        return self.artifact.ext == "png"

    def __str__(self) -> str:
        return f"{self.study}: {self.name}"


class ExternalSession(TimestampedModel):
    """One visit of an external worker arriving from a crowd site (an MTurk assignment, a Prolific session).

    A Prolific participant (``PROLIFIC_PID``) starts a study once; an MTurk ``assignmentId`` maps to one
    assignment. ``submit_to`` is where the page posts after storing the answer (MTurk's ``turkSubmitTo``).
    """

    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="external_sessions")
    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="external_sessions")
    backend = models.CharField(max_length=16, choices=Worker.Backend.choices)
    session_id = models.CharField(max_length=128, help_text="MTurk assignmentId or Prolific SESSION_ID")
    external_study_id = models.CharField(max_length=128, blank=True, default="", help_text="hitId or STUDY_ID")
    submit_to = models.CharField(max_length=255, blank=True, default="")
    assignment = models.OneToOneField(
        Assignment, null=True, blank=True, on_delete=models.SET_NULL, related_name="external_session"
    )
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["backend", "session_id"], name="external_session_unique_id"),
            models.UniqueConstraint(
                fields=["study", "worker"], condition=Q(backend="prolific"), name="external_session_prolific_once"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.backend} session {self.session_id}"


class Consent(TimestampedModel):
    """A worker's answer to a study's consent text: agreed or declined, when (``created_at``), to which text.

    ``text_sha256`` names the exact text the worker saw; a study whose text differs asks again.
    """

    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="consents")
    study = models.ForeignKey(Study, on_delete=models.CASCADE, related_name="consents")
    agreed = models.BooleanField()
    text_sha256 = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["worker", "study"], name="consent_once_per_worker_study")]

    def __str__(self) -> str:
        return f"{self.worker} {'agreed to' if self.agreed else 'declined'} {self.study}"


class BlockedWorker(TimestampedModel):
    """A researcher's block list: the worker gets no task of this researcher's studies."""

    researcher = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="blocked_workers")
    worker = models.ForeignKey(Worker, on_delete=models.CASCADE, related_name="blocked_by")
    reason = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["researcher", "worker"], name="blocked_worker_unique")]

    def __str__(self) -> str:
        return f"{self.worker} blocked by {self.researcher}"


class RegistryEntry(TimestampedModel):
    """Base of the registry entries: a name, an owner (none: shared with every researcher)."""

    name = models.CharField(max_length=100)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE,
                              help_text="Empty: shared with every researcher.")
    title = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return self.name


class RegisteredModel(RegistryEntry):
    """A classifier a study can run on: a checkpoint and what loading it found."""

    class Format(models.TextChoices):
        AUTO = "auto", "detect"
        PLAIN = "plain", "a pickled model or a plain state_dict"
        STATE_DICT = "state_dict", "a state_dict (possibly under 'state_dict'/'model')"
        ROBUSTNESS = "robustness", "the robustness library's layout (module.model.*, module.normalizer.*)"
        DATA_PARALLEL = "dataparallel", "a DataParallel state_dict (module.*)"

    architecture = models.CharField(max_length=100)
    checkpoint = models.CharField(max_length=1000, blank=True, default="",
                                  help_text="A local path, or s3://bucket/key when S3 is configured.")
    format = models.CharField(max_length=20, choices=Format.choices, default=Format.AUTO)
    builtin = models.CharField(max_length=20, blank=True, default="",
                               help_text="A demo model trained on the built-in benchmark (robust/standard).")
    input_size = models.PositiveIntegerField(default=224)
    mean = models.JSONField(default=list)
    std = models.JSONField(default=list)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    num_classes = models.PositiveIntegerField()
    feature_dim = models.PositiveIntegerField(null=True, blank=True)
    conv_map = models.JSONField(null=True, blank=True, help_text="[channels, height, width] of the last conv map.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="model_name_per_owner"),
            models.UniqueConstraint(fields=["name"], condition=Q(owner__isnull=True), name="shared_model_name"),
        ]


class RegisteredDataset(RegistryEntry):
    """An ImageFolder tree (ImageNet layout) a study can run on; its images are never copied."""

    root = models.CharField(max_length=1000, blank=True, default="")
    val_root = models.CharField(max_length=1000, blank=True, default="")
    class_metadata = models.CharField(max_length=1000, blank=True, default="")
    builtin = models.BooleanField(default=False, help_text="The built-in planted-bias benchmark.")
    classes = models.JSONField(default=list, help_text="Class order fixed at registration: index, folder, name, ...")
    counts = models.JSONField(default=dict, help_text="Readable images per class folder (train).")
    val_counts = models.JSONField(default=dict)
    unreadable = models.JSONField(default=list, help_text="Files the scan could not read (the first 100).")
    n_unreadable = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="dataset_name_per_owner"),
            models.UniqueConstraint(fields=["name"], condition=Q(owner__isnull=True), name="shared_dataset_name"),
        ]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def n_images(self) -> int:
        return sum(self.counts.values())
