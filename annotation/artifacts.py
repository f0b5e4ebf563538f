"""Storing evidence files as content-addressed :class:`Artifact` rows (one row and file per content)."""
from __future__ import annotations

import hashlib
import io
import mimetypes
import os
import tempfile
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction

from annotation.models import Artifact


def artifact_path(sha256: str, ext: str) -> Path:
    return Path(settings.ARTIFACT_DIR) / sha256[:2] / f"{sha256}.{ext}"


def _write_once(path: Path, data: bytes) -> None:
    if path.exists() and path.stat().st_size == len(data):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename: a reader never sees a half-written file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


def artifact_store_bytes(*, data: bytes, ext: str, kind: str = "") -> Artifact:
    """Store ``data`` once; a second call with the same content returns the same row."""
    ext = ext.lstrip(".").lower()
    sha = hashlib.sha256(data).hexdigest()
    _write_once(artifact_path(sha, ext), data)
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
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", optimize=False)
    return artifact_store_bytes(data=buffer.getvalue(), ext="png", kind=kind)


def artifact_read(artifact: Artifact) -> bytes:
    return artifact_path(artifact.sha256, artifact.ext).read_bytes()
