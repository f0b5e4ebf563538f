"""App config of the REST API (its own label keeps its migrations apart from ``annotation``'s)."""
from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "annotation.api"
    label = "studio_api"
    verbose_name = "REST API"
    default_auto_field = "django.db.models.BigAutoField"
