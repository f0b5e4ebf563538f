"""Small researcher data made on the spot (the tests, ``make screenshots``): an ImageFolder of JPEGs with a
class-metadata CSV, and a randomly initialised torchvision ResNet-18 saved as a plain state_dict and in the
robustness layout."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torchvision
from PIL import Image

CLASSES = [("n01", "tench", "tench, Tinca tinca", "fish", "a freshwater fish"),
           ("n02", "goldfish", "goldfish, Carassius auratus", "fish", "a small golden fish"),
           ("n03", "mug", "mug, coffee mug", "container", "a cup with a handle"),
           ("n04", "kite", "kite", "toy", "a toy flown on a string")]


def image_folder(root: Path, per_class: int = 12, side: int = 96, seed: int = 0) -> Path:
    """``root/<wnid>/<i>.JPEG``: per class a colour and a shape, plus noise, so a model can tell them apart."""
    rng = np.random.default_rng(seed)
    for c, (wnid, *_rest) in enumerate(CLASSES):
        (root / wnid).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = rng.integers(0, 80, (side, side + 16 * (i % 3), 3)).astype(np.uint8)
            image[10 + 5 * c: 40 + 5 * c, 20:60, c % 3] = 230
            Image.fromarray(image).save(root / wnid / f"{i}.JPEG", quality=90)
    return root


def metadata_csv(path: Path) -> Path:
    """A plain metadata CSV: index, folder, name, synonyms, supercategory, definition (the platform's one CSV
    writer, :func:`analysis.exports.table_to_safe_csv`)."""
    import pandas as pd

    from analysis.exports import table_to_safe_csv

    rows = [[i, wnid, name, synonyms, supercategory, definition]
            for i, (wnid, name, synonyms, supercategory, definition) in enumerate(CLASSES)]
    table = pd.DataFrame(rows, columns=["index", "folder", "name", "synonyms", "supercategory", "definition"])
    path.write_text(table_to_safe_csv(table), newline="")
    return path


def resnet18_checkpoints(directory: Path, num_classes: int = len(CLASSES), seed: int = 0) -> dict[str, Path]:
    """The same random ResNet-18 as ``plain.pt`` (a state_dict) and ``robust.pt`` (robustness layout)."""
    torch.manual_seed(seed)
    model = torchvision.models.resnet18(num_classes=num_classes)
    state = model.state_dict()
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(state, directory / "plain.pt")
    robust = OrderedDict()
    for key, value in state.items():
        robust[f"module.model.{key}"] = value
        robust[f"module.attacker.model.{key}"] = value
    robust["module.normalizer.new_mean"] = torch.tensor([0.5, 0.5, 0.5]).reshape(3, 1, 1)
    robust["module.normalizer.new_std"] = torch.tensor([0.25, 0.25, 0.25]).reshape(3, 1, 1)
    robust["module.attacker.normalize.new_mean"] = robust["module.normalizer.new_mean"]
    robust["module.attacker.normalize.new_std"] = robust["module.normalizer.new_std"]
    torch.save({"model": robust, "epoch": 1}, directory / "robust.pt")
    return {"plain": directory / "plain.pt", "robust": directory / "robust.pt"}
