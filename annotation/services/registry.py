"""The model and dataset registry: registering a checkpoint or an image folder, and resolving a study's inputs.

Registration loads a checkpoint once (or scans a folder once) and refuses with the loader's message,
storing nothing. The built-in benchmark and its two demo models are shared entries, made on first use.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.forms.models import model_to_dict

from analysis.image_archives import ArchiveError
from annotation.errors import ApplicationError, Conflict
from annotation.models import RegisteredDataset, RegisteredModel
from annotation.services import upload_area

BENCHMARK = "benchmark"
BUILTIN_MODELS = {"robust": "Robust (L2 PGD) demo ResNet", "standard": "Standard demo ResNet"}
#: Study settings that name registry entries: one dataset, models alone or in lists.
DATASET_SETTING = "dataset"
MODEL_SETTINGS = ("model", "models", "eval_models")
MAX_LISTED_UNREADABLE = 100
#: An S3 bucket name as AWS allows it (lower-case letters, digits, dots and hyphens, 3 to 63 characters).
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")


class RegistryError(ApplicationError):
    """A registration refused; ``field`` names the setting at fault."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message, extra={"field": field} if field else None)
        self.field = field


def _load_errors() -> tuple[type[BaseException], ...]:
    # deferred: loads scikit-image, torch
    from analysis.datasets.metadata import ClassMetadataError

    # deferred: loads torch
    from analysis.models.architectures import UnknownArchitectureError

    # deferred: loads torch
    from analysis.models.checkpoints import CheckpointError

    return CheckpointError, UnknownArchitectureError, ClassMetadataError, OSError, ValueError, RuntimeError


def s3_location(value: str, field: str) -> tuple[str, str]:
    """``(bucket, key)`` of an ``s3://bucket/key`` value, refused unless both are plain.

    The key is joined to a local cache folder, so it may have no empty, ``.`` or ``..`` part, no
    backslash and no control character; the bucket must be a valid S3 name. Nothing touches the disk.
    """
    bucket, _, key = value.removeprefix("s3://").partition("/")
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise RegistryError(f"{value!r} does not name a valid S3 bucket (s3://bucket/key)", field)
    parts = key.split("/")
    if (not key or any(part in ("", ".", "..") for part in parts) or "\\" in key
            or any(ord(ch) < 32 or ord(ch) == 127 for ch in key) or len(key) > 1024):
        raise RegistryError(f"{value!r}: the S3 key must be a relative path without empty, '.' or '..' parts", field)
    return bucket, key


def allowed_path(value: str, field: str) -> None:
    """Refuse a path outside ``SALIENT_REGISTRY_ROOTS`` (symlinks resolved first); any path when unset.

    An ``s3://`` value must name a plain bucket and key (:func:`s3_location`); when roots are set, its
    bucket must also be one of ``SALIENT_REGISTRY_BUCKETS``.
    """

    if not value:
        return
    roots = [Path(r).resolve() for r in settings.SALIENT_REGISTRY_ROOTS]
    if value.startswith("s3://"):
        bucket, _ = s3_location(value, field)
        buckets = settings.SALIENT_REGISTRY_BUCKETS
        if roots and bucket not in buckets:
            raise RegistryError(f"the bucket {bucket!r} is not one this server registers from "
                                f"({', '.join(buckets) or 'none'}: SALIENT_REGISTRY_BUCKETS)", field)
        return
    if not roots:
        return
    if not any(Path(value).resolve().is_relative_to(root) for root in roots):
        raise RegistryError(f"{value} is outside the folders this server registers from "
                            f"({', '.join(map(str, roots))}: SALIENT_REGISTRY_ROOTS)", field)


def check_name(model, owner, name: str) -> None:
    if not name or len(name) > 100:
        raise RegistryError("give a name of 1 to 100 characters", "name")
    if model.objects.filter(owner=owner, name=name).exists():
        raise Conflict(f"an entry named {name!r} is already registered")


def builtin_entries_ensure() -> None:
    """The built-in benchmark and the two demo models as shared entries (idempotent)."""
    # deferred: the benchmark's configuration only (no torch: a web process runs this)
    from analysis.datasets.benchmark_config import BenchmarkConfig
    from analysis.datasets.fashion_mnist import CLASS_DESCRIPTIONS, CLASS_NAMES

    classes = [{"index": i, "folder": str(c), "name": CLASS_NAMES[c], "description": CLASS_DESCRIPTIONS[c],
                "synonyms": [], "supercategory": "garment", "links": []}
               for i, c in enumerate(BenchmarkConfig().classes)]
    with transaction.atomic():
        RegisteredDataset.objects.get_or_create(owner=None, name=BENCHMARK, defaults={
            "builtin": True, "title": "Built-in planted-bias benchmark (Fashion-MNIST)", "classes": classes})
        for name, title in BUILTIN_MODELS.items():
            RegisteredModel.objects.get_or_create(owner=None, name=name, defaults={
                "builtin": name, "title": title, "architecture": "demo_resnet", "num_classes": len(classes),
                "input_size": 64})


def model_register(*, owner, name: str, architecture: str, checkpoint: str, format: str = "auto",
                   input_size: int | None = None, mean: list[float] | None = None, std: list[float] | None = None,
                   title: str = "") -> RegisteredModel:
    """Load the checkpoint (a server path or ``s3://`` key, checked by :func:`allowed_path`) once and store what
    loading found; refuse (nothing stored) when it does not load."""
    check_name(RegisteredModel, owner, name)
    allowed_path(checkpoint, "checkpoint")
    return model_load_and_create(owner=owner, name=name, architecture=architecture, checkpoint=checkpoint,
                                 format=format, input_size=input_size, mean=mean, std=std, title=title)


def model_load_and_create(*, owner, name: str, architecture: str, checkpoint: str, format: str = "auto",
                          input_size: int | None = None, mean: list[float] | None = None,
                          std: list[float] | None = None, title: str = "") -> RegisteredModel:
    """The registration of a checkpoint whose location is already checked (a registered path or an upload):
    ``torch.load(weights_only=True)`` through ``describe_checkpoint``, then one row."""
    # deferred: loads torch
    from analysis.models.describe import describe_checkpoint

    check_name(RegisteredModel, owner, name)
    if format not in RegisteredModel.Format.values:
        raise RegistryError(f"unknown format {format!r}; use one of {', '.join(RegisteredModel.Format.values)}",
                            "format")
    for label, values in (("mean", mean), ("std", std)):
        if values is not None and len(values) != 3:
            raise RegistryError(f"{label} needs 3 values (one per channel), got {len(values)}", label)
    path = checkpoint_path(checkpoint)
    try:
        found = describe_checkpoint(architecture, path, fmt=format, input_size=input_size, mean=mean, std=std)
    except _load_errors() as exc:
        field = "architecture" if type(exc).__name__ == "UnknownArchitectureError" else "checkpoint"
        raise RegistryError(f"the checkpoint {checkpoint} does not load as {architecture}: {exc}", field) from exc
    try:
        with transaction.atomic():
            return RegisteredModel.objects.create(
                owner=owner, name=name, title=title, architecture=architecture, checkpoint=checkpoint, format=format,
                input_size=found["input_size"], mean=found["mean"], std=found["std"], sha256=found["sha256"],
                num_classes=found["num_classes"], feature_dim=found["feature_dim"], conv_map=found["conv_map"])
    except IntegrityError as exc:
        raise Conflict(f"an entry named {name!r} is already registered") from exc


def dataset_register(*, owner, name: str, root: str, val_root: str = "", class_metadata: str = "",
                     title: str = "") -> RegisteredDataset:
    """Scan the folder once (class order, images per class, unreadable files); never copies a server folder.

    An ``s3://bucket/prefix`` root (or validation root) is fetched into the registry's storage area first,
    with the checks of an uploaded archive (:func:`annotation.services.upload_area.s3_prefix_download`).
    """
    check_name(RegisteredDataset, owner, name)
    for field, value in (("root", root), ("val_root", val_root), ("class_metadata", class_metadata)):
        allowed_path(value, field)
    if class_metadata.startswith("s3://"):
        raise RegistryError("give the class metadata as a server path or upload it; s3:// is for images",
                            "class_metadata")
    if not (root.startswith("s3://") or val_root.startswith("s3://")):
        return dataset_scan_and_create(owner=owner, name=name, root=root, val_root=val_root,
                                       class_metadata=class_metadata, title=title)
    with upload_area.staged_folder(owner) as (staging, final):
        folders = {}
        for field, value, sub in (("root", root, "train"), ("val_root", val_root, "val")):
            if value.startswith("s3://"):
                bucket, prefix = s3_location(value.rstrip("/"), field)
                try:
                    upload_area.s3_prefix_download(bucket, prefix, staging / sub, upload_area.dataset_limits())
                except (ArchiveError, OSError) as exc:
                    raise RegistryError(f"{value}: {exc}", field) from exc
                except _s3_errors() as exc:
                    raise RegistryError(f"{value} cannot be read from S3: {exc}", field) from exc
                folders[field] = staging / sub
            else:
                folders[field] = Path(value) if value else None
        return dataset_scan_and_create(owner=owner, name=name, root=folders["root"], val_root=folders["val_root"],
                                       class_metadata=class_metadata, title=title, staged=(staging, final))


def _s3_errors() -> tuple[type[BaseException], ...]:
    # deferred: loads botocore
    from botocore.exceptions import BotoCoreError, ClientError

    return BotoCoreError, ClientError


def dataset_scan_and_create(*, owner, name: str, root: str | Path, val_root: str | Path | None = "",
                            class_metadata: str = "", title: str = "", refuse_unreadable: bool = False,
                            staged: tuple[Path, Path] | None = None) -> RegisteredDataset:
    """The registration of folders whose location is already checked: scan them (with ``refuse_unreadable``,
    an undecodable file is refused rather than listed), then one row. ``staged`` = ``(staging, final)``:
    the folders lie in a staging folder, moved into place (:func:`upload_area.publish`) once the scan passed,
    and the row records their final paths."""
    # deferred: loads scikit-image, torch
    from analysis.datasets.folder_benchmark import scan_image_folder

    # deferred: loads scikit-image, torch
    from analysis.datasets.metadata import read_class_metadata

    check_name(RegisteredDataset, owner, name)
    try:
        classes = read_class_metadata(class_metadata) if class_metadata else None
    except _load_errors() as exc:
        raise RegistryError(f"the class metadata {Path(class_metadata).name if staged else class_metadata} cannot "
                            f"be read: {exc}", "class_metadata") from exc
    scans = {}
    for field, folder in (("root", root), ("val_root", val_root)):
        if field == "val_root" and not folder:
            continue
        try:
            scans[field] = scan_image_folder(folder, classes if field == "root" else scans["root"].classes)
        except _load_errors() as exc:
            shown = str(exc).replace(f"{staged[0]}/", "") if staged else str(exc)
            raise RegistryError(shown if staged else f"{folder}: {exc}", field) from exc
    train = scans["root"]
    unreadable = train.unreadable + (scans["val_root"].unreadable if "val_root" in scans else [])
    if refuse_unreadable and unreadable:
        raise RegistryError(f"{len(unreadable)} file(s) are not readable images, e.g. {', '.join(unreadable[:5])}",
                            "root")
    if staged:
        staging, final = staged
        upload_area.publish(staging, final)
        root, val_root, class_metadata = (
            str(final / Path(p).relative_to(staging)) if p and Path(p).is_relative_to(staging) else str(p or "")
            for p in (root, val_root, class_metadata))
    try:
        with transaction.atomic():
            return RegisteredDataset.objects.create(
                owner=owner, name=name, title=title, root=str(Path(root).resolve()),
                val_root=str(Path(val_root).resolve()) if val_root else "", class_metadata=class_metadata,
                classes=[c.as_dict() for c in train.classes], counts=train.counts,
                val_counts=scans["val_root"].counts if "val_root" in scans else {},
                unreadable=unreadable[:MAX_LISTED_UNREADABLE], n_unreadable=len(unreadable))
    except IntegrityError as exc:
        raise Conflict(f"an entry named {name!r} is already registered") from exc


def checkpoint_path(checkpoint: str) -> str:
    """A local path for ``checkpoint`` (an ``s3://`` one is fetched once into the benchmark work dir).

    The bucket and key are checked before anything touches the disk, and the cached file must lie
    inside ``<SALIENT_BENCHMARK_DIR>/checkpoints``.
    """
    if not checkpoint.startswith("s3://"):
        return checkpoint
    bucket, key = s3_location(checkpoint, "checkpoint")
    cache = (Path(settings.SALIENT_BENCHMARK_DIR) / "checkpoints").resolve()
    target = cache.joinpath(bucket, *PurePosixPath(key).parts)
    if not target.resolve().is_relative_to(cache):
        raise RegistryError(f"{checkpoint!r} leads outside the checkpoint cache", "checkpoint")
    if not target.is_file():
        # deferred: loads boto3
        import boto3

        client = boto3.client("s3", endpoint_url=getattr(settings, "SALIENT_S3_ENDPOINT_URL", None) or None)
        try:
            size = client.head_object(Bucket=bucket, Key=key)["ContentLength"]
            if size > settings.SALIENT_UPLOAD_MAX_CHECKPOINT_MB * 2**20:
                raise RegistryError(f"{checkpoint} is larger than this server accepts "
                                    f"({settings.SALIENT_UPLOAD_MAX_CHECKPOINT_MB} MB, "
                                    "SALIENT_UPLOAD_MAX_CHECKPOINT_MB)", "checkpoint")
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, key, str(target))  # s3transfer writes a temporary name, then renames
        except _s3_errors() as exc:
            raise RegistryError(f"{checkpoint} cannot be read from S3: {exc}", "checkpoint") from exc
    return str(target)


def visible(model, owner):
    """Entries of ``model`` the researcher may use: their own and the shared ones."""
    builtin_entries_ensure()
    return model.objects.filter(Q(owner=owner) | Q(owner__isnull=True)).order_by("owner_id", "name")


def _entry(model, owner, name: str, field: str):
    entry = visible(model, owner).filter(name=name).order_by("-owner_id").first()
    if entry is None:
        kind = "dataset" if model is RegisteredDataset else "model"
        known = ", ".join(visible(model, owner).values_list("name", flat=True))
        raise RegistryError(f"no {kind} named {name!r} is registered for you; known: {known}", field)
    return entry


def _model_names(conf: Mapping[str, Any]) -> list[tuple[str, str]]:
    names = []
    for field in MODEL_SETTINGS:
        value = conf.get(field)
        for name in ([value] if isinstance(value, str) else value or []):
            names.append((field, name))
    return names


def study_inputs(*, owner, conf: Mapping[str, Any], needs_conv_map: bool = False) -> dict[str, Any]:
    """The registry entries a study's settings name, as plain dicts; refuses what cannot run together.

    A model whose class count differs from the dataset's is refused with both counts; a kind that needs
    a conv map refuses a model without one. The built-in models run only with the built-in benchmark.
    """
    if not conf.get(DATASET_SETTING):  # image_choice's dataset is optional (its bundled photos)
        return {}
    dataset = _entry(RegisteredDataset, owner, conf[DATASET_SETTING], DATASET_SETTING)
    models: dict[str, dict] = {}
    for field, name in _model_names(conf):
        entry = _entry(RegisteredModel, owner, name, field)
        if entry.builtin and not dataset.builtin:
            raise RegistryError(f"the demo model {name!r} runs only on the built-in benchmark, "
                                f"not on {dataset.name!r}", field)
        if not (entry.builtin and dataset.builtin) and entry.num_classes != dataset.num_classes:
            raise RegistryError(f"model {name!r} has {entry.num_classes} classes but dataset {dataset.name!r} "
                                f"has {dataset.num_classes}", field)
        if needs_conv_map and not entry.builtin and not entry.conv_map:
            raise RegistryError(f"model {name!r} has no convolutional feature map, which this study kind needs",
                                field)
        models[name] = model_to_dict(entry)
    return {"dataset": model_to_dict(dataset), "models": models}
