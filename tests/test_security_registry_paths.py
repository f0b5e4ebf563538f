"""Registry paths an attacker chooses: ``s3://`` checkpoints that traverse out of the cache or of the
allowed buckets, and class-metadata folders that point outside the registered image folder (issue 29, 1 and 3)."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from annotation import services
from annotation.errors import ApplicationError
from annotation.models import RegisteredDataset, RegisteredModel
from tests.own_data import image_folder, metadata_csv


@pytest.fixture
def no_s3(monkeypatch):
    """boto3 replaced by a client that records downloads (and writes a marker file where it is told)."""
    import boto3

    calls = []

    class Client:
        def head_object(self, Bucket, Key):  # noqa: N803 - boto3's names
            return {"ContentLength": len(b"not a checkpoint")}

        def download_file(self, bucket, key, target):
            calls.append((bucket, key, target))
            Path(target).write_bytes(b"not a checkpoint")

    monkeypatch.setattr(boto3, "client", lambda *a, **k: Client())
    return calls


def _register(researcher, checkpoint):
    return services.registry.model_register(owner=researcher, name="s3", architecture="resnet18",
                                            checkpoint=checkpoint, input_size=64)


def _files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


@pytest.mark.parametrize("checkpoint", [
    "s3://bucket/../../../../etc/passwd", "s3://bucket/../../missing.pt", "s3://bucket/a/../../../x.pt",
    "s3://bucket//etc/passwd", "s3://bucket/./x.pt", "s3://../x.pt", "s3://bucket/", "s3://Bad_Bucket/x.pt",
    "s3://bucket/a\\..\\..\\x.pt", "s3://bucket/a\x00b.pt",
])
def test_a_traversing_s3_checkpoint_is_refused_before_the_disk_is_touched(db, researcher, settings, no_s3,
                                                                          checkpoint):
    """No roots set (the embedded default): the key is still checked before any folder is made."""
    cache = Path(settings.SALIENT_BENCHMARK_DIR) / "checkpoints"
    before = _files_under(Path(settings.SALIENT_BENCHMARK_DIR))
    with pytest.raises(ApplicationError, match="S3") as refused:
        _register(researcher, checkpoint)
    assert refused.value.field == "checkpoint"
    assert no_s3 == [] and _files_under(Path(settings.SALIENT_BENCHMARK_DIR)) == before
    assert not cache.exists() or _files_under(cache) == []
    assert not RegisteredModel.objects.filter(name="s3").exists()


def test_existing_and_missing_files_answer_alike(db, researcher, no_s3):
    """``/etc/passwd`` and a missing file give the same refusal (no file-existence oracle)."""
    messages = []
    for checkpoint in ("s3://bucket/../../../../../../../../etc/passwd", "s3://bucket/../../../../../../../../nope"):
        with pytest.raises(ApplicationError) as refused:
            _register(researcher, checkpoint)
        messages.append(str(refused.value).replace(checkpoint, "<checkpoint>"))
    assert messages[0] == messages[1]


def test_with_roots_set_only_the_listed_buckets_register(db, researcher, settings, tmp_path, no_s3):
    settings.SALIENT_REGISTRY_ROOTS = [str(tmp_path)]
    settings.SALIENT_REGISTRY_BUCKETS = ["models-ok"]
    with pytest.raises(ApplicationError, match="SALIENT_REGISTRY_BUCKETS") as refused:
        _register(researcher, "s3://attacker-bucket/model.pt")
    assert refused.value.field == "checkpoint" and no_s3 == []
    # An allowed bucket is fetched into the cache folder (the fake object is no checkpoint: refused on load).
    with pytest.raises(ApplicationError, match="does not load"):
        _register(researcher, "s3://models-ok/dir/model.pt")
    cache = (Path(settings.SALIENT_BENCHMARK_DIR) / "checkpoints").resolve()
    assert [(b, k) for b, k, _ in no_s3] == [("models-ok", "dir/model.pt")]
    assert Path(no_s3[0][2]).resolve() == cache / "models-ok" / "dir" / "model.pt"


def test_a_stored_traversing_checkpoint_is_refused_when_a_study_runs(db, researcher, settings, no_s3):
    """An entry stored before the check (or edited in the database) is checked again where it is used."""
    with pytest.raises(ApplicationError, match="S3"):
        services.registry.checkpoint_path("s3://bucket/../../../etc/passwd")
    assert no_s3 == []


@pytest.fixture
def outside_folder(tmp_path):
    """An image folder under ``tmp/data/train`` whose metadata sends one class to ``tmp/outside/secret``."""
    root = image_folder(tmp_path / "data" / "train", per_class=2, side=32)
    secret = tmp_path / "outside" / "secret"
    secret.mkdir(parents=True)
    (root / "n04" / "0.JPEG").rename(secret / "private-name.JPEG")
    meta = metadata_csv(tmp_path / "data" / "classes.csv")
    rows = list(csv.reader(meta.open()))
    return root, meta, rows, secret


@pytest.mark.parametrize("folder", ["../../outside/secret", "{secret}", "n04/../../../outside/secret", ".", "link"])
def test_a_metadata_folder_outside_the_root_is_refused(db, researcher, settings, tmp_path, outside_folder, folder):
    root, meta, rows, secret = outside_folder
    settings.SALIENT_REGISTRY_ROOTS = [str(tmp_path / "data")]
    (root / "link").symlink_to(secret, target_is_directory=True)
    rows[4][1] = folder.format(secret=secret)
    with meta.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    with pytest.raises(ApplicationError, match="not inside") as refused:
        services.registry.dataset_register(owner=researcher, name="escape", root=str(root), class_metadata=str(meta))
    assert refused.value.field == "root" and "private-name" not in str(refused.value)
    assert not RegisteredDataset.objects.filter(name="escape").exists()


def test_an_image_symlinked_out_of_the_root_is_not_listed(db, researcher, outside_folder):
    root, meta, _rows, secret = outside_folder
    os.symlink(secret / "private-name.JPEG", root / "n04" / "linked.JPEG")
    dataset = services.registry.dataset_register(owner=researcher, name="linked", root=str(root),
                                                 class_metadata=str(meta))
    assert "n04/linked.JPEG" in dataset.unreadable and dataset.counts["n04"] == 1
    from analysis.datasets.folder_benchmark import folder_files
    from analysis.datasets.metadata import read_class_metadata

    assert not any("linked" in name for name, _ in folder_files(root, read_class_metadata(meta)))
