"""Salient Studio: Django project package (settings, urls, wsgi/asgi)."""
from workers.celery import app as celery_app

__all__ = ("celery_app",)
