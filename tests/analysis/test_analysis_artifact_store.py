"""Content-addressed artifact store: local directory and S3 (moto server mode)."""
from __future__ import annotations

import hashlib
import io
import socket

import pytest

from analysis.artifact_store import (
    ArtifactNotFoundError,
    InvalidArtifactKeyError,
    LocalArtifactStore,
    S3ArtifactStore,
    content_key,
    make_artifact_store,
)


def test_local_store_dedupes_and_roundtrips(tmp_path):
    store = LocalArtifactStore(tmp_path / "store")
    key = store.put(b"heatmap bytes", ".PNG")
    assert key == hashlib.sha256(b"heatmap bytes").hexdigest() + ".png"
    assert store.put(b"heatmap bytes", "png") == key
    files = [p for p in (tmp_path / "store").rglob("*") if p.is_file()]
    assert files == [store.path(key)]
    assert store.get(key) == b"heatmap bytes" and store.exists(key)
    with store.open(key) as handle:
        assert handle.read() == b"heatmap bytes"
    other = store.put(b"other bytes", "png")
    assert other != key and len([p for p in (tmp_path / "store").rglob("*") if p.is_file()]) == 2


def test_local_put_file_streams_to_the_same_key(tmp_path):
    store = LocalArtifactStore(tmp_path)
    data = bytes(range(256)) * 9000  # > 1 chunk
    source = tmp_path / "weights.pt"
    source.write_bytes(data)
    assert store.put_file(source) == content_key(data, "pt") == store.put(data, "pt")
    assert store.put_file(io.BytesIO(data), "pt") == content_key(data, "pt")
    assert store.get(content_key(data, "pt")) == data
    assert not list(tmp_path.glob(".tmp-*"))


def test_bad_keys_and_missing_artifacts(tmp_path):
    store = LocalArtifactStore(tmp_path)
    for key in ("../../etc/passwd", "abc", "A" * 64, "0" * 64 + "./x"):
        with pytest.raises(InvalidArtifactKeyError):
            store.path(key)
    with pytest.raises(ArtifactNotFoundError):
        store.get("0" * 64 + ".png")
    assert not store.exists("0" * 64)
    with pytest.raises(ValueError):
        store.put(b"x", "p/ng")
    with pytest.raises(TypeError):
        store.put("text, not bytes")


def test_factory(tmp_path):
    assert isinstance(make_artifact_store("local", root=tmp_path), LocalArtifactStore)
    with pytest.raises(ValueError, match="backend"):
        make_artifact_store("ftp")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_store(s3_endpoint, monkeypatch):
    import boto3

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    bucket = f"artifacts-{_free_port()}"
    client.create_bucket(Bucket=bucket)
    return make_artifact_store("s3", bucket=bucket, prefix="studio/artifacts", endpoint_url=s3_endpoint,
                               region_name="us-east-1")


def test_s3_store_dedupes_and_roundtrips(s3_store):
    uploads = []
    original = s3_store.client.put_object
    s3_store.client.put_object = lambda **kw: uploads.append(kw["Key"]) or original(**kw)

    key = s3_store.put(b"mask png", "png")
    assert s3_store.put(b"mask png", "png") == key == content_key(b"mask png", "png")
    assert uploads == [f"studio/artifacts/{key}"]
    listing = s3_store.client.list_objects_v2(Bucket=s3_store.bucket)
    assert [o["Key"] for o in listing.get("Contents", [])] == [f"studio/artifacts/{key}"]
    assert s3_store.get(key) == b"mask png" and s3_store.open(key).read() == b"mask png"
    assert s3_store.exists(key) and not s3_store.exists(content_key(b"other"))
    with pytest.raises(ArtifactNotFoundError):
        s3_store.get(content_key(b"never stored", "png"))
    with pytest.raises(NotImplementedError):
        s3_store.path(key)
    s3_store.put(b"second", "json")
    assert s3_store.client.list_objects_v2(Bucket=s3_store.bucket)["KeyCount"] == 2


def test_s3_requires_a_bucket():
    with pytest.raises(ValueError, match="bucket"):
        S3ArtifactStore("")


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_named_objects_roundtrip_beside_the_artifacts(backend, tmp_path, request):
    from analysis.artifact_store import NamedObjects

    store = make_artifact_store("local", root=tmp_path) if backend == "local" else request.getfixturevalue("s3_store")
    shards = NamedObjects(store, "shards")
    assert shards.get("salient-abc/0-64.npz") is None
    shards.put("salient-abc/0-64.npz", b"partial")
    shards.put("salient-abc/0-64.npz", b"partial, rewritten")
    assert shards.get("salient-abc/0-64.npz") == b"partial, rewritten"
    for bad in ("../escape", "/abs", "a/../b", "", "a b"):
        with pytest.raises(InvalidArtifactKeyError):
            shards.get(bad) if bad.startswith("/") else store.put_named(bad, b"x")
