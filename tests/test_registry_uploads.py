"""Uploaded checkpoints and image archives, and image folders under an S3 prefix: registered like a server path,
each refusal named, nothing half-written left in the storage area (page, API and client)."""
from __future__ import annotations

import io
import socket
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
import torch
import torchvision
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from annotation import services
from annotation.errors import ApplicationError
from annotation.models import RegisteredDataset, RegisteredModel
from annotation.services.api_tokens import token_create
from tests.own_data import image_folder, resnet18_checkpoints

SIZE = 64


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("uploads-src")
    train = image_folder(root / "data" / "train", per_class=3, side=40)
    image_folder(root / "data" / "val", per_class=2, side=40, seed=1)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(num_classes=4), root / "pickled-module.pt")
    return {"root": root, "data": root / "data", "train": train, "module": root / "pickled-module.pt",
            **resnet18_checkpoints(root / "ckpt")}


@pytest.fixture(autouse=True)
def _own_upload_area(settings, tmp_path):
    settings.SALIENT_UPLOAD_DIR = tmp_path / "uploads"


def zip_folder(folder: Path, target: Path, extra: dict[str, bytes] | None = None) -> Path:
    with zipfile.ZipFile(target, "w") as packed:
        for item in sorted(folder.rglob("*")):
            if item.is_file():
                packed.write(item, f"{folder.name}/{item.relative_to(folder).as_posix()}")
        for name, data in (extra or {}).items():
            packed.writestr(name, data)
    return target


def upload(path: Path, name: str | None = None) -> SimpleUploadedFile:
    return SimpleUploadedFile(name or path.name, path.read_bytes())


def stored(settings) -> list[str]:
    """Every file and folder under the upload area (staging folders included)."""
    root = Path(settings.SALIENT_UPLOAD_DIR)
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_an_uploaded_checkpoint_and_archive_register_like_server_paths(db, researcher, files, tmp_path, settings):
    model = services.registry_uploads.model_upload(owner=researcher, checkpoint_file=upload(files["robust"]),
                                                   name="up", architecture="resnet18", format="robustness",
                                                   input_size=SIZE)
    assert (model.num_classes, model.conv_map, model.mean) == (4, [512, 2, 2], pytest.approx([0.5] * 3))
    assert Path(model.checkpoint).is_relative_to(Path(settings.SALIENT_UPLOAD_DIR) / str(researcher.pk) / "models")
    dataset = services.registry_uploads.dataset_upload(
        owner=researcher, archive=upload(zip_folder(files["data"], tmp_path / "data.zip")), name="fish")
    assert dataset.counts == {f"n0{i}": 3 for i in range(1, 5)} and sum(dataset.val_counts.values()) == 8
    assert Path(dataset.root).name == "train" and Path(dataset.val_root).name == "val"
    assert Path(dataset.root).is_relative_to(Path(settings.SALIENT_UPLOAD_DIR) / str(researcher.pk) / "datasets")
    assert not any(".staging" in p or ".archive" in p for p in stored(settings))
    study = services.study_create(owner=researcher, name="s", kind="misclassification",
                                  settings={"dataset": "fish", "models": ["up"], "split": "test"})
    assert study.settings["num_classes"] == 4


def test_a_class_folder_archive_without_val_is_refused_where_validation_is_needed(db, researcher, files, tmp_path):
    """The archive's top level is the class folders (no train/val): registered as training images only, and a
    kind that needs validation images refuses it as it refuses such a server folder."""
    services.registry_uploads.model_upload(owner=researcher, checkpoint_file=upload(files["plain"]), name="m",
                                           architecture="resnet18", input_size=SIZE)
    packed = tmp_path / "train.tar.gz"
    with tarfile.open(packed, "w:gz") as tar:
        tar.add(files["train"], arcname=".")
    dataset = services.registry_uploads.dataset_upload(owner=researcher, archive=upload(packed), name="t")
    assert dataset.val_root == "" and dataset.n_images == 12
    with pytest.raises(ApplicationError, match="registered without a validation folder"):
        services.study_create(owner=researcher, name="s", kind="misclassification",
                              settings={"dataset": "t", "models": ["m"], "split": "test"})


def test_a_checkpoint_that_pickles_a_module_is_refused_by_weights_only_loading(db, researcher, files, settings):
    with pytest.raises(ApplicationError, match="does not load as resnet18: cannot read checkpoint.*Weights only") \
            as refused:
        services.registry_uploads.model_upload(owner=researcher, checkpoint_file=upload(files["module"]),
                                               name="evil", architecture="resnet18")
    assert refused.value.extra["field"] == "checkpoint_file" and "'pickled-module.pt'" in refused.value.message
    assert str(settings.SALIENT_UPLOAD_DIR) not in refused.value.message
    assert not RegisteredModel.objects.filter(name="evil").exists() and stored(settings) == []


def _tar_with(path: Path, member: tarfile.TarInfo, data: bytes = b"") -> Path:
    with tarfile.open(path, "w") as tar:
        good = tarfile.TarInfo("n01/ok.png")
        good.size = len(PNG)
        tar.addfile(good, io.BytesIO(PNG))
        tar.addfile(member, io.BytesIO(data) if data else None)
    return path


def _png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 10, 10)).save(out, format="PNG")
    return out.getvalue()


PNG = _png()


def _archive(case: str, tmp_path: Path, settings) -> tuple[Path, str]:
    if case in ("traversal", "absolute", "non_image", "undecodable", "loose", "too_many", "too_big", "zip_symlink"):
        path = tmp_path / f"{case}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as packed:
            packed.writestr("n01/a.png", PNG)
            packed.writestr("n02/b.png", PNG)
            if case == "traversal":
                packed.writestr("n01/../../evil.png", PNG)
                return path, r"'n01/../../evil.png' leads outside the folder .*path traversal"
            if case == "absolute":
                packed.writestr("/tmp/evil.png", PNG)
                return path, r"'/tmp/evil.png' is not a plain relative name .*path traversal"
            if case == "non_image":
                packed.writestr("n01/notes.txt", b"hello")
                return path, r"'n01/notes.txt' is not an image file"
            if case == "undecodable":
                packed.writestr("n02/broken.jpg", b"\xff\xd8 not really a jpeg")
                return path, r"1 file\(s\) are not readable images, e.g. n02/broken.jpg"
            if case == "loose":
                packed.writestr("stray.png", PNG)
                return path, r"'stray.png' lies outside a class folder"
            if case == "too_many":
                settings.SALIENT_UPLOAD_MAX_IMAGES = 2
                packed.writestr("n02/c.png", PNG)
                return path, r"more than 2 images \(SALIENT_UPLOAD_MAX_IMAGES\)"
            if case == "too_big":  # a zip bomb: 2 MB of zeros compress to a few KB
                settings.SALIENT_UPLOAD_MAX_DATASET_MB = 1
                packed.writestr("n02/bomb.png", bytes(2 * 2**20))
                return path, r"more than 1 MB uncompressed .*SALIENT_UPLOAD_MAX_DATASET_MB"
            link = zipfile.ZipInfo("n02/link.png")
            link.external_attr = (stat.S_IFLNK | 0o777) << 16
            packed.writestr(link, "/etc/passwd")
            return path, r"'n02/link.png' is a symbolic link"
    if case in ("tar_symlink", "tar_hardlink"):
        member = tarfile.TarInfo("n02/link.png")
        member.type, member.linkname = (tarfile.SYMTYPE, "/etc/passwd") if case == "tar_symlink" else \
            (tarfile.LNKTYPE, "n01/ok.png")
        kind = "symbolic" if case == "tar_symlink" else "hard"
        return _tar_with(tmp_path / f"{case}.tar", member), rf"'n02/link.png' is a {kind} link"
    if case == "tar_device":
        member = tarfile.TarInfo("n02/dev.png")
        member.type = tarfile.CHRTYPE
        return _tar_with(tmp_path / "dev.tar", member), r"'n02/dev.png' is not a regular file"
    (path := tmp_path / "not-an-archive.zip").write_bytes(b"just text")
    return path, "neither a zip nor a tar archive"


ARCHIVE_CASES = ["traversal", "absolute", "zip_symlink", "tar_symlink", "tar_hardlink", "tar_device", "non_image",
                 "undecodable", "loose", "too_many", "too_big", "not_archive"]


@pytest.mark.parametrize("case", ARCHIVE_CASES)
def test_a_bad_archive_is_refused_naming_the_problem_and_leaves_nothing(db, researcher, tmp_path, settings, case):
    path, expected = _archive(case, tmp_path, settings)
    with pytest.raises(ApplicationError, match=expected) as refused:
        services.registry_uploads.dataset_upload(owner=researcher, archive=upload(path), name="bad")
    assert refused.value.extra["field"] == "archive" and refused.value.message.startswith(path.name)
    assert not RegisteredDataset.objects.filter(name="bad").exists()
    assert stored(settings) == [] and not (tmp_path.parent / "evil.png").exists()
    datasets = Path(settings.SALIENT_UPLOAD_DIR) / str(researcher.pk) / "datasets"
    assert not datasets.exists() or list(datasets.iterdir()) == []


def test_the_registry_page_uploads_and_names_errors_beside_the_field(researcher_client, files, tmp_path, settings):
    bad = _archive("traversal", tmp_path, settings)[0]
    with bad.open("rb") as handle:
        page = researcher_client.post(reverse("registry"), {"what": "dataset", "dataset-name": "d",
                                                            "dataset-archive": handle})
    assert page.status_code == 400 and "path traversal" in page.content.decode()
    with files["plain"].open("rb") as handle:
        page = researcher_client.post(reverse("registry"), {"what": "model", "model-name": "m",
                                                            "model-architecture": "resnet18",
                                                            "model-checkpoint_file": handle, "model-format": "auto",
                                                            "model-input_size": SIZE})
    assert page.status_code == 302 and RegisteredModel.objects.get(name="m").num_classes == 4
    both = researcher_client.post(reverse("registry"), {"what": "model", "model-name": "n",
                                                        "model-architecture": "resnet18", "model-format": "auto"})
    assert both.status_code == 400 and "give a checkpoint path or s3:// key or upload a file" in both.content.decode()


def test_a_checkpoint_past_the_size_limit_is_stopped_while_it_streams(researcher_client, files, settings):
    settings.SALIENT_UPLOAD_MAX_CHECKPOINT_MB = 1  # the ResNet-18 is ~45 MB
    with files["plain"].open("rb") as handle:
        page = researcher_client.post(reverse("registry"), {"what": "model", "model-name": "big",
                                                            "model-architecture": "resnet18",
                                                            "model-checkpoint_file": handle, "model-format": "auto"})
    text = page.content.decode()
    assert page.status_code == 413 and "plain.pt is larger than this server accepts (1 MB, " \
                                      "SALIENT_UPLOAD_MAX_CHECKPOINT_MB)" in text
    assert not RegisteredModel.objects.filter(name="big").exists() and stored(settings) == []


def test_only_researchers_may_upload(client, make_worker, files):
    worker = make_worker("w")
    client.force_login(worker.user)
    with files["plain"].open("rb") as handle:
        page = client.post(reverse("registry"), {"what": "model", "model-name": "w", "model-architecture": "resnet18",
                                                 "model-checkpoint_file": handle})
    assert page.status_code == 403 and not RegisteredModel.objects.filter(name="w").exists()
    anonymous = Client().post("/api/registry/models", {"name": "w", "architecture": "resnet18", "checkpoint": "x"})
    assert anonymous.status_code == 401


def test_the_page_refuses_an_upload_without_the_csrf_token(researcher, files):
    client = Client(enforce_csrf_checks=True)
    client.force_login(researcher)
    with files["plain"].open("rb") as handle:
        page = client.post(reverse("registry"), {"what": "model", "model-name": "c", "model-architecture": "resnet18",
                                                 "model-checkpoint_file": handle})
    assert page.status_code == 403 and not RegisteredModel.objects.exists()


def test_the_api_registers_uploads_and_server_paths_and_refuses_with_the_field(researcher, files, tmp_path,
                                                                               settings):
    _, secret = token_create(user=researcher, name="t")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {secret}")
    with files["robust"].open("rb") as handle:
        reply = api.post("/api/registry/models", {"name": "r", "architecture": "resnet18", "format": "robustness",
                                                  "checkpoint_file": handle, "input_size": SIZE})
    assert reply.status_code == 201 and reply.json()["num_classes"] == 4
    reply = api.post("/api/registry/models", {"name": "p", "architecture": "resnet18",
                                              "checkpoint": str(files["plain"]), "input_size": SIZE})
    assert reply.status_code == 201
    with zip_folder(files["data"], tmp_path / "d.zip").open("rb") as handle:
        reply = api.post("/api/registry/datasets", {"name": "d", "archive": handle})
    assert reply.status_code == 201 and reply.json()["num_classes"] == 4
    with _archive("tar_symlink", tmp_path, settings)[0].open("rb") as handle:
        reply = api.post("/api/registry/datasets", {"name": "e", "archive": handle})
    assert reply.status_code == 400 and reply.json()["field"] == "archive" and "symbolic link" in reply.json()["error"]
    settings.SALIENT_UPLOAD_MAX_CHECKPOINT_MB = 1
    with files["plain"].open("rb") as handle:
        reply = api.post("/api/registry/models", {"name": "big", "architecture": "resnet18",
                                                  "checkpoint_file": handle})
    assert reply.status_code == 413 and reply.json()["field"] == "checkpoint_file"
    assert "SALIENT_UPLOAD_MAX_CHECKPOINT_MB" in reply.json()["error"]
    assert set(RegisteredModel.objects.filter(owner=researcher).values_list("name", flat=True)) == {"r", "p"}


@pytest.mark.slow
def test_the_client_streams_uploads_with_progress(live_server, researcher, files):
    from salient_studio.client import Studio, StudioError

    _, secret = token_create(user=researcher, name="client")
    studio = Studio(live_server.url, secret)
    seen: list[tuple[int, int]] = []
    model = studio.upload_model("mine", "resnet18", files["plain"], input_size=SIZE,
                                progress=lambda sent, total: seen.append((sent, total)))
    assert model["num_classes"] == 4 and len(seen) > 10 and seen[-1][0] == seen[-1][1] > files["plain"].stat().st_size
    dataset = studio.upload_dataset("fish", files["data"])  # a local folder: zipped by the client
    assert dataset["num_classes"] == 4 and set(studio.datasets()["name"]) >= {"fish", "benchmark"}
    assert studio.register_model("again", "resnet18", str(files["plain"]), input_size=SIZE)["name"] == "again"
    with pytest.raises(StudioError, match="does not load as vgg11") as refused:
        studio.upload_model("wrong", "vgg11", files["plain"])
    assert refused.value.status == 400 and refused.value.field == "checkpoint_file"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def s3(monkeypatch, settings):
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    settings.SALIENT_S3_ENDPOINT_URL = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=settings.SALIENT_S3_ENDPOINT_URL)
    client.create_bucket(Bucket="images")
    yield client
    server.stop()


def test_an_s3_prefix_registers_with_the_archive_checks(db, researcher, files, s3, settings):
    for path in sorted(files["data"].rglob("*.JPEG")):
        s3.upload_file(str(path), "images", f"fish/{path.relative_to(files['data']).as_posix()}")
    dataset = services.registry.dataset_register(owner=researcher, name="s3fish", root="s3://images/fish/train",
                                                 val_root="s3://images/fish/val")
    assert dataset.counts == {f"n0{i}": 3 for i in range(1, 5)} and sum(dataset.val_counts.values()) == 8
    assert Path(dataset.root).is_relative_to(settings.SALIENT_UPLOAD_DIR) and Path(dataset.root).is_dir()
    s3.put_object(Bucket="images", Key="fish/train/n01/readme.txt", Body=b"hello")
    with pytest.raises(ApplicationError, match="'n01/readme.txt' is not an image file") as refused:
        services.registry.dataset_register(owner=researcher, name="bad", root="s3://images/fish/train")
    assert refused.value.extra["field"] == "root"
    with pytest.raises(ApplicationError, match="holds no image"):
        services.registry.dataset_register(owner=researcher, name="bad", root="s3://images/nothing")
    settings.SALIENT_REGISTRY_ROOTS, settings.SALIENT_REGISTRY_BUCKETS = [str(files["root"])], ["other"]
    with pytest.raises(ApplicationError, match="the bucket 'images' is not one this server registers from"):
        services.registry.dataset_register(owner=researcher, name="bad", root="s3://images/fish/val")
    assert not RegisteredDataset.objects.filter(name="bad").exists()
    assert not any(".staging" in p for p in stored(settings))
    assert len({Path(p).parts[2] for p in stored(settings) if "/datasets/" in p}) == 1  # the registered one only


def test_an_s3_checkpoint_past_the_size_limit_is_refused_before_download(db, researcher, files, s3, settings):
    s3.upload_file(str(files["plain"]), "images", "models/plain.pt")
    settings.SALIENT_UPLOAD_MAX_CHECKPOINT_MB = 1
    with pytest.raises(ApplicationError, match="larger than this server accepts") as refused:
        services.registry.model_register(owner=researcher, name="s3", architecture="resnet18",
                                         checkpoint="s3://images/models/plain.pt")
    assert refused.value.extra["field"] == "checkpoint"
    assert not (Path(settings.SALIENT_BENCHMARK_DIR) / "checkpoints" / "images" / "models" / "plain.pt").exists()


def test_the_general_image_kind_shows_a_registered_folder(researcher, researcher_client, files, tmp_path,
                                                          django_capture_on_commit_callbacks):
    """``image_choice`` takes an uploaded folder: a seeded sample evenly over its classes; a class whose folder
    is an option is the task's known answer. The form offers the researcher's datasets and refuses the benchmark."""
    from tests.study_helpers import computed_study, study_from_form

    services.registry_uploads.dataset_upload(owner=researcher, archive=upload(zip_folder(files["train"],
                                                                                         tmp_path / "t.zip")),
                                             name="fish")
    settings = {"dataset": "fish", "max_images": 6, "options": [["n01", "N01"], ["n02", "N02"], ["other", "Other"]]}
    study = computed_study(researcher, "image_choice", "own", settings, django_capture_on_commit_callbacks,
                           live=False)
    tasks = list(study.tasks.order_by("id"))
    assert [t.key for t in tasks] == [f"img-n0{1 + i % 4}-{i}" for i in range(6)]
    assert [t.truth for t in tasks] == [{"choice": "n01"}, {"choice": "n02"}, None, None, {"choice": "n01"},
                                        {"choice": "n02"}]
    assert [Path(t.payload["files"][0]).parent.name for t in tasks] == ["n01", "n02", "n03", "n04", "n01", "n02"]
    again = computed_study(researcher, "image_choice", "again", settings, django_capture_on_commit_callbacks,
                           live=False)
    assert [t.payload["files"] for t in again.tasks.order_by("id")] == [t.payload["files"] for t in tasks]
    form = researcher_client.get(reverse("study_create") + "?kind=image_choice").content.decode()
    assert '<option value="fish">fish</option>' in form and "— none —" in form
    base = {"kind": "image_choice", "workers_per_task": 1, "reward_cents": 0, "assignment_minutes": 30,
            "backend": "internal", "s-question": "Which?", "s-options": "n01, n02", "s-images_per_task": 2,
            "s-image_size": 48, "s-max_images": 4}
    made = study_from_form(researcher_client, {**base, "name": "form", "s-dataset": "fish"},
                           django_capture_on_commit_callbacks)
    assert made.tasks.count() == 2 and len(made.tasks.first().payload["images"]) == 2
    refused = researcher_client.post(reverse("study_create"), {**base, "name": "bench", "s-dataset": "benchmark"})
    assert refused.status_code == 400 and "the built-in benchmark has no image files" in refused.content.decode()
