"""CSV exports neutralise spreadsheet formulas (OWASP: a leading ``'``); JSON exports keep the answers as given."""
from __future__ import annotations

import csv
import io
import json

import pandas as pd
from django.test import Client
from django.urls import reverse

from annotation.reports.export_files import FORMULA_PREFIXES, csv_cell, table_to_safe_csv
from annotation.services import assignment_claim_next, assignment_submit, study_aggregate, study_close
from annotation.tokens import assignment_token

#: One reason per dangerous first character, and ones that must stay untouched.
FORMULAS = ["=HYPERLINK(\"http://evil\",\"x\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A9)", "\tTAB", "\rCR"]
HARMLESS = ["plain answer", "a=b", "1-2", " =spaced"]


def test_each_formula_prefix_gets_a_quote_and_nothing_else_changes():
    table = pd.DataFrame({"text": FORMULAS + HARMLESS, "number": range(-5, 5), "flag": [True, False] * 5,
                          "=header": [None] * 10})
    rows = list(csv.reader(io.StringIO(table_to_safe_csv(table), newline="")))
    assert rows[0] == ["text", "number", "flag", "'=header"]
    assert [r[0] for r in rows[1:]] == ["'" + f for f in FORMULAS] + HARMLESS
    assert [r[1] for r in rows[1:]] == [str(n) for n in range(-5, 5)]  # numbers are not formulas
    assert {r[0][0] for r in rows[1:7]} == {"'"} and len(FORMULA_PREFIXES) == 6
    assert csv_cell(None) is None and csv_cell(-3.5) == -3.5


def test_a_formula_after_a_carriage_return_stays_inside_its_quoted_cell():
    text = table_to_safe_csv(pd.DataFrame({"reason": ["x\r=cmd()", "y\n@SUM(A1)"], "n": [1, 2]}))
    assert '"x\r=cmd()"' in text and '"y\n@SUM(A1)"' in text
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows == [["reason", "n"], ["x\r=cmd()", "1"], ["y\n@SUM(A1)", "2"]]


def test_study_exports_neutralise_worker_answers_in_csv_but_not_in_json(make_study, make_worker, researcher):
    study = make_study(images=["astronaut", "chelsea", "coffee"], workers_per_task=2)
    workers = [make_worker("@mallory"), make_worker("-eve")]
    reasons = iter(FORMULAS)
    for worker in workers:
        while (a := assignment_claim_next(worker=worker)) is not None:
            payload = {"choice": a.task.truth["choice"], "reason": next(reasons), "confidence": 5}
            assignment_submit(assignment_id=a.pk, worker=worker, payload=payload, token=assignment_token(a))
    study_close(study=study)
    study_aggregate(study=study)
    client = Client()
    client.force_login(researcher)

    def export(name: str) -> str:
        reply = client.get(reverse("study_export", args=[study.pk, name]))
        assert reply.status_code == 200
        return reply.content.decode()

    records = json.loads(export("answers.json"))
    stored = sorted(r["fields"]["reason"] for r in records)  # the text answer is stripped of white space
    assert set(FORMULAS[:4]) <= set(stored) and {r["worker"] for r in records} == {"@mallory", "-eve"}
    answers = list(csv.DictReader(io.StringIO(export("answers.csv"))))
    assert sorted(row["reason"] for row in answers) == sorted("'" + r if r[0] in "=+-@" else r for r in stored)
    assert {row["worker"] for row in answers} == {"'@mallory", "'-eve"}
    assert {row["worker"] for row in csv.DictReader(io.StringIO(export("workers.csv")))} <= {"'@mallory", "'-eve"}
