"""Navigation and confirmations (issue 28, item 8): the study list shows each study's answers and results link and
links the API-token and block-list pages; Launch and Close ask first, and a "no" changes nothing."""
from __future__ import annotations

import pytest

from annotation import services
from annotation.tokens import assignment_token
from tests.study_helpers import sign_in

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.mark.parametrize("width", [1366, 390])
def test_the_study_list_shows_progress_and_links(live_server, page, make_study, make_worker, researcher, width):
    from annotation.models import Study

    study = make_study(images=["astronaut", "chelsea"], workers_per_task=2)
    worker = make_worker()
    a = services.assignment_claim_next(worker=worker)
    services.assignment_submit(assignment_id=a.pk, worker=worker, token=assignment_token(a),
                               payload={"choice": "person", "reason": "looks so", "confidence": 3})
    other = services.study_create(owner=researcher, name="spray draft", kind="cluster_review", settings={})
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, live_server.url, researcher.username)
    page.goto(f"{live_server.url}/studies/")
    assert page.title() == "Studies · Salient Studio"  # the block list is a card, not in <title>
    row = page.locator(f"tr[data-study='{study.pk}']")
    assert row.locator(".answers .count").inner_text() == "1 of 4"
    assert row.locator("[role=progressbar]").get_attribute("aria-valuenow") == "25"
    assert page.locator(f"tr[data-study='{other.pk}'] a.results-link").get_attribute("href") == \
        f"/studies/{other.pk}/results/"
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.click("#api-tokens-link")
    page.wait_for_url("**/api/tokens/")
    page.go_back()
    page.click("#block-list-link")
    page.fill("#block-list textarea[name=ids]", worker.user.username)
    page.click("#block-list button[type=submit]")
    page.wait_for_selector("text=1 workers blocked")
    assert Study.objects.count() == 2


def test_launch_and_close_ask_first(live_server, page, make_study, researcher):
    study = make_study(images=["astronaut"], workers_per_task=1, live=False)
    sign_in(page, live_server.url, researcher.username)
    page.goto(f"{live_server.url}/studies/{study.pk}/")
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("button:has-text('Launch')")
    page.wait_for_timeout(500)
    study.refresh_from_db()
    assert study.state == "ready" and "Launch “Subjects” on" in asked[0]
    page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
    with page.expect_navigation():
        page.click("button:has-text('Launch')")
    study.refresh_from_db()
    assert study.state == "live"
    page.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    page.click("button:has-text('Close')")
    page.wait_for_timeout(500)
    study.refresh_from_db()
    assert study.state == "live" and asked[-1].startswith("Close “Subjects”")
