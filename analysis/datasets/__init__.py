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
from .metadata import ClassInfo, ClassMetadataError, parse_class_metadata, read_class_metadata, write_class_metadata
from .registry import DatasetEntry, DatasetRegistry, UnknownDatasetError, dataset_registry

__all__ = [
    "BIAS_KINDS", "NO_BIAS", "SPLITS",
    "BenchmarkConfig", "BenchmarkDataset", "BenchmarkSplit", "ClassInfo", "ClassMetadataError",
    "DatasetEntry", "DatasetRegistry", "FashionMNISTNotFoundError", "MetadataImageFolder",
    "PlantedBias", "PlantedBiasBenchmark", "UnknownDatasetError",
    "dataset_registry", "generate_benchmark", "load_fashion_mnist", "load_or_generate_benchmark",
    "parse_class_metadata", "read_class_metadata", "write_class_metadata",
]
