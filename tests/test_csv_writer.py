"""One CSV writer for every CSV the platform produces (issue 29, finding 7): no module writes CSV by itself,
and every export and archive member -- ``salient_dataset.zip``'s ``index.csv``, ``features.csv`` and
``feature_masks.csv`` included -- stays inert in a spreadsheet that splits on ``,``, ``;`` or tab."""
from __future__ import annotations

import csv
import io
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.exports import FORMULA_PREFIXES, table_to_safe_csv
from analysis.salient.masks import SalientSample, salient_dataset_files
from annotation.reports.export_files import study_export_files
from annotation.reports.ecosystem import ecosystem_files
from annotation.services import assignment_claim_next, assignment_submit, study_aggregate, study_close
from annotation.tokens import assignment_token

ROOT = Path(__file__).resolve().parent.parent
#: Where CSV may be written: the one writer; and the class-metadata writer, which writes a researcher's
#: input file (read back verbatim by ``read_class_metadata``), never an export.
WRITERS = {"analysis/exports.py", "analysis/datasets/metadata.py"}
ATTACKS = ["x;=cmd|' /C calc'!A0", "=HYPERLINK(\"http://evil\")", "+1+cmd|' /C calc'!A0", "@SUM(A1)",
           "a\t-2+3", "ok;@x", "y\r=cmd()"]


def assert_inert(name: str, text: str) -> None:
    """No field starts a formula, whichever separator a spreadsheet splits on."""
    for delimiter in (",", ";", "\t"):
        for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
            for cell in row:
                if cell[:1] and cell[0] in "".join(FORMULA_PREFIXES) and not re.match(r"-\d", cell):
                    pytest.fail(f"{name}: {cell!r} starts a formula when split on {delimiter!r}")


def csv_members(archive: zipfile.ZipFile, prefix: str) -> dict[str, str]:
    """Every CSV member of ``archive``, those of the zips inside it too (e.g. ``outputs/salient_dataset.zip``)."""
    found = {}
    for name in archive.namelist():
        if name.endswith(".csv"):
            found[prefix + name] = archive.read(name).decode()
        elif name.endswith(".zip"):
            found.update(csv_members(zipfile.ZipFile(io.BytesIO(archive.read(name))), f"{prefix}{name}/"))
    return found


def test_no_module_writes_csv_but_the_one_writer():
    found = []
    for folder in ("analysis", "annotation", "workers", "demo", "studio"):
        for path in (ROOT / folder).rglob("*.py"):
            relative = str(path.relative_to(ROOT))
            text = path.read_text(encoding="utf-8")
            if relative not in WRITERS and re.search(r"\.to_csv\(|csv\.(writer|DictWriter)\(", text):
                found.append(relative)
    assert found == []


def test_the_writer_quotes_text_and_breaks_a_formula_after_a_semicolon():
    text = table_to_safe_csv(pd.DataFrame({"name": ["x;=cmd|' /C calc'!A0"], "n": [3], "f": [-1.5]}))
    assert text == "\"name\",\"n\",\"f\"\r\n\"x;'=cmd|' /C calc'!A0\",3,-1.5\r\n"
    assert_inert("table", text)


def test_the_bytes_form_is_the_same_csv_and_options_reach_pandas():
    from analysis.exports import safe_csv_bytes

    table = pd.DataFrame({"label": ["=x"], "score": [0.5]})
    assert safe_csv_bytes(table, float_format="%.2f") == b"\"label\",\"score\"\r\n\"'=x\",\"0.50\"\r\n"
    assert table_to_safe_csv(table, float_format="%.3f").endswith(',"0.500"\r\n')


def test_every_salient_dataset_member_is_written_by_the_one_writer():
    """Class names come from a researcher's metadata; they reach index.csv and feature_masks.csv verbatim."""
    mask = np.zeros((4, 4))
    samples = [SalientSample(index=i, cls=i, class_name=attack, core_features=(0,), spurious_features=(1,),
                             core_mask=mask, spurious_mask=mask, feature_masks={0: mask, 1: mask})
               for i, attack in enumerate(ATTACKS)]
    features = pd.DataFrame({"class": range(len(ATTACKS)), "class_name": ATTACKS, "feature": 0, "label": "core"})
    files = salient_dataset_files(samples, {i: np.zeros((4, 4, 3), np.uint8) for i in range(len(ATTACKS))},
                                  features)
    members = [name for name in files if name.endswith(".csv")]
    assert sorted(members) == ["feature_masks.csv", "features.csv", "index.csv"]
    for name in members:
        assert_inert(name, files[name])
        assert ATTACKS[0].replace(";", ";'") in files[name]


def test_every_study_export_and_archive_member_is_inert(make_study, make_worker, researcher, client,
                                                        django_capture_on_commit_callbacks):
    from tests.study_helpers import made_archive

    study = make_study(images=["astronaut", "chelsea", "coffee"], workers_per_task=2)
    workers = [make_worker("x;=cmd|'w'!A0"), make_worker("@mallory")]
    reasons = iter(ATTACKS * 2)
    for worker in workers:
        while (a := assignment_claim_next(worker=worker)) is not None:
            payload = {"choice": a.task.truth["choice"], "reason": next(reasons).replace("\r", " "), "confidence": 5}
            assignment_submit(assignment_id=a.pk, worker=worker, payload=payload, token=assignment_token(a))
    study_close(study=study)
    study_aggregate(study=study)
    files = {**study_export_files(study=study, with_outputs=True), **ecosystem_files(study=study, base_url="http://x")}
    client.force_login(researcher)
    archive = made_archive(client, study, django_capture_on_commit_callbacks)
    files.update(csv_members(archive, "archive.zip/"))
    checked = [name for name in files if name.endswith(".csv")]
    assert {"answers.csv", "labels.csv", "workers.csv", "answers_crowdkit.csv",
            f"archive.zip/study{study.pk}/answers.csv", f"archive.zip/study{study.pk}/workers.csv"} <= set(checked)
    for name in checked:
        content = files[name]
        assert_inert(name, content.decode() if isinstance(content, bytes) else content)


def test_zips_inside_an_archive_are_opened_and_checked():
    """A zip output (like salient_dataset.zip) inside the archive is opened and its CSV members checked."""
    from analysis.exports import archive_bytes

    inner = archive_bytes({"index.csv": table_to_safe_csv(pd.DataFrame({"n": [1], "class_name": ["x;=cmd()"]}))})
    outer = archive_bytes({"outputs/salient_dataset.zip": inner})
    members = csv_members(zipfile.ZipFile(io.BytesIO(outer)), "")
    assert list(members) == ["outputs/salient_dataset.zip/index.csv"]
    assert_inert("index.csv", members["outputs/salient_dataset.zip/index.csv"])
