"""Writes of the annotation app: every change to studies, tasks, assignments and answers goes here.

Services take keyword arguments, check the current state first and raise
:class:`annotation.errors.ApplicationError` subclasses; views stay thin. Counters that guard
invariants are changed with conditional UPDATEs, which the database serialises. One module per
concern: ``people``, ``studies`` (lifecycle verbs), ``jobs`` (Celery jobs), ``evidence`` (passes in shards),
``contexts`` (what a kind sees), ``assignments``, ``slots``, ``quality`` (gold, exclusion, early stopping, blocks,
bonuses), ``crowd`` (recruitment), ``consent`` (a worker's answer to a study's consent text), ``registry``
(models and image folders), ``registry_uploads`` (uploaded checkpoints and image archives, kept by
``upload_area``), ``imports`` (imported answers, in
bulk), ``api_tokens`` and ``export_jobs`` (queueing the archive job; its work is in
:mod:`annotation.reports.archive_job`). Reads are in :mod:`annotation.selectors`.
Use them as ``from annotation import services; services.study_launch(...)``.
"""
from annotation.services import registry  # noqa: F401 - services.registry.model_register(...)
from annotation.services import registry_uploads  # noqa: F401 - services.registry_uploads.model_upload(...)
from annotation.services.assignments import (  # noqa: F401
    assignment_approve,
    assignment_claim_next,
    assignment_confirm,
    assignment_mark_shown,
    assignment_reject,
    assignment_return,
    assignment_submit,
    assignments_expire,
    mturk_answer_submit,
    mturk_entry_check,
)
from annotation.services.consent import consent_record  # noqa: F401
from annotation.services.contexts import study_context  # noqa: F401
from annotation.services.crowd import (  # noqa: F401
    artifacts_make_public,
    assignment_platform_decision,
    assignment_record_platform_status,
    enqueue_recruitment,
    external_entry_confirm,
    external_entry_start,
    external_session_complete,
    external_session_start,
    recruitment_open,
    recruitment_reconcile_all,
    study_close_recruitment,
    study_open_recruitment,
    study_reconcile,
    study_set_completion_code,
    task_set_external_id,
    task_stop_external,
)
from annotation.services.export_jobs import (  # noqa: F401
    study_start_export,
)
from annotation.services.jobs import (  # noqa: F401
    enqueue_job,
    job_fail,
    job_progress,
    job_release,
    job_run,
    jobs_active,
    study_compute_evidence,
    study_compute_outputs,
    study_run_kind_job,
    study_start_kind_job,
    study_start_kind_job_from_data,
)
from annotation.services.people import (  # noqa: F401
    external_worker,
    invitation_create,
    researcher_create,
    worker_signup,
)
from annotation.services.quality import (  # noqa: F401
    assignment_pay_bonus,
    early_stop_check,
    gold_check,
    task_set_gold,
    time_flag,
    worker_block,
    worker_block_list,
    worker_exclude_from_study,
)
from annotation.services.studies import (  # noqa: F401
    study_aggregate,
    study_close,
    study_create,
    study_launch,
    study_run_aggregation,
    study_start_aggregation,
    study_start_computing,
)
