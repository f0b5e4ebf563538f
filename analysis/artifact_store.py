"""Content-addressed artifact storage: a local directory (default) or Amazon S3.

A key is the SHA-256 of the content plus an optional extension, e.g.
``"3a7bd3e2...c1f5.png"``.  Putting the same bytes twice returns the same key
and stores them once.  Django-free: the platform keeps an ``Artifact`` row per
key on top of this.

Examples
--------
>>> store = LocalArtifactStore("var/artifacts")            # doctest: +SKIP
>>> key = store.put(png_bytes, "png")                      # doctest: +SKIP
>>> store.get(key) == png_bytes                            # doctest: +SKIP
True
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import re
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Mapping

_KEY_PATTERN = re.compile(r"^[0-9a-f]{64}(\.[a-z0-9]{1,16})?$")
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,200}(/[A-Za-z0-9][A-Za-z0-9._-]{0,200}){0,4}$")
_EXT_PATTERN = re.compile(r"^[a-z0-9]{1,16}$")
_CHUNK = 1 << 20


class ArtifactNotFoundError(KeyError):
    """No artifact stored under that key."""

    def __str__(self) -> str:
        return str(self.args[0])


class InvalidArtifactKeyError(ValueError):
    """A string that is not a well-formed artifact key."""


def normalize_extension(ext: str | None) -> str:
    """``".PNG"`` -> ``"png"``; empty for no extension; ``ValueError`` for odd ones."""
    ext = (ext or "").strip().lower().lstrip(".")
    if ext and not _EXT_PATTERN.match(ext):
        raise ValueError(f"extension must be 1-16 letters or digits, got {ext!r}")
    return ext


def make_key(digest: str, ext: str | None = None) -> str:
    """Key from a hex SHA-256 digest and an extension."""
    ext = normalize_extension(ext)
    return f"{digest}.{ext}" if ext else digest


def content_key(data: bytes, ext: str | None = None) -> str:
    """The key ``data`` gets in any store."""
    return make_key(hashlib.sha256(data).hexdigest(), ext)


def validate_key(key: str) -> str:
    """Return ``key`` if well formed, else raise :class:`InvalidArtifactKeyError`."""
    if not isinstance(key, str) or not _KEY_PATTERN.match(key):
        raise InvalidArtifactKeyError(f"not an artifact key: {key!r} (expected <sha256 hex>[.<ext>])")
    return key


class ArtifactStore:
    """Interface of the stores (local and S3).

    Methods
    -------
    put(data, ext) -> key
    put_file(path_or_file, ext) -> key
    open(key) -> binary file object
    get(key) -> bytes
    exists(key) -> bool
    path(key) -> Path  (local stores only)
    delete(key)
    """

    backend = "abstract"

    def put(self, data: bytes, ext: str | None = None) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def put_file(self, source: str | os.PathLike | BinaryIO, ext: str | None = None) -> str:
        """Store a file's content (read in full) and return its key."""
        if isinstance(source, (str, os.PathLike)):
            if ext is None:
                ext = Path(source).suffix
            data = Path(source).read_bytes()
        else:
            data = source.read()
        return self.put(data, ext)

    def open(self, key: str) -> BinaryIO:  # pragma: no cover - interface
        raise NotImplementedError

    def get(self, key: str) -> bytes:
        """The stored bytes."""
        with self.open(key) as handle:
            return handle.read()

    def exists(self, key: str) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def path(self, key: str) -> Path:
        """Local file path of an artifact (local backend only)."""
        raise NotImplementedError(f"the {self.backend} backend has no local paths; use open() or get()")

    def delete(self, key: str) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    # Named objects: results identified by what made them (e.g. an evidence shard: pass digest + range),
    # kept beside the content-addressed artifacts.
    def put_named(self, name: str, data: bytes) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def get_named(self, name: str) -> bytes | None:  # pragma: no cover - interface
        raise NotImplementedError


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_PATTERN.match(name) or ".." in name:
        raise InvalidArtifactKeyError(f"{name!r} is not a valid object name (letters, digits, . _ - and /)")
    return name


class NamedObjects:
    """The named objects of a store under one prefix, as a shard store (``get(name)``, ``put(name, data)``)."""

    def __init__(self, store: ArtifactStore, prefix: str) -> None:
        self.store, self.prefix = store, prefix.rstrip("/") + "/"

    def get(self, name: str) -> bytes | None:
        return self.store.get_named(self.prefix + name)

    def put(self, name: str, data: bytes) -> None:
        self.store.put_named(self.prefix + name, data)


def _write_atomically(target: Path, data: bytes) -> None:
    """Write then rename: a reader never sees a half-written file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class LocalArtifactStore(ArtifactStore):
    """Artifacts under ``root/<2 hex>/<2 hex>/<key>``, written atomically.

    Parameters
    ----------
    root : path
        Created on first write.
    """

    backend = "local"

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalArtifactStore({str(self.root)!r})"

    def path(self, key: str) -> Path:
        validate_key(key)
        return self.root / key[:2] / key[2:4] / key

    def put(self, data: bytes, ext: str | None = None) -> str:
        """Store ``data`` (once) and return its key."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"put() takes bytes, got {type(data).__name__}")
        key = content_key(bytes(data), ext)
        target = self.path(key)
        if not target.is_file():
            _write_atomically(target, bytes(data))
        return key

    def put_file(self, source: str | os.PathLike | BinaryIO, ext: str | None = None) -> str:
        """Stream a file into the store without holding it in memory."""
        if isinstance(source, (str, os.PathLike)):
            if ext is None:
                ext = Path(source).suffix
            with open(source, "rb") as handle:
                return self.put_file(handle, ext)
        self.root.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                for chunk in iter(lambda: source.read(_CHUNK), b""):
                    digest.update(chunk)
                    out.write(chunk)
            key = make_key(digest.hexdigest(), ext)
            target = self.path(key)
            if target.is_file():
                os.unlink(tmp)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, target)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return key

    def open(self, key: str) -> BinaryIO:
        try:
            return open(self.path(key), "rb")
        except FileNotFoundError:
            raise ArtifactNotFoundError(f"no artifact {key} in {self.root}") from None

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def delete(self, key: str) -> None:
        try:
            self.path(key).unlink()
        except FileNotFoundError:
            pass

    def put_named(self, name: str, data: bytes) -> None:
        _write_atomically(self.root / "named" / validate_name(name), bytes(data))

    def get_named(self, name: str) -> bytes | None:
        path = self.root / "named" / validate_name(name)
        return path.read_bytes() if path.is_file() else None


class S3ArtifactStore(ArtifactStore):
    """Artifacts as objects ``<prefix><key>`` in an S3 bucket (boto3).

    Parameters
    ----------
    bucket : str
    prefix : str
        Object-name prefix, e.g. ``"salient-studio/artifacts/"``.
    endpoint_url : str, optional
        For S3-compatible services (MinIO, moto).
    region_name : str, optional
    client : botocore client, optional
        A ready ``boto3.client("s3")`` (other connection arguments are then ignored).
    client_kwargs : mapping, optional
        Further ``boto3.client`` arguments (credentials, config).
    """

    backend = "s3"

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None,
                 region_name: str | None = None, client: Any = None,
                 client_kwargs: Mapping[str, Any] | None = None) -> None:
        if not bucket:
            raise ValueError("an S3 bucket name is required")
        self.bucket = bucket
        self.prefix = prefix.lstrip("/")
        if self.prefix and not self.prefix.endswith("/"):
            self.prefix += "/"
        if client is None:
            # deferred: loads boto3
            import boto3

            kwargs = dict(client_kwargs or {})
            if endpoint_url:
                kwargs["endpoint_url"] = endpoint_url
            if region_name:
                kwargs["region_name"] = region_name
            client = boto3.client("s3", **kwargs)
        self.client = client

    def __repr__(self) -> str:
        return f"S3ArtifactStore(bucket={self.bucket!r}, prefix={self.prefix!r})"

    def object_name(self, key: str) -> str:
        return self.prefix + validate_key(key)

    def exists(self, key: str) -> bool:
        # deferred: loads botocore
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_name(key))
            return True
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise

    def put(self, data: bytes, ext: str | None = None) -> str:
        """Upload ``data`` unless an object with the same key already exists."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(f"put() takes bytes, got {type(data).__name__}")
        data = bytes(data)
        key = content_key(data, ext)
        if not self.exists(key):
            self.client.put_object(Bucket=self.bucket, Key=self.object_name(key), Body=data,
                                   ChecksumSHA256=_b64_sha256(data))
        return key

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self.get(key))

    def get(self, key: str) -> bytes:
        # deferred: loads botocore
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.object_name(key))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise ArtifactNotFoundError(f"no artifact {key} in s3://{self.bucket}/{self.prefix}") from None
            raise
        return response["Body"].read()

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.object_name(key))

    def put_named(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.prefix + "named/" + validate_name(name), Body=bytes(data),
                               ChecksumSHA256=_b64_sha256(bytes(data)))

    def get_named(self, name: str) -> bytes | None:
        # deferred: loads botocore
        from botocore.exceptions import ClientError

        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.prefix + "named/" + validate_name(name))
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return response["Body"].read()


def _b64_sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def make_artifact_store(backend: str = "local", **options: Any) -> ArtifactStore:
    """Build a store from settings.

    Parameters
    ----------
    backend : {"local", "s3"}
    **options
        ``root`` for local; ``bucket``, ``prefix``, ``endpoint_url``, ``region_name``,
        ``client_kwargs`` for S3.

    Examples
    --------
    >>> make_artifact_store("local", root="var/artifacts")
    LocalArtifactStore('var/artifacts')
    """
    backend = (backend or "local").lower()
    if backend == "local":
        return LocalArtifactStore(options.get("root") or "var/artifacts")
    if backend == "s3":
        unknown = set(options) - {"bucket", "prefix", "endpoint_url", "region_name", "client", "client_kwargs"}
        if unknown:
            raise ValueError(f"unknown S3 store options: {', '.join(sorted(unknown))}")
        return S3ArtifactStore(**options)
    raise ValueError(f"unknown artifact store backend {backend!r} (use 'local' or 's3')")
