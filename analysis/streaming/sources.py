"""Where a pass's model and images come from, described by JSON-able values so any worker can rebuild them.

A :class:`ModelSource` names a checkpoint (any layout :func:`analysis.models.load_model` reads);
a :class:`DataSource` names a dataset kind registered with :func:`register_data_source` and its
options (``image_folder``: an ImageFolder tree; ``benchmark``: the built-in benchmark).  Both
have a ``fingerprint`` that changes when the content does, used in pass digests.  Each worker
process keeps the last model and dataset it built, so consecutive shards reuse them.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import torch
from torch.utils.data import Dataset

from analysis.config_overrides import config_from_overrides
from analysis.datasets.benchmark import BenchmarkConfig, load_or_generate_benchmark
from analysis.datasets.folder_benchmark import FolderImages, folder_files
from analysis.datasets.image_folder import MetadataImageFolder
from analysis.datasets.indexed import dataset_labels
from analysis.datasets.metadata import ClassInfo
from analysis.models import ModelHandle, load_model

DataBuilder = Callable[..., Dataset]
_DATA_SOURCES: dict[str, DataBuilder] = {}


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def register_data_source(name: str) -> Callable[[DataBuilder], DataBuilder]:
    """Decorator: ``@register_data_source("image_folder")`` on ``builder(**options) -> Dataset``."""
    def decorate(builder: DataBuilder) -> DataBuilder:
        _DATA_SOURCES[name] = builder
        return builder
    return decorate


@register_data_source("image_folder")
def _image_folder(root: str, metadata: str | None = None, image_size: int = 224, **_: Any) -> Dataset:
    return MetadataImageFolder(root, metadata, image_size=int(image_size))


@register_data_source("registered_folder")
def _registered_folder(root: str, classes: list[dict], image_size: int = 224, mode: str = "resize_crop",
                       **_: Any) -> Dataset:
    return FolderImages(root, folder_files(root, [ClassInfo(**c) for c in classes]), int(image_size), mode)


@register_data_source("benchmark")
def _benchmark(directory: str, config: Mapping | None = None, split: str = "train", **_: Any) -> Dataset:
    config = config_from_overrides(BenchmarkConfig, config, "benchmark")
    bench, _path = load_or_generate_benchmark(directory, config, show_progress=False)
    return bench.split(split).torch_dataset()


@attrs.frozen
class ModelSource:
    """A checkpoint to load with :func:`analysis.models.load_model`.

    Attributes
    ----------
    checkpoint : str
        Path of the file.
    arch : str or None
        Architecture; None for checkpoints that record it.
    sha256 : str or None
        The file's SHA-256 if known (e.g. from the model registry); computed once otherwise.
    options : dict
        Further ``load_model`` arguments (``num_classes``, ``input_size``, ``mean``, ``std``,
        ``arch_kwargs``, ``trusted``).
    """

    checkpoint: str = attrs.field(converter=str)
    arch: str | None = None
    sha256: str | None = None
    options: dict = attrs.field(factory=dict, converter=dict)

    def fingerprint(self) -> str:
        return self.sha256 or _file_sha(self.checkpoint)

    def load(self, device: torch.device | str = "cpu") -> ModelHandle:
        if not Path(self.checkpoint).is_file():
            raise FileNotFoundError(f"model checkpoint {self.checkpoint} does not exist")
        return load_model(self.arch, self.checkpoint, device=str(device), **self.options)

    def to_dict(self) -> dict:
        return attrs.asdict(self)


@attrs.frozen
class DataSource:
    """A dataset of ``(image, label)`` items with images in [0, 1], built by a registered kind.

    Attributes
    ----------
    kind : str
        ``image_folder`` (options ``root``, ``metadata``, ``image_size``) or ``benchmark``
        (``directory``, ``config``, ``split``), or any kind added with :func:`register_data_source`.
    options : dict
        The builder's keyword arguments; a ``fingerprint`` entry (e.g. the dataset registry's
        scan hash) stands for the content, otherwise the file list and sizes are hashed.
    """

    kind: str
    options: dict = attrs.field(factory=dict, converter=dict)

    def __attrs_post_init__(self) -> None:
        if self.kind not in _DATA_SOURCES:
            raise ValueError(f"unknown data source kind {self.kind!r}; known: {', '.join(sorted(_DATA_SOURCES))}")

    def build(self) -> Dataset:
        return _DATA_SOURCES[self.kind](**self.options)

    def fingerprint(self) -> str:
        if self.options.get("fingerprint"):
            return str(self.options["fingerprint"])
        return _data_fingerprint(self)

    def to_dict(self) -> dict:
        return attrs.asdict(self)


_FILE_SHAS: dict[tuple[str, float, int], str] = {}
_DATA_FINGERPRINTS: dict[str, str] = {}


def _file_sha(path: str) -> str:
    stat = os.stat(path)
    key = (os.path.abspath(path), stat.st_mtime, stat.st_size)
    if key not in _FILE_SHAS:
        _FILE_SHAS[key] = sha256_file(path)
    return _FILE_SHAS[key]


def _data_fingerprint(source: DataSource) -> str:
    key = canonical_json(source.to_dict())
    if key not in _DATA_FINGERPRINTS:
        digest = hashlib.sha256(key.encode())
        dataset = cached_dataset(source)
        samples = getattr(dataset, "samples", None)
        if samples is not None:  # an ImageFolder: its files, their sizes and labels
            for path, label in samples:
                digest.update(f"{os.path.relpath(path, source.options.get('root', '/'))}\0"
                              f"{os.path.getsize(path)}\0{label}\n".encode())
        else:
            digest.update(dataset_labels(dataset).tobytes())
        _DATA_FINGERPRINTS[key] = digest.hexdigest()
    return _DATA_FINGERPRINTS[key]


_MODEL_CACHE: dict[tuple[str, str], ModelHandle] = {}
_DATA_CACHE: dict[str, Dataset] = {}


def cached_handle(source: ModelSource, device: torch.device) -> ModelHandle:
    """The model of ``source`` on ``device``, loaded once per process (the last one is kept)."""
    key = (canonical_json(source.to_dict()), str(device))
    if key not in _MODEL_CACHE:
        _MODEL_CACHE.clear()
        _MODEL_CACHE[key] = source.load(device)
    return _MODEL_CACHE[key]


def cached_dataset(source: DataSource) -> Dataset:
    """The dataset of ``source``, built once per process (the last one is kept)."""
    key = canonical_json(source.to_dict())
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = source.build()
    return _DATA_CACHE[key]


def cached_labels(source: DataSource) -> np.ndarray:
    """Every image's label, read without decoding images."""
    return dataset_labels(cached_dataset(source))
