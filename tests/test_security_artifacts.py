"""Another researcher's private files through task text (issue 29, finding 2): an artifact is published or
served only when the study's own stored evidence made it, never because a payload mentions its hash."""
from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from annotation import services
from annotation.artifacts import artifact_store_bytes
from annotation.models import Artifact
from tests.conftest import worker_client


@pytest.fixture
def victim_files(make_study):
    """Researcher A's study (computed, not launched) and A's export archive: both private."""
    study = make_study(name="A's private study", images=["camera"], live=False)
    image = study.tasks.first().payload["images"][0]
    archive = artifact_store_bytes(data=b"PK\x05\x06" + b"\x00" * 18, ext="zip", kind="export")
    return image, archive.name


@pytest.mark.parametrize("which", ["image", "archive"])
def test_a_hash_in_another_studys_text_neither_publishes_nor_serves_it(make_study, other_researcher, make_worker,
                                                                       victim_files, which):
    name = victim_files[0] if which == "image" else victim_files[1]
    mallory = Client()
    mallory.force_login(other_researcher)
    url = reverse("artifact_file", args=[name])
    assert mallory.get(url).status_code == 404
    # Mallory's own study carries the hash as its question: a payload string equal to the artifact's name.
    study = make_study(name="bait", owner=other_researcher, live=False, settings={"question": name})
    assert study.tasks.first().payload["question"] == name
    assert mallory.get(url).status_code == 404
    services.study_launch(study=study)
    assert not Artifact.objects.get(sha256=name.split(".")[0]).public
    assert Client().get(url).status_code == 403
    assert mallory.get(url).status_code == 404
    worker = make_worker()
    client = worker_client(Client, worker)
    services.assignment_claim_next(worker=worker)
    assert client.get(url).status_code == 404
    # The bait study's own images are published as before.
    own = study.tasks.first().payload["images"][0]
    assert Client().get(reverse("artifact_file", args=[own])).status_code == 200


def test_the_owner_still_sees_the_images_of_an_unlaunched_study(victim_files, researcher_client):
    assert researcher_client.get(reverse("artifact_file", args=[victim_files[0]])).status_code == 200
