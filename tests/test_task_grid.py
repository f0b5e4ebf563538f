"""The task grid (issue 28, item 4): Label Studio's data manager for a study. Tasks filter by label, tie, agreement,
gold and worker, sort by agreement, answers and key, page in the database; a task shows its images and every answer;
only the study's owner sees it; the API lists the same."""
from __future__ import annotations

import pytest
from django.urls import reverse

from annotation import services
from annotation.models import Assignment, Task
from annotation.tokens import assignment_token

#: Who answers what: astronaut 3 x person (100 %), chelsea 2 animal + 1 object (67 %), coffee object/texture (tie).
ANSWERS = {"img-astronaut": ["person", "person", "person"], "img-chelsea": ["animal", "animal", "object"],
           "img-coffee": ["object", "texture"]}


def answered_study(make_study, make_worker, capture, *, aggregate=True):
    """An image-choice study whose three tasks got the answers of :data:`ANSWERS` (worker ``w<i>`` gives the
    i-th answer of each task), closed and aggregated."""
    study = make_study(workers_per_task=3)
    for i in range(3):
        worker = make_worker(f"w{i}")
        while (a := services.assignment_claim_next(worker=worker)) is not None:
            a = Assignment.objects.select_related("task").get(pk=a.pk)
            choices = ANSWERS[a.task.key]
            if i >= len(choices):
                services.assignment_return(assignment_id=a.pk, worker=worker, token=assignment_token(a))
                continue
            services.assignment_submit(assignment_id=a.pk, worker=worker, token=assignment_token(a), payload={
                "choice": choices[i], "reason": f"{a.task.key} by w{i}", "confidence": 2 + i})
    if aggregate:
        with capture(execute=True):
            services.study_close(study=study)
            services.study_aggregate(study=study)
    return study


def grid_keys(client, study, **query) -> list[str]:
    reply = client.get(reverse("study_tasks", args=[study.pk]), query)
    assert reply.status_code == 200, reply.content[:500]
    html = reply.content.decode()
    return [part.split('"')[0] for part in html.split('data-key="')[1:]]


def test_filters_sort_and_words(make_study, make_worker, researcher_client, django_capture_on_commit_callbacks):
    study = answered_study(make_study, make_worker, django_capture_on_commit_callbacks)
    c = researcher_client
    assert grid_keys(c, study) == ["img-astronaut", "img-chelsea", "img-coffee"]
    assert grid_keys(c, study, label="animal") == ["img-chelsea"]
    assert grid_keys(c, study, tie="yes") == ["img-coffee"]
    assert grid_keys(c, study, tie="no") == ["img-astronaut", "img-chelsea"]
    assert grid_keys(c, study, agreement_min="60", agreement_max="70") == ["img-chelsea"]
    assert grid_keys(c, study, agreement_min="67") == ["img-astronaut"]
    assert grid_keys(c, study, order="agreement") == ["img-coffee", "img-chelsea", "img-astronaut"]
    assert grid_keys(c, study, order="-agreement") == ["img-astronaut", "img-chelsea", "img-coffee"]
    assert grid_keys(c, study, order="answers")[0] == "img-coffee"
    assert grid_keys(c, study, order="-key")[0] == "img-coffee"
    assert grid_keys(c, study, worker="w2") == ["img-astronaut", "img-chelsea"]
    assert grid_keys(c, study, gold="yes") == []
    assert grid_keys(c, study, key="img-coffee") == ["img-coffee"] and grid_keys(c, study, key="img") == []
    task = study.tasks.get(key="img-chelsea")
    task.payload = {**task.payload, "class_name": "Cat"}  # a benchmark kind's payload names the class
    task.save()
    assert grid_keys(c, study, class_name="Cat") == ["img-chelsea"]
    html = c.get(reverse("study_tasks", args=[study.pk])).content.decode()
    tile = html.split('data-key="img-chelsea"')[1].split("</a>")[0]
    assert ">Animal<" in tile and "67 %" in tile and "3 answers" in tile  # the task page's word, not "animal"
    assert "<b>Cat</b> · img-chelsea" in tile
    assert "nan" not in html


@pytest.mark.parametrize("query, field", [({"tie": "maybe"}, "tie"), ({"agreement_min": "150"}, "agreement_min"),
                                          ({"agreement_min": "80", "agreement_max": "20"}, "agreement_min"),
                                          ({"order": "colour"}, "order")])
def test_bad_filters_are_named(make_study, researcher_client, query, field):
    study = make_study(live=False)
    reply = researcher_client.get(reverse("study_tasks", args=[study.pk]), query,
                                  headers={"Accept": "application/json"})
    assert reply.status_code == 400 and reply.json()["field"] == field


def test_task_page_shows_every_answer(make_study, make_worker, researcher_client, django_capture_on_commit_callbacks):
    study = answered_study(make_study, make_worker, django_capture_on_commit_callbacks)
    task = study.tasks.get(key="img-chelsea")
    answer = task.answers.get(worker__user__username="w2")
    answer.flag = "too_fast"
    answer.save()
    services.worker_exclude_from_study(study=study, worker=task.answers.get(worker__user__username="w1").worker)
    html = researcher_client.get(reverse("study_task", args=[study.pk, task.pk])).content.decode()
    rows = html.split('id="task-answers"')[1].split("</table>")[0].split("<tr data-answer=")[1:]
    assert len(rows) == 3
    assert "w0" in rows[0] and "Animal" in rows[0] and "img-chelsea by w0" in rows[0] and "<td>2</td>" in rows[0]
    assert "answered too fast" in rows[2] and "Object" in rows[2]
    assert "worker excluded from this study" in rows[1] and "excluded" not in rows[0]
    assert html.count(reverse("artifact_file", args=[task.payload["images"][0]])) >= 1
    assert "agreement 67 %" in html


def test_only_the_owner_sees_the_grid(make_study, client, other_researcher):
    study = make_study(live=False)
    task = study.tasks.first()
    client.force_login(other_researcher)
    assert client.get(reverse("study_tasks", args=[study.pk])).status_code == 404
    assert client.get(reverse("study_task", args=[study.pk, task.pk])).status_code == 404


def test_pages_hold_a_page_of_tasks(make_study, researcher_client, monkeypatch):
    from annotation import views_researcher

    monkeypatch.setattr(views_researcher, "GRID_PAGE_SIZE", 2)
    study = make_study(live=False)
    assert grid_keys(researcher_client, study) == ["img-astronaut", "img-chelsea"]
    assert grid_keys(researcher_client, study, page="2") == ["img-coffee"]
    assert Task.objects.filter(study=study).count() == 3


def test_results_page_links_labels_to_the_grid(make_study, make_worker, researcher_client,
                                                django_capture_on_commit_callbacks):
    study = answered_study(make_study, make_worker, django_capture_on_commit_callbacks)
    html = researcher_client.get(reverse("study_results", args=[study.pk])).content.decode()
    grid = reverse("study_tasks", args=[study.pk])
    summary = html.split('id="label-summary-table"')[1].split("</table>")[0]
    assert f'href="{grid}?label=animal">Animal</a>' in summary and f'href="{grid}?tie=yes">tie (no label)' in summary
    choices = html.split('id="choices-table"')[1].split("</table>")[0]  # image_choice's own results
    assert f'href="{grid}?label=person">Person</a>' in choices
    toc = html.split('id="sections"')[1].split("</nav>")[0]
    assert 'href="#labels-summary"' in toc and 'href="#choices"' in toc and 'id="choices"' in html
    dashboard = researcher_client.get(reverse("study_detail", args=[study.pk])).content.decode()
    labels = dashboard.split('id="labels-table"')[1].split("</table>")[0]
    task = study.tasks.get(key="img-chelsea")
    assert f'href="{grid}{task.pk}/"' in labels and f'href="{grid}?label=animal">Animal</a>' in labels


def test_the_api_lists_the_grid_with_the_same_filters(make_study, make_worker, researcher, other_researcher,
                                                      researcher_client, django_capture_on_commit_callbacks):
    from tests.test_api import api_client

    study = answered_study(make_study, make_worker, django_capture_on_commit_callbacks)
    api = api_client(researcher)
    reply = api.get(f"/api/studies/{study.pk}/grid", {"order": "-agreement", "tie": "no"}).json()
    assert reply["count"] == 2 and [t["key"] for t in reply["items"]] == ["img-astronaut", "img-chelsea"]
    chelsea = reply["items"][1]
    assert (chelsea["label"], chelsea["label_words"], chelsea["agreement"], chelsea["answers"]) == \
        ("animal", "Animal", 67, 3)
    assert chelsea["image"].startswith("/artifacts/")
    assert api.get(f"/api/studies/{study.pk}/grid", {"worker": "w2", "limit": 1}).json()["count"] == 2
    # The payload fields the results rows link with filter the API's grid as they filter the page.
    coffee = Task.objects.get(study=study, key="img-coffee")
    coffee.payload = {**coffee.payload, "variant": "flipped"}
    coffee.save(update_fields=["payload"])
    flipped = api.get(f"/api/studies/{study.pk}/grid", {"variant": "flipped"}).json()
    assert [t["key"] for t in flipped["items"]] == ["img-coffee"] == grid_keys(researcher_client, study,
                                                                              variant="flipped")
    bad = api.get(f"/api/studies/{study.pk}/grid", {"agreement_max": "x"})
    assert bad.status_code == 400 and bad.json()["field"] == "agreement_max"
    assert api_client(other_researcher).get(f"/api/studies/{study.pk}/grid").status_code == 404


def test_every_section_link_of_the_dashboard_has_its_anchor(make_study, make_worker, researcher_client,
                                                            django_capture_on_commit_callbacks):
    import re

    study = answered_study(make_study, make_worker, django_capture_on_commit_callbacks)
    found = {}
    for name in ("study_detail", "study_results"):
        html = researcher_client.get(reverse(name, args=[study.pk])).content.decode()
        toc = html.split('id="sections"')[1].split("</nav>")[0]
        found[name] = re.findall(r'href="#([^"]+)"', toc)
        assert all(f'id="{a}"' in html for a in found[name]), (name, found[name])
    assert {"progress", "tasks", "labels", "agreement", "answers"} <= set(found["study_detail"])
    assert found["study_results"] == ["labels-summary", "choices"]


def test_a_page_costs_the_same_queries_whatever_its_size(make_study, make_worker, researcher_client, monkeypatch,
                                                         django_capture_on_commit_callbacks):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from annotation import views_researcher

    study = answered_study(make_study, make_worker, django_capture_on_commit_callbacks)
    counts = []
    for size in (1, 3):
        monkeypatch.setattr(views_researcher, "GRID_PAGE_SIZE", size)
        with CaptureQueriesContext(connection) as queries:
            assert len(grid_keys(researcher_client, study)) == size
        counts.append(len(queries))
    assert counts[0] == counts[1]
