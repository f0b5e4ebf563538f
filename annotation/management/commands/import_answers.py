"""``manage.py import_answers FILE.csv --kind K --name NAME --task-key COL[,COL…] --worker COL --field F=COL…``"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from django.core.management.base import BaseCommand, CommandError

from annotation.errors import ApplicationError
from annotation.importer import answers_import
from annotation.task_kinds import TASK_KINDS


class Command(BaseCommand):
    help = "Import answers collected elsewhere into a (new or closed) study; all rows or none."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--kind", required=True, help=f"task kind: {', '.join(sorted(TASK_KINDS))}")
        parser.add_argument("--name", required=True, help="study name (created, or added to)")
        parser.add_argument("--task-key", required=True, help="column(s) identifying a task, comma-separated")
        parser.add_argument("--worker", required=True, help="column with the worker id")
        parser.add_argument("--field", action="append", default=[], metavar="FIELD=COLUMN",
                            help="answer field and the column holding it; repeat per field")
        parser.add_argument("--owner", default="importer", help="researcher who owns the study")
        parser.add_argument("--shown-at", help="column with when the task was shown")
        parser.add_argument("--submitted-at", help="column with when the answer was submitted")

    def handle(self, *args, file: Path, kind: str, name: str, task_key: str, worker: str, field: list[str],
               owner: str, shown_at: str | None, submitted_at: str | None, **options):
        if kind not in TASK_KINDS:
            raise CommandError(f"unknown kind {kind!r}; kinds are {', '.join(sorted(TASK_KINDS))}")
        fields = {}
        for item in field:
            target, sep, column = item.partition("=")
            if not sep or not target or not column:
                raise CommandError(f"--field {item!r} must look like FIELD=COLUMN")
            fields[target.strip()] = column.strip()
        if not fields:
            raise CommandError("give at least one --field FIELD=COLUMN")
        if not file.is_file():
            raise CommandError(f"no such file: {file}")
        try:
            table = pd.read_csv(file, dtype=str, keep_default_na=False, na_values=[""])
        except (pd.errors.ParserError, UnicodeDecodeError) as exc:
            raise CommandError(f"{file} is not a readable CSV file: {exc}") from exc
        try:
            summary = answers_import(
                table=table, kind=kind, name=name, task_key=[c.strip() for c in task_key.split(",") if c.strip()],
                worker=worker, fields=fields, owner=owner, shown_at=shown_at, submitted_at=submitted_at,
            )
        except ApplicationError as exc:
            raise CommandError(f"{exc.message}; nothing was imported") from exc
        self.stdout.write(self.style.SUCCESS(
            f"imported {summary['rows']} answers from {summary['workers']} workers into study {name!r} "
            f"({summary['tasks_created']} new tasks)"
        ))
