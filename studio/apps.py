"""The ``studio`` app: registers the deployment checks."""
from django.apps import AppConfig


class StudioConfig(AppConfig):
    name = "studio"
    verbose_name = "Salient Studio deployment"

    def ready(self) -> None:
        # in ready(): the app registry must be loaded first
        from studio import checks  # noqa: F401  (registers the checks)
