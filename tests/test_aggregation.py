"""Majority vote on hand-made answer tables: majority, ties, incomplete tasks, bad input."""
import pandas as pd
import pytest

from analysis.aggregation import MajorityVote


def _answers(rows):
    return pd.DataFrame(rows, columns=["task", "worker", "label"])


def test_majority_tie_and_incomplete_are_reported():
    answers = _answers([
        ("t1", "w1", "cat"), ("t1", "w2", "cat"), ("t1", "w3", "dog"),
        ("t2", "w1", "cat"), ("t2", "w2", "dog"),
        ("t3", "w1", "dog"),
    ])
    table = MajorityVote(min_votes=3, labels=["cat", "dog", "fox"]).fit(answers).table_
    assert table.loc["t1", "label"] == "cat" and not table.loc["t1", "tie"] and table.loc["t1", "complete"]
    assert table.loc["t2", "label"] is None and table.loc["t2", "tie"]
    assert table.loc["t3", "label"] == "dog" and not table.loc["t3", "complete"]
    assert list(table.loc["t1", ["count_cat", "count_dog", "count_fox"]]) == [2, 1, 0]
    assert table["n_answers"].to_dict() == {"t1": 3, "t2": 2, "t3": 1}


def test_fit_predict_returns_labels_series():
    answers = _answers([("a", "w1", "x"), ("a", "w2", "x"), ("b", "w1", "y")])
    labels = MajorityVote().fit_predict(answers)
    assert labels.to_dict() == {"a": "x", "b": "y"}


def test_unknown_label_is_an_error():
    with pytest.raises(ValueError, match="outside cat, dog"):
        MajorityVote(labels=["cat", "dog"]).fit(_answers([("a", "w1", "cow")]))


def test_missing_column_and_duplicate_answer_are_errors():
    with pytest.raises(ValueError, match="lacks column.*label"):
        MajorityVote().fit(pd.DataFrame({"task": [1], "worker": [1]}))
    with pytest.raises(ValueError, match="more than once"):
        MajorityVote().fit(_answers([("a", "w1", "x"), ("a", "w1", "y")]))


def test_strict_majority_leaves_a_plurality_undecided():
    """Salient ImageNet App. D: "the majority of workers"; 2/1/1/1 of five is a plurality, not a majority."""
    answers = _answers([
        *[("plural", f"w{i}", label) for i, label in enumerate(["same", "same", "different", "a_unclear",
                                                                "b_unclear"])],
        *[("major", f"w{i}", label) for i, label in enumerate(["same", "same", "same", "different", "a_unclear"])],
        ("early", "w1", "same"), ("early", "w2", "same"), ("early", "w3", "same"),
        ("open", "w1", "same"), ("open", "w2", "same"),
    ])
    labels = ["same", "different", "a_unclear", "b_unclear"]
    assert MajorityVote(min_votes=5, labels=labels).fit(answers).table_.loc["plural", "label"] == "same"
    table = MajorityVote(min_votes=5, labels=labels, strict=True).fit(answers).table_
    assert table.loc["plural", "label"] is None and not table.loc["plural", "tie"]
    assert table.loc["major", "label"] == "same"
    assert table.loc["early", "label"] == "same"  # 3 of the 5 workers: the 2 missing cannot undo it
    assert table.loc["open", "label"] is None  # 2 of 5 so far: no majority of the workers yet
