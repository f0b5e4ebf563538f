"""The REST API: owner / other researcher / anonymous on every endpoint, creation with the form's validation,
a study's whole lifecycle, filters and pagination, and a valid OpenAPI schema."""
from __future__ import annotations

import io
import zipfile

import pytest
from django.core.management import call_command
from django.test import Client

from annotation.api.models import ApiToken
from annotation.models import Assignment, Study
from annotation.services.api_tokens import token_create
from tests.conftest import SMALL_IMAGES
from tests.study_helpers import crowd_answers


def api_client(user) -> Client:
    _, secret = token_create(user=user, name="test")
    return Client(HTTP_AUTHORIZATION=f"Bearer {secret}")


@pytest.fixture
def owner(researcher):
    return api_client(researcher)


STUDY = {"name": "Subjects", "kind": "image_choice", "workers_per_task": 3,
         "settings": {"images": SMALL_IMAGES, "image_size": 48}}


def study_routes(study_id: int, assignment_id: int) -> list[tuple[str, str]]:
    base = f"/api/studies/{study_id}"
    return [("get", base), ("get", f"{base}/progress"), ("get", f"{base}/jobs"), ("get", f"{base}/jobs/1"),
            ("get", f"{base}/tasks"), ("get", f"{base}/answers"), ("get", f"{base}/labels"),
            ("get", f"{base}/outputs"), ("get", f"{base}/outputs/x.csv"), ("get", f"{base}/archive"),
            ("post", f"{base}/archive"), ("get", f"{base}/jobs/1/file"),
            ("get", f"{base}/exports/labels.csv"),
            *[("post", f"{base}/{verb}") for verb in ("compute", "launch", "close", "aggregate")],
            *[("post", f"/api/assignments/{assignment_id}/{verb}") for verb in ("approve", "reject")]]


def test_anonymous_and_other_researchers_get_nothing(make_study, make_worker, other_researcher):
    study = make_study()
    crowd_answers(study, make_worker, n=1)
    assignment = Assignment.objects.filter(task__study=study).first()
    anonymous, revoked = Client(), api_client(other_researcher)
    ApiToken.objects.update(revoked_at="2020-01-01T00:00Z")
    other = api_client(other_researcher)
    for method, url in [*study_routes(study.pk, assignment.pk), ("get", "/api/studies"),
                        ("get", "/api/registry/models"), ("get", "/api/registry/datasets"), ("post", "/api/studies")]:
        for client in (anonymous, revoked):
            reply = getattr(client, method)(url)
            assert reply.status_code == 401, (url, reply.content)
            assert reply.json()["field"] == "Authorization"
    for method, url in study_routes(study.pk, assignment.pk):
        reply = getattr(other, method)(url)
        assert reply.status_code == 404, (url, reply.content)
        assert "error" in reply.json()
    bonus = other.post(f"/api/assignments/{assignment.pk}/bonus", {"cents": 5}, content_type="application/json")
    assert bonus.status_code == 404
    assert other.get("/api/studies").json() == []
    study.refresh_from_db()
    assert study.state == "live" and Assignment.objects.get(pk=assignment.pk).state == assignment.state


@pytest.mark.parametrize(("change", "field"), [
    ({"settings": {"images": SMALL_IMAGES, "image_size": 8}}, "settings.image_size"),
    ({"settings": {"images": ["nope"]}}, "settings.images"),
    ({"settings": {"colour": "red"}}, "settings.colour"),
    ({"workers_per_task": 0}, "workers_per_task"),
    ({"workers_per_task": "many"}, "workers_per_task"),
    ({"kind": "nope"}, "kind"),
    ({"backend": "carrier-pigeon"}, "backend"),
    ({"kind": "cluster_review", "settings": {"benchmark": {"image_sise": 32}}}, "settings.benchmark"),
    ({"kind": "feature_panel", "settings": {"training": {"robust": {"epochs": -2}}}}, "settings.training"),
    ({"min_answer_seconds": 9, "max_answer_seconds": 5}, "max_answer_seconds"),
])
def test_create_with_bad_values_names_the_field_and_stores_nothing(owner, change, field):
    reply = owner.post("/api/studies", {**STUDY, **change}, content_type="application/json")
    assert reply.status_code == 400, reply.content
    assert reply.json()["field"] == field
    assert not Study.objects.exists()


def test_create_twice_is_a_conflict_naming_the_name(owner):
    assert owner.post("/api/studies", STUDY, content_type="application/json").status_code == 201
    reply = owner.post("/api/studies", STUDY, content_type="application/json")
    assert reply.status_code == 409 and reply.json()["field"] == "name"
    assert Study.objects.count() == 1


def test_a_study_through_its_lifecycle(owner, researcher, make_worker, django_capture_on_commit_callbacks):
    reply = owner.post("/api/studies", STUDY, content_type="application/json")
    assert reply.status_code == 201, reply.content
    created = reply.json()
    assert created["state"] == "draft" and created["settings"]["image_size"] == 48
    assert created["settings"]["question"]  # the kind's defaults fill what was not given
    sid = created["id"]
    with django_capture_on_commit_callbacks(execute=True):
        assert owner.post(f"/api/studies/{sid}/compute").json()["state"] == "computing"
    progress = owner.get(f"/api/studies/{sid}/progress").json()
    assert progress["state"] == "ready" and progress["wanted"] == 9 and progress["job"]["state"] == "done"
    jobs = owner.get(f"/api/studies/{sid}/jobs").json()
    assert owner.get(f"/api/studies/{sid}/jobs/{jobs[0]['id']}").json()["name"] == "evidence"
    reply = owner.post(f"/api/studies/{sid}/aggregate")
    assert reply.status_code == 409 and "ready" in reply.json()["error"]
    assert owner.post(f"/api/studies/{sid}/launch").json()["state"] == "live"

    study = Study.objects.get(pk=sid)
    given = crowd_answers(study, make_worker, n=3)
    assert owner.get(f"/api/studies/{sid}/progress").json()["received"] == given == 9
    tasks = owner.get(f"/api/studies/{sid}/tasks", {"limit": 2}).json()
    assert tasks["count"] == 3 and len(tasks["items"]) == 2
    page = owner.get(f"/api/studies/{sid}/answers", {"limit": 4}).json()
    assert page["count"] == 9 and len(page["items"]) == 4
    stamps = [a["submitted_at"] for a in page["items"]]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    first = page["items"][0]
    by_task = owner.get(f"/api/studies/{sid}/answers", {"task": first["task_key"]}).json()
    assert by_task["count"] == 3 and {a["task"] for a in by_task["items"]} == {first["task"]}
    by_worker = owner.get(f"/api/studies/{sid}/answers", {"worker": first["worker"]}).json()
    assert by_worker["count"] == 3 and {a["worker"] for a in by_worker["items"]} == {first["worker"]}
    by_label = owner.get(f"/api/studies/{sid}/answers", {"label": first["label"]}).json()
    assert by_label["count"] >= 1 and {a["label"] for a in by_label["items"]} == {first["label"]}
    bad = owner.get(f"/api/studies/{sid}/answers", {"status": "happy"})
    assert bad.status_code == 400 and bad.json()["field"] == "status"
    assert owner.get(f"/api/studies/{sid}/answers", {"limit": 0}).json()["field"] == "limit"

    reject = owner.post(f"/api/assignments/{first['assignment']}/reject")
    assert reject.json() == {"id": first["assignment"], "status": "rejected"}
    rejected = owner.get(f"/api/studies/{sid}/answers", {"status": "rejected"}).json()
    assert [a["assignment"] for a in rejected["items"]] == [first["assignment"]]
    assert owner.post(f"/api/assignments/{first['assignment']}/approve").status_code == 409
    other_answer = next(a for a in page["items"] if a["assignment"] != first["assignment"])
    bonus = owner.post(f"/api/assignments/{other_answer['assignment']}/bonus", {"cents": 25, "reason": "thanks"},
                       content_type="application/json")
    assert bonus.status_code == 200, bonus.content
    bad_bonus = owner.post(f"/api/assignments/{other_answer['assignment']}/bonus", {"cents": "lots"},
                           content_type="application/json")
    assert bad_bonus.status_code == 400 and bad_bonus.json()["field"] == "cents"

    assert owner.post(f"/api/studies/{sid}/close").json()["state"] == "closed"
    with django_capture_on_commit_callbacks(execute=True):
        aggregated = owner.post(f"/api/studies/{sid}/aggregate")
    assert aggregated.status_code == 202 and aggregated.json()["job"]["name"] == "aggregate"
    job = owner.get(f"/api/studies/{sid}/jobs/{aggregated.json()['job']['id']}").json()
    assert job["state"] == "done" and owner.get(f"/api/studies/{sid}").json()["state"] == "aggregated"
    labels = owner.get(f"/api/studies/{sid}/labels").json()
    assert len(labels) == 3 and {"task", "label", "tie", "complete", "n_answers"} <= set(labels[0])
    assert sum(r["n_answers"] for r in labels) == 8  # the rejected answer does not count
    assert owner.get(f"/api/studies/{sid}/outputs").json() == []  # image_choice has no output files
    assert owner.get(f"/api/studies/{sid}/outputs/none.csv").status_code == 404
    assert owner.get(f"/api/studies/{sid}/archive").status_code == 404  # none made yet
    with django_capture_on_commit_callbacks(execute=True):
        made = owner.post(f"/api/studies/{sid}/archive")
    assert made.status_code == 202 and made.json()["name"] == "export"
    job = owner.get(f"/api/studies/{sid}/jobs/{made.json()['id']}").json()
    assert job["state"] == "done" and job["file"] == f"/api/studies/{sid}/jobs/{job['id']}/file"
    archive = zipfile.ZipFile(io.BytesIO(b"".join(owner.get(job["file"]).streaming_content)))
    assert f"study{sid}/labels.csv" in archive.namelist()
    assert b"".join(owner.get(f"/api/studies/{sid}/archive").streaming_content) == archive.fp.getvalue()
    crowdkit = owner.get(f"/api/studies/{sid}/exports/answers_crowdkit.csv").content.decode().splitlines()
    assert crowdkit[0] == "\"task\",\"worker\",\"label\"" and len(crowdkit) == 9  # the 8 accepted answers, text quoted
    studio_tasks = owner.get(f"/api/studies/{sid}/exports/label_studio.json").json()
    assert {t["id"] for t in studio_tasks} == {r["task"] for r in labels}
    assert owner.get(f"/api/studies/{sid}/exports/secrets.txt").status_code == 404
    assert [s["id"] for s in owner.get("/api/studies").json()] == [sid]


def test_outputs_are_listed_and_downloaded(make_study, owner):
    from annotation.artifacts import artifact_store_bytes
    from annotation.models import StudyOutput

    study = make_study(live=False)
    artifact = artifact_store_bytes(data=b"task,label\r\n1,cat\r\n", ext="csv", kind="table")
    StudyOutput.objects.create(study=study, name="labels_by_class.csv", artifact=artifact, title="by class")
    outputs = owner.get(f"/api/studies/{study.pk}/outputs").json()
    assert [(o["name"], o["size"]) for o in outputs] == [("labels_by_class.csv", artifact.size)]
    body = owner.get(outputs[0]["url"])
    assert body.status_code == 200 and b"".join(body.streaming_content) == b"task,label\r\n1,cat\r\n"


def test_registry_lists_shared_entries(owner):
    models = owner.get("/api/registry/models").json()
    assert {"robust", "standard"} <= {m["name"] for m in models} and all(m["shared"] for m in models)
    assert [d["name"] for d in owner.get("/api/registry/datasets").json()] == ["benchmark"]
    assert "image_choice" in {k["name"] for k in owner.get("/api/registry/kinds").json()}


def test_openapi_schema_validates(owner):
    from openapi_spec_validator import validate

    schema = Client().get("/api/openapi.json").json()
    validate(schema)
    assert "/api/studies/{study_id}/answers" in schema["paths"]
    assert Client().get("/api/docs").status_code == 200


def test_tokens_from_the_page_and_the_command(researcher, researcher_client, make_worker, capsys):
    reply = researcher_client.post("/api/tokens/", {"name": "notebook"})
    assert reply.status_code == 201
    secret = reply.context["new_secret"]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert client.get("/api/studies").status_code == 200
    token = ApiToken.objects.get(name="notebook")
    assert secret not in str(ApiToken.objects.values_list("key_hash", "prefix"))  # only a hash is stored
    researcher_client.post(f"/api/tokens/{token.pk}/revoke/")
    assert client.get("/api/studies").status_code == 401

    call_command("api_token", "create", researcher.username, "--name", "cli")
    cli_secret = capsys.readouterr().out.strip()
    assert Client(HTTP_AUTHORIZATION=f"Bearer {cli_secret}").get("/api/studies").status_code == 200
    cli = ApiToken.objects.get(name="cli")
    call_command("api_token", "revoke", researcher.username, str(cli.pk))
    assert Client(HTTP_AUTHORIZATION=f"Bearer {cli_secret}").get("/api/studies").status_code == 401
    worker = make_worker("wanda")
    with pytest.raises(Exception, match="not a researcher"):
        call_command("api_token", "create", worker.user.username)
    assert Client().get("/api/tokens/").status_code == 302  # the page needs a signed-in researcher
