"""URLs of researcher pages (``/studies/``), worker pages (``/work/``), crowd-site pages (``/ext/``) and artifacts."""
from django.urls import path

from annotation import views_external as e
from annotation import views_preview, views_registry
from annotation import views_researcher as r
from annotation import views_worker as w

urlpatterns = [
    path("", w.home, name="home"),
    path("studies/", r.study_list, name="study_list"),
    path("studies/new/", r.study_create, name="study_create"),
    path("registry/", views_registry.registry_page, name="registry"),
    path("studies/<int:pk>/", r.study_detail, name="study_detail"),
    path("studies/<int:pk>/progress.json", r.study_progress, name="study_progress"),
    path("studies/<int:pk>/results/", r.study_results, name="study_results"),
    path("studies/<int:pk>/tasks/", r.study_tasks, name="study_tasks"),
    path("studies/<int:pk>/tasks/<int:task_pk>/", r.study_task, name="study_task"),
    path("studies/<int:pk>/answers/decide/", r.answers_decide, name="answers_decide"),
    path("studies/<int:pk>/jobs/<int:job_id>/file", r.study_job_file, name="study_job_file"),
    path("studies/<int:pk>/jobs/<str:name>/", r.study_job_start, name="study_job_start"),
    path("studies/<int:pk>/<str:action>/", r.study_action, name="study_action"),
    path("studies/<int:pk>/export/<str:filename>", r.study_export, name="study_export"),
    path("studies/<int:pk>/outputs/<str:name>", r.study_output, name="study_output"),
    path("assignments/<int:pk>/bonus/", r.assignment_bonus, name="assignment_bonus"),
    path("assignments/<int:pk>/<str:decision>/", r.assignment_decide, name="assignment_decide"),
    path("tasks/<int:pk>/gold/", r.task_gold, name="task_gold"),
    path("tasks/<int:pk>/preview/", views_preview.task_preview, name="task_preview"),
    path("workers/<int:pk>/block/", r.worker_block, name="worker_block"),
    path("blocklist/", r.block_list, name="block_list"),
    path("invitations/", r.invitation_create, name="invitation_create"),
    path("work/signup/", w.signup, name="worker_signup"),
    path("work/", w.worker_home, name="worker_home"),
    path("work/next/", w.next_task, name="next_task"),
    path("work/a/<int:pk>/", w.assignment_page, name="assignment_page"),
    path("work/a/<int:pk>/return/", w.assignment_return, name="assignment_return"),
    path("work/a/<int:pk>/consent/", w.assignment_consent, name="assignment_consent"),
    path("artifacts/<str:name>", w.artifact_file, name="artifact_file"),
    path("ext/mturk/<int:task_pk>/", e.mturk_entry, name="mturk_entry"),
    path("ext/mturk/<int:task_pk>/answer/", e.mturk_task, name="mturk_task"),
    path("ext/prolific/<int:study_pk>/", e.prolific_entry, name="prolific_entry"),
    path("ext/a/<int:pk>/", e.task_page, name="ext_task"),
    path("ext/a/<int:pk>/consent/", e.consent, name="ext_consent"),
]
