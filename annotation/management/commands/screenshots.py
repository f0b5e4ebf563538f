"""``manage.py screenshots``: a PNG of every researcher and worker page, at desktop (1366 px) and phone (390 px)
width, for review (``make screenshots``).

It builds a small site in the database it is given (``make screenshots`` gives it a fresh SQLite file in the
output folder): image-choice studies of the bundled photos, one answered by a simulated crowd over HTTP
(``demo.harness.answer_all``) and aggregated, one live with a consent text; and one study of every model-based
kind on tiny data and randomly initialised models made under the output folder (``demo.screenshot_studies``),
answered and aggregated too, for their results pages; no real model is trained. Pages are served from this process
(``demo.live_server``) and shot full-page by Debian's Chromium through Playwright.
"""
from __future__ import annotations

import secrets
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.test import override_settings
from django.urls import reverse

from analysis.sample_images import SUBJECTS
from annotation import services
from annotation.models import Study
from demo import screenshot_studies
from demo.harness import RESEARCHER, answer_all, ensure_researcher, ensure_workers
from demo.live_server import serving

SIZES = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}
CONSENT = ("This study is run by the Salient Studio demo team. You will say what the main subject of photos is.\n\n"
           "Your answers are stored under your worker name only and used for research. You may stop at any time.")
#: One worker per screen size, so that each meets the consent page before their first task.
WORKERS = {size: f"screenshot-worker-{size}" for size in SIZES}


class Command(BaseCommand):
    help = "Write a PNG of every page (researcher and worker, desktop and phone) into a folder."

    def add_arguments(self, parser):
        parser.add_argument("--out", default="var/screenshots", help="folder for the PNGs (made if missing)")

    def handle(self, *args, out: str, **options):
        from workers.celery import run_jobs_in_process_without_a_broker

        if shutil.which("chromium") is None:
            raise CommandError("Debian's chromium is missing: `make browser` installs it")
        run_jobs_in_process_without_a_broker()
        out_dir = Path(out)
        password = secrets.token_urlsafe(12)
        # The simulated crowd answers faster than a person may (as in ``manage.py demo``).
        with serving() as base, override_settings(SALIENT_ANSWER_RATE="1000000/s"):
            researcher_pages, worker_pages = build_site(base, password, out_dir / ".own-data", self.stdout.write)
            written = shoot_from_own_thread(base, out_dir, password, researcher_pages, worker_pages)
        for path in written:
            self.stdout.write(str(path))
        self.stdout.write(self.style.SUCCESS(f"{len(written)} screenshots in {out_dir}"))


def results_page_name(kind: str) -> str:
    """The PNG name of a kind's results page (``<size>/<name>.png``)."""
    return f"results-{kind.replace('_', '-')}"


def build_site(base: str, password: str, data_dir: Path, log=print) -> tuple[dict[str, str], dict[str, str]]:
    """The studies the pages show; returns (name -> path) of the researcher's and the worker's pages."""
    ensure_researcher(password)
    owner = services.researcher_create(username=RESEARCHER, password=password)
    Study.objects.filter(owner=owner).delete()
    images = {"images": list(SUBJECTS)[:4], "image_size": 96}
    done = services.study_create(owner=owner, name="Bundled photos (answered)", kind="image_choice",
                                 settings=images, workers_per_task=3, reward_cents=5)
    services.study_start_computing(study=done)
    services.study_launch(study=Study.objects.get(pk=done.pk))
    models = screenshot_studies.model_studies(owner, data_dir, log)
    log("answering")
    answer_all(base, workers=3, accuracy=0.8, seed=0, password=password)
    services.study_close(study=Study.objects.get(pk=done.pk))
    services.study_aggregate(study=Study.objects.get(pk=done.pk))
    screenshot_studies.finish(models)
    live = services.study_create(owner=owner, name="Bundled photos (with consent)", kind="image_choice",
                                 settings=images, workers_per_task=2, reward_cents=10, consent_text=CONSENT)
    services.study_start_computing(study=live)
    services.study_launch(study=Study.objects.get(pk=live.pk))
    draft = services.study_create(owner=owner, name="A draft", kind="image_choice", settings=images)
    ensure_workers(list(WORKERS.values()), password)
    researcher_pages = {
        "study-list": reverse("study_list"), "study-new": reverse("study_create"),
        "study-answered": reverse("study_detail", args=[done.pk]),
        "study-answered-report": reverse("study_export", args=[done.pk, "report.html"]),
        "study-live": reverse("study_detail", args=[live.pk]), "study-draft": reverse("study_detail", args=[draft.pk]),
        "task-preview": reverse("task_preview", args=[live.tasks.first().pk]),
        "registry": reverse("registry"), "api-tokens": reverse("api_tokens"),
        results_page_name("image_choice"): reverse("study_results", args=[done.pk]),
        **{results_page_name(kind): reverse("study_results", args=[s.pk]) for kind, s in models.items()},
    }  # the block list is a form on the study list (its URL takes POSTs only)
    worker_pages = {"worker-home": reverse("worker_home")}
    return researcher_pages, worker_pages


def shoot_from_own_thread(*args) -> list[Path]:
    """``shoot`` on a thread of its own: Playwright's sync API refuses a thread whose asyncio loop runs already
    (a caller's own Playwright session, as a test suite's session-wide browser)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="screenshots") as pool:
        return pool.submit(shoot, *args).result()


def _sign_in(page, base: str, username: str, password: str) -> None:
    page.goto(f"{base}{reverse('login')}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()


def shoot(base: str, out_dir: Path, password: str, researcher_pages: dict, worker_pages: dict) -> list[Path]:
    """Full-page PNGs of every page at both sizes, as ``<out>/<size>/<page>.png``; the worker's pages are
    walked as a worker would: home, consent, task, a refused answer (errors beside the fields)."""
    from playwright.sync_api import sync_playwright

    written: list[Path] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=shutil.which("chromium"),
                                     args=["--no-sandbox", "--disable-gpu", "--no-first-run"])
        try:
            for size_name, size in SIZES.items():
                folder = out_dir / size_name
                folder.mkdir(parents=True, exist_ok=True)

                def snap(page, name: str) -> None:
                    path = folder / f"{name}.png"
                    page.screenshot(path=str(path), full_page=True)
                    written.append(path)

                context = browser.new_context(viewport=size)
                page = context.new_page()
                page.set_default_timeout(120_000)
                page.goto(f"{base}{reverse('login')}")
                snap(page, "login")
                page.goto(f"{base}{reverse('worker_signup')}")
                snap(page, "worker-signup")
                _sign_in(page, base, RESEARCHER, password)
                for name, path in researcher_pages.items():
                    if name.endswith("report"):  # a download (attachment): shown as the file opens offline
                        page.set_content(page.context.request.get(f"{base}{path}").text())
                    else:
                        page.goto(f"{base}{path}")
                    snap(page, name)
                context.close()

                context = browser.new_context(viewport=size)
                page = context.new_page()
                page.set_default_timeout(120_000)
                _sign_in(page, base, WORKERS[size_name], password)
                for name, path in worker_pages.items():
                    page.goto(f"{base}{path}")
                    snap(page, name)
                if page.locator("#next-task").count():
                    page.click("#next-task")
                    page.wait_for_load_state()
                if page.locator("#consent-agree").count():
                    snap(page, "worker-consent")
                    page.click("#consent-agree")
                    page.wait_for_load_state()
                if page.locator("#answer-form").count():
                    snap(page, "worker-task")
                    page.click("#submit-answer")  # nothing chosen: the errors beside the fields
                    page.wait_for_load_state()
                    snap(page, "worker-task-errors")
                    page.click("text=Return this task")
                    page.wait_for_load_state()
                context.close()
        finally:
            browser.close()
    return written
