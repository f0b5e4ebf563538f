"""Class-metadata files, ImageFolder datasets and the dataset registry."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from analysis.datasets import (
    ClassInfo,
    ClassMetadataError,
    DatasetRegistry,
    MetadataImageFolder,
    UnknownDatasetError,
    read_class_metadata,
    write_class_metadata,
)


def test_csv_with_salient_imagenet_style_columns(tmp_path):
    path = tmp_path / "classes.csv"
    path.write_text("class_index,wnid,synset_name,definition\n"
                    "1,n01443537,goldfish,small golden or orange-red freshwater fishes\n"
                    "0,n01440764,tench,freshwater dace-like game fish\n")
    infos = read_class_metadata(path)
    assert infos == [ClassInfo(0, "tench", "n01440764", "freshwater dace-like game fish"),
                     ClassInfo(1, "goldfish", "n01443537", "small golden or orange-red freshwater fishes")]


def test_json_layouts(tmp_path):
    index_file = tmp_path / "imagenet_class_index.json"
    index_file.write_text(json.dumps({"0": ["n01440764", "tench"], "1": ["n01443537", "goldfish"]}))
    assert [c.folder for c in read_class_metadata(index_file)] == ["n01440764", "n01443537"]
    listed = tmp_path / "list.json"
    write_class_metadata(listed, [ClassInfo(0, "cat", "cats", "a cat"), ClassInfo(1, "dog", "dogs", "")])
    assert read_class_metadata(listed)[0] == ClassInfo(0, "cat", "cats", "a cat")
    csv_path = write_class_metadata(tmp_path / "x.csv", read_class_metadata(listed))
    assert read_class_metadata(csv_path) == read_class_metadata(listed)


@pytest.mark.parametrize("text", ["index,name\n0,a\n2,b\n", "index,name\n0,a\n0,b\n", "index,description\n0,x\n",
                                  "index,name\nx,a\n"])
def test_bad_metadata_is_rejected(tmp_path, text):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ClassMetadataError):
        read_class_metadata(path)


def _write_images(folder, colour, count=2):
    folder.mkdir(parents=True)
    for i in range(count):
        Image.fromarray(np.full((40, 50, 3), colour, np.uint8)).save(folder / f"{i}.png")


def test_image_folder_labels_follow_the_metadata(tmp_path):
    root = tmp_path / "images"
    _write_images(root / "zebra", 200)       # alphabetically last, metadata index 0
    _write_images(root / "apple", 50)        # metadata index 2
    _write_images(root / "unlisted", 10)
    metadata = [ClassInfo(0, "Zebra", "zebra"), ClassInfo(1, "Missing", "missing"), ClassInfo(2, "Apple", "apple")]
    dataset = MetadataImageFolder(root, metadata, image_size=32)
    assert len(dataset) == 4 and dataset.unlisted_folders == ["unlisted"]
    assert dataset.class_names == ["Zebra", "Missing", "Apple"]
    by_label = {}
    for image, label in dataset:
        assert image.shape == (3, 32, 32) and 0 <= image.min() and image.max() <= 1
        by_label[label] = float(image.mean())
    assert by_label[0] == pytest.approx(200 / 255, abs=1e-3) and by_label[2] == pytest.approx(50 / 255, abs=1e-3)


def test_registry():
    registry = DatasetRegistry()
    registry.register("toy", lambda n=3: list(range(n)), title="Toy data")
    assert registry.create("toy", n=2) == [0, 1] and registry.choices() == [("toy", "Toy data")]
    with pytest.raises(ValueError, match="already registered"):
        registry.register("toy", list)
    with pytest.raises(ValueError):
        registry.register("bad name!", list)
    with pytest.raises(UnknownDatasetError, match="registered: toy"):
        registry.create("nope")


def test_registry_image_folder(tmp_path):
    _write_images(tmp_path / "a", 0, 1)
    registry = DatasetRegistry()
    registry.register_image_folder("folder", tmp_path, image_size=16)
    dataset = registry.create("folder")
    assert dataset[0][0].shape == (3, 16, 16) and dataset.class_names == ["a"]
