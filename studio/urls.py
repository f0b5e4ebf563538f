"""Root URLs: health probe, admin, sign-in, and the annotation app.

Sign-in pages (``/accounts/login/``, ``/admin/login/``), the worker sign-up, the crowd-site entries and the
answer posts are wired here with their abuse limits (``studio/ratelimits.py``); each path shadows the same
path in ``annotation.urls``.
"""
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from annotation import views_external, views_worker
from studio.health import healthz
from studio.ratelimits import answer_limited, crowd_entry_limited, login_throttled, signup_limited

urlpatterns = [
    path("healthz", healthz, name="healthz"),
    path("admin/login/", login_throttled(admin.site.login)),
    path("admin/", admin.site.urls),
    path("accounts/login/", login_throttled(auth_views.LoginView.as_view()), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("work/signup/", signup_limited(views_worker.signup)),
    path("work/a/<int:pk>/", answer_limited(views_worker.assignment_page)),
    path("ext/a/<int:pk>/", answer_limited(views_external.task_page)),
    path("ext/mturk/<int:task_pk>/", crowd_entry_limited(views_external.mturk_entry)),
    path("ext/mturk/<int:task_pk>/answer/", answer_limited(views_external.mturk_task)),
    path("ext/prolific/<int:study_pk>/", crowd_entry_limited(views_external.prolific_entry)),
    path("api/", include("annotation.api.urls")),
    path("", include("annotation.urls")),
]
