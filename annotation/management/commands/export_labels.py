"""``manage.py export_labels NAME --out labels.csv``: aggregate a study and write one row per task."""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from analysis.exports import safe_csv_bytes
from annotation.errors import ApplicationError
from annotation.importer import labels_export_table
from annotation.models import Study
from annotation.services import study_aggregate


class Command(BaseCommand):
    help = "Aggregate a closed study and write its labels: key columns, label, one count column per answer value."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--out", type=Path, required=True)
        parser.add_argument("--owner", help="owner's user name, when several researchers use the same name")

    def handle(self, *args, name: str, out: Path, owner: str | None, **options):
        studies = Study.objects.filter(name=name)
        if owner:
            studies = studies.filter(owner__username=owner)
        if studies.count() != 1:
            raise CommandError(f"{studies.count()} studies are named {name!r}; give --owner" if studies.exists()
                               else f"no study named {name!r}")
        study = studies.get()
        try:
            study = study_aggregate(study=study)
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        table = labels_export_table(study=study)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(safe_csv_bytes(table))
        undecided = int(table["label"].isna().sum()) if len(table) else 0
        self.stdout.write(self.style.SUCCESS(f"wrote {len(table)} tasks to {out} ({undecided} without a label)"))
