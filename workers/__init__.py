"""Celery app and the tasks that run ``analysis`` code and store its artifacts."""
