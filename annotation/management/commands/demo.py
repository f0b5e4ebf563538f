"""``manage.py demo``: run the demo studies end to end with a simulated crowd over real HTTP."""
from __future__ import annotations

import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from annotation.demo import run_demo_study
from annotation.live_server import serving


def image_choice_form() -> dict:
    from analysis.sample_images import SUBJECTS

    return {
        "name": "Demo: main subject of bundled images",
        "kind": "image_choice",
        "workers_per_task": 5,
        "reward_cents": 0,
        "assignment_minutes": 30,
        "backend": "internal",
        "s-question": "What is the main subject of this image?",
        "s-options": "person:Person, animal:Animal, object:Object, texture:Texture or material",
        "s-images": list(SUBJECTS),
        "s-images_per_task": 1,
        "s-image_size": 256,
    }


class Command(BaseCommand):
    help = "Run the demo studies end to end with a simulated crowd through the real HTTP views."

    def add_arguments(self, parser):
        parser.add_argument("--out", type=Path, default=Path(settings.EXPORT_DIR) / "demo")
        parser.add_argument("--accuracy", type=float, default=0.85, help="simulated workers' accuracy")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, out: Path, accuracy: float, seed: int, **options):
        studies = {"image_choice": image_choice_form()}
        with serving() as base_url:
            self.stdout.write(f"serving on {base_url}")
            for name, form in studies.items():
                start = time.monotonic()
                summary = run_demo_study(base_url, form=form, out_dir=out / name, accuracy=accuracy, seed=seed)
                self.stdout.write(self.style.SUCCESS(
                    f"{name}: {summary['answers']} answers ({summary['received']}/{summary['wanted']}) on "
                    f"{summary['tasks']} tasks, {summary['ties']} ties, majority label = truth on "
                    f"{summary['label_accuracy']:.0%} of tasks, {time.monotonic() - start:.1f}s"
                ))
                for file, path in summary["files"].items():
                    self.stdout.write(f"  {file:14s} {path}")
        self.stdout.write(
            "\nOpen the dashboard: `make serve`, then http://127.0.0.1:8000/ — sign in as a researcher "
            "(create one with `.venv/bin/python manage.py create_researcher NAME`)."
        )
