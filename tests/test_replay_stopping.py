"""``manage.py replay_stopping``: answers saved and agreement per policy on a 5-answer imported study."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command

CHOICES = ["main_object", "separate_object", "background"]


def import_study(tmp_path, accuracy: float = 0.9, tasks: int = 30, seed: int = 1) -> None:
    rng = np.random.default_rng(seed)
    path = tmp_path / "answers.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item", "WorkerId", "main", "confidence", "reason"])
        for t in range(tasks):
            truth = CHOICES[t % 3]
            for w in range(5):
                right = rng.random() < accuracy
                answer = truth if right else CHOICES[(CHOICES.index(truth) + 1 + int(rng.integers(2))) % 3]
                writer.writerow([f"t{t}", f"W{(t + w) % 8}", answer, 3, "because"])
    call_command("import_answers", str(path), "--kind", "feature_panel", "--name", "replay", "--task-key", "item",
                 "--worker", "WorkerId", "--field", "main=main", "--field", "confidence=confidence",
                 "--field", "reason=reason")


def test_replay_reports_savings_and_agreement(db, tmp_path):
    import_study(tmp_path)
    out = io.StringIO()
    call_command("replay_stopping", "replay", "--orders", "3", stdout=out)
    lines = out.getvalue().strip().splitlines()
    print(out.getvalue())
    settled = lines[0].split()
    assert settled[0] == "settled" and float(settled[4]) == 1.0  # settled labels never change
    assert 0 < float(settled[2]) < 0.5  # 3 of 5 agreeing answers settle a majority: saves something
    bayes = lines[1].split()
    assert bayes[0] == "bayes" and float(bayes[2]) > float(settled[2])  # reliability lets it stop sooner
    saved, agreement = (float(part.split("=")[1]) for part in lines[-1].split())
    assert lines[-1].startswith("saved=") and saved == pytest.approx(float(settled[2]), abs=1e-3) and agreement == 1


def test_replay_refuses_what_it_cannot_replay(db, tmp_path):
    with pytest.raises(CommandError, match="no study named 'ghost'"):
        call_command("replay_stopping", "ghost")
    import_study(tmp_path, tasks=3)
    with pytest.raises(CommandError, match="--orders"):
        call_command("replay_stopping", "replay", "--orders", "0")
