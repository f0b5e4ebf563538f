"""Bounded property-based fuzzing of study creation, through the REST API and the researcher's form: every body
is invalid by construction (one to four fields made wrong: type, range, size, unknown kind, backend, option or
setting, NUL characters, lone surrogates), so each gets a 400 naming a field it broke and stores nothing."""
from __future__ import annotations

import json
import math

import pytest
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from annotation.api.creation import _raw_initial
from annotation.api.schemas import StudyIn
from annotation.models import Artifact, Job, Study, StudyOutput, Task
from annotation.recruiters import RECRUITERS
from annotation.task_kinds import TASK_KINDS
from annotation.task_kinds.image_choice import ImageChoiceSettingsForm
from tests.fuzz_helpers import FUZZ, json_values, text
from tests.test_api import STUDY, api_client


def state() -> tuple:
    return (Study.objects.count(), Job.objects.count(), Task.objects.count(), Artifact.objects.count(),
            StudyOutput.objects.count())


printable = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=30)
plain_values = st.none() | st.booleans() | st.integers() | printable | st.lists(printable, max_size=2)
IMAGES = {value for value, _ in ImageChoiceSettingsForm.base_fields["images"].choices}
not_strings = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.lists(st.integers(), max_size=2)
not_ints = (st.sampled_from(["many", "", "3.5", "1e3x", " "]) | st.floats(allow_nan=False).filter(
    lambda f: not f.is_integer()) | st.lists(st.integers(), max_size=2) | st.dictionaries(text, st.integers(),
                                                                                          max_size=2))
not_numbers = st.sampled_from(["many", "", "1e3x", " "]) | st.lists(st.floats(), max_size=2) | st.dictionaries(
    text, st.integers(), max_size=2)


def _valid_code(value: str) -> bool:
    """What the completion-code field takes (after stripping blanks): up to 64 ASCII letters and digits."""
    value = value.strip()
    return value == "" or (value.isascii() and value.isalnum() and len(value) <= 64)


def oversize(limit: int) -> st.SearchStrategy:
    return st.tuples(st.integers(limit + 1, 4 * limit), st.sampled_from(["n", "é", "\U0001f600", "\u202e"])).map(
        lambda p: p[1] * p[0])


def bad_text(limit: int) -> st.SearchStrategy:
    """Strings a text field of at most ``limit`` characters must refuse: blank, too long, NUL, lone surrogates."""
    return (st.sampled_from(["", " ", "\t\n"]) | oversize(limit) | printable.map(lambda t: t + "\x00")
            | printable.map(lambda t: "\ud800" + t) | printable.map(lambda t: t + "\udfff"))


def bad_int(low: int, high: int | None = None) -> st.SearchStrategy:
    out = st.integers(-2**70, low - 1)
    if high is not None:
        out |= st.integers(high + 1, 2**70)
    return out | not_ints


def bad_float(low: float, high: float | None = None) -> st.SearchStrategy:
    def outside(f: float) -> bool:
        return math.isnan(f) or f < low or (high is not None and f > high)

    return st.floats().filter(outside) | not_numbers


#: Top-level fields of the API body and values each must refuse.
API_FIELDS = {
    "name": bad_text(200) | not_strings,
    "kind": printable.filter(lambda v: v not in TASK_KINDS) | not_strings,
    "workers_per_task": bad_int(1, 50),
    "reward_cents": bad_int(0, 10_000),
    "assignment_minutes": bad_int(1, 24 * 60),
    "backend": printable.filter(lambda v: v not in RECRUITERS) | not_strings,
    "gold_rate": bad_float(0, 0.9),
    "gold_min_accuracy": bad_float(0, 1),
    "gold_min_answers": bad_int(1, 100),
    "max_tasks_per_worker": bad_int(1),
    "min_answer_seconds": bad_float(0),
    "max_answer_seconds": bad_float(1),
    "early_stopping": st.sampled_from(["maybe", 2, -1, 0.5, [], {}]),
    "completion_code": printable.filter(lambda v: not _valid_code(v)) | oversize(64) | not_strings,
}
#: The image-choice settings and values each must refuse.
SETTINGS = {
    "question": bad_text(300),  # a number or a list is taken as its text, as the form takes it
    "options": st.sampled_from(["one", "a, a", "a:A, a:B", ",", ""]) | oversize(1000),
    "images": st.lists(printable.filter(lambda v: v not in IMAGES), min_size=1, max_size=3)
    | st.sampled_from([[], "astronaut", 3, {"a": 1}]),
    "images_per_task": bad_int(1, 6),
    "image_size": bad_int(32, 1024),
}
unknown_keys = printable.filter(lambda k: k.strip() != "" and k not in StudyIn.model_fields
                                and k not in ("body", "query", "path", "payload"))
unknown_settings = printable.filter(lambda k: k.strip() != "" and k not in SETTINGS)


@st.composite
def invalid_api_bodies(draw) -> tuple[dict, set[str]]:
    """A creation body with 1-4 broken fields, and the names (as the API reports them) of those fields."""
    body = json.loads(json.dumps(STUDY))
    broken: set[str] = set()
    for name in draw(st.lists(st.sampled_from(sorted(API_FIELDS)), max_size=3, unique=True)):
        body[name] = draw(API_FIELDS[name])
        broken.add(name)
    what = draw(st.sampled_from(["setting", "unknown setting", "settings", "unknown field", "none"]))
    if what == "setting" or (what == "none" and not broken):
        name = draw(st.sampled_from(sorted(SETTINGS)))
        body["settings"][name] = draw(SETTINGS[name])
        broken.add(f"settings.{name}")
    elif what == "unknown setting":
        key = draw(unknown_settings)
        body["settings"][key] = draw(plain_values)
        broken.add(f"settings.{key}")
    elif what == "settings":
        body["settings"] = draw(not_strings.filter(lambda v: v is not None) | printable)
        broken.add("settings")
    elif what == "unknown field":
        key = draw(unknown_keys)
        body[key] = draw(plain_values)
        broken.add(key)
    return body, broken


@pytest.fixture
def owner(researcher):
    return api_client(researcher)


@FUZZ
@given(case=invalid_api_bodies())
def test_api_create_refuses_invalid_bodies_naming_the_field(owner, case):
    body, broken = case
    before = state()
    reply = owner.post("/api/studies", json.dumps(body), content_type="application/json")
    assert reply.status_code == 400, (reply.status_code, reply.content[:300], body)
    error = reply.json()
    assert error["error"] and error["field"] in broken, (error, broken)
    assert state() == before


@FUZZ
@given(raw=st.binary(max_size=200) | text.map(str.encode) | json_values.map(lambda v: json.dumps(v).encode())
       | st.sampled_from([b"[]", b"null", b'"x"', b"{", b'{"name": "a"', b"[" * 5000, b'{"a": NaN}']))
def test_api_create_refuses_malformed_or_non_object_bodies(owner, raw):
    before = state()
    reply = owner.post("/api/studies", raw, content_type="application/json")
    assert reply.status_code == 400, (reply.status_code, reply.content[:300], raw[:100])
    assert reply.json()["error"]
    assert state() == before


FORM_BASE = {"name": "Subjects", "kind": "image_choice", "workers_per_task": "3", "reward_cents": "0",
             "assignment_minutes": "30", "backend": "internal", "s-images": ["astronaut", "chelsea"],
             "s-image_size": "48", **{f"s-{k}": str(v) for k, v in _raw_initial(ImageChoiceSettingsForm).items()
                                      if k not in ("images", "image_size")}}
def _form_value(value):
    return value if isinstance(value, str) else json.dumps(value)


def _no_surrogate(value) -> bool:
    return not any(0xD800 <= ord(c) <= 0xDFFF for c in _form_value(value))


FORM_FIELDS = {
    "name": (bad_text(200) | not_strings).filter(_no_surrogate).map(_form_value)
    .filter(lambda v: v.strip() == "" or len(v) > 200 or "\x00" in v),
    "kind": printable.filter(lambda v: v.strip() and v not in TASK_KINDS),
    "workers_per_task": bad_int(1, 50).map(_form_value),
    "reward_cents": bad_int(0, 10_000).map(_form_value),
    "backend": printable.filter(lambda v: v not in RECRUITERS),
    "gold_rate": bad_float(0, 0.9).map(_form_value).filter(lambda v: v.strip() != ""),  # blank: the default
    "completion_code": API_FIELDS["completion_code"].filter(_no_surrogate).map(_form_value)
    .filter(lambda v: not _valid_code(v)),
    "s-question": oversize(300) | st.sampled_from(["", " ", "a\x00"]),
    "s-options": SETTINGS["options"],
    "s-images": st.lists(printable.filter(lambda v: v not in IMAGES), min_size=1, max_size=3),
    "s-image_size": bad_int(32, 1024).map(_form_value),
}


@st.composite
def invalid_forms(draw) -> tuple[dict, set[str]]:
    names = draw(st.lists(st.sampled_from(sorted(FORM_FIELDS)), min_size=1, max_size=4, unique=True))
    return {**FORM_BASE, **{n: draw(FORM_FIELDS[n]) for n in names}}, set(names)


@FUZZ
@given(case=invalid_forms())
def test_form_create_refuses_invalid_forms_naming_the_field(researcher_client, case):
    data, broken = case
    before = state()
    reply = researcher_client.post(reverse("study_create"), data)
    assert reply.status_code == 400, (reply.status_code, data)
    if "form" not in reply.context and "NUL byte" in reply.context["message"]:
        # refused before the view runs (studio/input_guard.py), naming the field
        assert reply.context["extra"]["field"] in broken
    elif "kind" in broken:
        assert "unknown task kind" in reply.context["message"]
    else:
        errors = {*reply.context["form"].errors, *(f"s-{k}" for k in reply.context["settings_form"].errors)}
        assert errors and errors <= broken, (errors, broken)
    assert state() == before
