"""SpRAy issue 8, analysis side: artifact tests, figures, per-data-set SpRAy and un-Hans retraining."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from analysis.spray.artifacts import (
    artifact_effect,
    artifact_mask,
    artifact_patch,
    artifact_tests,
    mask_iou,
    paste_artifact,
    remove_artifact,
)
from analysis.spray.dataset import best_cluster, cluster_purity, display_k, spray_classes
from analysis.spray.pipeline import spray_class
from analysis.spray.plots import cluster_grid, eigenvalue_plot, grid_members, ranking_plot, umap_plot

SIDE = 16
CORNER = (slice(SIDE - 4, SIDE), slice(SIDE - 4, SIDE))


class CornerModel(nn.Module):
    """Class 1's logit reads the brightness of the bottom-right 4x4 corner, class 0's the centre."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(2, 3)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[0.0, 6.0], [12.0, 0.0], [0.0, 0.0]]))
            self.fc.bias.copy_(torch.tensor([0.0, -3.0, 1.0]))

    def forward(self, x):
        corner = x[:, :, SIDE - 4:, SIDE - 4:].mean(dim=(1, 2, 3))
        centre = x[:, :, 6:10, 6:10].mean(dim=(1, 2, 3))
        return self.fc(torch.stack([corner, centre], dim=1))


@pytest.fixture(scope="module")
def corner_handle():
    from analysis.models.handle import ModelHandle

    return ModelHandle(CornerModel(), mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), input_size=SIDE)


def _images(n: int, seed: int, corner: bool) -> torch.Tensor:
    """Dark noisy images; with ``corner`` a white 4x4 mark in the bottom-right corner."""
    g = torch.Generator().manual_seed(seed)
    x = 0.1 + 0.1 * torch.rand(n, 3, SIDE, SIDE, generator=g)
    if corner:
        x[:, :, CORNER[0], CORNER[1]] = 0.95 + 0.05 * torch.rand(n, 3, 4, 4, generator=g)
    return x


def _corner_relevance(n: int, seed: int = 0) -> np.ndarray:
    """Relevance maps with a strong corner blob, a weaker but larger top-left region and noise."""
    rng = np.random.default_rng(seed)
    maps = 0.02 * rng.standard_normal((n, SIDE, SIDE))
    maps[:, CORNER[0], CORNER[1]] += 1.0
    maps[:, 0:5, 0:6] += 0.25
    return maps


# -- mask, patch, paste, remove ----------------------------------------------------------------------
def test_artifact_mask_keeps_the_component_with_the_most_relevance():
    maps = _corner_relevance(20)
    mask = artifact_mask(maps, quantile=0.9)
    expected = np.zeros((SIDE, SIDE), bool)
    expected[CORNER] = True
    assert mask.dtype == bool and mask.shape == (SIDE, SIDE)
    assert mask.any() and not (mask & ~expected).any()  # only corner pixels
    assert mask.sum() >= 8
    # "area" keeps the larger (top-left) component instead, "all" both.
    area = artifact_mask(maps, quantile=0.8, keep="area")
    assert area[0:5, 0:6].any() and not area[CORNER].any()
    both = artifact_mask(maps, quantile=0.8, keep="all")
    assert both[CORNER].any() and both[0:5, 0:6].any()
    # Negative relevance does not create a mask there.
    negative = maps.copy()
    negative[:, 6:10, 6:10] = -50.0
    assert not artifact_mask(negative, 0.9)[6:10, 6:10].any()


@pytest.mark.parametrize("bad, message", [
    (np.zeros((0, 4, 4)), "non-empty"), (np.ones((4, 4)), "non-empty"), (-np.ones((3, 4, 4)), "positive"),
])
def test_artifact_mask_rejects_bad_input(bad, message):
    with pytest.raises(ValueError, match=message):
        artifact_mask(bad)
    with pytest.raises(ValueError, match="quantile"):
        artifact_mask(np.ones((2, 4, 4)), quantile=1.0)


def test_patch_paste_and_remove():
    mask = np.zeros((SIDE, SIDE), bool)
    mask[CORNER] = True
    marked = _images(9, seed=1, corner=True)
    patch = artifact_patch(marked, mask)
    assert patch.shape == (3, SIDE, SIDE)
    assert (patch[:, mask] > 0.94).all() and (patch[:, ~mask] == 0).all()

    clean = _images(4, seed=2, corner=False)
    pasted = paste_artifact(clean, patch, mask)
    assert torch.equal(pasted[:, :, ~torch.from_numpy(mask)], clean[:, :, ~torch.from_numpy(mask)])
    assert torch.equal(pasted[:, :, torch.from_numpy(mask)], patch[:, mask].expand(4, -1, -1))

    for method in ("inpaint", "blur"):
        removed = remove_artifact(marked, mask, method=method)
        assert removed.shape == marked.shape and removed.min() >= 0 and removed.max() <= 1
        outside = ~torch.from_numpy(mask)
        assert torch.equal(removed[:, :, outside], marked[:, :, outside])
        assert removed[:, :, torch.from_numpy(mask)].mean() < marked[:, :, torch.from_numpy(mask)].mean() - 0.2
    # Inpainting from dark surroundings gives dark pixels again.
    assert remove_artifact(marked, mask)[:, :, torch.from_numpy(mask)].max() < 0.4
    with pytest.raises(ValueError, match="method"):
        remove_artifact(marked, mask, method="crop")
    with pytest.raises(ValueError, match="empty"):
        paste_artifact(clean, patch, np.zeros((SIDE, SIDE), bool))
    with pytest.raises(ValueError, match="does not fit"):
        paste_artifact(clean, patch, np.ones((8, 8), bool))


# -- measured effects ------------------------------------------------------------------------------
def test_artifact_effect_on_a_model_that_reads_the_corner(corner_handle):
    clean = _images(30, seed=3, corner=False)
    marked = _images(30, seed=3, corner=True)
    effect = artifact_effect(corner_handle, clean, marked, target_class=1)
    assert effect["n"] == 30
    assert effect["prob_after"] > 0.9 > 0.1 > effect["prob_before"]
    assert effect["delta_prob"] == pytest.approx(effect["prob_after"] - effect["prob_before"])
    assert effect["rank_after"] == 1.0 and effect["rank_before"] >= 2.0
    # Signed as the paper's tables: positive = toward the class.
    assert effect["delta_rank"] == pytest.approx(effect["rank_before"] - effect["rank_after"])
    assert effect["delta_rank"] > 0
    assert effect["predicted_before"] == 0.0 and effect["predicted_after"] == 1.0
    # Nothing changes: no effect.
    same = artifact_effect(corner_handle, clean, clean, target_class=1)
    assert same["delta_prob"] == 0 and same["delta_rank"] == 0
    with pytest.raises(ValueError, match="target_class"):
        artifact_effect(corner_handle, clean, clean, target_class=3)
    with pytest.raises(ValueError, match="differ"):
        artifact_effect(corner_handle, clean, clean[:3], target_class=1)


def test_artifact_tests_paste_pulls_and_removal_pushes(corner_handle):
    # Class 1 carries the corner mark (its relevance sits there); classes 0 and 2 do not.
    images = torch.cat([_images(20, 4, corner=False), _images(20, 5, corner=True), _images(20, 6, corner=False)])
    labels = np.repeat([0, 1, 2], 20)
    mask = artifact_mask(_corner_relevance(20), quantile=0.9)
    patch = artifact_patch(images[20:40], mask)
    result = artifact_tests(corner_handle, images, labels, 1, mask, patch, max_images=25)
    paste, remove = result["paste"], result["remove"]
    assert paste["n"] == 25 and remove["n"] == 20
    assert paste["delta_prob"] > 0.5 and paste["delta_rank"] > 0.9 and paste["predicted_after"] > 0.9
    assert remove["delta_prob"] < -0.5 and remove["delta_rank"] < -0.9 and remove["predicted_after"] < 0.1
    blurred = artifact_tests(corner_handle, images, labels, 1, mask, patch, method="blur")["remove"]
    assert blurred["delta_prob"] < 0
    # A class without other images: no paste test.
    only = artifact_tests(corner_handle, images[20:40], labels[20:40], 1, mask, patch)
    assert only["paste"] is None and only["remove"]["n"] == 20
    with pytest.raises(ValueError, match="labels"):
        artifact_tests(corner_handle, images, labels[:5], 1, mask, patch)


def test_mask_iou():
    a, b = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    a[:2, :2], b[:2, :3] = True, True
    assert mask_iou(a, b) == pytest.approx(4 / 6) and mask_iou(a, a) == 1.0 and mask_iou(a, ~a) == 0.0
    with pytest.raises(ValueError, match="empty"):
        mask_iou(np.zeros((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="shapes"):
        mask_iou(a, b[:3])


def test_paste_images_are_drawn_at_random_from_the_other_classes(corner_handle, monkeypatch):
    """Anders et al. §3.2: the paste test's images are drawn at random (seeded) from all other classes."""
    import analysis.spray.artifacts as artifacts

    images = torch.cat([_images(20, 4, corner=False), _images(20, 5, corner=True), _images(20, 6, corner=False)])
    labels = np.repeat([0, 1, 2], 20)
    mask = artifact_mask(_corner_relevance(20), quantile=0.9)
    patch = artifact_patch(images[20:40], mask)
    seen = []
    real = artifacts.artifact_effect
    monkeypatch.setattr(artifacts, "artifact_effect",
                        lambda handle, before, after, cls: seen.append(before) or real(handle, before, after, cls))

    def pasted_classes(seed):
        seen.clear()
        artifact_tests(corner_handle, images, labels, 1, mask, patch, max_images=20, seed=seed)
        rows = [int(torch.nonzero((images == b).flatten(1).all(dim=1))[0]) for b in seen[0]]
        return rows, np.bincount(labels[rows], minlength=3)

    rows, counts = pasted_classes(0)
    assert len(rows) == 20 and counts[1] == 0 and min(counts[0], counts[2]) >= 5  # not the first 20 (all class 0)
    assert pasted_classes(0)[0] == rows and pasted_classes(1)[0] != rows


def test_removal_inpaints_only_the_affected_images(corner_handle):
    """Half of class 1 carries the mark: removal on the carriers only, not diluted by the clean half."""
    images = torch.cat([_images(20, 7, corner=False), _images(10, 8, corner=True), _images(10, 9, corner=False)])
    labels = np.repeat([0, 1], [20, 20])
    affected = np.r_[np.zeros(20, bool), np.ones(10, bool), np.zeros(10, bool)]
    mask = artifact_mask(_corner_relevance(10), quantile=0.9)
    patch = artifact_patch(images[20:30], mask)
    targeted = artifact_tests(corner_handle, images, labels, 1, mask, patch, affected=affected)["remove"]
    whole = artifact_tests(corner_handle, images, labels, 1, mask, patch)["remove"]
    assert targeted["n"] == 10 and whole["n"] == 20
    assert targeted["predicted_before"] == 1.0 and targeted["predicted_after"] < 0.1
    assert targeted["delta_prob"] < whole["delta_prob"] < 0 and targeted["delta_rank"] < whole["delta_rank"] < 0
    with pytest.raises(ValueError, match="affected"):
        artifact_tests(corner_handle, images, labels, 1, mask, patch, affected=affected[:5])


# -- reading clusterings --------------------------------------------------------------------------
def test_cluster_purity_best_cluster_and_display_k():
    labels = np.array([0] * 10 + [1] * 10 + [2] * 3)
    flags = np.array([True] * 4 + [False] * 6 + [True] * 9 + [False] + [True] * 3)
    assert cluster_purity(labels, flags) == (1, 0.9, 10)  # cluster 2 is pure but has only 3 images
    assert cluster_purity(labels, flags, min_size=3) == (2, 1.0, 3)
    with pytest.raises(ValueError, match="at least 11"):
        cluster_purity(labels, flags, min_size=11)
    with pytest.raises(ValueError, match="flags"):
        cluster_purity(labels, flags[:5])

    # Three well-separated groups of heatmaps: the eigengap rule picks k = 3, and the purest
    # cluster of the flagged group is found.
    rng = np.random.default_rng(0)
    maps = np.zeros((45, SIDE, SIDE))
    for i, (y, x) in enumerate([(2, 2), (2, 13), (13, 7)]):
        maps[15 * i:15 * (i + 1), y - 1:y + 2, x - 1:x + 2] = 1.0
    maps += 0.01 * rng.random(maps.shape)
    # 45 maps: the first-k eigenvectors (in the 32-d default most columns are noise modes here).
    result = spray_class(maps, size=SIDE, ks=range(2, 8), umap=False, agglomerative=False, space="per_k")
    assert display_k(result) == 3
    flags = np.repeat([False, True, False], 15)
    k, cluster, purity, size = best_cluster(result, flags, ks=range(2, 6))
    # Ties go to the smaller k: the first k whose clustering holds the flagged group as one cluster (k = 2 can,
    # depending on the basis eigsh picks in the 3-fold eigenvalue 1).
    exact = [k_ for k_ in range(2, 6) if any(np.array_equal(result.labels[k_] == c, flags) for c in range(k_))]
    assert purity == 1.0 and size == 15 and k == exact[0]
    assert np.all(flags[result.labels[k] == cluster])


# -- figures --------------------------------------------------------------------------------------
def _decode(png: bytes) -> Image.Image:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def test_plots_are_pngs_of_sensible_size():
    rng = np.random.default_rng(0)
    eig = _decode(eigenvalue_plot(np.sort(rng.random(32)), title="Coat"))
    assert eig.size == (500, 320)
    coords = rng.standard_normal((60, 2))
    labels = np.repeat([0, 1, 2], 20)
    umap_png = _decode(umap_plot(coords, labels, title="UMAP"))
    assert umap_png.size == (550, 450)
    assert len(np.unique(np.asarray(umap_png.convert("RGB")).reshape(-1, 3), axis=0)) > 20  # not blank

    images = rng.integers(0, 256, (60, 24, 24, 3), dtype=np.uint8)
    relevance = rng.standard_normal((60, 24, 24))
    grid3 = _decode(cluster_grid(images, relevance, labels, per_cluster=6, title="Coat, k=3"))
    grid5 = _decode(cluster_grid(images, relevance, np.arange(60) % 5, per_cluster=4))
    assert grid3.size[0] == 900 and grid3.size[1] == round(100 * (1.3 * 3 + 0.5))
    assert grid5.size == (round(100 * (1.3 * 4 + 1.2)), round(100 * (1.3 * 5 + 0.1)))
    bars = _decode(ranking_plot([(4, 3.0), (2, 2.0), (0, 0.5)], ["T-shirt", "x", "Pullover", "y", "Coat"]))
    assert bars.size == (550, round(100 * (0.35 * 3 + 1.2)))
    with pytest.raises(ValueError):
        umap_plot(coords, labels[:10])
    with pytest.raises(ValueError):
        cluster_grid(images.astype(np.float32), relevance, labels)
    # Only the shown members' images (a class at scale): the same picture; a member missing is named.
    many = np.arange(60) % 5
    shown = grid_members(many, per_cluster=4)
    assert len(shown) == 20 and set(np.bincount(many[shown])) == {4}
    whole = cluster_grid(images, relevance, many, per_cluster=4)
    assert cluster_grid(images[shown], relevance[shown], many, per_cluster=4, members=shown) == whole
    with pytest.raises(ValueError, match="were not given"):
        cluster_grid(images[shown[1:]], relevance[shown[1:]], many, per_cluster=4, members=shown[1:])
    with pytest.raises(ValueError):
        ranking_plot([])


# -- the tiny benchmark -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(benchmark_dir):
    from analysis.salient.benchmark_inputs import benchmark_inputs
    from tests.conftest import TINY_BENCHMARK, TINY_TRAINING

    return benchmark_inputs(benchmark_dir, benchmark=TINY_BENCHMARK, training=TINY_TRAINING, flavours=("standard",))


@pytest.mark.slow
def test_spray_classes_on_the_tiny_benchmark(tiny):
    from analysis.spray.lrp import relevance

    bench, handles, _ = tiny
    images, labels = bench.split("train").tensors()
    calls = []
    spray = spray_classes(handles["standard"], images, labels, per_class=30, size=16, ks=range(2, 8),
                          umap=False, agglomerative=False, progress=lambda d, t, m: calls.append((d, t, m)))
    assert sorted(spray.classes) == [0, 1, 2, 3] and sorted(c for c, _ in spray.ranking) == [0, 1, 2, 3]
    taus = [t for _, t in spray.ranking]
    assert taus == sorted(taus, reverse=True) and spray.rank_of(spray.ranking[0][0]) == 1
    assert [d for d, _, _ in calls] == list(range(1, 9)) and all(t == 8 for _, t, _ in calls)
    for cls, entry in spray.classes.items():
        assert entry.cls == cls and len(entry.indices) == 30
        assert np.array_equal(entry.indices, np.flatnonzero(labels.numpy() == cls)[:30])
        assert entry.relevance.shape == (30, 32, 32) and entry.relevance.dtype == np.float32
        assert entry.result.embedding.shape[0] == 30 and entry.result.tau == pytest.approx(dict(spray.ranking)[cls])
    # The stored maps are the channel sums of the true-class LRP relevance.
    idx = torch.from_numpy(spray[2].indices[:4])
    direct = relevance(handles["standard"], images[idx], labels[idx]).sum(dim=1).numpy()
    np.testing.assert_allclose(spray[2].relevance[:4], direct, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="no images"):
        spray_classes(handles["standard"], images, labels, classes=[7])
    with pytest.raises(ValueError, match="labels"):
        spray_classes(handles["standard"], images, labels[:5])


@pytest.mark.slow
def test_unhans_retrain_on_the_tiny_benchmark(tiny):
    from analysis.datasets.benchmark import BIAS_KINDS
    from analysis.spray.unhans import train_config_of, unhans_retrain

    bench, handles, paths = tiny
    train = bench.split("train")
    coat = bench.biased_labels()["watermark"]
    marked = np.flatnonzero((train.labels == coat) & (train.bias_kinds == BIAS_KINDS.index("watermark")))
    config = train_config_of(paths["standard"])
    assert config.width == 8 and config.epochs == 2

    # Excluding nothing retrains the very same model: the train-subset hook keeps training unchanged.
    same = unhans_retrain(bench, [], base_handle=handles["standard"], base_config=config, artifact_class=coat)
    assert same["excluded"] == 0 and same["train_images"] == len(train)
    for key, value in same["before"].items():
        assert same["after"][key] == pytest.approx(value, abs=1.5 / 80), key

    calls = []
    out = unhans_retrain(bench, marked, base_handle=handles["standard"], base_config=config,
                         progress=lambda d, t, m: calls.append(d))
    assert out["artifact_class"] == coat and out["class_name"] == "Coat"
    assert out["excluded"] == len(marked) > 0 and out["train_images"] == len(train) - len(marked)
    assert set(out["before"]) == set(out["after"]) == set(out["delta"]) == {
        "test_accuracy", "flipped_accuracy", "class_test_accuracy", "class_flipped_accuracy"}
    assert out["delta"]["flipped_accuracy"] == pytest.approx(
        out["after"]["flipped_accuracy"] - out["before"]["flipped_accuracy"])
    recorded = __import__("json").loads(paths["standard"].with_suffix(".metrics.json").read_text())
    assert out["before"]["test_accuracy"] == pytest.approx(recorded["test_accuracy"], abs=1.5 / 80)
    assert calls and out["model"].metrics["train_images"] == out["train_images"]
    with pytest.raises(ValueError, match="warm_start"):
        unhans_retrain(bench, marked, base_handle=handles["standard"], base_config=config,
                       train_config_overrides={"warm_start": True})
    with pytest.raises(ValueError, match="lie in"):
        unhans_retrain(bench, [len(train)], base_handle=handles["standard"], base_config=config)
