"""`manage.py demo` runs every study kind end to end through the HTTP views with a simulated crowd."""
import json

import pytest
from django.core.management import call_command

from tests.conftest import TINY_BENCHMARK, TINY_TRAINING

pytestmark = pytest.mark.slow


def test_demo_command_end_to_end(transactional_db, tmp_path, capsys):
    call_command("demo", out=tmp_path, accuracy=0.85, seed=1, benchmark=TINY_BENCHMARK, training=TINY_TRAINING,
                 salient={"k_features": 3, "attack_steps": 10})
    out = capsys.readouterr().out
    assert "image_choice: 55 answers (55/55) on 11 tasks" in out
    folder = tmp_path / "image_choice"
    for name in ["answers.csv", "answers.json", "labels.csv", "labels.json", "archive.zip"]:
        assert (folder / name).stat().st_size > 0
    answers = json.loads((folder / "answers.json").read_text())
    assert len(answers) == 55
    assert len({(a["task"], a["worker"]) for a in answers}) == 55
    labels = json.loads((folder / "labels.json").read_text())
    from analysis.sample_images import SUBJECTS

    truth = {f"img-{name}": subject for name, subject in SUBJECTS.items()}
    agree = sum(row["label"] == truth[row["task_key"]] for row in labels)
    assert agree >= 9, labels  # 5 workers at 85% accuracy: majority vote recovers nearly every subject

    # The Salient study: 4 classes x 3 features, 5 answers each, labelled, with its outputs downloaded.
    assert "feature_panel: 60 answers (60/60) on 12 tasks" in out
    assert "heatmap_validation: 60 answers (60/60) on 12 tasks" in out
    for name in ["salient_dataset.zip", "core_spurious_accuracy.csv", "core_spurious_accuracy.png"]:
        assert (tmp_path / "feature_panel" / "outputs" / name).stat().st_size > 0
    panel_labels = json.loads((tmp_path / "feature_panel" / "labels.json").read_text())
    assert {row["label"] for row in panel_labels} <= {"core", "spurious"}
    assert out.count("planted ") == 3  # one line per planted bias
