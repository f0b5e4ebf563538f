"""The Salient kinds without a model: heatmap-validation labels (App. D) and the feature panel's settings."""
import pandas as pd


def test_heatmap_validation_reports_a_set_without_a_strict_majority_as_undecided():
    """App. D counts a feature validated when the majority of its workers answer "same": a 2/1/1/1/… split
    of five is undecided in the CSV/JSON, the summary and the results partial, not "same" by plurality."""
    from django.template.loader import render_to_string

    from annotation.task_kinds import get_task_kind
    from annotation.task_kinds.base import TaskRecord
    from annotation.task_kinds.heatmap_validation import validation_summary, validation_table

    kind = get_task_kind("heatmap_validation")
    splits = {1: ["same", "same", "different", "a_unclear", "b_unclear"],
              2: ["same", "same", "same", "different", "b_unclear"]}
    answers = pd.DataFrame([(task, f"w{i}", label) for task, votes in splits.items() for i, label in enumerate(votes)],
                           columns=["task", "worker", "label"])
    labels = kind.aggregate(answers, {"workers_per_task": 5}).reset_index()
    tasks = {pk: TaskRecord(pk=pk, key=f"c0-f{pk}", payload={"cls": 0, "class_name": "shirt", "feature": pk,
                                                              "set_a": [], "set_b": []}) for pk in splits}
    table = validation_table(tasks, labels)
    assert table.set_index("feature")["label"].to_dict() == {1: "undecided", 2: "same"}
    summary = validation_summary(table)
    assert (summary["decided"], summary["undecided"], summary["validated"]) == (1, 1, 1)
    assert summary["validated_percent"] == 50.0  # an undecided feature is not validated
    page = render_to_string(kind.results_template, {"summary": summary, "features": table.to_dict("records"),
                                                    "study": {"settings": {"pool": 65}}})
    assert '<span id="undecided">1</span> undecided' in page
    assert '<tr data-key="c0-f1"><td>shirt</td><td>1</td><td>undecided</td>' in page
