"""The tests' own-data makers live in ``demo/own_data.py`` (``make screenshots`` uses them too)."""
from demo.own_data import CLASSES, image_folder, metadata_csv, resnet18_checkpoints  # noqa: F401
