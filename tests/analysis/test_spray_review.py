"""SpRAy over splits (issue 18 item 6, Fig. 8): the pooled train + validation images, cue shares per
split, the UMAP with each split's marker; the un-Hans heatmap figures and epochs (item 5)."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from analysis.spray.benchmark_review import Pool, cue_share, gather
from analysis.spray.plots import SPLIT_MARKERS, heatmap_row, umap_figure, umap_plot
from analysis.spray.unhans import heatmap_epochs


class FakeSplit:
    """A split with the benchmark split's interface: image i is filled with the value ``offset + i``."""

    def __init__(self, labels, kinds, offset: int) -> None:
        self.labels = np.asarray(labels)
        self.bias_kinds = np.asarray(kinds)
        self.images = np.stack([np.full((4, 4, 3), offset + i, np.uint8) for i in range(len(labels))])

    def __len__(self) -> int:
        return len(self.labels)

    def tensors(self, indices):
        idx = np.asarray(indices)
        return (torch.from_numpy(self.images[idx]).permute(0, 3, 1, 2).float() / 255,
                torch.from_numpy(self.labels[idx]))


class FakeBench:
    def __init__(self) -> None:
        # train: classes 0,1,0,1,0,1 (the class-0 images at 0, 2, 4 carry the watermark, kind 1); test: 1,0,0,1
        self.splits = {"train": FakeSplit([0, 1, 0, 1, 0, 1], [1, -1, 1, -1, -1, -1], 0),
                       "test": FakeSplit([1, 0, 0, 1], [-1, 1, -1, -1], 100)}

    def split(self, name: str) -> FakeSplit:
        return self.splits[name]


def test_pool_of_two_splits_keeps_positions_and_order():
    bench = FakeBench()
    pool = Pool.of(bench, ["train", "test"], [0, 1], per_class=2)
    # The first 2 per class of each split, train first: train 0,1,2,3 then test 0,1,2,3.
    assert pool.splits == ("train", "test")
    assert pool.split_of.tolist() == [0, 0, 0, 0, 1, 1, 1, 1] and pool.index.tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    images, labels = pool.tensors(bench)
    assert labels.tolist() == [0, 1, 0, 1, 1, 0, 0, 1]
    assert (images[:, 0, 0, 0] * 255).round().tolist() == [0, 1, 2, 3, 100, 101, 102, 103]
    # Members per split, and a field at positions in any order comes back in that order.
    assert {k: v.tolist() for k, v in pool.members([6, 2, 5]).items()} == {"train": [2], "test": [2, 1]}
    assert pool.field(bench, [6, 2, 5, 0], "images")[:, 0, 0, 0].tolist() == [102, 2, 101, 0]
    assert pool.field(bench, [6, 2, 5, 0], "bias_kinds").tolist() == [-1, 1, 1, 1]
    # One split, every image of class 1.
    only = Pool.of(bench, ["train"], [1])
    assert only.index.tolist() == [1, 3, 5] and set(only.split_of.tolist()) == {0}


def test_cue_share_counts_members_of_both_splits():
    bench = FakeBench()
    share = cue_share(bench, {"train": np.array([0, 2, 4]), "test": np.array([1, 2])})
    # Watermark on train 0, 2 and test 1: 3 of 5.
    assert share == {"background": 0.0, "watermark": pytest.approx(0.6), "object": 0.0}
    assert cue_share(bench, {"train": np.array([0, 2]), "test": np.zeros(0, int)})["watermark"] == 1.0
    with pytest.raises(ValueError, match="no members"):
        gather(bench, {"train": np.zeros(0, int)}, "bias_kinds")


def test_umap_marks_each_split():
    rng = np.random.default_rng(0)
    coords, labels = rng.standard_normal((30, 2)), np.repeat([0, 1, 2], 10)
    splits = np.r_[np.zeros(20, int), np.ones(10, int)]
    fig = umap_figure(coords, labels, splits=splits)
    ax = fig.axes[0]
    markers = {c.get_paths()[0].vertices.shape for c in ax.collections}
    assert len(markers) == 2  # a dot and a triangle
    assert sum(len(c.get_offsets()) for c in ax.collections) == 30
    legend_texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend_texts == ["train (20)", "validation (10)"]
    plain = umap_figure(coords, labels)
    assert len({c.get_paths()[0].vertices.shape for c in plain.axes[0].collections}) == 1
    assert len(plain.axes[0].collections) == 3 and len(plain.axes[0].get_legend().get_texts()) == 3
    assert umap_plot(coords, labels, splits=splits)[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="split flags"):
        umap_figure(coords, labels, splits=splits[:5])
    with pytest.raises(ValueError, match="split flags"):
        umap_figure(coords, labels, splits=np.full(30, len(SPLIT_MARKERS)))


def test_heatmap_row_and_epochs():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    png = heatmap_row([("sample", image), ("A, epoch 1", rng.standard_normal((16, 16))),
                       ("B, epoch 1", rng.standard_normal((16, 16)))], "Coat")
    assert Image.open(io.BytesIO(png)).size == (round(100 * 1.7 * 3), round(100 * 2.3))
    with pytest.raises(ValueError, match="panel 'bad'"):
        heatmap_row([("bad", rng.standard_normal((16, 16, 2)))])
    with pytest.raises(ValueError):
        heatmap_row([])
    assert heatmap_epochs(10) == (1, 5, 10) and heatmap_epochs(12) == (1, 5, 10)
    assert heatmap_epochs(3) == (1, 3) and heatmap_epochs(1) == (1,) and heatmap_epochs(7) == (1, 5, 7)
    with pytest.raises(ValueError):
        heatmap_epochs(0)
