"""The task grid in Chromium (issue 28, items 4 and 8): from a label on the results page to its tasks and every answer;
filter, sort and page the grid; the image-choice results page and its table of contents; desktop and phone."""
from __future__ import annotations

import pytest

from tests.study_helpers import sign_in
from tests.test_task_grid import answered_study

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def tile_keys(page) -> list[str]:
    return page.eval_on_selector_all("#task-grid .task-tile", "tiles => tiles.map(t => t.dataset.key)")


@pytest.mark.parametrize("width", [1366, 390])
def test_from_a_label_to_its_answers(live_server, page, make_study, make_worker, researcher, monkeypatch,
                                     django_capture_on_commit_callbacks, width):
    from annotation import views_researcher

    monkeypatch.setattr(views_researcher, "GRID_PAGE_SIZE", 2)
    study = answered_study(make_study, make_worker, django_capture_on_commit_callbacks)
    page.set_default_timeout(180_000)  # the shared machine is loaded; nothing here is timed
    page.set_viewport_size({"width": width, "height": 800})
    sign_in(page, live_server.url, researcher.username)
    page.goto(f"{live_server.url}/studies/{study.pk}/results/")
    assert page.locator("#choices-table tr[data-label=person] td").nth(1).inner_text() == "1"  # image_choice results
    page.click("#sections a[href='#choices']")  # the table of contents jumps to the section
    page.wait_for_function("() => location.hash === '#choices'")
    top = page.evaluate("document.getElementById('choices').getBoundingClientRect().top")
    assert 0 <= top < page.viewport_size["height"] - 100  # the section's heading is on screen
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    page.click("#label-summary-table a:has-text('Animal')")
    page.wait_for_url("**/tasks/?label=animal")
    assert tile_keys(page) == ["img-chelsea"]
    # the thumbnail is loading="lazy", which the page's load event does not wait for: wait until it has loaded
    # (a broken image never gets a naturalWidth, so this still fails on one)
    page.wait_for_function("() => { const img = document.querySelector('.task-tile img');"
                           " return img !== null && img.complete && img.naturalWidth > 0; }", timeout=60_000)
    page.click(".task-tile[data-key=img-chelsea]")
    page.wait_for_selector("#task-answers")
    rows = page.locator("#task-answers tbody tr")
    assert rows.count() == 3
    first = rows.nth(0).inner_text()
    assert "w0" in first and "Animal" in first and "img-chelsea by w0" in first and "approved" in first
    assert "Object" in rows.nth(2).inner_text() and " s" in rows.nth(2).locator("td").nth(4).inner_text()
    assert "agreement 67 %" in page.locator("#task-label").inner_text()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

    page.click("#back-to-grid")
    page.click("#clear-filters")
    page.wait_for_selector("#page-of")
    assert tile_keys(page) == ["img-astronaut", "img-chelsea"] and page.inner_text("#page-of") == "page 1 of 2"
    page.click("#page-next")
    page.wait_for_url("**page=2")
    assert tile_keys(page) == ["img-coffee"]
    page.select_option("#f-order", "agreement")
    page.click("#grid-filters button[type=submit]")
    page.wait_for_url("**order=agreement**")
    assert tile_keys(page) == ["img-coffee", "img-chelsea"]
    page.select_option("#f-tie", "no")
    page.fill("#f-agreement-min", "70")
    page.click("#grid-filters button[type=submit]")
    page.wait_for_url("**agreement_min=70**")
    assert tile_keys(page) == ["img-astronaut"] and "1 task match" in page.inner_text("#grid-count")
    page.fill("#f-agreement-min", "")
    page.fill("#f-worker", "w2")
    page.select_option("#f-tie", "")
    page.click("#grid-filters button[type=submit]")
    page.wait_for_url("**worker=w2**")
    assert tile_keys(page) == ["img-chelsea", "img-astronaut"]  # agreement order kept, lowest first
