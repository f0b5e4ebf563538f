"""`manage.py demo` runs the demo study end to end through the HTTP views with a simulated crowd."""
import json

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.slow


def test_demo_command_end_to_end(transactional_db, tmp_path, capsys):
    call_command("demo", out=tmp_path, accuracy=0.85, seed=1)
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
