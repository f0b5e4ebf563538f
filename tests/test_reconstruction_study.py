"""The recovered-sample study (``reconstruction_review``): the evidence job reconstructs per trigger level and
stores plots and a summary, workers answer yes/no + a location, the outputs say how often the trigger is found."""
import json

import pytest
from django.test import Client
from django.urls import reverse

from annotation import services
from annotation.models import Answer, Assignment
from annotation.tokens import assignment_token
from tests.study_helpers import aggregate, crowd_answers, output_files, read_csv, sign_in, study_from_form

pytestmark = pytest.mark.slow

FORM = {
    "name": "recon", "kind": "reconstruction_review", "workers_per_task": 5, "reward_cents": 0,
    "assignment_minutes": 30, "backend": "internal", "s-source": "fashion-mnist", "s-classes": "0,8",
    "s-per_side": 6, "s-size": 10, "s-triggers": ["patch", "subtle"], "s-trigger_share": 0.5, "s-steps": 60,
    "s-review_k": 2, "s-seed": 0,
}


@pytest.fixture
def recon_study(researcher_client, django_capture_on_commit_callbacks):
    return study_from_form(researcher_client, FORM, django_capture_on_commit_callbacks)


def test_evidence_summary_plots_and_review_tasks(recon_study, researcher_client, settings):
    files = output_files(recon_study)
    for level in ("patch", "subtle"):
        assert files[f"pairs_{level}.png"][:4] == b"\x89PNG" and files[f"loss_{level}.png"][:4] == b"\x89PNG"
    summary = json.loads(files["reconstruction_summary.json"])
    assert [entry["level"] for entry in summary["levels"]] == ["patch", "subtle"]
    for entry in summary["levels"]:
        assert 0 < entry["best_k_mean"] <= 1 and entry["trigger_report"]["trigger"] == entry["level"]
        assert entry["reconstruction"]["steps"] == 60
    tasks = list(recon_study.tasks.all())
    # Per level the 2 best reconstructions of the triggered side and 2 of the clean side (distinct ones).
    for level in ("patch", "subtle"):
        for side in ("triggered", "control"):
            mine = [t for t in tasks if t.payload["level"] == level and t.payload["side"] == side]
            assert 1 <= len(mine) <= 2
            assert len({t.payload["recon_index"] for t in mine}) == len(mine)
    for t in tasks:
        assert t.truth["pattern"] in ("yes", "no")
        assert t.payload["side"] == "triggered" or t.truth["pattern"] == "no"
        if t.truth["pattern"] == "yes":
            x0, y0, x1, y1 = t.payload["box"]
            assert x0 <= t.truth["location"][0] <= x1 and y0 <= t.truth["location"][1] <= y1
    page = researcher_client.get(reverse("study_results", args=[recon_study.pk])).content.decode()
    assert page.count('<tr data-level=') == 2 and "/outputs/pairs_subtle.png" in page
    # A rerun of the evidence reuses the cached reconstructions and makes the same tasks.
    keys = sorted(t.key for t in tasks)
    from annotation.selectors import study_conf
    from annotation.task_kinds.reconstruction_review import _run_config, cached_run

    again = cached_run(_run_config(study_conf(study=recon_study), "patch"), settings.SALIENT_BENCHMARK_DIR,
                       lambda *a: pytest.fail("recomputed"))
    assert again["best_k_mean"] == summary["levels"][0]["best_k_mean"]
    assert keys == sorted(recon_study.tasks.values_list("key", flat=True))


def test_answers_need_a_location_with_yes_and_the_outputs_count_found_triggers(
        recon_study, make_worker, django_capture_on_commit_callbacks):
    services.study_launch(study=recon_study)
    worker = make_worker("first")
    a = services.assignment_claim_next(worker=worker)
    a = Assignment.objects.select_related("task__study").get(pk=a.pk)
    client = Client()
    client.force_login(worker.user)
    url = reverse("assignment_page", args=[a.pk])
    for bad, field in (({"pattern": "yes"}, "location"), ({"pattern": "yes", "location": "1.5,0.2"}, "location"),
                       ({"pattern": "maybe"}, "pattern"), ({"pattern": "yes", "location": "a,b"}, "location")):
        reply = client.post(url, {"token": assignment_token(a), **bad}, HTTP_ACCEPT="application/json")
        assert reply.status_code == 400 and field in reply.json()["errors"], (bad, reply.content)
    assert not Answer.objects.exists()
    reply = client.post(url, {"token": assignment_token(a), "pattern": "no", "location": "0.5,0.5"},
                        HTTP_ACCEPT="application/json")
    assert reply.status_code == 201
    assert Answer.objects.get().payload == {"pattern": "no", "location": None}

    crowd_answers(recon_study, make_worker, accuracy=1.0)
    files = aggregate(recon_study, django_capture_on_commit_callbacks)
    rows = read_csv(files["reconstruction_labels.csv"])
    assert len(rows) == recon_study.tasks.count()
    found = {r["level"]: r for r in read_csv(files["trigger_found.csv"])}
    assert set(found) == {"patch", "subtle"}
    tasks = list(recon_study.tasks.all())
    for level, row in found.items():
        trig = [t for t in tasks if t.payload["level"] == level and t.payload["side"] == "triggered"]
        visible = sum(t.truth["pattern"] == "yes" for t in trig) / len(trig)
        # A perfect crowd says yes exactly on the visible ones and clicks inside the region.
        assert float(row["visible"]) == pytest.approx(visible)
        assert float(row["found"]) == pytest.approx(visible) and float(row["control_yes"]) == 0
    assert files["trigger_found.png"][:4] == b"\x89PNG"


@pytest.mark.browser
def test_worker_clicks_the_pattern_in_the_browser(recon_study, live_server, page, make_worker):
    services.study_launch(study=recon_study)
    make_worker("looker")
    sign_in(page, live_server.url, "looker")
    page.click("#next-task")
    page.wait_for_selector("text=Do you see a pattern that is not part of the object?")
    page.wait_for_function("Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    page.keyboard.press("1")  # yes
    page.click("#submit-answer")  # no location yet: refused, the choice survives
    page.wait_for_selector("text=Please fix")
    assert "location" in page.inner_text("[role=alert]")
    assert page.is_checked("input[name=pattern][value=yes]")
    box = page.locator(".point-target img").bounding_box()
    page.mouse.click(box["x"] + 0.1 * box["width"], box["y"] + 0.2 * box["height"])
    assert "10 % from the left, 20 % from the top" in page.inner_text("[aria-live=polite]")
    assert page.is_visible(".point-marker")
    page.click("#submit-answer")
    page.wait_for_selector("text=Answer saved")
    x, y = Answer.objects.get(task__study=recon_study).payload["location"]
    assert x == pytest.approx(0.1, abs=0.02) and y == pytest.approx(0.2, abs=0.02)
