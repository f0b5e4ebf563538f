"""Child process of the intake tests on another database than the tests' own, with bench/intake.py's helpers.

    python -m tests.intake_db DATABASE_URL ANSWERS WORKERS

Migrates the database, makes a live study with ``ANSWERS`` claimed slots and prints one JSON line
``{"study", "items": [[assignment id, token, task id], ...]}`` (tokens signed with ``SECRET_KEY`` from the
environment); then reads one JSON line, the assignment ids whose answers must be stored, and prints
``{"problems": [...], "answers": n}`` from :func:`bench.intake.check`. One process, so Django starts once.
"""
from __future__ import annotations

import json
import sys

from bench.intake import check, claim_slots, make_study, setup_django


def main(db_url: str, answers: int, workers: int) -> None:
    setup_django(db_url)
    from django.core.management import call_command
    from django.db import connections

    from annotation.models import Answer

    call_command("migrate", verbosity=0)
    study = make_study(tasks=answers // 5 + 1, workers=workers)
    print(json.dumps({"study": study, "items": claim_slots(study, workers, answers, offset=0)}), flush=True)
    stored = json.loads(sys.stdin.readline())
    connections.close_all()  # the server restarted meanwhile: this connection is gone
    print(json.dumps({"problems": check(study, stored),
                      "answers": Answer.objects.filter(task__study_id=study).count()}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
