"""Salient ImageNet beyond the labels, on hand-made inputs: the statistics of §4 / Fig. 4, the reasons'
words (App. F), the drops at a matched mean perturbation σ* (App. L) and the export that the reference
code's ``inspection_utils.SalientImageNet`` reads."""
import ast
import io
import os
import zipfile
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torchvision import transforms

from analysis.exports import archive_bytes
from analysis.salient.label_stats import label_statistics
from analysis.salient.matched_noise import matched_drops, mean_perturbation, sigma_star
from analysis.salient.nam import to_float_images
from analysis.salient.noise import _image_noise, feature_sensitivity
from analysis.salient.reasons import top_words, view_mentions
from analysis.salient.reference_layout import class_folders, reference_layout_files
from tests.analysis.test_salient_dataset import TOP, TopHalfModel, dataset, grey_images  # noqa: F401


def labels_table(rows):
    return pd.DataFrame(rows, columns=["class", "class_name", "feature", "rank", "label"])


#: Three classes, three features each; feature 40 is spurious for a and b, 41 for a, b and c;
#: c's features are all spurious; one tie (empty label) is left out.
HAND = labels_table([
    (0, "a", 40, 1, "spurious"), (0, "a", 41, 2, "spurious"), (0, "a", 10, 3, "core"),
    (1, "b", 11, 1, "core"), (1, "b", 40, 2, "spurious"), (1, "b", 41, 3, "spurious"),
    (2, "c", 41, 1, "spurious"), (2, "c", 50, 2, "spurious"), (2, "c", 51, 3, ""),
    (3, "d", 12, 1, "core"), (3, "d", 13, 2, "core"), (3, "d", 14, 3, "core"),
])


def test_label_statistics_count_what_fig_4_plots():
    stats = label_statistics(HAND)
    per_class = stats["per_class"].set_index("class_name")
    assert per_class["spurious"].to_dict() == {"a": 2, "b": 2, "c": 2, "d": 0}
    assert per_class["features"].to_dict() == {"a": 3, "b": 3, "c": 2, "d": 3}  # the tie is not a label
    assert stats["counts"] == {"classes": 4, "features": 11, "core": 5, "spurious": 6, "classes_with_spurious": 3,
                               "all_spurious_classes": ["c"], "shared_features": 2}
    # Fig. 4(b): classes by their number of spurious features, 0 … 3
    assert stats["histogram"]["classes"].tolist() == [1, 0, 3, 0]
    # Fig. 4(c): per rank, labelled features and how many are spurious
    by_rank = stats["by_rank"].set_index("rank")
    assert by_rank["labelled"].tolist() == [4, 4, 3] and by_rank["spurious"].tolist() == [2, 3, 1]
    assert by_rank["spurious_share"].tolist() == pytest.approx([0.5, 0.75, 1 / 3])
    # Fig. 4(d): a and b share 40 and 41, a-c and b-c share 41; d has no spurious feature
    matrix = stats["shared_matrix"]
    assert list(matrix.index) == ["a", "b", "c"]
    assert matrix.to_numpy().tolist() == [[0, 2, 1], [2, 0, 1], [1, 1, 0]]
    assert stats["shared_list"].to_dict("records") == [
        {"feature": 41, "n_classes": 3, "classes": "0; 1; 2", "class_names": "a; b; c"},
        {"feature": 40, "n_classes": 2, "classes": "0; 1", "class_names": "a; b"}]
    with pytest.raises(ValueError, match="rank"):
        label_statistics(HAND.drop(columns="rank"))


def test_reason_words_leave_out_stop_words_and_count_the_views():
    reasons = pd.DataFrame({"answer": ["background", "background", "main_object"],
                            "reason": ["The focus is on the water behind it", "Water, water in the background",
                                       "Highlighted region is on the fish; the amplified one too"]})
    words = top_words(reasons, top=2)
    assert words[words["answer"] == "background"][["word", "count", "reasons"]].values.tolist() == [
        ["water", 3, 2], ["background", 1, 1]]
    assert "the" not in set(words["word"]) and "is" not in set(words["word"])
    assert words[words["answer"] == "main_object"]["word"].tolist() == ["amplified", "fish"]  # ties by word
    assert view_mentions(reasons["reason"]) == {"highlighted": 1, "amplified": 1}


def test_mean_perturbation_is_the_mean_norm_of_the_clamped_noise(dataset):  # noqa: F811
    images = grey_images(9)
    assert mean_perturbation(images, np.array([0, 1]), np.zeros((2, 8, 8), np.float32), 0.5) == 0.0
    x = to_float_images(images[[2]])
    z = _image_noise(tuple(x.shape[1:]), 2, 0.3, 0)
    expected = float(((x[0] + 0.3 * z * torch.from_numpy(TOP)).clamp(0, 1) - x[0]).norm())
    assert mean_perturbation(images, np.array([2]), TOP[None], 0.3) == pytest.approx(expected)
    assert sigma_star([1.0, 2.0, 3.0], 2.0, [0.25, 0.3, 0.35]) == (0.3, True)
    assert sigma_star([1.0, 1.5], 2.0, [0.25, 0.3]) == (0.3, False)


def test_matched_drops_raise_the_lower_features_sigma_until_its_perturbation_matches(dataset):  # noqa: F811
    """Class 0: core feature 7 (bottom rows, 24 pixels) against the spurious feature with the largest drop
    (5 and 8 both break the top-half model; 5 comes first). At σ = 0.25 the core region is perturbed less
    (fewer pixels): σ* is the first σ at which it reaches the spurious one's perturbation."""
    images, model = grey_images(9), TopHalfModel(np.array([0] * 6 + [1] * 3))
    sensitivity = feature_sensitivity(model, dataset, images)
    table = matched_drops(model, dataset, images, sensitivity)
    assert table[["class", "feature", "label"]].values.tolist() == [[0, 7, "core"], [0, 5, "spurious"]]
    core, spurious = table.to_dict("records")
    assert core["lower"] and not spurious["lower"] and core["matched"]
    assert core["mean_perturbation"] < spurious["mean_perturbation"]
    star = core["sigma_star"]
    assert star > 0.25 and star == spurious["sigma_star"]
    s_core, s_sp = dataset.feature_set(0, 7), dataset.feature_set(0, 5)
    target = mean_perturbation(images, s_sp.indices, s_sp.nams, 0.25)
    assert mean_perturbation(images, s_core.indices, s_core.nams, star) >= target
    assert mean_perturbation(images, s_core.indices, s_core.nams, round(star - 0.05, 2)) < target
    assert core["mean_perturbation_at_sigma_star"] >= spurious["mean_perturbation"]
    assert (core["drop"], core["drop_at_sigma_star"]) == (0.0, 0.0)  # noise below the top half: no harm
    assert (spurious["drop"], spurious["drop_at_sigma_star"]) == (1.0, 1.0)


class ReferenceSalientImageNet:
    """The reading code of the reference ``inspection_utils.SalientImageNet`` (singlasahil14/salient_imagenet,
    ``inspection_utils.py``: ``__init__`` and ``__getitem__``), re-implemented step by step without its
    ``torch.utils.data.Dataset`` base and its CUDA model code: ``wordnet_dict.py`` eval'd to find the class
    folder, ``image_names_map.csv`` read with pandas, one column per requested feature index, names
    de-duplicated with ``np.unique``; an image is ``images_path/train/<wnid>/<name>.JPEG`` through
    ``Resize(256), CenterCrop(224), ToTensor()``, its mask the ``np.maximum`` (from zeros of the image
    tensor's size) of ``masks_path/<wnid>/feature_<i>/<name>.JPEG`` / 255 over its features, as uint8,
    through the same transform."""

    def __init__(self, images_path, masks_path, class_index, feature_indices, resize_size=256, crop_size=224):
        self.transform = transforms.Compose([transforms.Resize(resize_size), transforms.CenterCrop(crop_size),
                                             transforms.ToTensor()])
        with open(os.path.join(masks_path, "wordnet_dict.py")) as handle:
            wordnet_id = ast.literal_eval(handle.read())[class_index]  # the reference: eval(...)
        self.images_path = os.path.join(images_path, "train", wordnet_id)
        self.masks_path = os.path.join(masks_path, wordnet_id)
        frame = pd.read_csv(os.path.join(self.masks_path, "image_names_map.csv"))
        names, features = [], defaultdict(list)
        for feature_index in feature_indices:
            for name in frame[str(feature_index)].to_numpy():
                names.append(name)
                features[name].append(feature_index)
        self.image_names = np.unique(np.array(names))
        self.feature_indices_dict = features

    def __len__(self):
        return len(self.image_names)

    def __getitem__(self, index):
        name = self.image_names[index]
        image = Image.open(os.path.join(self.images_path, name + ".JPEG")).convert("RGB")
        image_tensor = self.transform(image)
        all_mask = np.zeros(image_tensor.shape[1:])
        for feature_index in self.feature_indices_dict[name]:
            mask = np.asarray(Image.open(os.path.join(self.masks_path, f"feature_{feature_index}", name + ".JPEG")))
            all_mask = np.maximum(all_mask, mask / 255.0)
        return image_tensor, self.transform(Image.fromarray(np.uint8(all_mask * 255)))


def smooth_images(n: int, size: int = 8) -> np.ndarray:
    """Images that survive JPEG: a per-image colour with a gentle gradient."""
    ramp = np.linspace(0, 60, size)[None, :, None]
    return np.stack([np.broadcast_to(40 + 20 * i + ramp, (size, size, 3)) for i in range(n)]).astype(np.uint8)


def test_the_reference_class_loads_the_export_unchanged(dataset, tmp_path):  # noqa: F811
    images = smooth_images(9)
    names = ["n01440764", "T-shirt/top"]
    root = tmp_path / "salient_imagenet"
    with zipfile.ZipFile(io.BytesIO(archive_bytes(reference_layout_files(dataset, images, names)))) as archive:
        archive.extractall(root)
    assert class_folders(names) == ["n01440764", "T-shirt_top"]
    reference = ReferenceSalientImageNet(str(root), str(root), 0, [5, 8])
    assert list(reference.image_names) == [f"n01440764_{i}" for i in range(5)]  # D(0, 5) ∪ D(0, 8)
    resize = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor()])
    weak = TOP * 0.5
    expected_masks = {0: TOP, 1: TOP, 2: TOP, 3: np.maximum(TOP, weak), 4: weak}
    for index in range(5):  # the names sort as the indices here
        image, mask = reference[index]
        assert image.shape == (3, 224, 224) and mask.shape == (1, 224, 224)
        want = resize(Image.fromarray(images[index]).resize((224, 224), Image.BILINEAR))
        assert (image - want).abs().mean() < 0.01
        want_mask = resize(Image.fromarray(np.uint8(expected_masks[index] * 255)).resize((224, 224),
                                                                                         Image.BILINEAR))
        assert (mask - want_mask).abs().mean() < 0.02
    # the top half of image 4 carries the weak mask (≈ 0.5), its bottom nothing
    assert mask[0, 20:80].mean() == pytest.approx(0.5, abs=0.03) and mask[0, 150:].max() < 0.05
    core = ReferenceSalientImageNet(str(root), str(root), 1, [7])
    assert len(core) == 3 and (root / "train" / "T-shirt_top" / "T-shirt_top_6.JPEG").exists()
    assert ast.literal_eval((root / "wordnet_dict.py").read_text()) == {0: "n01440764", 1: "T-shirt_top"}
    # every requested feature has a column of one length: D(0, 8) has 2 images, padded by its last name
    frame = pd.read_csv(root / "n01440764" / "image_names_map.csv")
    assert list(frame.columns) == ["5", "7", "8"]
    assert frame["8"].tolist() == ["n01440764_3", "n01440764_4", "n01440764_4", "n01440764_4"]
