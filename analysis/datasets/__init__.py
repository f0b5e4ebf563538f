"""Datasets: ImageFolder with class metadata, a registry, the planted-bias benchmark."""
from .benchmark import (
    BIAS_KINDS,
    NO_BIAS,
    SPLITS,
    BenchmarkConfig,
    BenchmarkDataset,
    BenchmarkSplit,
    PlantedBias,
    PlantedBiasBenchmark,
    generate_benchmark,
    load_or_generate_benchmark,
)
from .fashion_mnist import FashionMNISTNotFoundError, load_fashion_mnist
from .image_folder import MetadataImageFolder
from .indexed import IndexedImages, collate_indexed, dataset_labels
from .metadata import ClassInfo, ClassMetadataError, parse_class_metadata, read_class_metadata, write_class_metadata
from .registry import DatasetEntry, DatasetRegistry, UnknownDatasetError, dataset_registry

__all__ = [
    "BIAS_KINDS", "NO_BIAS", "SPLITS",
    "BenchmarkConfig", "BenchmarkDataset", "BenchmarkSplit", "ClassInfo", "ClassMetadataError",
    "DatasetEntry", "DatasetRegistry", "FashionMNISTNotFoundError", "IndexedImages", "MetadataImageFolder",
    "PlantedBias", "PlantedBiasBenchmark", "UnknownDatasetError",
    "collate_indexed", "dataset_labels", "dataset_registry", "generate_benchmark", "load_fashion_mnist",
    "load_or_generate_benchmark",
    "parse_class_metadata", "read_class_metadata", "write_class_metadata",
]
