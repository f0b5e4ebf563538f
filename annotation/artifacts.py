"""Evidence files as content-addressed :class:`Artifact` rows over the one artifact store.

The bytes live in :mod:`analysis.artifact_store` (a local directory by default, S3 when
``SALIENT_ARTIFACT_URL=s3://bucket/prefix``); the platform keeps one ``Artifact`` row per content.
"""
from __future__ import annotations

import hashlib
import io
import mimetypes
from typing import BinaryIO

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.http import FileResponse
from PIL import Image

from analysis.artifact_store import ArtifactNotFoundError, ArtifactStore, LocalArtifactStore, make_artifact_store
from annotation.models import Artifact
from annotation.selectors import NotFound


def artifact_store() -> ArtifactStore:
    """The platform's store, from ``SALIENT_ARTIFACT_URL`` (``s3://bucket/prefix``) or ``ARTIFACT_DIR``."""
    url = getattr(settings, "SALIENT_ARTIFACT_URL", "")
    if url.startswith("s3://"):
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        return make_artifact_store("s3", bucket=bucket, prefix=prefix.strip("/"),
                                   endpoint_url=getattr(settings, "SALIENT_S3_ENDPOINT_URL", None) or None)
    if url:
        raise ValueError(f"SALIENT_ARTIFACT_URL must be empty or s3://bucket/prefix, not {url!r}")
    return LocalArtifactStore(settings.ARTIFACT_DIR)


def artifact_store_bytes(*, data: bytes, ext: str, kind: str = "") -> Artifact:
    """Store ``data`` once; a second call with the same content returns the same row."""
    ext = ext.lstrip(".").lower()
    sha = hashlib.sha256(data).hexdigest()
    artifact_store().put(data, ext)
    content_type = mimetypes.types_map.get(f".{ext}", "application/octet-stream")
    try:
        with transaction.atomic():
            artifact, _ = Artifact.objects.get_or_create(
                sha256=sha, defaults={"ext": ext, "content_type": content_type, "size": len(data), "kind": kind}
            )
    except IntegrityError:  # a concurrent writer stored the same content first
        artifact = Artifact.objects.get(sha256=sha)
    return artifact


def artifact_store_image(*, image: np.ndarray, kind: str = "image") -> Artifact:
    """Store a uint8 HxW or HxWx3 array as PNG."""

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", optimize=False)
    return artifact_store_bytes(data=buffer.getvalue(), ext="png", kind=kind)


def artifact_open(artifact: Artifact) -> BinaryIO:
    """The stored file of ``artifact``, open for reading."""
    return artifact_store().open(artifact.name)


def artifact_download(artifact: Artifact, *, filename: str):
    """A download of ``artifact`` as ``filename``; :class:`annotation.selectors.NotFound` when its file is gone."""


    try:
        handle = artifact_open(artifact)
    except ArtifactNotFoundError as exc:
        raise NotFound("this file is missing from the artifact store; make it again") from exc
    response = FileResponse(handle, content_type=artifact.content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def artifact_read(artifact: Artifact) -> bytes:
    return artifact_store().get(artifact.name)


class ArtifactImages:
    """The image sink of :class:`annotation.task_kinds.StudyContext`: PNG artifacts, one per content."""

    def images(self, images, kind: str = "image") -> list[str]:
        return [artifact_store_image(image=np.asarray(im), kind=kind).name for im in images]
