"""``manage.py study create|list|compute|launch|close|aggregate|export``: a study's lifecycle from the shell.

``create`` validates as the form and the API do (``annotation.api.creation``); the verbs call the same
services as the dashboard; ``export`` adds crowd-kit's and Label Studio's files (``annotation.reports.ecosystem``).
A study is named by its id, or by its name (``--owner`` when names repeat).
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from analysis.exports import archive_bytes
from annotation import selectors, services
from annotation.api.creation import study_create_from_json
from annotation.errors import ApplicationError
from annotation.management.lookup import study_named
from annotation.models import Job, Study
from annotation.reports.ecosystem import ecosystem_files
from annotation.reports.export_files import study_export_files

VERBS = {
    "compute": services.study_start_computing,
    "launch": services.study_launch,
    "close": services.study_close,
    "aggregate": services.study_start_aggregation,
}


def _value(text: str):
    """A ``--set``/``--option`` value: JSON when it parses (numbers, lists, true), else the text."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _pairs(items: list[str], flag: str) -> dict:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"{flag} {item!r} must look like KEY=VALUE")
        pairs[key.strip()] = _value(value)
    return pairs


class Command(BaseCommand):
    help = "Create, list, compute, launch, close, aggregate or export a study."

    def add_arguments(self, parser):
        parser.add_argument("verb", choices=["create", "list", *VERBS, "export"])
        parser.add_argument("study", nargs="?", help="the study's id or name (create: the new study's name)")
        parser.add_argument("--owner", help="the researcher's user name (required by create and list)")
        parser.add_argument("--kind", help="create: the task kind")
        parser.add_argument("--set", action="append", default=[], metavar="SETTING=VALUE",
                            help="create: one of the kind's settings (JSON values: 48, [\"a\",\"b\"]); repeat")
        parser.add_argument("--option", action="append", default=[], metavar="FIELD=VALUE",
                            help="create: a field of the study form (workers_per_task=5, reward_cents=10, …)")
        parser.add_argument("--wait", action="store_true",
                            help="compute, aggregate: wait for the job a worker runs (without a broker it has run)")
        parser.add_argument("--out", type=Path, help="export: a folder, or a file ending in .zip (with outputs)")
        parser.add_argument("--base-url", default="http://localhost:8000",
                            help="export: the site's address, for the image URLs of label_studio.json")

    def handle(self, *args, verb: str, study: str | None, owner: str | None, kind: str | None, out: Path | None,
               **options):
        try:
            if verb == "create":
                self._create(study, owner, kind, _pairs(options["set"], "--set"), _pairs(options["option"], "--option"))
            elif verb == "list":
                for row in selectors.study_list(user=self._owner(owner)):
                    self.stdout.write(f"{row.pk}\t{row.name}\t{row.kind}\t{row.state}")
            elif verb == "export":
                self._export(study_named(study, owner), out, options["base_url"])
            else:
                target = study_named(study, owner)
                job = VERBS[verb](study=target)
                if isinstance(job, Job):
                    self._report_job(job, options["wait"])
                target.refresh_from_db()
                self.stdout.write(f"study {target.pk} ({target.name}) is {target.state}")
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc

    def _report_job(self, job: Job, wait: bool) -> None:
        job.refresh_from_db()
        while wait and job.state not in (Job.State.DONE, Job.State.FAILED):
            time.sleep(1)
            job.refresh_from_db()
        if job.state == Job.State.FAILED:
            raise CommandError(f"the {job.name} job {job.pk} failed: {job.error}")
        self.stdout.write(f"{job.name} job {job.pk}: {job.state} · {job.message}")

    def _owner(self, username: str | None):
        if not username:
            raise CommandError("give --owner USER")
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        return user

    def _create(self, name, owner, kind, settings, fields):
        if not name or not kind:
            raise CommandError("create needs a NAME and --kind")
        data = {"name": name, "kind": kind, "settings": settings, "workers_per_task": 5, "reward_cents": 0,
                "assignment_minutes": 30, "backend": "internal", **fields}
        created = study_create_from_json(owner=self._owner(owner), data=data)
        self.stdout.write(f"study {created.pk} ({created.name}) created, {created.state}")

    def _export(self, study: Study, out: Path | None, base_url: str):
        if out is None:
            raise CommandError("give --out FOLDER or --out FILE.zip")
        files = {**study_export_files(study=study, with_outputs=out.suffix == ".zip"),
                 **ecosystem_files(study=study, base_url=base_url)}
        if out.suffix == ".zip":
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(archive_bytes({f"study{study.pk}/{k}": v for k, v in files.items()}))
        else:
            out.mkdir(parents=True, exist_ok=True)
            for name, content in files.items():
                (out / name).write_bytes(content if isinstance(content, bytes) else content.encode())
        self.stdout.write(f"wrote {len(files)} files of study {study.pk} to {out}")
