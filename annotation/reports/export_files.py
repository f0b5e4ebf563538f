"""The files of a study's export archive (the tables come from :mod:`annotation.selectors.tables`).

CSV files pass through :func:`table_to_safe_csv` (OWASP's CSV-injection rule) so that a worker's answer cannot
become a formula in a researcher's spreadsheet; JSON files keep every value as given.
"""
from __future__ import annotations

import pandas as pd

from analysis.exports import FORMULA_PREFIXES, csv_cell, records_to_json, table_to_safe_csv  # noqa: F401
from annotation.artifacts import artifact_read
from annotation.models import Study
from annotation.reports.study_report import study_report_html
from annotation.selectors.consent import consent_rows
from annotation.selectors.tables import (
    study_answer_records,
    study_answers_table,
    study_labels_table,
    study_quality_summary,
    study_workers_table,
)


def study_export_files(*, study: Study, with_outputs: bool = False) -> dict[str, str | bytes]:
    """Name -> content of every export file of the study; ``with_outputs`` (the archive): also its output files
    under ``outputs/`` and ``report.html``, the findings in one self-contained page
    (:mod:`annotation.reports.study_report`)."""
    labels = study_labels_table(study=study)
    files: dict[str, str | bytes] = {
        "answers.csv": table_to_safe_csv(study_answers_table(study=study)),
        "answers.json": records_to_json(study_answer_records(study=study)),
        "labels.csv": table_to_safe_csv(labels),
        "labels.json": records_to_json(labels.astype(object).where(labels.notna(), None).to_dict(orient="records")),
        "workers.csv": table_to_safe_csv(study_workers_table(study=study)),
        "quality.json": records_to_json(study_quality_summary(study=study)),
    }
    if study.consent_text:  # the ethics record: the exact text and each worker's answer to it, with the time
        files["consent.csv"] = table_to_safe_csv(pd.DataFrame(
            consent_rows(study=study), columns=["worker", "agreed", "answered_at", "text_sha256"]))
        files["consent.txt"] = study.consent_text
    if with_outputs:
        for output in study.outputs.select_related("artifact"):
            files[f"outputs/{output.name}"] = artifact_read(output.artifact)
        files["report.html"] = study_report_html(study=study)
    return files
