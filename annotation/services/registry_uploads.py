"""Registering uploaded files: a checkpoint, or an image folder as a zip or tar of class folders.

The same registration as a server path (``registry.model_load_and_create`` / ``dataset_scan_and_create``:
the checkpoint is read with ``torch.load(weights_only=True)``, the folder scanned with the same refusals,
a missing validation folder handled the same way by the kinds), on files kept in the registry's storage
area (:mod:`annotation.services.upload_area`). An upload is streamed in chunks, never read whole; a refusal
names the problem and removes what was written.
"""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from analysis.image_archives import ArchiveError, extract_image_archive, image_folder_layout
from annotation.models import RegisteredDataset, RegisteredModel
from annotation.services import registry, upload_area
from annotation.services.registry import RegistryError

CLASS_METADATA_MAX_BYTES = 16 * 2**20


class Upload(Protocol):
    """What the services read of an uploaded file (Django's ``UploadedFile`` has it)."""

    name: str
    size: int | None

    def chunks(self) -> Iterable[bytes]: ...


def model_upload(*, owner, checkpoint_file: Upload, name: str, architecture: str, format: str = "auto",
                 input_size: int | None = None, mean: list[float] | None = None, std: list[float] | None = None,
                 title: str = "") -> RegisteredModel:
    """Stream the checkpoint into the storage area, then register it as a server path would be."""
    registry.check_name(RegisteredModel, owner, name)
    try:
        path = upload_area.store_checkpoint(owner, checkpoint_file.chunks(), checkpoint_file.size)
    except ArchiveError as exc:
        raise RegistryError(str(exc), "checkpoint_file") from exc
    try:
        return registry.model_load_and_create(owner=owner, name=name, architecture=architecture, checkpoint=str(path),
                                              format=format, input_size=input_size, mean=mean, std=std, title=title)
    except RegistryError as exc:
        path.unlink(missing_ok=True)
        message = exc.message.replace(str(path), repr(checkpoint_file.name))
        raise RegistryError(message, "checkpoint_file" if exc.field == "checkpoint" else exc.field) from exc
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def dataset_upload(*, owner, archive: Upload, name: str, class_metadata: Upload | None = None,
                   title: str = "") -> RegisteredDataset:
    """Unpack a zip or tar of class folders (or ``train/`` + ``val/``) into the storage area and register it.

    Every member is checked first (``analysis.image_archives``: path traversal, links, image files only, the
    ``SALIENT_UPLOAD_MAX_IMAGES`` and ``SALIENT_UPLOAD_MAX_DATASET_MB`` limits); each image must decode.
    """
    registry.check_name(RegisteredDataset, owner, name)
    limits = upload_area.dataset_limits()
    if archive.size is not None and archive.size > limits.max_bytes:
        raise RegistryError(f"{archive.name} is larger than this server accepts ({limits.max_bytes // 2**20} MB, "
                            "SALIENT_UPLOAD_MAX_DATASET_MB)", "archive")
    with upload_area.staged_folder(owner) as (staging, final):
        try:
            packed = _write(archive, staging / ".archive", limits.max_bytes)
            extract_image_archive(packed, staging / "images", max_images=limits.max_images,
                                  max_bytes=limits.max_bytes)
            packed.unlink()
            root, val_root = image_folder_layout(staging / "images")
        except ArchiveError as exc:
            raise RegistryError(f"{archive.name}: {exc}", "archive") from exc
        metadata = ""
        if class_metadata is not None:
            try:
                metadata = str(_write(class_metadata, staging / "class_metadata.csv", CLASS_METADATA_MAX_BYTES))
            except ArchiveError as exc:
                raise RegistryError(f"{class_metadata.name}: {exc}", "class_metadata") from exc
        try:
            return registry.dataset_scan_and_create(owner=owner, name=name, root=root, val_root=val_root or "",
                                                    class_metadata=metadata, title=title, refuse_unreadable=True,
                                                    staged=(staging, final))
        except RegistryError as exc:
            if exc.field not in ("root", "val_root"):
                raise
            raise RegistryError(f"{archive.name}: {exc.message}", "archive") from exc


def _write(upload: Upload, target: Path, max_bytes: int) -> Path:
    """Stream ``upload`` into ``target`` chunk by chunk, refusing it past ``max_bytes``."""
    written = 0
    with open(target, "xb") as out:
        for chunk in upload.chunks():
            written += len(chunk)
            if written > max_bytes:
                raise ArchiveError(f"larger than this server accepts ({max_bytes // 2**20} MB)")
            out.write(chunk)
    return target


def entry_register(*, owner, what: str, data: dict) -> RegisteredModel | RegisteredDataset:
    """Register what a registration form (page or API) cleaned: an upload when a file came, else the server path
    or S3 location (``registry.model_register`` / ``dataset_register``, which check it against the roots)."""
    data = {k: v for k, v in data.items() if v not in (None, "")}
    if what == "model":
        if data.get("checkpoint_file"):
            return model_upload(owner=owner, **{k: v for k, v in data.items() if k != "checkpoint"})
        return registry.model_register(owner=owner, **data)
    if data.get("archive"):
        rest = {k: v for k, v in data.items() if k not in ("root", "val_root", "class_metadata", "class_metadata_file")}
        return dataset_upload(owner=owner, class_metadata=data.get("class_metadata_file"), **rest)
    return registry.dataset_register(owner=owner, **data)
