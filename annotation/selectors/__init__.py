"""Reads of the annotation app: each returns a QuerySet, a row, a plain table or raises; none writes.

One module per concern: ``studies`` (studies, tasks, answers, progress, a study's settings), ``eligibility``
(who may work), ``tables`` (answers, labels and workers as tables), ``quality`` (agreement, savings, cost),
``stopping_policy`` (early stopping's policy and crowd model), ``consent`` (a study's consent text and answers),
``task_grid`` (the researcher's task grid and a task's answers), ``lookups`` (the rows a request names by id). Use
them as ``from annotation import selectors; selectors.study_conf(...)`` or ``selectors.tables.study_labels_table(...)``.
"""
from annotation.selectors import lookups, quality, stopping_policy, tables, task_grid  # noqa: F401 - selectors.<module>.<read>
from annotation.selectors.consent import consent_needed, consent_rows, consent_text_sha256  # noqa: F401
from annotation.selectors.eligibility import check_may_work  # noqa: F401
from annotation.selectors.studies import (  # noqa: F401
    ANSWER_ORDERS,
    COUNTED,
    TAKEN,
    TASK_ORDERS,
    FilterError,
    NotFound,
    artifact_visible_to,
    as_id,
    assignment_open_for,
    is_number,
    job_summary,
    linked_study_labels,
    study_answers,
    study_answers_filtered,
    study_conf,
    study_counts,
    study_export_latest,
    study_get,
    study_launch_facts,
    study_label_answers,
    study_list,
    study_progress,
    study_progress_summary,
    study_tasks_filtered,
    task_progress_rows,
    tasks_open_for,
    worker_capped_studies,
    worker_had_exclusion_sibling,
    worker_of,
    worker_study_counts,
)
