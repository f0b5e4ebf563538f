"""URLs of crowd-site workers (``/ext/``): entry pages per backend and the token-authenticated task page."""
from django.urls import path

from annotation import views_external
from annotation.recruiters import views

urlpatterns = [
    path("mturk/<int:task_pk>/", views.mturk_entry, name="mturk_entry"),
    path("prolific/<int:study_pk>/", views.prolific_entry, name="prolific_entry"),
    path("a/<int:pk>/", views_external.task_page, name="ext_task"),
]
