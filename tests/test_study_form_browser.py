"""The new-study form follows the kind (issue 28, item 1): switching the kind swaps its settings, blank defaults
never show ``null``, and a study of every kind is created from the defaults alone, in a real browser."""
from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.models import Study
from annotation.task_kinds import TASK_KINDS, get_task_kind
from tests.study_helpers import sign_in


def settings_names(page) -> set[str]:
    return set(page.eval_on_selector_all("#kind-settings [name^='s-']", "els => els.map(e => e.name)"))


def kind_fields(kind: str) -> set[str]:
    return {f"s-{name}" for name in get_task_kind(kind).settings_form().fields}


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("width", [1366, 390])
def test_switching_the_kind_swaps_its_settings_and_every_kind_is_created_from_defaults(live_server, page, researcher,
                                                                                       width):
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, live_server.url, researcher.username)
    kinds = sorted(TASK_KINDS) if width == 1366 else ["feature_panel", "image_choice"]
    for n, kind in enumerate(kinds):
        page.goto(f"{live_server.url}/studies/new/")
        assert settings_names(page) == kind_fields("image_choice")  # the form opens on the default kind
        page.fill("#id_name", f"defaults {n}")
        page.select_option("#id_kind", kind)
        page.wait_for_url(f"**/studies/new/?kind={kind}")  # the script swapped the settings in
        assert page.get_attribute("#kind-settings", "data-kind") == kind
        assert settings_names(page) == kind_fields(kind)
        boxes = page.eval_on_selector_all("#kind-settings input, #kind-settings textarea",
                                          "els => els.map(e => e.value)")
        assert "null" not in boxes
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        with page.expect_navigation():
            page.click("#create-study")
        assert not page.is_visible(".errorlist"), page.inner_text("main")
        study = Study.objects.get(name=f"defaults {n}")
        assert study.kind == kind and page.url.endswith(f"/studies/{study.pk}/")


def test_a_post_with_another_kinds_settings_shows_this_kinds_settings_without_errors(researcher_client):
    reply = researcher_client.post(reverse("study_create"), {
        "name": "switched", "kind": "misclassification", "settings_kind": "image_choice", "workers_per_task": 5,
        "reward_cents": 0, "assignment_minutes": 30, "backend": "internal", "s-question": "What?"})
    page = reply.content.decode()
    assert reply.status_code == 200 and not Study.objects.exists()
    assert "These are the settings of" in page and "This field is required" not in page
    assert 'data-kind="misclassification"' in page and 'name="s-question"' not in page
    assert ">null<" not in page and 'value="null"' not in page


def test_the_settings_part_alone_is_for_researchers_only(client, researcher_client):
    url = reverse("study_create") + "?part=settings&kind=cluster_review"
    assert client.get(url).status_code in (302, 403)
    part = researcher_client.get(url).content.decode()
    assert part.startswith('<div id="kind-settings" data-kind="cluster_review">') and "<html" not in part
    assert researcher_client.get(reverse("study_create") + "?part=settings&kind=nope").status_code == 400


def test_a_json_box_left_out_of_a_post_shows_empty_not_null(db):
    form = get_task_kind("cluster_review").settings_form({}, prefix="s")
    assert not form.is_bound or "null" not in str(form["benchmark"]) + str(form["training"])


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("width", [1366, 390])
def test_a_misspelt_benchmark_override_is_refused_on_the_page_naming_it(live_server, page, researcher, width):
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, live_server.url, researcher.username)
    page.goto(f"{live_server.url}/studies/new/?kind=cluster_review")
    page.fill("#id_name", "typo")
    page.fill("[name='s-benchmark']", '{"train_per_clas": 200}')
    with page.expect_navigation():
        page.click("#create-study")
    errors = page.inner_text("#kind-settings .errorlist")
    assert "unknown setting 'train_per_clas'" in errors and "train_per_class" in errors
    assert page.input_value("[name='s-benchmark']") == '{"train_per_clas": 200}'  # what was typed is kept
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert not Study.objects.filter(name="typo").exists()
