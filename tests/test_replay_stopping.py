"""``manage.py replay_stopping``: answers saved and agreement per policy on an imported 5-answer feature-panel study."""
from __future__ import annotations

import csv
import io
import re

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from analysis.crowd_sim import CrowdMix, mixed_crowd_answers

CHOICES = ("main_object", "separate_object", "background")


def import_study(tmp_path, tasks: int = 300, seed: int = 1, mix: CrowdMix = CrowdMix()) -> None:
    """A mixed crowd's answers (varied reliability, spammers, ambiguous panels), imported as a finished study."""
    rng = np.random.default_rng(seed)
    truths = [CHOICES[i] for i in rng.choice(3, size=tasks, p=[0.5, 0.25, 0.25])]
    path = tmp_path / "answers.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item", "WorkerId", "main", "confidence", "reason"])
        for task, worker, answer in mixed_crowd_answers(truths, CHOICES, 5, mix, seed=seed):
            writer.writerow([f"t{task}", worker, answer, 3, "because"])
    call_command("import_answers", str(path), "--kind", "feature_panel", "--name", "replay", "--task-key", "item",
                 "--worker", "WorkerId", "--field", "main=main", "--field", "confidence=confidence",
                 "--field", "reason=reason", stdout=io.StringIO())


def replayed(*args: str) -> tuple[dict[str, tuple[float, float]], str]:
    out = io.StringIO()
    call_command("replay_stopping", "replay", *args, stdout=out)
    lines = out.getvalue().strip().splitlines()
    print(out.getvalue())
    rows = {line.split()[0]: (float(line.split()[2]), float(line.split()[4])) for line in lines[:-1]}
    return rows, lines[-1]


@pytest.mark.slow
def test_default_policy_saves_half_the_answers_at_99_percent_agreement(db, tmp_path):
    import_study(tmp_path)
    rows, last = replayed("--orders", "3")
    assert list(rows) == ["predictive", "settled", "bayes", "margin"]
    assert re.fullmatch(r"saved=\d\.\d{4} agreement=\d\.\d{4}", last)
    saved, agreement = (float(part.split("=")[1]) for part in last.split())
    assert saved >= 0.5 and agreement >= 0.99
    assert (saved, agreement) == pytest.approx(rows["predictive"], abs=1e-3)  # the last line is the default's
    assert rows["settled"][1] == 1.0 and rows["settled"][0] < 0.5  # the old rule: exact, and saves less
    # Without learned reliability every worker sits at the prior: the same policy saves less.
    prior, _ = replayed("--orders", "3", "--policy", "predictive", "--reliability", "prior")
    assert prior["predictive"][0] < saved and prior["predictive"][1] >= 0.99


def test_replay_refuses_what_it_cannot_replay(db, tmp_path):
    with pytest.raises(CommandError, match="no study named 'ghost'"):
        call_command("replay_stopping", "ghost")
    import_study(tmp_path, tasks=3)
    with pytest.raises(CommandError, match="--orders"):
        call_command("replay_stopping", "replay", "--orders", "0")
    with pytest.raises(CommandError, match="--confidence"):
        call_command("replay_stopping", "replay", "--confidence", "0.4")


def test_dawid_skene_and_workers_are_compared_with_the_answers_majority_not_the_core_spurious_label(db, tmp_path):
    """A feature panel's answers (main_object, ...) aggregate to core/spurious: the quality report compares
    Dawid-Skene and each worker with the majority of the answers themselves (it showed 0 % before)."""
    from annotation import services
    from annotation.models import Study

    import_study(tmp_path, tasks=40, mix=CrowdMix(spammer_share=0.0, sloppy_share=0.0, ambiguous_share=0.0))
    study = Study.objects.get(name="replay")
    services.study_aggregate(study=study)
    study.refresh_from_db()
    assert set(study.results.values_list("label", flat=True)) <= {"core", "spurious", ""}
    assert study.quality["ds_majority_agreement"] > 0.9
    agreements = [w["majority_agreement"] for w in study.quality["worker_table"]]
    assert agreements and sum(agreements) / len(agreements) > 0.8  # 0 before: no answer equals core or spurious
