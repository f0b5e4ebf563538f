"""Root URLs: health probe, admin, sign-in, and the annotation app.

Sign-in pages (``/accounts/login/``, ``/admin/login/``) and the worker sign-up are wired here with their
abuse limits (``studio/ratelimits.py``); the sign-up path shadows the same path in ``annotation.urls``.
"""
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from annotation import views_worker
from studio.health import healthz
from studio.ratelimits import login_throttled, signup_limited

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/login/", login_throttled(admin.site.login)),
    path("admin/", admin.site.urls),
    path("accounts/login/", login_throttled(auth_views.LoginView.as_view()), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("work/signup/", signup_limited(views_worker.signup)),
    path("api/", include("annotation.api.urls")),
    path("", include("annotation.urls")),
]
