"""The recruiter interface: registry by nickname, required verbs, optional hooks, the study form's choice."""
from __future__ import annotations

from unittest import mock

import pytest
from django.test import Client
from django.urls import reverse

from annotation.models import Study
from annotation.recruiters import RECRUITERS, Recruiter, by_name, recruiter_for


def test_registry_names_every_backend_and_unknown_names_are_explained():
    assert set(RECRUITERS) == {"internal", "mturk", "prolific"}
    assert by_name("prolific").nickname == "prolific"
    with pytest.raises(KeyError, match="unknown crowd backend 'toloka'; known backends: internal, mturk, prolific"):
        by_name("toloka")


def test_required_verbs_raise_and_optional_hooks_do_nothing():
    class Bare(Recruiter):
        nickname = "bare-test"
        title = "bare"

    try:
        bare = Bare()
        for verb, args in [("open", (None, 1)), ("close", (None,)), ("approve", (None,)), ("reject", (None, "")),
                           ("pay_bonus", (None, 1, ""))]:
            with pytest.raises(NotImplementedError):
                getattr(bare, verb)(*args)
        assert bare.block(None, "x") is None and bare.stop_task(None) is None
        assert list(bare.platform_assignments(None)) == [] and bare.after_submit(None) is None
    finally:
        RECRUITERS.pop("bare-test")


def test_internal_pool_moves_no_money(make_study, make_worker):
    study = make_study()
    recruiter = recruiter_for(study)
    assert recruiter.nickname == "internal" and recruiter.fee_cents(100, 5) == 0
    assert recruiter.open(study, 5).recruiting
    recruiter.pay_bonus(mock.Mock(worker="w"), 10, "ok")  # only logged


def test_the_study_form_picks_the_backend(researcher):
    client = Client()
    client.force_login(researcher)
    body = client.get(reverse("study_create")).content.decode()
    for value in ["internal", "mturk", "prolific"]:
        assert f'value="{value}"' in body
    form = {"name": "On Prolific", "kind": "image_choice", "workers_per_task": 2, "reward_cents": 30,
            "assignment_minutes": 10, "backend": "prolific", "gold_rate": "0.2", "early_stopping": "on",
            "min_answer_seconds": "2", "max_answer_seconds": "1", "s-question": "Subject?",
            "s-options": "person, animal", "s-images": ["astronaut"], "s-images_per_task": 1, "s-image_size": 48}
    reply = client.post(reverse("study_create"), form)
    assert reply.status_code == 400 and "must be longer than the minimum answer time" in reply.content.decode()
    form["max_answer_seconds"] = "300"
    assert client.post(reverse("study_create"), form).status_code == 302
    study = Study.objects.get(name="On Prolific")
    assert (study.backend, study.gold_rate, study.early_stopping, study.max_answer_seconds) == ("prolific", 0.2, True,
                                                                                                300)
    assert len(study.completion_code) == 8
    form.update(name="Nowhere", backend="toloka")
    assert client.post(reverse("study_create"), form).status_code == 400


def test_views_and_services_never_name_a_backend():
    """Only annotation/recruiters knows backends by name (models list them as choices)."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    for path in [*root.glob("annotation/*.py"), *root.glob("workers/*.py")]:
        text = path.read_text()
        for name in ("mturk", "prolific", "MTurk", "Prolific"):
            if path.name in {"models.py", "admin.py"}:
                continue
            assert f'"{name}"' not in text and f"'{name}'" not in text, (path, name)
