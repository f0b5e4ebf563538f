"""The offline report's table of contents (issue 28): every section of the report, the kind's findings as on the
results page included, listed with an in-page anchor that leads to it in the saved file, with no script."""
from __future__ import annotations

import re

import pytest

from annotation.reports.study_report import study_report_html
from tests.browser_warmup import page  # noqa: F401 - the warmed-up page of these tests
from tests.test_study_report import archive_report, check_self_contained, finished_study

#: A section of the report: a card with an id and an <h2> heading (the results page's sections, and the report's).
CARD = re.compile(r'<div class="card" id="([^"]+)">\s*<h2>')


def toc(html: str) -> list[str]:
    """The anchors the report's table of contents links to, in order."""
    nav = re.search(r'<nav id="sections"[^>]*>(.*?)</nav>', html, re.S)
    assert nav, "the report has no table of contents"
    return re.findall(r'<a href="#([^"]+)">', nav.group(1))


def check_toc(html: str) -> list[str]:
    """Every section of the report is listed once, in the report's order, and each anchor names one element."""
    anchors = toc(html)
    assert anchors == CARD.findall(html), (anchors, CARD.findall(html))
    for anchor in anchors:
        assert len(re.findall(f'id="{re.escape(anchor)}"', html)) == 1, anchor
    return anchors


@pytest.mark.parametrize("kind", ["image_choice", pytest.param("misclassification", marks=pytest.mark.slow)])
def test_the_report_lists_every_section_with_a_working_anchor(kind, researcher, make_worker,
                                                             django_capture_on_commit_callbacks):
    study = finished_study(kind, researcher, make_worker, django_capture_on_commit_callbacks)
    html = study_report_html(study=study)
    check_self_contained(html)
    anchors = check_toc(html)
    assert anchors[0] == "settings" and "labels" in anchors
    assert ("output-files" in anchors) == study.outputs.exists()
    findings = {"image_choice": {"choices"},
                "misclassification": {"table-1", "yes-histogram", "output-files"}}[kind]
    assert findings <= set(anchors), anchors


@pytest.mark.browser
@pytest.mark.slow
def test_a_section_opens_from_the_table_of_contents_of_the_saved_file(researcher, make_worker, page, tmp_path,
                                                                       django_capture_on_commit_callbacks):
    study = finished_study("image_choice", researcher, make_worker, django_capture_on_commit_callbacks)
    path = tmp_path / "report.html"
    path.write_text(archive_report(study))
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: the sections lie below the first screen
    page.goto(path.as_uri())
    assert page.evaluate("() => window.scrollY") == 0
    for anchor in ("labels", "choices"):
        page.click(f'#sections a[href="#{anchor}"]')
        page.wait_for_function("(a) => location.hash === '#' + a", arg=anchor)
        assert page.url == path.as_uri() + f"#{anchor}"  # the saved file itself, not a server
        top = page.evaluate(f"() => document.getElementById('{anchor}').getBoundingClientRect().top")
        assert abs(top) < 40, (anchor, top)  # scrolled to the top of the screen
