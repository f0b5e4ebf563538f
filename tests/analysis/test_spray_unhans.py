"""Un-Hans as Anders et al. §3.3 (issue 18 item 5): subsets A and B, fine-tuning, Table 2, heatmaps."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.spray.unhans import finetune, nearest_by_confusion, random_classes, unhans_table2, with_artifact

SIDE, CLASSES, CORNER = 16, 6, (slice(0, 4), slice(0, 4))


def _corner_artifact() -> tuple[np.ndarray, torch.Tensor]:
    """(mask, patch) of the white corner the Clever-Hans data carries."""
    mask = np.zeros((SIDE, SIDE), bool)
    mask[CORNER] = True
    patch = torch.zeros(3, SIDE, SIDE)
    patch[:, mask] = 1.0
    return mask, patch


def _data(per_class: int, seed: int, corner_on_class0: bool) -> tuple[torch.Tensor, np.ndarray]:
    """A faint blob at a class-specific spot on noise; class 0 also carries a bright corner (the artifact)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE]
    spots = [(4, 8), (8, 4), (8, 12), (12, 8), (11, 11), (5, 12)]
    images, labels = [], []
    for c in range(CLASSES):
        for _ in range(per_class):
            cy, cx = np.add(spots[c], rng.uniform(-1, 1, 2))
            image = 0.3 * rng.random((3, SIDE, SIDE)) + 0.25 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 4.0)
            if c == 0 and corner_on_class0:
                image[:, CORNER[0], CORNER[1]] = 1.0
            images.append(image)
            labels.append(c)
    return torch.tensor(np.clip(images, 0, 1), dtype=torch.float32), np.asarray(labels)


@pytest.fixture(scope="module")
def clever_hans():
    """A small ResNet trained where every class-0 image has the corner: it reads the corner."""
    from analysis.models.demo_resnet import SmallResNet
    from analysis.models.handle import ModelHandle

    torch.manual_seed(0)
    start = ModelHandle(SmallResNet(num_classes=CLASSES, width=4), mean=[0.3] * 3, std=[0.2] * 3, input_size=SIDE)
    images, labels = _data(30, 0, corner_on_class0=True)
    return finetune(start, images, labels, epochs=8, lr=0.05, batch_size=32)


def test_subset_a_and_b_building_blocks():
    confusion = np.array([[50, 1, 9, 0, 3], [2, 40, 0, 0, 0], [6, 0, 44, 0, 0], [0, 0, 0, 50, 0], [4, 0, 0, 1, 45]])
    # Class 0 is confused with 2 (9 + 6), then 4 (3 + 4), then 1 (1 + 2); 3 never.
    assert nearest_by_confusion(confusion, 0, 3) == [0, 2, 4, 1]
    assert nearest_by_confusion(confusion, 3, 0) == [3]
    with pytest.raises(ValueError, match="n must"):
        nearest_by_confusion(confusion, 0, 5)
    # The paper's subset A: the class and four others drawn at random (seeded).
    drawn = random_classes(10, 3, 4, seed=1)
    assert drawn[0] == 3 and len(set(drawn)) == 5 and drawn[1:] == sorted(drawn[1:]) and max(drawn) < 10
    assert random_classes(10, 3, 4, seed=1) == drawn and random_classes(10, 3, 4, seed=2) != drawn
    with pytest.raises(ValueError, match="n must"):
        random_classes(5, 0, 5)
    images, _ = _data(2, 1, corner_on_class0=False)
    mask, patch = _corner_artifact()
    carries = np.zeros(len(images), bool)
    carries[0] = True
    out = with_artifact(images, patch, mask, carries)
    assert torch.equal(out[0], images[0])  # already carries it: untouched
    assert (out[1:, :, mask] == 1.0).all() and torch.equal(out[:, :, ~mask], images[:, :, ~mask])
    with pytest.raises(ValueError, match="carries"):
        with_artifact(images, patch, mask, carries[:3])


def test_table2_subset_b_unlearns_the_artifact(clever_hans):
    train_x, train_y = _data(30, 2, corner_on_class0=True)
    val_x, val_y = _data(15, 3, corner_on_class0=False)
    mask, patch = _corner_artifact()
    seen = []
    report = unhans_table2(clever_hans, train_x, train_y, val_x, val_y, 0, patch, mask, carries=train_y == 0,
                           n_nearest=4, epochs=3, lr=0.02, batch_size=32, snapshot_epochs=(1, 3),
                           progress=lambda done, total, msg: seen.append((done, total)))
    rows = {r["model"]: r for r in report["table"]}
    print("Table 2:", report["table"], "classes", report["classes"])
    assert report["classes"][0] == 0 and len(report["classes"]) == 5 and len(set(report["classes"])) == 5
    assert report["train_images"] == 5 * 30
    # The trained model reads the corner: pasting it onto every validation image costs accuracy ...
    assert rows["trained"]["artifact_accuracy"] < rows["trained"]["clean_accuracy"] - 0.2
    # ... and so does model A (its subset keeps the artifact on class 0 only), not model B.
    assert rows["A"]["artifact_accuracy"] < rows["A"]["clean_accuracy"] - 0.2
    assert rows["B"]["artifact_accuracy"] > rows["A"]["artifact_accuracy"] + 0.2
    assert rows["B"]["clean_accuracy"] > 0.5
    assert sorted(report["heatmaps"]) == ["A", "B"]
    for maps in report["heatmaps"].values():
        assert sorted(maps) == [1, 3] and all(m.shape == (SIDE, SIDE) and np.isfinite(m).all() for m in maps.values())
    assert val_y[report["sample"]] == 0
    assert seen[-1] == (6, 6)


def test_table2_on_given_classes_and_a_per_class_limit(clever_hans):
    """The kind picks A's classes beforehand (to load only their images) and caps A's size per class."""
    train_x, train_y = _data(12, 4, corner_on_class0=True)
    val_x, val_y = _data(4, 5, corner_on_class0=False)
    mask, patch = _corner_artifact()
    report = unhans_table2(clever_hans, train_x, train_y, val_x, val_y, 0, patch, mask, carries=train_y == 0,
                           classes=[0, 3], train_per_class=5, epochs=1, snapshot_epochs=(1,), batch_size=8)
    assert report["classes"] == [0, 3] and report["train_images"] == 10 and report["val_images"] == 8
    assert report["carriers"] == 5  # the 5 class-0 images kept already carry the corner
    assert report["sample_heatmap"].shape == (SIDE, SIDE) and sorted(report["heatmaps"]["B"]) == [1]
    assert all(0 <= r["clean_accuracy"] <= 1 and 0 <= r["artifact_accuracy"] <= 1 for r in report["table"])
    with pytest.raises(ValueError, match="start with the artifact class"):
        unhans_table2(clever_hans, train_x, train_y, val_x, val_y, 0, patch, mask, classes=[3, 0], epochs=1)
    with pytest.raises(ValueError, match="train_per_class"):
        unhans_table2(clever_hans, train_x, train_y, val_x, val_y, 0, patch, mask, train_per_class=0, epochs=1)


def test_table2_scores_cue_free_and_cue_carrying_validation_apart(clever_hans):
    """The paper's clean validation set holds no artifact: carriers are left out of "clean" and scored alone."""
    from analysis.spray.unhans import subset_accuracy

    train_x, train_y = _data(12, 6, corner_on_class0=True)
    free_x, free_y = _data(6, 7, corner_on_class0=False)
    marked_x, marked_y = _data(6, 8, corner_on_class0=True)
    keep = torch.from_numpy(np.flatnonzero(marked_y == 0))
    val_x, val_y = torch.cat([free_x, marked_x[keep]]), np.r_[free_y, marked_y[keep.numpy()]]
    val_carries = np.r_[np.zeros(len(free_y), bool), np.ones(len(keep), bool)]
    mask, patch = _corner_artifact()
    classes = [0, 1, 2]
    report = unhans_table2(clever_hans, train_x, train_y, val_x, val_y, 0, patch, mask, carries=train_y == 0,
                           val_carries=val_carries, classes=classes, epochs=1, snapshot_epochs=(1,), batch_size=8)
    assert (report["val_clean_images"], report["val_carrying_images"]) == (18, 6)
    rows = {r["model"]: r for r in report["table"]}
    in_a = np.isin(free_y, classes)
    free = free_x[torch.from_numpy(np.flatnonzero(in_a))]
    assert rows["trained"]["clean_accuracy"] == subset_accuracy(clever_hans, free, free_y[in_a], classes)
    assert rows["trained"]["carrying_accuracy"] == subset_accuracy(clever_hans, marked_x[keep], [0] * 6, classes)
    # The trained model reads the corner: every carrier is right, and the clean score is not inflated by them.
    assert rows["trained"]["carrying_accuracy"] == 1.0
    assert rows["trained"]["clean_accuracy"] < rows["trained"]["carrying_accuracy"]
    with pytest.raises(ValueError, match="val_carries"):
        unhans_table2(clever_hans, train_x, train_y, val_x, val_y, 0, patch, mask, val_carries=val_carries[:3],
                      epochs=1)
    with pytest.raises(ValueError, match="no clean validation"):
        unhans_table2(clever_hans, train_x, train_y, marked_x[keep], [0] * 6, 0, patch, mask, classes=[0, 1],
                      val_carries=np.ones(6, bool), epochs=1)
