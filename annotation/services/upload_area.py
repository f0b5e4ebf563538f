"""The registry's storage area for uploaded files: ``SALIENT_UPLOAD_DIR/<researcher id>/{models,datasets}/``.

Nothing half-written is ever left there: a checkpoint streams into a temporary file beside its final name
and is renamed into place; an image folder is unpacked (or fetched from an S3 prefix) into a staging folder
and renamed into place; a failure at any step removes both. The limits are the ``SALIENT_UPLOAD_*`` settings.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from django.conf import settings

from analysis.image_archives import ArchiveError, Limits, check_image_name, check_member, copy_limited, skipped
from annotation.upload_limits import MB


def owner_dir(owner, what: str) -> Path:
    """The folder of a researcher's uploaded ``models`` or ``datasets`` (``shared`` for the CLI's owner None)."""
    folder = Path(settings.SALIENT_UPLOAD_DIR) / (str(owner.pk) if owner is not None else "shared") / what
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def dataset_limits() -> Limits:
    return Limits(settings.SALIENT_UPLOAD_MAX_IMAGES, settings.SALIENT_UPLOAD_MAX_DATASET_MB * MB)


def store_checkpoint(owner, chunks: Iterable[bytes], size: int | None) -> Path:
    """Write an uploaded checkpoint's chunks to a new file in the owner's ``models`` folder, refusing it past
    ``SALIENT_UPLOAD_MAX_CHECKPOINT_MB`` (``ArchiveError``); the caller removes the file if registration fails."""
    limit = settings.SALIENT_UPLOAD_MAX_CHECKPOINT_MB * MB
    message = f"the checkpoint is larger than this server accepts ({limit // MB} MB, SALIENT_UPLOAD_MAX_CHECKPOINT_MB)"
    if size is not None and size > limit:
        raise ArchiveError(message)
    folder = owner_dir(owner, "models")
    handle, temporary = tempfile.mkstemp(prefix=".upload-", suffix=".pt", dir=folder)
    try:
        written = 0
        with os.fdopen(handle, "wb") as out:
            for chunk in chunks:
                written += len(chunk)
                if written > limit:
                    raise ArchiveError(message)
                out.write(chunk)
        if not written:
            raise ArchiveError("the checkpoint file is empty")
        final = folder / f"{uuid.uuid4().hex}.pt"
        os.replace(temporary, final)
        return final
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def staged_folder(owner) -> Iterator[tuple[Path, Path]]:
    """``(staging, final)``: fill ``staging``, then :func:`publish` it as ``final``; any exception inside the
    block removes both, so a refused folder leaves nothing behind."""
    parent = owner_dir(owner, "datasets")
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
    final = parent / uuid.uuid4().hex
    try:
        yield staging, final
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def publish(staging: Path, final: Path) -> None:
    """Move a checked staging folder into place in one rename."""
    os.replace(staging, final)


def s3_prefix_download(bucket: str, prefix: str, dest: Path, limits: Limits) -> int:
    """Fetch every object under ``s3://bucket/prefix/`` into ``dest`` (keys below the prefix become paths), with
    the checks of an uploaded archive: plain relative keys, image files only, the count and size limits (from
    the listing, before any download, and again while streaming). Returns the image count."""
    # deferred: loads boto3
    import boto3

    client = boto3.client("s3", endpoint_url=getattr(settings, "SALIENT_S3_ENDPOINT_URL", None) or None)
    listed = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/"):
        for item in page.get("Contents", []):
            name = item["Key"][len(prefix) + 1:]
            if not name or name.endswith("/") or (check_member(name) and skipped(name)):
                continue
            check_image_name(name)
            limits.add_image(name, int(item["Size"]))
            listed.append((item["Key"], name))
    if not listed:
        raise ArchiveError(f"s3://{bucket}/{prefix}/ holds no image")
    written = Limits(limits.max_images, limits.max_bytes)
    inside = dest.resolve()
    for key, name in listed:
        target = inside.joinpath(*check_member(name))
        body = client.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            copy_limited(body, target, written, name)
        finally:
            body.close()
    return len(listed)
