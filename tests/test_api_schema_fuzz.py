"""A bounded schema-driven fuzz of the whole REST API, in the spirit of schemathesis (not installed): for every
operation of the OpenAPI schema the app serves, requests drawn from its parameter and body schemas (and some
arbitrary JSON) never get a 5xx, and every reply has a status the operation declares and, when it is JSON,
the shape declared for that status.

Ids and names that exist (a live study with answers, another researcher's study, their jobs and assignments,
export and output names) are mixed into the drawn values, so requests reach past the 404s.
"""
from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotation.models import Assignment, Job
from annotation.reports.export_files import study_export_files
from tests.fuzz_helpers import from_schema, json_values, text
from tests.study_helpers import crowd_answers
from tests.test_api import api_client

pytestmark = pytest.mark.slow

PER_OPERATION = settings(max_examples=12, deadline=None, derandomize=True, database=None,
                         suppress_health_check=list(HealthCheck))


@pytest.fixture
def api_world(make_study, make_worker, researcher, other_researcher):
    """A researcher's API client and the ids and names that exist, by parameter name."""
    study = make_study()
    crowd_answers(study, make_worker, n=2)
    theirs = make_study(owner=other_researcher, name="theirs", images=["coffee"])
    studies = [study, theirs]
    examples = {
        "study_id": [s.pk for s in studies],
        "job_id": list(Job.objects.values_list("pk", flat=True)),
        "assignment_id": list(Assignment.objects.values_list("pk", flat=True)),
        "filename": sorted(study_export_files(study=study)) + ["label_studio.json", "nope.csv"],
        "name": list(study.outputs.values_list("name", flat=True)) + ["nope"],
        "kind": ["image_choice"],
    }
    return api_client(researcher), examples


def _requests(path: str, operation: dict, spec: dict, examples: dict) -> st.SearchStrategy:
    """(url, JSON body or None) for one operation: parameters and body from their schemas, or arbitrary JSON."""
    params = operation.get("parameters", [])
    path_values = st.fixed_dictionaries({p["name"]: from_schema(p["schema"], spec, examples, p["name"])
                                         for p in params if p["in"] == "path"})
    query_values = st.fixed_dictionaries({}, optional={
        p["name"]: from_schema(p["schema"], spec, examples, p["name"]) | text for p in params if p["in"] == "query"})
    body = st.none()
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if content is not None:
        body = from_schema(content["schema"], spec, examples).map(json.dumps) | json_values.map(json.dumps)

    def url(values: dict, query: dict) -> str:
        out = path
        for name, value in values.items():
            out = out.replace("{" + name + "}", quote(_octets(value), safe=""))
        query = {k: _octets(v) for k, v in query.items() if v is not None}
        return out + ("?" + urlencode(query) if query else "")

    return st.tuples(st.builds(url, path_values, query_values), body)


def _octets(value) -> bytes:
    """A parameter's bytes in the URL; a lone surrogate goes as the invalid UTF-8 a broken client would send."""
    text = json.dumps(value) if isinstance(value, bool) else str(value)
    return text.encode("utf-8", "surrogatepass")


def _check_reply(operation: dict, reply, spec: dict) -> None:
    status = str(reply.status_code)
    assert reply.status_code < 500, reply.content[:500]
    declared = operation["responses"]
    assert status in declared, f"undeclared status {status}: {reply.content[:120]!r}"
    schema = declared[status].get("content", {}).get("application/json", {}).get("schema")
    if schema is not None and reply["Content-Type"].startswith("application/json"):
        jsonschema.validate(reply.json(), {**schema, "components": spec["components"]},
                            cls=jsonschema.Draft202012Validator)


def test_every_operation_answers_within_its_declared_statuses_and_shapes(api_world):
    client, examples = api_world
    spec = client.get("/api/openapi.json").json()
    operations = [(path, method, op) for path, item in spec["paths"].items() for method, op in item.items()]
    assert len(operations) >= 20, [p for p, _, _ in operations]
    statuses: dict[str, set[int]] = {}
    for path, method, operation in operations:
        name = f"{method.upper()} {path}"

        @PER_OPERATION
        @given(request=_requests(path, operation, spec, examples))
        def exercise(request):
            url, body = request
            if body is None:
                reply = client.generic(method.upper(), url)
            else:
                reply = client.generic(method.upper(), url, body, content_type="application/json")
            statuses.setdefault(name, set()).add(reply.status_code)
            try:
                _check_reply(operation, reply, spec)
            except AssertionError as exc:
                raise AssertionError(f"{name} {url} {body and body[:200]}: {exc}") from exc

        exercise()
    reached = {name for name, codes in statuses.items() if any(c < 300 for c in codes)}
    assert len(reached) >= len(operations) // 2, statuses  # the fuzz got past the refusals on most operations
