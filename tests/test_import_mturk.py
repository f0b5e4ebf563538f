"""``import_answers --format mturk``: an MTurk batch-results file as downloaded, for every task kind."""
from __future__ import annotations

import csv

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Answer, Assignment, Study, Task, Worker

#: The columns of a real batch-results download, in MTurk's order (Input.* and Answer.* follow).
HEADER = ["HITId", "HITTypeId", "Title", "Description", "Keywords", "Reward", "CreationTime", "MaxAssignments",
          "RequesterAnnotation", "AssignmentDurationInSeconds", "AutoApprovalDelayInSeconds", "Expiration",
          "NumberOfSimilarHITs", "LifetimeInSeconds", "AssignmentId", "WorkerId", "AssignmentStatus", "AcceptTime",
          "SubmitTime", "AutoApprovalTime", "ApprovalTime", "RejectionTime", "RequesterFeedback",
          "WorkTimeInSeconds", "LifetimeApprovalRate", "Last30DaysApprovalRate", "Last7DaysApprovalRate"]

#: Per kind: two answers (the majority answer first), each as Answer.* values, and the label field.
KIND_ANSWERS = {
    "image_choice": ({"choice": "animal", "confidence": "4.0", "reason": "ok"},
                     {"choice": "person", "confidence": "2", "reason": ""}),
    "feature_panel": ({"main": "background", "confidence": "4.0", "reason": "sky"},
                      {"main": "main_object", "confidence": "5.0", "reason": "the dog itself"}),
    "cluster_review": ({"focus": "background", "reason": "sky"}, {"focus": "object", "reason": "the dog's face"}),
    "heatmap_validation": ({"answer": "same", "reason": "both on the ball", "confidence": "4.0"},
                           {"answer": "different", "reason": "no", "confidence": "3"}),
    "class_assignment": ({"choice": "2"}, {"choice": "1"}),
    "misclassification": ({"relevant": "yes"}, {"relevant": "no"}),
    "reconstruction_review": ({"object": "yes", "trigger": "0.5,0.25"}, {"object": "no", "trigger": ""}),
}


def mturk_row(hit: str, n: int, worker: str, inputs: dict, answer: dict, status: str = "Submitted",
              accept: str = "Wed Nov 29 06:20:00 PST 2026", submit: str = "Wed Nov 29 06:21:30 PST 2026") -> dict:
    return {"HITId": hit, "HITTypeId": "3T1", "Title": "Look at an image", "Reward": "$0.10",
            "MaxAssignments": "5", "AssignmentId": f"A{hit}{n}", "WorkerId": worker, "AssignmentStatus": status,
            "AcceptTime": accept, "SubmitTime": submit, "WorkTimeInSeconds": "90",
            "LifetimeApprovalRate": "100% (12/12)", **{f"Input.{k}": v for k, v in inputs.items()},
            **{f"Answer.{k}": v for k, v in answer.items()}}


def write_batch(path, rows: list[dict]):
    columns = HEADER + [c for r in rows for c in r if c not in HEADER]
    columns = list(dict.fromkeys(columns))
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def batch_for(kind: str) -> list[dict]:
    """Two tasks of 5 assignments: 3 majority + 1 minority answer accepted, 1 majority answer Rejected."""
    majority, minority = KIND_ANSWERS[kind]
    rows = []
    for t, image in enumerate(["img_a.png", "img_b.png"]):
        answers = [majority] * 3 + [minority, minority]
        statuses = ["Approved", "Submitted", "Submitted", "Submitted", "Rejected"]
        for n, (answer, status) in enumerate(zip(answers, statuses)):
            rows.append(mturk_row(f"H{t}", n, f"W{n}", {"image_url": image, "condition": "c1"}, answer, status))
    return rows


@pytest.mark.parametrize("kind", sorted(KIND_ANSWERS))
def test_every_kind_imports_an_mturk_batch(db, tmp_path, kind, capsys):
    path = write_batch(tmp_path / "Batch_123_batch_results.csv", batch_for(kind))
    call_command("import_answers", str(path), "--format", "mturk", "--kind", kind, "--name", kind)
    said = capsys.readouterr().out
    assert "imported 8 answers from 4 workers" in said and "2 rejected assignments skipped" in said
    study = Study.objects.get(name=kind)
    assert study.tasks.count() == 2 and Answer.objects.count() == 8
    task = Task.objects.get(key="img_a.png|c1")
    assert task.payload["key_columns"] == {"Input.image_url": "img_a.png", "Input.condition": "c1"}
    assert task.external_id == "H0" and task.approved == 4
    first = Assignment.objects.get(external_id="AH00")
    assert first.submitted_at.isoformat() == "2026-11-29T14:21:30+00:00"  # PST is UTC-8
    assert (first.submitted_at - first.shown_at).total_seconds() == 90
    out = tmp_path / "labels.csv"
    call_command("export_labels", kind, "--out", str(out), "--aggregate")
    label_field = {"image_choice": "choice", "feature_panel": "main", "cluster_review": "focus",
                   "heatmap_validation": "answer", "class_assignment": "choice", "misclassification": "relevant",
                   "reconstruction_review": "object"}[kind]
    counts = {r["Input.image_url"]: r for r in csv.DictReader(open(out))}
    value = KIND_ANSWERS[kind][0][label_field]
    assert counts["img_a.png"][f"count_{value}"] == "3", counts
    if kind in ("image_choice", "feature_panel"):
        assert Answer.objects.filter(payload__confidence=4).count() == 6  # "4.0" read as 4


def test_short_reasons_are_kept_and_counted(db, tmp_path, capsys):
    path = write_batch(tmp_path / "b.csv", batch_for("feature_panel"))
    call_command("import_answers", str(path), "--format", "mturk", "--kind", "feature_panel", "--name", "fp")
    assert "6 answers shorter than the live minimum kept" in capsys.readouterr().out  # "sky" < 5 characters
    assert Answer.objects.filter(payload__reason="sky").count() == 6


@pytest.mark.parametrize(("change", "message"), [
    ({"Answer.confidence": "4.5"}, "row 4: column 'Answer.confidence' (confidence) holds '4.5'"),
    ({"Answer.main": "sky"}, "row 4: column 'Answer.main' (main) holds 'sky'"),
    ({"SubmitTime": "yesterday"}, "row 4: column 'SubmitTime' holds 'yesterday'"),
    ({"WorkerId": ""}, "row 4: the worker column 'WorkerId' is empty"),
])
def test_a_bad_row_imports_nothing_and_names_row_column_value(db, tmp_path, change, message):
    rows = batch_for("feature_panel")
    rows[2] = {**rows[2], **change}
    with pytest.raises(CommandError) as info:
        call_command("import_answers", str(write_batch(tmp_path / "bad.csv", rows)), "--format", "mturk",
                     "--kind", "feature_panel", "--name", "fp")
    assert message in str(info.value) and "nothing was imported" in str(info.value)
    assert not Study.objects.exists() and not Answer.objects.exists() and not Worker.objects.exists()


def test_mturk_mapping_can_be_overridden_and_says_what_is_missing(db, tmp_path):
    rows = [{**{k: v for k, v in r.items() if k != "Answer.choice"}, "Answer.topic": r["Answer.choice"]}
            for r in batch_for("image_choice")]
    path = write_batch(tmp_path / "b.csv", rows)
    with pytest.raises(CommandError, match="field 'choice' has no column"):
        call_command("import_answers", str(path), "--format", "mturk", "--kind", "image_choice", "--name", "x")
    call_command("import_answers", str(path), "--format", "mturk", "--kind", "image_choice", "--name", "x",
                 "--field", "choice=Answer.topic", "--field", "confidence=Answer.confidence",
                 "--task-key", "HITId")
    assert sorted(Task.objects.values_list("key", flat=True)) == ["H0", "H1"]
    plain = tmp_path / "plain.csv"
    plain.write_text("WorkerId,choice\nW1,animal\n")
    with pytest.raises(CommandError, match="not an MTurk batch-results file: no column.*AssignmentId"):
        call_command("import_answers", str(plain), "--format", "mturk", "--kind", "image_choice", "--name", "y")


def _batch_of(hits: int, workers: str = "W") -> list[dict]:
    majority, minority = KIND_ANSWERS["feature_panel"]
    return [mturk_row(f"H{t}", n, f"{workers}{(t + n) % 7}", {"feature": str(t)}, (majority, minority)[n % 2],
                      "Rejected" if n == 4 else "Approved") for t in range(hits) for n in range(5)]


@pytest.mark.parametrize("existing", [False, True], ids=["new study", "added to a closed study"])
def test_an_import_runs_the_same_queries_whatever_its_rows(db, tmp_path, existing):
    """Bulk writes only: 2 HITs and 12 HITs (8 and 48 answers) take the same number of queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    warm_up = write_batch(tmp_path / "warm.csv", _batch_of(1))  # makes the importing researcher
    call_command("import_answers", str(warm_up), "--format", "mturk", "--kind", "feature_panel", "--name", "warm")
    counts = []
    for hits in (2, 12):
        name = f"fp{hits}"
        if existing:  # the study exists, closed: its tasks are added to
            path = write_batch(tmp_path / f"first{hits}.csv", _batch_of(1, workers="V"))
            call_command("import_answers", str(path), "--format", "mturk", "--kind", "feature_panel", "--name", name)
        path = write_batch(tmp_path / f"b{hits}.csv", _batch_of(hits))
        with CaptureQueriesContext(connection) as queries:
            call_command("import_answers", str(path), "--format", "mturk", "--kind", "feature_panel", "--name", name)
        assert Answer.objects.filter(task__study__name=name).count() == 4 * hits + (4 if existing else 0)
        counts.append(len(queries))
    assert counts[0] == counts[1], [q["sql"][:80] for q in queries.captured_queries]
    assert counts[0] <= 25
