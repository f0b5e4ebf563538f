"""`import_answers` and `export_labels`: the exact CLI, all-or-nothing imports, clear errors."""
import csv
import json

import pytest
from django.core.management import CommandError, call_command

from annotation.models import Answer, Study, Task

COMMON = ["--kind", "feature_panel", "--name", "paper", "--task-key", "wnid,feature_index", "--worker", "WorkerId",
          "--field", "main=Answer.main", "--field", "confidence=Answer.confidence", "--field", "reason=Answer.reason"]


def write_csv(path, rows):
    header = ["wnid", "feature_index", "WorkerId", "Answer.main", "Answer.confidence", "Answer.reason"]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def panel_rows(wnid, feature, answers):
    return [[wnid, feature, f"W{i}", main, 4, f"because of {main}"] for i, main in enumerate(answers)]


def test_import_then_export_labels(db, tmp_path):
    rows = (panel_rows("n01", 7, ["background"] * 3 + ["main_object"] * 2)
            + panel_rows("n01", 9, ["main_object"] * 4 + ["separate_object"])
            + panel_rows("n02", 7, ["separate_object", "background", "main_object", "main_object"]))
    call_command("import_answers", str(write_csv(tmp_path / "a.csv", rows)), *COMMON)
    study = Study.objects.get(name="paper")
    assert study.tasks.count() == 3 and Answer.objects.count() == 14
    out = tmp_path / "labels.csv"
    call_command("export_labels", "paper", "--out", str(out), "--aggregate")
    table = {(r["wnid"], r["feature_index"]): r for r in csv.DictReader(open(out))}
    assert list(next(iter(table.values()))) == ["wnid", "feature_index", "label", "count_main_object",
                                                "count_separate_object", "count_background"]
    assert table[("n01", "7")]["label"] == "spurious" and table[("n01", "7")]["count_background"] == "3"
    assert table[("n01", "9")]["label"] == "core"
    assert table[("n02", "7")]["label"] == ""  # 2 of 4 spurious: the fifth answer could still decide it

    # Adding to the study: the fifth answer of the open task.
    more = [["n02", 7, "W9", "background", 2, "a sky behind"]]
    call_command("import_answers", str(write_csv(tmp_path / "b.csv", more)), *COMMON)
    call_command("export_labels", "paper", "--out", str(out), "--aggregate")
    table = {(r["wnid"], r["feature_index"]): r for r in csv.DictReader(open(out))}
    assert table[("n02", "7")]["label"] == "spurious"
    assert Task.objects.get(key="n02|7").approved == 5


@pytest.mark.parametrize(
    ("rows", "args", "message"),
    [
        (panel_rows("n01", 1, ["background"]), ["--worker", "Worker"], "unknown column(s) Worker"),
        (panel_rows("n01", 1, ["sky"]), [], "row 2: column 'Answer.main' (main) holds 'sky': 'sky' is not one of"),
        ([["n01", 1, "W1", "background", 9, "the sky"]], [],
         "row 2: column 'Answer.confidence' (confidence) holds '9'"),
        ([["n01", 1, "W1", "background", 3, ""]], [],
         "column 'Answer.reason' (reason) holds None: this field is required"),
        (panel_rows("n01", 1, ["background"]) * 2, [], "row 3: worker 'W0' answered task 'n01|1' twice"),
        (panel_rows("n01", 1, ["background"]), ["--field", "colour=Answer.main"], "unknown answer field(s) colour"),
    ],
)
def test_bad_files_fail_clearly_and_import_nothing(db, tmp_path, rows, args, message):
    good = panel_rows("n05", 5, ["main_object"] * 2)
    with pytest.raises(CommandError) as info:
        call_command("import_answers", str(write_csv(tmp_path / "bad.csv", good + rows)), *COMMON, *args)
    assert message in str(info.value).replace("row 4", "row 2").replace("row 5", "row 3")
    assert not Study.objects.exists() and not Answer.objects.exists() and not Task.objects.exists()


def test_cli_argument_errors(db, tmp_path):
    path = write_csv(tmp_path / "a.csv", panel_rows("n01", 1, ["background"]))
    with pytest.raises(CommandError, match="FIELD=COLUMN"):
        call_command("import_answers", str(path), *COMMON[:8], "--field", "main")
    with pytest.raises(CommandError, match="unknown kind 'nope'"):
        call_command("import_answers", str(path), "--kind", "nope", *COMMON[2:])
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_answers", str(tmp_path / "missing.csv"), *COMMON)
    with pytest.raises(CommandError, match="no study named 'ghost'"):
        call_command("export_labels", "ghost", "--out", str(tmp_path / "x.csv"))


def test_build_benchmark_command_reuses_the_cached_models(db, capsys, benchmark_dir):
    from tests.conftest import TINY_BENCHMARK, TINY_TRAINING

    args = ["--benchmark", json.dumps(TINY_BENCHMARK), "--training", json.dumps(TINY_TRAINING)]
    call_command("build_benchmark", *args)
    first = capsys.readouterr().out
    assert "benchmark: 4 classes" in first and "robust" in first and "standard" in first
    models = {p.name: p.stat().st_mtime_ns for p in (benchmark_dir / "models").glob("*.pt")}
    call_command("build_benchmark", *args)
    assert {p.name: p.stat().st_mtime_ns for p in (benchmark_dir / "models").glob("*.pt")} == models  # not retrained
    with pytest.raises(CommandError, match="unknown model flavour"):
        call_command("build_benchmark", *args, "--flavours", "huge")


def test_export_labels_changes_no_state_unless_asked(db, tmp_path, capsys):
    call_command("import_answers", str(write_csv(tmp_path / "a.csv", panel_rows("n01", 7, ["background"] * 3))),
                 *COMMON)
    out = tmp_path / "labels.csv"
    with pytest.raises(CommandError, match="closed, not aggregated.*--aggregate"):
        call_command("export_labels", "paper", "--out", str(out))
    assert Study.objects.get().state == "closed" and not out.exists()
    call_command("export_labels", "paper", "--out", str(out), "--aggregate")
    assert "aggregated study 'paper' (closed → aggregated)" in capsys.readouterr().out
    assert Study.objects.get().state == "aggregated"
    call_command("export_labels", "paper", "--out", str(out))  # an aggregated study exports as it is
    assert "aggregated study" not in capsys.readouterr().out
