"""The study report (``report.html`` of the archive): one self-contained page per finished study of every kind,
with the results page's findings, its images embedded within stated caps, and no reference to the server."""
from __future__ import annotations

import base64
import io
import zipfile
from html.parser import HTMLParser

import numpy as np
import pytest
from django.test import Client, TestCase
from django.urls import reverse
from PIL import Image

from annotation import services
from annotation.artifacts import artifact_store_image
from annotation.models import StudyOutput
from annotation.reports.study_report import EmbeddedImages, study_report_html
from annotation.selectors.task_grid import LabelWords
from annotation.task_kinds import get_task_kind
from tests.study_helpers import computed_study, crowd_answers, study_from_form


class Page(HTMLParser):
    """What a test reads of an HTML page: every URL it refers to, its images, scripts, and its tables' text by id."""

    URL_ATTRIBUTES = {"src", "href", "action", "srcset", "poster", "data", "formaction", "background"}

    def __init__(self, html: str):
        super().__init__()
        self.urls: list[str] = []
        self.images: list[str] = []
        self.scripts = 0
        self.tables: dict[str, str] = {}
        self.table_texts: list[tuple[str | None, str]] = []  # every table in order, with its id if any
        self.rows: dict[str, list[list[str]]] = {}
        self._table: list = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.urls += [v for k, v in attrs.items() if k in self.URL_ATTRIBUTES and v is not None]
        if tag == "img":
            self.images.append(attrs.get("src") or "")
        if tag in ("script", "link", "iframe", "object", "embed"):
            self.scripts += 1
        if tag == "table":
            self._table.append([attrs.get("id"), [], []])
        elif tag == "tr" and self._table:
            self._table[-1][2].append([])
        elif tag in ("td", "th") and self._table and self._table[-1][2]:
            self._table[-1][2][-1].append("")

    def handle_endtag(self, tag):
        if tag == "table" and self._table:
            table_id, text, rows = self._table.pop()
            self.table_texts.append((table_id, " ".join("".join(text).split())))
            if table_id:
                self.tables[table_id] = " ".join("".join(text).split())
                self.rows[table_id] = [[" ".join(cell.split()) for cell in row] for row in rows]

    def handle_data(self, data):
        for entry in self._table:
            entry[1].append(data)
        if self._table and self._table[-1][2] and self._table[-1][2][-1]:
            self._table[-1][2][-1][-1] += data


def decoded_image(src: str) -> Image.Image:
    header, _, data = src.partition(",")
    assert header.startswith("data:image/") and header.endswith(";base64"), header[:60]
    image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
    image.load()
    return image


def check_self_contained(html: str) -> Page:
    """No script, no URL but ``data:`` and in-page anchors, and every image decodes."""
    page = Page(html)
    assert page.scripts == 0
    outside = [u for u in page.urls if not u.startswith(("data:", "#"))]
    assert not outside, outside[:5]
    assert "url(" not in html.replace("url(data:", "")
    for src in page.images:
        image = decoded_image(src)
        assert image.width > 0 and image.height > 0
    return page


def archive_report(study) -> str:
    client = Client()
    client.force_login(study.owner)
    with TestCase.captureOnCommitCallbacks(execute=True):  # the export job runs eagerly after the commit
        made = client.post(reverse("study_export", args=[study.pk, "archive.zip"]), HTTP_ACCEPT="application/json")
    assert made.status_code == 202
    reply = client.get(reverse("study_export", args=[study.pk, "archive.zip"]))
    assert reply.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(reply.streaming_content)))
    assert f"study{study.pk}/report.html" in archive.namelist()
    return archive.read(f"study{study.pk}/report.html").decode()


# -- finished studies of every kind, as small as their own tests make them -------------------------------

#: The kinds made through the researcher form (their tests' ``FORM``) or the services (their tests' ``TINY``).
FORM_MODULES = {"cluster_review": "test_spray_study", "reconstruction_review": "test_reconstruction_study"}
TINY_MODULES = {"misclassification": "test_misclassification_study", "class_assignment": "test_class_assignment",
                "feature_panel": "test_salient_study", "heatmap_validation": "test_salient_study"}


def finished_study(kind: str, researcher, make_worker, capture):
    """A study of ``kind`` computed, answered by a simulated crowd, closed and aggregated (outputs job run)."""
    import importlib

    if kind in FORM_MODULES:
        client = Client()
        client.force_login(researcher)
        form = importlib.import_module(f"tests.{FORM_MODULES[kind]}").FORM
        study = study_from_form(client, {**form, "name": f"report {kind}"}, capture)
        services.study_launch(study=study)
    else:
        settings = (dict(importlib.import_module(f"tests.{TINY_MODULES[kind]}").TINY) if kind in TINY_MODULES
                    else {"images": ["astronaut", "chelsea", "coffee"], "image_size": 48})
        study = computed_study(researcher, kind, f"report {kind}", settings, capture,
                               workers_per_task=2 if kind == "class_assignment" else 3)
    assert crowd_answers(study, make_worker, n=3, accuracy=0.9, seed=5) > 0
    with capture(execute=True):
        services.study_close(study=study)
        services.study_aggregate(study=study)
    study.refresh_from_db()
    if get_task_kind(kind).has_outputs:
        job = study.jobs.get(name="outputs")
        assert job.state == "done", job.error
    return study


#: The report's own tables, around the kind's findings (the label summary is on the results page too, outside them).
REPORT_TABLES = {"study-facts", "kind-settings", "platform-settings", "labels-table", "label-summary-table"}
SLOW = pytest.mark.slow
KINDS = [pytest.param("image_choice"), *(pytest.param(k, marks=SLOW) for k in (
    "misclassification", "class_assignment", "cluster_review", "feature_panel", "heatmap_validation",
    "reconstruction_review"))]


def test_every_kind_has_a_case_here():
    from annotation.task_kinds import TASK_KINDS

    assert {p.values[0] for p in KINDS} == set(TASK_KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_the_archive_of_a_finished_study_has_a_self_contained_report(kind, researcher, make_worker,
                                                                   django_capture_on_commit_callbacks):
    study = finished_study(kind, researcher, make_worker, django_capture_on_commit_callbacks)
    html = archive_report(study)
    report = check_self_contained(html)
    kind_module = get_task_kind(kind)
    assert study.name in html and kind_module.title in html

    # The counts: tasks, answers, workers.
    from annotation.models import Answer

    answers = Answer.objects.filter(task__study=study)
    assert f'<td id="n-tasks">{study.tasks.count()}' in html
    assert f'<td id="n-answers">{answers.count()} (' in html
    assert f'<td id="n-workers">{len(set(answers.values_list("worker", flat=True)))}</td>' in html

    # The labels: a row per task, its key and its label.
    rows = {row[0].split()[0]: row[1] for row in report.rows["labels-table"][1:]}
    results = list(study.results.select_related("task"))
    assert sum(bool(r.label) for r in results) > 0
    words = LabelWords.of(study)  # the labels in the task page's words, as on every page and in labels.csv
    assert rows == {r.task.key: words(r.label) or "—" for r in results}

    # The kind's findings: every table of the results page, with the same text, and as many images, embedded.
    if kind_module.results_template:
        client = Client()
        client.force_login(study.owner)
        page = Page(client.get(reverse("study_results", args=[study.pk])).content.decode())
        findings = [t for t in report.table_texts if t[0] not in REPORT_TABLES]
        assert findings == [t for t in page.table_texts if t[0] not in REPORT_TABLES]
        assert len(report.images) == len(page.images)
        assert 'id="images-left-out"' not in html


# -- the caps, the download, the link -----------------------------------------------------------------

def _png(width: int, height: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8)


def test_task_images_become_thumbnails_within_a_stated_cap(make_study):
    study = make_study(live=False)
    big, small, third = (artifact_store_image(image=_png(w, h, s)).name for w, h, s in
                         ((300, 150, 1), (20, 10, 2), (40, 40, 3)))
    images = EmbeddedImages(study, max_thumbnails=2, thumbnail_px=64)
    assert decoded_image(Page(images.artifact_img(big, "big")).images[0]).size == (64, 32)
    assert decoded_image(Page(images.artifact_img(small, "small")).images[0]).size == (20, 10)  # as stored
    assert images.artifact_img(big, "again").count("<img") == 1  # the same image counts once
    assert images.artifact_img(third, "third") == ""  # past the cap
    assert images.thumbnails_left_out == {third} and len(images.thumbnails) == 2


def test_figures_past_their_cap_are_named_not_shown(make_study):
    study = make_study(live=False)
    for name, seed in (("a.png", 1), ("b.png", 2)):
        artifact = artifact_store_image(image=_png(30, 20, seed))
        StudyOutput.objects.create(study=study, name=name, artifact=artifact)
    images = EmbeddedImages(study, max_figures=1)
    assert decoded_image(Page(images.output_img("a.png", "plot a")).images[0]).size == (30, 20)
    left_out = images.output_img("b.png", "plot b")
    assert "<img" not in left_out and "outputs/b.png" in left_out and images.figures_left_out == {"b.png"}
    assert "no such output" in images.output_img("c.png", "plot c")

    html = study_report_html(study=study, images=images)
    assert 'id="images-left-out"' in html and "1 figures, 0 task images" in html


def test_report_download_is_the_owners_and_linked_from_the_results_page(researcher, other_researcher, make_study):
    study = make_study()
    owner = Client()
    owner.force_login(researcher)
    reply = owner.get(reverse("study_export", args=[study.pk, "report.html"]))
    assert reply.status_code == 200 and reply["Content-Type"].startswith("text/html")
    assert reply["Content-Disposition"] == f'attachment; filename="study{study.pk}-report.html"'
    check_self_contained(reply.content.decode())
    stranger = Client()
    stranger.force_login(other_researcher)
    assert stranger.get(reverse("study_export", args=[study.pk, "report.html"])).status_code == 404

    with_page = services.study_create(owner=researcher, name="spray", kind="cluster_review")
    page = owner.get(reverse("study_results", args=[with_page.pk])).content.decode()
    assert f'href="{reverse("study_export", args=[with_page.pk, "report.html"])}"' in page
    assert "Download report" in page
    html = owner.get(reverse("study_export", args=[with_page.pk, "report.html"])).content.decode()
    assert 'id="no-results"' in html and check_self_contained(html).tables["labels-table"]


@pytest.mark.slow
@pytest.mark.browser
def test_the_report_opens_from_disk_with_every_image(researcher, make_worker, django_capture_on_commit_callbacks,
                                                     page, tmp_path):
    study = finished_study("feature_panel", researcher, make_worker, django_capture_on_commit_callbacks)
    path = tmp_path / "report.html"
    path.write_text(archive_report(study))
    requested = []

    def offline(route):  # the page's own file loads; any other request is noted and refused
        if route.request.url.startswith("file:"):
            return route.continue_()
        requested.append(route.request.url)
        return route.abort()

    page.route("**/*", offline)
    page.goto(path.as_uri())
    page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
    sizes = page.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
    assert len(sizes) == len(Page(path.read_text()).images) > 10 and all(w > 0 for w in sizes), sizes
    assert not requested, requested
    assert page.locator("#feature-grid .fp-item img").count() > 0


def test_what_people_typed_is_escaped_in_the_report(make_study, make_worker, django_capture_on_commit_callbacks):
    study = make_study(name='<script>alert("name")</script>', workers_per_task=1)
    crowd_answers(study, make_worker, n=1, accuracy=1.0)
    html = study_report_html(study=study)
    assert check_self_contained(html).scripts == 0
    assert "&lt;script&gt;alert(&quot;name&quot;)&lt;/script&gt;" in html


@pytest.mark.browser
@pytest.mark.slow
def test_a_report_figure_opens_at_full_size_on_a_click(make_study, page):
    """No script in the report: a click focuses a figure and the report's style shows it whole (issue 28)."""
    study = make_study(live=False)
    StudyOutput.objects.create(study=study, name="wide.png", artifact=artifact_store_image(image=_png(900, 300, 1)))
    images = EmbeddedImages(study)
    report = study_report_html(study=study, images=images)
    figure_html = images.output_img("wide.png", "wide")
    html = report.replace("</main>", f'<div class="images" id="fig">{figure_html}</div></main>')
    page.set_viewport_size({"width": 1366, "height": 900})
    page.set_content(html)
    figure = page.locator("#fig img")
    assert figure.bounding_box()["width"] <= 320  # a thumbnail in its row of images
    figure.click()
    assert figure.bounding_box()["width"] >= 900  # at its natural size (and its border)
    page.mouse.click(5, 5)  # anywhere else: back in its row
    assert figure.bounding_box()["width"] <= 320
