"""``manage.py study``: create (form validation), list, compute, launch, close, aggregate and export."""
from __future__ import annotations

import io
import json
import zipfile

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Study
from tests.study_helpers import crowd_answers


def run(*args) -> str:
    out = io.StringIO()
    call_command("study", *args, stdout=out)
    return out.getvalue()


def test_a_study_through_the_command(researcher, make_worker, tmp_path, django_capture_on_commit_callbacks):
    images = json.dumps(["astronaut", "coffee"])
    assert "created, draft" in run("create", "Subjects", "--owner", "alice", "--kind", "image_choice",
                                   "--set", f"images={images}", "--set", "image_size=48",
                                   "--option", "workers_per_task=2")
    study = Study.objects.get(name="Subjects")
    assert study.settings["images"] == ["astronaut", "coffee"] and study.workers_per_task == 2
    with django_capture_on_commit_callbacks(execute=True):
        run("compute", "Subjects")
    assert "is live" in run("launch", str(study.pk))
    crowd_answers(study, make_worker, n=2)
    assert "is closed" in run("close", "Subjects", "--owner", "alice")
    with django_capture_on_commit_callbacks(execute=False) as queued:
        out = run("aggregate", "Subjects")
    assert ": pending" in out and "is closed" in out  # queued for a worker, not run in the command
    assert len(queued) == 1 and not study.results.exists()
    queued[0]()  # the worker runs the job (eagerly here)
    assert study.results.count() == 2 and study.jobs.get(name="aggregate").state == "done"
    assert run("list", "--owner", "alice").strip().split("\t")[1:4] == ["Subjects", "image_choice", "aggregated"]
    run("export", "Subjects", "--out", str(tmp_path / "files"))
    assert (tmp_path / "files" / "labels.csv").read_text().count("\n") == 3
    run("export", "Subjects", "--out", str(tmp_path / "s.zip"))
    assert f"study{study.pk}/answers.csv" in zipfile.ZipFile(tmp_path / "s.zip").namelist()


@pytest.mark.parametrize(("args", "message"), [
    (["create", "S", "--owner", "alice", "--kind", "image_choice", "--set", "image_size=8"], "settings.image_size"),
    (["create", "S", "--owner", "alice", "--kind", "image_choice", "--option", "workers_per_task=0"],
     "workers_per_task"),
    (["create", "S", "--owner", "alice", "--kind", "image_choice", "--set", "size"], "KEY=VALUE"),
    (["create", "S", "--owner", "nobody", "--kind", "image_choice"], "no user named 'nobody'"),
    (["launch", "ghost"], "no study named 'ghost'"),
    (["aggregate", "S0"], "cannot go from draft"),
    (["export", "S0"], "--out"),
])
def test_command_errors_name_the_problem(researcher, args, message):
    from annotation import services

    services.study_create(owner=researcher, name="S0", kind="image_choice", settings={"images": ["coffee"]})
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        run(*args)
    assert Study.objects.count() == 1


def test_export_for_crowdkit_and_label_studio(researcher, make_study, make_worker, tmp_path,
                                              django_capture_on_commit_callbacks):
    import pandas as pd
    from crowdkit.aggregation import MajorityVote

    from annotation import services

    study = make_study()
    crowd_answers(study, make_worker, n=3, accuracy=1.0)
    services.study_close(study=study)
    services.study_aggregate(study=study)
    run("export", str(study.pk), "--out", str(tmp_path), "--base-url", "https://studio.example.org")
    answers = pd.read_csv(tmp_path / "answers_crowdkit.csv")
    assert list(answers.columns) == ["task", "worker", "label"] and len(answers) == 9
    labels = dict(study.results.values_list("task_id", "label"))
    assert MajorityVote().fit_predict(answers).to_dict() == labels
    tasks = json.loads((tmp_path / "label_studio.json").read_text())
    assert len(tasks) == 3
    assert all(t["data"]["image"].startswith("https://studio.example.org/artifacts/") for t in tasks)
    result = tasks[0]["annotations"][0]["result"][0]
    assert result["from_name"] == "choice" and result["value"]["choices"] == [labels[tasks[0]["id"]]]
    config = (tmp_path / "label_studio_config.xml").read_text()
    assert '<Choices name="choice" toName="image"' in config and '<Choice value="animal"/>' in config
