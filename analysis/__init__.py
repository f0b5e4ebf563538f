"""Plain-Python analysis code of Salient Studio (no Django imports).

Subpackages
-----------
models
    Loading classifiers from checkpoints and a uniform :class:`~analysis.models.ModelHandle`.
datasets
    ImageFolder datasets with class metadata, a dataset registry and the built-in
    planted-bias benchmark.
training
    Training the demo ResNet (standard and L2-robust) on the benchmark.
artifact_store
    Content-addressed storage (local directory or S3).
"""
