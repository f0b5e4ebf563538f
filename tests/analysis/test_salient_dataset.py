"""The Salient dataset and its noise analyses (§3.4, §5.1, Fig. 5/6) on hand-made sets and a model
whose answer is known: it is right only while the top half of the image is untouched."""
import io

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from analysis.models import ModelHandle, SmallResNet
from analysis.salient.dataset import FeatureSet, SalientDataset, build_salient_dataset
from analysis.salient.masks import salient_dataset_files
from analysis.salient.nam import neural_activation_maps, to_float_images
from analysis.salient.noise import class_noise_curves, core_spurious_table, feature_sensitivity, overall_curves
from analysis.salient.plots import plot_accuracy_drop, plot_class_curves, plot_core_spurious, plot_feature_sensitivity

SIZE = 8
TOP, BOTTOM = np.zeros((SIZE, SIZE), np.float32), np.zeros((SIZE, SIZE), np.float32)
TOP[: SIZE // 2] = 1.0
BOTTOM[SIZE // 2:-1] = 1.0  # the last row stays free of noise: it holds the image's index


class TopHalfModel:
    """Predicts the image's class (from ``classes``) while its top half is still grey, class 9 otherwise."""

    def __init__(self, classes: np.ndarray):
        self.classes = torch.as_tensor(classes)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        top = (x[:, :, : SIZE // 2] - 128 / 255).abs().flatten(1).amax(1)
        # images carry their index in the last pixel of the red channel, outside every mask
        index = (x[:, 0, -1, -1] * 255).round().long()
        return torch.where(top < 0.01, self.classes[index], torch.tensor(9))


def grey_images(n: int) -> np.ndarray:
    images = np.full((n, SIZE, SIZE, 3), 128, np.uint8)
    images[:, -1, -1, 0] = np.arange(n)
    return images


def fs(cls, feature, label, indices, masks):
    return FeatureSet(cls, feature, label, np.asarray(indices), np.stack(masks).astype(np.float32))


@pytest.fixture
def dataset():
    """Class 0: spurious feature 5 (top half) on images 0-3, core feature 7 (bottom half) on 2-5,
    spurious feature 8 on 3-4 (a weak mask). Class 1: core feature 7 only, images 6-8."""
    weak = TOP * 0.5
    return SalientDataset([
        fs(0, 5, "spurious", [0, 1, 2, 3], [TOP] * 4),
        fs(0, 7, "core", [2, 3, 4, 5], [BOTTOM] * 4),
        fs(0, 8, "spurious", [3, 4], [weak, weak]),
        fs(1, 7, "core", [6, 7, 8], [BOTTOM] * 3),
    ])


def test_regions_take_the_max_over_the_features_whose_set_holds_the_image(dataset):
    indices, masks = dataset.region(0, "spurious")
    assert list(indices) == [0, 1, 2, 3, 4]  # the union of the spurious sets, not the core-only image 5
    np.testing.assert_array_equal(masks[3], TOP)  # in both spurious sets: max(TOP, 0.5 TOP)
    np.testing.assert_array_equal(masks[4], TOP * 0.5)  # only in feature 8's set
    indices, masks = dataset.region(0, "core")
    assert list(indices) == [2, 3, 4, 5] and (masks == BOTTOM).all()
    assert dataset.classes("spurious") == [0] and dataset.classes("core") == [0, 1]
    with pytest.raises(ValueError, match="class 1 has no spurious feature"):
        dataset.region(1, "spurious")


def test_samples_keep_per_feature_masks_and_only_their_own_features(dataset):
    samples = {s.index: s for s in dataset.samples(["shirt", "coat"])}
    assert sorted(samples) == list(range(9))
    s0, s4, s6 = samples[0], samples[4], samples[6]
    assert s0.spurious_features == (5,) and s0.core_features == () and s0.core_mask.sum() == 0
    assert s4.spurious_features == (8,) and s4.core_features == (7,)
    np.testing.assert_array_equal(s4.spurious_mask, TOP * 0.5)
    assert sorted(s4.feature_masks) == [7, 8]
    assert s6.cls == 1 and s6.spurious_mask.sum() == 0 and s6.class_name == "coat"


def test_export_writes_per_feature_masks_and_index(dataset):
    samples = dataset.samples(["shirt", "coat"])
    images = grey_images(9)
    files = salient_dataset_files(samples, {s.index: images[s.index] for s in samples}, pd.DataFrame({"x": [1]}))
    rows = pd.read_csv(io.StringIO(files["feature_masks.csv"]))
    assert len(rows) == sum(len(s.feature_masks) for s in samples) == 4 + 4 + 2 + 3
    row = rows[(rows["sample"] == 4) & (rows["feature"] == 8)].iloc[0]
    assert row["label"] == "spurious"
    mask = np.asarray(Image.open(io.BytesIO(files[row["mask"]])))
    assert mask.max() == 128 and mask[SIZE - 1].max() == 0  # 0.5 on the top half, 0 below


def test_core_and_spurious_accuracy_use_their_own_sets_and_masks(dataset):
    images = grey_images(9)
    model = TopHalfModel(np.array([0] * 6 + [1] * 3))
    per_class = class_noise_curves(model, dataset, images, sigmas=(0.0, 0.25))
    core = per_class[per_class["measure"] == "core"]
    spurious = per_class[per_class["measure"] == "spurious"]
    assert sorted(core["class"].unique()) == [0]  # class 1 has no spurious feature: no core accuracy
    assert sorted(spurious["class"].unique()) == [0, 1]
    assert set(core["n"]) == {5} and set(spurious[spurious["class"] == 0]["n"]) == {4}
    at = core.set_index("sigma")
    assert at.loc[0.0, "accuracy"] == 1.0 and at.loc[0.25, "accuracy"] == 0.0  # noise on the top half
    assert (spurious["accuracy"] == 1.0).all()  # noise on the bottom half changes nothing
    overall = overall_curves(per_class)
    row = overall[(overall["measure"] == "spurious") & (overall["sigma"] == 0.25)].iloc[0]
    assert row["n"] == 7 and row["classes"] == 2 and row["drop"] == 0.0
    assert overall[(overall["measure"] == "core") & (overall["sigma"] == 0.25)]["drop"].iloc[0] == -1.0
    wide = core_spurious_table(overall)
    assert list(wide.columns) == ["sigma", "core_accuracy", "spurious_accuracy"] and len(wide) == 2


def test_single_feature_sensitivity_ranks_the_hurting_feature_first(dataset):
    images = grey_images(9)
    model = TopHalfModel(np.array([0] * 6 + [1] * 3))
    table = feature_sensitivity(model, dataset, images, sigma=0.25)
    assert list(table["rank"]) == [1, 2, 3, 4]
    first = table.iloc[0]
    assert (first["class"], first["feature"], first["drop"]) == (0, 5, 1.0)
    assert set(table[table["label"] == "core"]["drop"]) == {0.0}
    assert (table["drop"].diff().dropna() <= 0).all()


def test_build_salient_dataset_computes_each_sets_own_nams():
    torch.manual_seed(0)
    handle = ModelHandle(SmallResNet(num_classes=3, width=8), mean=(0.5,) * 3, std=(0.25,) * 3, input_size=32)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8)
    pools = {(0, 1): np.array([3, 1, 7]), (0, 4): np.array([7, 2]), (2, 1): np.array([5])}
    ds = build_salient_dataset(handle, images, {0: {1: "core", 4: "spurious"}, 2: {1: "spurious"}}, pools)
    assert [(s.cls, s.feature, s.label) for s in ds.sets] == [(0, 1, "core"), (0, 4, "spurious"), (2, 1, "spurious")]
    with torch.no_grad():
        expected = neural_activation_maps(handle.feature_maps(to_float_images(images[[7, 2]])), 4, (32, 32))
    np.testing.assert_allclose(ds.feature_set(0, 4).nams, expected.numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="no image set for class 2, feature 3"):
        build_salient_dataset(handle, images, {2: {3: "core"}}, pools)


def test_figures_are_pngs(dataset):
    images = grey_images(9)
    model = TopHalfModel(np.array([0] * 6 + [1] * 3))
    per_class = class_noise_curves(model, dataset, images, sigmas=(0.0, 0.1, 0.25))
    overall = {"robust": overall_curves(per_class)}
    names = ["shirt", "coat"]
    sensitivity = feature_sensitivity(model, dataset, images)
    for png in (plot_core_spurious({"robust": core_spurious_table(overall["robust"])}), plot_accuracy_drop(overall),
                plot_class_curves(per_class, names),
                plot_feature_sensitivity(sensitivity, names)):
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and Image.open(io.BytesIO(png)).size[0] > 300
