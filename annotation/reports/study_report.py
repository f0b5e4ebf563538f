"""A study's findings as one self-contained HTML file (``report.html`` of the archive), and the image references of
the results page it shares its templates with.

The results page and the report render the same partial, the kind's ``results_template``. Its images go through
the ``study_images`` tags, which ask the ``images`` object of the context for an ``<img>``: :class:`PageImages` gives
the server's URLs, :class:`EmbeddedImages` ``data:`` URIs, so the report opens offline, alone, with no script.
"""
from __future__ import annotations

import base64
import io
import json
import mimetypes
import re

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, strip_tags
from PIL import Image

from annotation import selectors
from annotation.artifacts import artifact_read, artifact_store
from annotation.models import Study
from annotation.selectors.tables import study_quality_settings
from annotation.services.contexts import study_context
from annotation.task_kinds import get_task_kind

#: Output figures (plots) a report embeds at full size; past this many, a figure is named, not shown.
MAX_FIGURES = 200
#: Task images (artifacts: top images, heatmaps) a report embeds; past this many, they are left out and counted.
MAX_THUMBNAILS = 600
#: The longest side of an embedded task image, in pixels: larger ones are shrunk to a thumbnail.
THUMBNAIL_PX = 96


class PageImages:
    """Images of the results page: the server's output and artifact URLs."""

    def __init__(self, study: Study):
        self.study = study

    def output_img(self, name: str, alt: str) -> str:
        """A figure, as a link that opens it at full size."""
        url = reverse("study_output", args=[self.study.pk, name])
        return format_html('<a class="figure-link" href="{}" target="_blank" title="open at full size">'
                           '<img class="figure" src="{}" alt="{}" loading="lazy" decoding="async"></a>', url, url, alt)

    def artifact_img(self, name: str, alt: str) -> str:
        """A task image as a thumbnail that loads when scrolled near (a results page shows hundreds) and opens at
        full size on click."""
        url = reverse("artifact_file", args=[name])
        return format_html('<a class="zoom" href="{}" target="_blank" title="open at full size">'
                           '<img src="{}" alt="{}" loading="lazy" decoding="async"></a>', url, url, alt)


class EmbeddedImages:
    """Images of the report as ``data:`` URIs: output figures as stored, task images as thumbnails of at most
    ``thumbnail_px``; each distinct image counts once against its cap, and what the caps leave out is counted."""

    def __init__(self, study: Study, *, max_figures: int = MAX_FIGURES, max_thumbnails: int = MAX_THUMBNAILS,
                 thumbnail_px: int = THUMBNAIL_PX):
        self.outputs = {o.name: o for o in study.outputs.select_related("artifact")}
        self.max_figures, self.max_thumbnails, self.thumbnail_px = max_figures, max_thumbnails, thumbnail_px
        self.figures: dict[str, str] = {}
        self.thumbnails: dict[str, str] = {}
        self.figures_left_out: set[str] = set()
        self.thumbnails_left_out: set[str] = set()

    def output_img(self, name: str, alt: str) -> str:
        output = self.outputs.get(name)
        if output is None:
            return format_html('<span class="muted missing-image">[{}: the study has no such output]</span>', name)
        if name not in self.figures:
            if len(self.figures) >= self.max_figures:
                self.figures_left_out.add(name)
                return format_html('<span class="muted left-out">[{}: past the report\'s {} figures; outputs/{} '
                                   'in the archive]</span>', alt or name, self.max_figures, name)
            self.figures[name] = data_uri(artifact_read(output.artifact), output.artifact.content_type)
        # No script in the report: a click focuses the figure and the report's style shows it at full size.
        return format_html('<img class="figure" tabindex="0" src="{}" alt="{}" title="click: full size">',
                           self.figures[name], alt)

    def artifact_img(self, name: str, alt: str) -> str:
        if name not in self.thumbnails:
            if len(self.thumbnails) >= self.max_thumbnails:
                self.thumbnails_left_out.add(name)
                return ""
            self.thumbnails[name] = self._thumbnail(name)
        return format_html('<img src="{}" alt="{}">', self.thumbnails[name], alt)

    def _thumbnail(self, name: str) -> str:
        data = artifact_store().get(name)
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        image = Image.open(io.BytesIO(data))
        if max(image.size) <= self.thumbnail_px:
            return data_uri(data, content_type)
        image.thumbnail((self.thumbnail_px, self.thumbnail_px))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return data_uri(buffer.getvalue(), "image/png")


def data_uri(data: bytes, content_type: str) -> str:
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"



def setting_rows(settings: dict) -> list[tuple[str, str]]:
    """(name, value) pairs, nested values as compact JSON."""
    return [(k, json.dumps(v, sort_keys=True, default=str) if isinstance(v, (dict, list, tuple)) else
             "—" if v is None or v == "" else str(v)) for k, v in sorted(settings.items())]


#: A section of a results partial: a card with an id whose first heading is an ``<h2>``.
SECTION = re.compile(r'<div class="card" id="([^"]+)">\s*<h2>(.*?)</h2>', re.S)


def results_sections(html: str) -> list[tuple[str, str]]:
    """(anchor, title) of each section of a rendered results partial, for the page's table of contents."""
    return [(anchor, strip_tags(title).strip()) for anchor, title in SECTION.findall(html)]


def report_sections(*, findings: str, label_rows: list, outputs: bool) -> list[tuple[str, str]]:
    """(anchor, title) of each section of the report, in its order, for its table of contents: the settings, the
    kind's findings (as on the results page), the labels and the output files."""
    return [("settings", "Settings"), *results_sections(findings),
            *([("labels-summary", "Labels per value")] if label_rows else []), ("labels", "Labels per task"),
            *([("output-files", "Output files")] if outputs else [])]


def study_report_context(*, study: Study, images: EmbeddedImages | None = None) -> dict:
    """Everything the report shows, its kind's findings rendered once (``findings``) with its ``sections``."""
    kind = get_task_kind(study.kind)
    findings = kind.results_context(study_context(study)) if kind.results_template else {}
    context = {
        **findings,
        "study": study, "kind": kind, "images": images or EmbeddedImages(study),
        "words": selectors.task_grid.LabelWords.of(study),
        "label_rows": selectors.task_grid.study_label_summary(study=study),
        "counts": selectors.study_counts(study=study), "now": timezone.now(),
        "kind_settings": setting_rows(selectors.study_conf(study=study)),
        "platform_settings": setting_rows({
            "reward_cents": study.reward_cents,
            "assignment_seconds": study.assignment_seconds, **study_quality_settings(study=study)}),
        "results": study.results.select_related("task").order_by("task_id"),
        "outputs": study.outputs.select_related("artifact"),
    }
    context["findings"] = (render_to_string(kind.results_template, context)
                           if kind.results_template and context.get("summary") else "")
    context["sections"] = report_sections(findings=context["findings"], label_rows=context["label_rows"],
                                          outputs=context["outputs"].exists())
    return context


def study_report_html(*, study: Study, images: EmbeddedImages | None = None) -> str:
    """The study's report: name, kind, settings, dates, counts, the kind's findings and the labels, one file."""
    return render_to_string("annotation/study_report.html", study_report_context(study=study, images=images))
