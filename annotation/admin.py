"""Django admin for every model of the annotation app."""
from django.contrib import admin

from annotation.forms import registry_admin_form
from annotation.models import (
    Answer,
    Artifact,
    Assignment,
    BlockedWorker,
    ExternalSession,
    Invitation,
    Job,
    RegisteredDataset,
    RegisteredModel,
    Study,
    StudyResult,
    Task,
    Worker,
)


@admin.register(Study)
class StudyAdmin(admin.ModelAdmin):
    list_display = ("name", "kind", "owner", "state", "workers_per_task", "created_at")
    list_filter = ("kind", "state", "backend")
    search_fields = ("name",)
    readonly_fields = ("state",)  # moves only through the guarded transitions


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("key", "study", "wanted", "filled", "approved", "is_gold")
    list_filter = ("study", "is_gold")
    readonly_fields = ("filled", "approved")


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
    list_display = ("pk", "task", "worker", "state", "expires_at", "submitted_at")
    list_filter = ("state",)
    readonly_fields = ("state",)


@admin.register(Answer)
class AnswerAdmin(admin.ModelAdmin):
    list_display = ("pk", "task", "worker", "submitted_at")


@admin.register(Worker)
class WorkerAdmin(admin.ModelAdmin):
    list_display = ("__str__", "backend", "external_id", "blocked")
    list_filter = ("backend", "blocked")


admin.site.register([Artifact, Job, Invitation, StudyResult])


@admin.register(ExternalSession)
class ExternalSessionAdmin(admin.ModelAdmin):
    list_display = ("session_id", "backend", "study", "worker", "completed_at")
    list_filter = ("backend",)


@admin.register(BlockedWorker)
class BlockedWorkerAdmin(admin.ModelAdmin):
    list_display = ("worker", "researcher", "reason", "created_at")



@admin.register(RegisteredModel)
class RegisteredModelAdmin(admin.ModelAdmin):
    """Registration loads the checkpoint once; a checkpoint that does not load is refused with the loader's message."""

    list_display = ("name", "architecture", "owner", "num_classes", "input_size", "builtin")
    readonly_fields = ("sha256", "num_classes", "feature_dim", "conv_map", "builtin")
    fields = ("name", "title", "owner", "architecture", "checkpoint", "format", "input_size", "mean", "std",
              *readonly_fields)

    def get_form(self, request, obj=None, **kwargs):
        return registry_admin_form(super().get_form(request, obj, **kwargs), "model")


@admin.register(RegisteredDataset)
class RegisteredDatasetAdmin(admin.ModelAdmin):
    """Registration scans the folder once; an empty class or an unreadable metadata file is refused."""

    list_display = ("name", "root", "owner", "builtin", "n_unreadable")
    readonly_fields = ("classes", "counts", "val_counts", "unreadable", "n_unreadable", "builtin")
    fields = ("name", "title", "owner", "root", "val_root", "class_metadata", *readonly_fields)

    def get_form(self, request, obj=None, **kwargs):
        return registry_admin_form(super().get_form(request, obj, **kwargs), "dataset")
