"""Datasets: ImageFolder with class metadata, a registry, the planted-bias benchmark.

Names load on first use (PEP 562): a web process that only needs :mod:`.metadata` (the template filters do)
never imports torch through :mod:`.benchmark`.
"""
from importlib import import_module

_HOMES = {
    ".benchmark": ("BIAS_KINDS", "NO_BIAS", "SPLITS", "BenchmarkConfig", "BenchmarkDataset", "BenchmarkSplit",
                   "PlantedBias", "PlantedBiasBenchmark", "generate_benchmark", "load_or_generate_benchmark"),
    ".fashion_mnist": ("FashionMNISTNotFoundError", "load_fashion_mnist"),
    ".image_folder": ("MetadataImageFolder",),
    ".indexed": ("IndexedImages", "collate_indexed", "dataset_labels"),
    ".metadata": ("ClassInfo", "ClassMetadataError", "parse_class_metadata", "read_class_metadata",
                  "write_class_metadata"),
    ".registry": ("DatasetEntry", "DatasetRegistry", "UnknownDatasetError", "dataset_registry"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str):
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_MODULE_OF[name], __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
