"""Every row of the results tables opens the task grid filtered to that row's tasks (issue 28): for a finished
study of each model-based kind, each row link of the results page is followed, and the grid shows exactly the tasks
whose payload holds the row's values, at least one, and no task of another row of the same table."""
from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qsl, urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from annotation.selectors.task_grid import PAYLOAD_FILTERS
from tests.test_study_report import finished_study

#: Per kind, the tables (by id, or a class for repeated tables) whose every row must open its tasks.
ROW_TABLES = {
    "misclassification": ["rectified-table"],
    "class_assignment": ["accuracy-table"],
    "cluster_review": ["ranking-table", "kmeans"],
    "heatmap_validation": ["features-table"],
    "reconstruction_review": ["levels-table", "table2", "review-table"],
    "feature_panel": ["fig4c"],
}
#: Tables whose rows without tasks stay plain text: SpRAy's crowd reviews only the top classes' clusters of
#: ``min_cluster_size`` images or more (at least one row of each still links).
SOME_ROWS = {"kmeans", "ranking-table"}
TABLE = re.compile(r'<table( id="([^"]+)")?[^>]*>(.*?)</table>', re.S)
ROW = re.compile(r"<tr[^>]*>(.*?)</tr>", re.S)  # a row's cells
LINK = re.compile(r'<a class="grid-link row-link" href="([^"]+)"')


def row_tables(html: str, kind: str) -> dict[str, list[str]]:
    """The rows (their HTML) of the tables that must link, by table id; a k-means cluster table has no id and is
    named ``kmeans`` (the first table of each ``data-method="kmeans"`` block)."""
    tables: dict[str, list[str]] = {}
    for block in re.findall(r'<div class="clustering" data-method="kmeans">(.*?)</table>', html, re.S):
        tables.setdefault("kmeans", []).extend(ROW.findall(block.split("<tbody>", 1)[1]))
    for _, table_id, body in TABLE.findall(html):
        if table_id in ROW_TABLES[kind] and "<tbody>" in body:
            tables.setdefault(table_id, []).extend(ROW.findall(body.split("<tbody>", 1)[1]))
    return tables


def expected_keys(study, query: dict[str, str]) -> set[str]:
    """The tasks a row names, read straight from the payloads (and keys, classes and labels)."""
    def word(value) -> str:
        return ":".join(map(str, value)) if isinstance(value, list) else str(value)

    def holds(task, name, value) -> bool:
        if name == "key":
            return task.key == value
        if name == "class_name":
            return task.payload.get("class_name") == value
        held = task.payload.get(name)
        return any(word(v) == value for v in held) if isinstance(held, list) else word(held) == value

    return {t.key for t in study.tasks.all() if all(holds(t, n, v) for n, v in query.items())}


def grid_keys(client: Client, url: str) -> set[str]:
    page = client.get(url)
    assert page.status_code == 200, url
    html = page.content.decode()
    assert 'id="page-next"' not in html  # one page: the tiny studies have fewer tasks than a grid page
    return set(re.findall(r'class="task-tile[^"]*" data-task="\d+" data-key="([^"]+)"', html))


@pytest.mark.slow
@pytest.mark.parametrize("kind", sorted(ROW_TABLES))
def test_each_results_row_opens_exactly_its_tasks(kind, researcher, make_worker, django_capture_on_commit_callbacks):
    study = finished_study(kind, researcher, make_worker, django_capture_on_commit_callbacks)
    client = Client()
    client.force_login(researcher)
    html = client.get(reverse("study_results", args=[study.pk])).content.decode()
    tables = row_tables(html, kind)
    assert set(tables) == set(ROW_TABLES[kind]), sorted(tables)
    grid = reverse("study_tasks", args=[study.pk])
    for table, rows in tables.items():
        assert rows and any(LINK.search(row) for row in rows), table
        opened: set[str] = set()  # the rows of one table name different things: their tasks do not overlap
        for row in rows:
            links = LINK.findall(row)
            assert links or table in SOME_ROWS, (table, row[:300])
            if not links:
                unreviewed = re.match(r'<td>\d+</td>', row) and re.search(r'href="#class-(\d+)"', row)
                if table == "ranking-table":  # a class without a link has no task
                    assert not any(t.payload.get("cls") == int(unreviewed.group(1)) for t in study.tasks.all())
                continue
            url = unescape(links[0])
            assert urlsplit(url).path == grid
            query = dict(parse_qsl(urlsplit(url).query))
            assert set(query) <= {"key", "class_name", *PAYLOAD_FILTERS}, query
            shown = grid_keys(client, url)
            assert shown and shown == expected_keys(study, query), (table, query, shown)
            assert not shown & opened, (table, query, shown & opened)
            opened |= shown


def test_a_payload_filter_keeps_only_the_tasks_that_hold_the_value(make_study, researcher_client):
    """The grid's payload filters on their own: a scalar compared as text, a list by its items, unknown names
    ignored, and the filter kept in the grid's form."""
    study = make_study(images=["astronaut", "chelsea", "coffee"], workers_per_task=1)
    tasks = list(study.tasks.order_by("id"))
    payloads = [{"model": "a", "cluster": 1, "roles": [["mmd", "prototypes"]]},
                {"model": "b", "cluster": 2, "roles": [["adv", "criticisms"], ["mmd", "prototypes"]]},
                {"model": "a", "cluster": 2, "roles": []}]
    for task, extra in zip(tasks, payloads):
        task.payload = {**task.payload, **extra}
        task.save(update_fields=["payload"])
    grid = reverse("study_tasks", args=[study.pk])
    keys = [t.key for t in tasks]
    assert grid_keys(researcher_client, grid + "?model=a") == {keys[0], keys[2]}
    assert grid_keys(researcher_client, grid + "?cluster=2&model=a") == {keys[2]}
    assert grid_keys(researcher_client, grid + "?roles=mmd:prototypes") == {keys[0], keys[1]}
    assert grid_keys(researcher_client, grid + "?roles=adv:prototypes") == set()
    assert grid_keys(researcher_client, grid + "?nonsense=1") == set(keys)
    page = researcher_client.get(grid + "?cluster=2").content.decode()
    assert 'name="cluster" id="f-cluster" value="2"' in page
