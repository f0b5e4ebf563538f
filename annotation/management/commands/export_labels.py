"""``manage.py export_labels NAME --out labels.csv [--aggregate]``: one row per task of an aggregated study.

The labels are those of the study's last aggregation. A study not yet aggregated (or whose answers changed)
is aggregated only when ``--aggregate`` says so, and the command then reports the change of state.
"""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from analysis.exports import safe_csv_bytes
from annotation.errors import ApplicationError
from annotation.importer import labels_export_table
from annotation.management.lookup import study_named
from annotation.models import Study
from annotation.services import study_aggregate


class Command(BaseCommand):
    help = "Write an aggregated study's labels: key columns, label, one count column per answer value."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--out", type=Path, required=True)
        parser.add_argument("--owner", help="owner's user name, when several researchers use the same name")
        parser.add_argument("--aggregate", action="store_true",
                            help="aggregate the study first (a closed study becomes aggregated)")

    def handle(self, *args, name: str, out: Path, owner: str | None, aggregate: bool, **options):
        study = study_named(name, owner)
        if aggregate:
            before = study.state
            try:
                study = study_aggregate(study=study)
            except ApplicationError as exc:
                raise CommandError(exc.message) from exc
            study.refresh_from_db()
            self.stdout.write(f"aggregated study {name!r} ({before} → {study.state})")
        elif study.state != Study.State.AGGREGATED:
            raise CommandError(f"study {name!r} is {study.state}, not aggregated: its labels come from an "
                               "aggregation; pass --aggregate to aggregate it now (it becomes aggregated)")
        table = labels_export_table(study=study)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(safe_csv_bytes(table))
        undecided = int(table["label"].isna().sum()) if len(table) else 0
        self.stdout.write(self.style.SUCCESS(f"wrote {len(table)} tasks to {out} ({undecided} without a label)"))
