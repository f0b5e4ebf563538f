"""App config: loads the task-kind plug-ins when Django starts."""
from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    name = "annotation"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # in ready(): the app registry must be loaded first
        from annotation import task_kinds

        task_kinds.load_all()
