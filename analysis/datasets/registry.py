"""A registry of datasets a study can be run on (name -> factory).

Every factory returns a :class:`torch.utils.data.Dataset` yielding
``(image, label)`` with images as float tensors in [0, 1] and exposing
``class_infos`` (a list of :class:`~analysis.datasets.metadata.ClassInfo`).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator

import attrs

DatasetFactory = Callable[..., Any]


class UnknownDatasetError(KeyError):
    """No dataset registered under that name."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0])


@attrs.frozen
class DatasetEntry:
    """A registered dataset: machine name, title for forms, description, factory."""

    name: str
    title: str
    factory: DatasetFactory
    description: str = ""


class DatasetRegistry:
    """Name -> :class:`DatasetEntry` mapping with helpers for forms."""

    def __init__(self) -> None:
        self._entries: dict[str, DatasetEntry] = {}

    def register(self, name: str, factory: DatasetFactory, *, title: str | None = None,
                 description: str = "", replace: bool = False) -> DatasetEntry:
        """Add a dataset; ``replace=True`` overwrites an existing name."""
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"dataset names use letters, digits, '-' and '_', got {name!r}")
        if name in self._entries and not replace:
            raise ValueError(f"dataset {name!r} is already registered")
        entry = DatasetEntry(name=name, title=title or name, factory=factory, description=description)
        self._entries[name] = entry
        return entry

    def register_image_folder(self, name: str, root: str | os.PathLike, metadata: str | os.PathLike | None = None,
                              *, title: str | None = None, description: str = "", image_size: int = 224,
                              replace: bool = False) -> DatasetEntry:
        """Register an on-disk :class:`MetadataImageFolder`."""
        # deferred: loads torchvision
        from .image_folder import MetadataImageFolder

        def factory(**kwargs: Any) -> MetadataImageFolder:
            kwargs.setdefault("image_size", image_size)
            return MetadataImageFolder(root, metadata, **kwargs)

        return self.register(name, factory, title=title, replace=replace,
                             description=description or f"image folder {root}")

    def get(self, name: str) -> DatasetEntry:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownDatasetError(
                f"unknown dataset {name!r}; registered: {', '.join(sorted(self._entries)) or 'none'}"
            ) from None

    def create(self, name: str, **kwargs: Any) -> Any:
        """Build the dataset registered under ``name``."""
        return self.get(name).factory(**kwargs)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def choices(self) -> list[tuple[str, str]]:
        """``(name, title)`` pairs, e.g. for a Django ``ChoiceField``."""
        return [(e.name, e.title) for e in sorted(self._entries.values(), key=lambda e: e.title)]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[DatasetEntry]:
        return iter(sorted(self._entries.values(), key=lambda e: e.name))

    def __len__(self) -> int:
        return len(self._entries)


def default_benchmark_directory() -> Path:
    """Cache directory of the built-in benchmark (``$SALIENT_BENCHMARK_DIR`` or ``var/benchmark``)."""
    return Path(os.environ.get("SALIENT_BENCHMARK_DIR", "var/benchmark"))


def _benchmark_factory(split: str = "test", directory: str | os.PathLike | None = None,
                       config: Any = None, with_masks: bool = False, **kwargs: Any):
    # deferred: loads torch
    from .benchmark import load_or_generate_benchmark

    benchmark, _ = load_or_generate_benchmark(directory or default_benchmark_directory(), config,
                                              show_progress=kwargs.pop("show_progress", False), **kwargs)
    dataset = benchmark.split(split).torch_dataset(with_masks=with_masks)
    dataset.class_infos = benchmark.class_metadata()
    return dataset


#: A registry for notebooks and scripts (the benchmark, and folders registered with ``register_image_folder``).
dataset_registry = DatasetRegistry()
dataset_registry.register(
    "planted-bias-fashion",
    _benchmark_factory,
    title="Built-in benchmark: Fashion-MNIST with planted biases",
    description="64x64 garments on bundled scikit-image backgrounds with a background, a watermark and "
                "an object bias; splits train/test/flipped.",
)
