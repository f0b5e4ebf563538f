"""``manage.py import_answers FILE.csv --kind K --name NAME [--format mturk] [--task-key COL,…] [--worker COL]
[--field F=COL …]``: answers collected elsewhere into a new or closed study, all rows or none.

``--format mturk`` reads an MTurk batch-results file as downloaded: ``WorkerId``, ``AssignmentId``, ``HITId``,
``AssignmentStatus`` (``Rejected`` rows skipped), ``AcceptTime``/``SubmitTime``; the task key defaults to every
``Input.*`` column and each answer field ``f`` to ``Answer.f`` (both can be overridden).
"""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
from django.core.management.base import BaseCommand, CommandError

from annotation.errors import ApplicationError
from annotation.importer import answers_import, mturk_mapping
from annotation.task_kinds import TASK_KINDS


class Command(BaseCommand):
    help = "Import answers collected elsewhere into a (new or closed) study; all rows or none."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--kind", required=True, help=f"task kind: {', '.join(sorted(TASK_KINDS))}")
        parser.add_argument("--name", required=True, help="study name (created, or added to)")
        parser.add_argument("--format", choices=["plain", "mturk"], default="plain",
                            help="plain: name every column; mturk: an MTurk batch-results file as downloaded")
        parser.add_argument("--task-key", default="", help="column(s) identifying a task, comma-separated")
        parser.add_argument("--worker", help="column with the worker id (mturk: WorkerId)")
        parser.add_argument("--field", action="append", default=[], metavar="FIELD=COLUMN",
                            help="answer field and the column holding it; repeat per field (mturk: Answer.FIELD)")
        parser.add_argument("--owner", default="importer", help="researcher who owns the study")
        parser.add_argument("--shown-at", help="column with when the task was shown")
        parser.add_argument("--submitted-at", help="column with when the answer was submitted")

    def handle(self, *args, file: Path, kind: str, name: str, format: str, task_key: str, worker: str | None,
               field: list[str], owner: str, shown_at: str | None, submitted_at: str | None, **options):
        if kind not in TASK_KINDS:
            raise CommandError(f"unknown kind {kind!r}; kinds are {', '.join(sorted(TASK_KINDS))}")
        fields = {}
        for item in field:
            target, sep, column = item.partition("=")
            if not sep or not target or not column:
                raise CommandError(f"--field {item!r} must look like FIELD=COLUMN")
            fields[target.strip()] = column.strip()
        keys = [c.strip() for c in task_key.split(",") if c.strip()]
        if format == "plain" and not fields:
            raise CommandError("give at least one --field FIELD=COLUMN")
        if format == "plain" and not (keys and worker):
            raise CommandError("give --task-key and --worker (or --format mturk)")
        if not file.is_file():
            raise CommandError(f"no such file: {file}")
        started = time.perf_counter()
        try:
            table = pd.read_csv(file, dtype=str, keep_default_na=False, na_values=[""])
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise CommandError(f"{file} is not a readable CSV file: {exc}") from exc
        try:
            if format == "mturk":
                mapping = mturk_mapping(list(table.columns), kind=kind, task_key=keys, fields=fields)
                if worker:
                    mapping["worker"] = worker
            else:
                mapping = {"task_key": keys, "worker": worker, "fields": fields, "shown_at": shown_at,
                           "submitted_at": submitted_at}
            summary = answers_import(table=table, kind=kind, name=name, owner=owner, **mapping)
        except ApplicationError as exc:
            raise CommandError(f"{exc.message}; nothing was imported") from exc
        notes = []
        if summary["skipped_rejected"]:
            notes.append(f"{summary['skipped_rejected']} rejected assignments skipped")
        if summary["short_answers"]:
            notes.append(f"{summary['short_answers']} answers shorter than the live minimum kept")
        self.stdout.write(self.style.SUCCESS(
            f"imported {summary['rows']} answers from {summary['workers']} workers into study {name!r} "
            f"({summary['tasks_created']} new tasks) in {time.perf_counter() - started:.1f} s"
            + "".join(f"; {n}" for n in notes)
        ))
