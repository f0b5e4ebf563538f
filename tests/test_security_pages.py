"""Links and scripts on pages (issue 29, finding 9): only http(s) links from class metadata become clickable,
and every page carries a Content-Security-Policy whose nonce is the only way an inline script runs."""
from __future__ import annotations

import csv
import re

import pytest
from django.template.loader import render_to_string
from django.test import Client
from django.urls import reverse

from annotation import services
from annotation.errors import ApplicationError
from annotation.models import RegisteredDataset
from tests.own_data import image_folder, metadata_csv

BAD_LINKS = ["javascript:alert(document.cookie)", "JavaScript:alert(1)", " javascript:alert(1)",
             "data:text/html,<script>alert(1)</script>", "vbscript:x", "//evil.example/x", "java\tscript:alert(1)"]


@pytest.mark.parametrize("link", BAD_LINKS)
def test_metadata_with_a_non_web_link_is_refused(db, researcher, tmp_path, link):
    root = image_folder(tmp_path / "train", per_class=1, side=16)
    meta = metadata_csv(tmp_path / "classes.csv")
    rows = list(csv.reader(meta.open()))
    rows[0].append("links")
    for row in rows[1:]:
        row.append("https://en.wikipedia.org/wiki/Tench")
    rows[2][-1] = link
    with meta.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    with pytest.raises(ApplicationError, match="not an http") as refused:
        services.registry.dataset_register(owner=researcher, name="links", root=str(root), class_metadata=str(meta))
    assert refused.value.field == "class_metadata"
    assert not RegisteredDataset.objects.filter(name="links").exists()


def test_a_stored_non_web_link_is_not_rendered_as_a_link():
    """A payload stored before the check: the task page shows only its http(s) links."""
    html = render_to_string("annotation/class_info.html", {"c": {
        "class_description": "d", "class_links": [*BAD_LINKS, "https://en.wikipedia.org/wiki/Tench"]}})
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs == ["https://en.wikipedia.org/wiki/Tench"]


def _policy(reply) -> dict[str, str]:
    header = reply.headers.get("Content-Security-Policy", "")
    return dict(part.strip().split(" ", 1) for part in header.split(";") if part.strip())


def test_every_page_has_a_content_security_policy(make_study, researcher, make_worker):
    study = make_study()
    researcher_client = Client()
    researcher_client.force_login(researcher)
    worker = make_worker()
    worker_client = Client()
    worker_client.force_login(worker.user)
    pages = [(Client(), reverse("login")), (Client(), reverse("worker_signup")), (Client(), "/artifacts/none.png"),
             (Client(), "/no/such/page/"), (researcher_client, reverse("study_list")),
             (researcher_client, reverse("study_detail", args=[study.pk])), (researcher_client, "/api/studies"),
             (worker_client, reverse("worker_home"))]
    for client, url in pages:
        policy = _policy(client.get(url))
        assert policy.get("default-src") == "'self'", url
        assert re.fullmatch(r"'self' 'nonce-[\w-]{16,}'", policy.get("script-src", "")), url
        assert policy.get("object-src") == "'none'" and policy.get("frame-ancestors") == "'none'", url


def test_inline_scripts_carry_the_nonce_of_their_response(make_study, researcher_client):
    study = make_study()
    reply = researcher_client.get(reverse("study_detail", args=[study.pk]))
    nonce = _policy(reply)["script-src"].split("'nonce-")[1].rstrip("'")
    scripts = re.findall(r"<script([^>]*)>", reply.content.decode())
    assert scripts and all(f'nonce="{nonce}"' in attrs or "src=" in attrs for attrs in scripts)
    again = researcher_client.get(reverse("study_detail", args=[study.pk]))
    assert _policy(again)["script-src"] != _policy(reply)["script-src"]  # a new nonce per response
