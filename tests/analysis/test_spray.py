"""SpRAy analysis (issue 8): synthetic two-strategy heatmaps, preprocessing, distances, LRP on the demo model."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from analysis.spray.clustering import agglomerative_labels, cluster_space, kmeans_labels
from analysis.spray.distances import euclidean, gromov_wasserstein
from analysis.spray.embedding import knn_affinity, spectral_embedding
from analysis.spray.fisher import fisher_score
from analysis.spray.pipeline import rank_classes, spray_class
from analysis.spray.preprocess import preprocess


def _blob(side: int, cy: float, cx: float, sigma: float = 1.5) -> np.ndarray:
    yy, xx = np.mgrid[0:side, 0:side]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * sigma ** 2))


def _maps(centres, side: int = 16, seed: int = 0, noise: float = 0.05) -> np.ndarray:
    """(N, 3, side, side) relevance: a jittered blob at each centre plus noise, split over channels."""
    rng = np.random.default_rng(seed)
    maps = []
    for cy, cx in centres:
        m = _blob(side, cy + rng.uniform(-1, 1), cx + rng.uniform(-1, 1)) + noise * rng.random((side, side))
        maps.append(np.stack([0.5 * m, 0.3 * m, 0.2 * m]))
    return np.asarray(maps)


@pytest.fixture(scope="module")
def two_strategies():
    """30 heatmaps on the top-left, 30 on the bottom-right; labels 0/1."""
    centres = [(3, 3)] * 30 + [(12, 12)] * 30
    return _maps(centres, seed=1), np.repeat([0, 1], 30)


@pytest.fixture(scope="module")
def one_strategy():
    rng = np.random.default_rng(2)
    centres = [(7.5 + rng.uniform(-2, 2), 7.5 + rng.uniform(-2, 2)) for _ in range(60)]
    return _maps(centres, seed=3)


def _purity(labels: np.ndarray, truth: np.ndarray) -> float:
    return sum(np.bincount(truth[labels == c]).max() for c in np.unique(labels)) / len(truth)


def test_preprocess_shape_and_sum():
    maps = _maps([(3, 3), (12, 12), (8, 2)], side=40)
    flat = preprocess(maps, size=8)
    assert flat.shape == (3, 64)
    np.testing.assert_allclose(flat.sum(axis=1), 1.0)
    # The channel sum and pooling keep where the relevance is: the top-left map peaks top-left.
    assert np.unravel_index(flat[0].argmax(), (8, 8)) in {(0, 0), (0, 1), (1, 0), (1, 1)}
    # No shift by the minimum (issue 18 item 2): signed maps stay signed and a zero map stays zero.
    signed = _blob(16, 4, 4) - 0.5 * _blob(16, 12, 12)
    odd = preprocess(np.stack([np.zeros((16, 16)), signed, -_blob(16, 8, 8)]), size=4)
    np.testing.assert_allclose(odd[0], 0.0)
    assert odd[1].min() < 0 < odd[1].max() and odd[1].sum() == pytest.approx(1.0)
    assert (odd[2] <= 0).all() and np.abs(odd[2]).sum() == pytest.approx(1.0)  # total <= 0: scaled by |r|
    raw = preprocess(signed[None], size=4, normalize="none")
    np.testing.assert_allclose(odd[1:2], raw / raw.sum())
    with pytest.raises(ValueError, match="normalize"):
        preprocess(signed[None], normalize="max")


def test_fisher_score_is_eq7_unweighted():
    """One dimension: tau = S_b / S_w by hand, with S_b summed over clusters alike (Eq. 7) or size-weighted."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 1, 40), rng.normal(6, 0.5, 5)])[:, None]
    labels = np.repeat([0, 1], [40, 5])
    mu = x.mean()
    means = np.array([x[labels == c].mean() for c in (0, 1)])
    s_w = sum(((x[labels == c] - means[c]) ** 2).sum() for c in (0, 1))
    unweighted = ((means - mu) ** 2).sum() / s_w
    weighted = (np.array([40, 5]) * (means - mu) ** 2).sum() / s_w
    assert fisher_score(x, labels, reg=0) == pytest.approx(unweighted, rel=1e-9)
    assert fisher_score(x, labels, reg=0, weighted=True) == pytest.approx(weighted, rel=1e-9)
    assert unweighted != pytest.approx(weighted, rel=0.1)
    # No ridge by default (Anders et al. §2.3 invert S_w as it is): a tight 2-d set where a 1e-3 ridge
    # would halve the score along the thin direction.
    thin = np.c_[x[:, 0], np.r_[rng.normal(0, 1e-3, 40), rng.normal(1e-2, 1e-3, 5)]]
    assert fisher_score(thin, labels) == pytest.approx(fisher_score(thin, labels, reg=0), rel=1e-9)
    assert fisher_score(thin, labels) > 2 * fisher_score(thin, labels, reg=1e-3)
    # A singular S_w (a cluster of identical rows in a degenerate direction) still gives a finite score.
    flat = np.c_[x[:, 0], np.zeros(45)]
    assert np.isfinite(fisher_score(flat, labels))


def test_default_is_the_papers_space_and_full_resolution_is_offered(two_strategies):
    """Anders et al. §2.2-2.3 / CoRelAy: k-means for every k and tau on the same row-normalised Φ."""
    maps, _ = two_strategies
    result = spray_class(maps, size=16, umap=False, agglomerative=False, ks=[2, 3, 5])
    phi = cluster_space(result.embedding, 0, "embedding")
    np.testing.assert_allclose(np.linalg.norm(phi, axis=1), 1.0)
    for k, labels in result.labels.items():
        assert np.array_equal(labels, kmeans_labels(result.embedding, [k], space="embedding")[k])
        assert result.tau_per_k[k] == pytest.approx(fisher_score(phi, labels, reg=0), rel=1e-9)
    assert result.tau == pytest.approx(np.mean(list(result.tau_per_k.values())))
    # Full resolution (§2.1: "we omit the optional preprocessing"): the channel-summed maps as they are.
    raw = maps.sum(axis=1).reshape(len(maps), -1)
    np.testing.assert_allclose(preprocess(maps, None, normalize="none"), raw)
    full = spray_class(maps, size=None, normalize="none", umap=False, agglomerative=False, ks=[2])
    np.testing.assert_allclose(full.eigenvalues,
                               spectral_embedding(knn_affinity(euclidean(raw), 10), 32)[0], atol=1e-10)
    assert full.eigenvalues[:2] == pytest.approx([0, 0], abs=1e-8)  # the two strategies: two kNN components


def test_clustering_space_is_the_row_normalised_embedding():
    """Default: all eigenvectors; ``per_k``: the first k only (the former default)."""
    rng = np.random.default_rng(1)
    truth = np.repeat([0, 1], 20)
    noise = rng.normal(0, 1, (40, 2))
    informative = np.where(truth == 0, -3.0, 3.0)[:, None] + rng.normal(0, 0.1, (40, 1))
    embedding = np.hstack([noise, informative, rng.normal(0, 0.1, (40, 3))])
    assert _purity(kmeans_labels(embedding, [2])[2], truth) == 1.0
    assert _purity(agglomerative_labels(embedding, [2])[2], truth) == 1.0
    assert _purity(kmeans_labels(embedding, [2], space="per_k")[2], truth) < 0.9
    with pytest.raises(ValueError, match="space"):
        kmeans_labels(embedding, [2], space="pca")


def test_spectral_clustering_separates_two_strategies(two_strategies):
    maps, truth = two_strategies
    result = spray_class(maps, size=16, umap=True)
    # The default clusters all 32 row-normalised eigenvectors (the paper's and CoRelAy's space). With
    # 30 maps per strategy, 30 of them are within-strategy noise modes that swamp the two component
    # indicators, so k = 2 does not split the strategies there; the first-k eigenvectors do.
    per_k = spray_class(maps, size=16, umap=False, space="per_k")
    assert _purity(per_k.labels[2], truth) == 1.0
    assert _purity(per_k.agglomerative[2], truth) == 1.0
    np.testing.assert_allclose(per_k.eigenvalues, result.eigenvalues)
    # Two disconnected kNN components: two eigenvalues 1 - lambda at ~0, the third clearly above.
    assert result.eigenvalues.shape == (32,)
    assert result.eigenvalues[:2] == pytest.approx([0, 0], abs=1e-8)
    assert result.eigenvalues[2] > 1e-3
    assert np.all(np.diff(result.eigenvalues) >= -1e-10)
    assert result.embedding.shape == (60, 32)
    assert sorted(result.labels) == list(range(2, 31))
    assert result.umap.shape == (60, 2) and np.isfinite(result.umap).all()


def test_tau_ranks_two_strategy_class_first(two_strategies, one_strategy):
    maps, _ = two_strategies
    results = {
        "hans": spray_class(maps, size=16, umap=False, agglomerative=False),
        "honest": spray_class(one_strategy, size=16, umap=False, agglomerative=False),
    }
    assert results["hans"].tau > results["honest"].tau > 0
    assert [name for name, _ in rank_classes(results)] == ["hans", "honest"]
    per_k = {name: spray_class(m, size=16, umap=False, agglomerative=False, ks=[2], space="per_k")
             for name, m in (("hans", maps), ("honest", one_strategy))}
    assert per_k["hans"].tau_per_k[2] > per_k["honest"].tau_per_k[2]


def test_building_blocks_on_two_groups():
    points = np.concatenate([np.zeros((12, 2)), np.full((12, 2), 10.0)]) + np.random.default_rng(0).random((24, 2))
    affinity = knn_affinity(euclidean(points), k=10)
    dense = affinity.toarray()
    np.testing.assert_allclose(dense, dense.T)
    assert set(np.unique(dense)) <= {0.0, 0.5, 1.0}
    assert dense[:12, 12:].sum() == 0
    values, vectors = spectral_embedding(affinity, n_eigval=32)  # clipped to N = 24
    assert vectors.shape == (24, 24) and values.shape == (24,)
    truth = np.repeat([0, 1], 12)
    assert _purity(kmeans_labels(vectors, [2], space="per_k")[2], truth) == 1.0
    assert _purity(agglomerative_labels(vectors, [2], space="per_k")[2], truth) == 1.0
    assert fisher_score(points, truth) > 10 * fisher_score(points, np.tile([0, 1], 12))
    assert fisher_score(points, np.zeros(24, dtype=int)) == 0.0


def test_gromov_wasserstein_distances():
    side = 6
    flat = preprocess(np.stack([_blob(side, 1, 1, 0.8), _blob(side, 1, 1, 0.8),
                                _blob(side, 1, 1, 0.8) + _blob(side, 4, 4, 0.8)]), size=side)
    gw = gromov_wasserstein(flat)
    assert gw.shape == (3, 3)
    np.testing.assert_allclose(gw, gw.T)
    assert gw[0, 1] == pytest.approx(0.0, abs=1e-8)
    assert gw[0, 2] > 1e-3
    # The pipeline accepts the metric too (small n: GW is slow).
    result = spray_class(np.stack([_blob(side, 1, 1, 0.8)] * 3 + [_blob(side, 1, 1, 0.8) + _blob(side, 4, 4, 0.8)] * 3),
                         size=side, metric="gromov_wasserstein", n_neighbors=2, ks=[2], umap=False,
                         space="per_k")  # 6 maps: the full embedding is mostly degenerate noise modes
    assert _purity(result.labels[2], np.repeat([0, 1], 3)) == 1.0


@pytest.fixture
def demo_handle():
    from analysis.models.demo_resnet import SmallResNet
    from analysis.models.handle import ModelHandle

    torch.manual_seed(0)
    model = SmallResNet(num_classes=3, width=8)
    with torch.no_grad():
        model.fc.bias.zero_()  # no bias absorbs relevance: LRP must conserve the logit
    return ModelHandle(model, input_size=32)


def test_lrp_on_demo_resnet_conserves_logit(demo_handle):
    from analysis.spray.lrp import ResNetCanonizer, composite_for, relevance

    assert isinstance(composite_for(demo_handle.model).canonizers[0], ResNetCanonizer)
    images = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([0, 1, 2, 0, 1])
    rel = relevance(demo_handle, images, labels, batch_size=2)
    assert rel.shape == images.shape
    assert torch.isfinite(rel).all()
    with torch.no_grad():
        logits = demo_handle.logits(images)[torch.arange(5), labels]
    sums = rel.sum(dim=(1, 2, 3))
    assert torch.allclose(sums, logits, rtol=0.05, atol=1e-3), (sums, logits)
    assert (rel.abs().flatten(1).amax(dim=1) > 0).all()
    # Different images give different maps; the handle's model is left untouched.
    assert not torch.allclose(rel[0], rel[3])
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in demo_handle.model.modules())
    assert demo_handle.model.relu.inplace
    with torch.no_grad():
        assert torch.allclose(demo_handle.logits(images)[torch.arange(5), labels], logits)
    # LRP maps feed straight into SpRAy.
    flat = preprocess(rel, size=8)
    totals = flat.sum(axis=1)
    assert flat.shape == (5, 64) and np.allclose(totals[totals > 0], 1.0)
    assert np.allclose(np.abs(flat[totals <= 0]).sum(axis=1), 1.0)  # a negative logit: scaled by |relevance|


@pytest.mark.slow
def test_spray_on_tiny_benchmark_ranks_every_class(benchmark_dir):
    """LRP + SpRAy per class of the tiny planted-bias benchmark's demo model gives a ranking of all classes."""
    from analysis.salient.benchmark_inputs import benchmark_inputs
    from analysis.spray.lrp import relevance
    from tests.conftest import TINY_BENCHMARK, TINY_TRAINING

    bench, handles, _ = benchmark_inputs(benchmark_dir, benchmark=TINY_BENCHMARK, training=TINY_TRAINING,
                                         flavours=("standard",))
    images, labels = bench.split("train").tensors()
    handle = handles["standard"]
    results = {}
    for c in sorted(set(labels.tolist())):
        idx = torch.nonzero(labels == c).flatten()[:40]
        rel = relevance(handle, images[idx], labels[idx], batch_size=16)
        assert rel.shape == images[idx].shape and torch.isfinite(rel).all()
        results[c] = spray_class(rel.numpy(), size=16, ks=range(2, 8), umap=False, agglomerative=False)
        assert results[c].embedding.shape == (len(idx), 32)
    ranking = rank_classes(results)
    assert sorted(c for c, _ in ranking) == sorted(results)
    taus = [t for _, t in ranking]
    assert taus == sorted(taus, reverse=True) and all(np.isfinite(taus)) and taus[0] > 0


def test_canonizer_and_composite_by_architecture(demo_handle):
    from torch import nn
    from zennit.canonizers import SequentialMergeBatchNorm

    from analysis.models.handle import ModelHandle
    from analysis.spray.lrp import ResNetCanonizer, composite_for, relevance

    # The demo's own BasicBlock gets zennit's Sum module (the residual addition becomes hookable).
    model = demo_handle.model
    handles = ResNetCanonizer().apply(model)
    try:
        assert all(hasattr(block, "canonizer_sum") for name in ("layer1", "layer2", "layer3", "layer4")
                   for block in getattr(model, name))
    finally:
        for h in handles:
            h.remove()
    assert not hasattr(model.layer1[0], "canonizer_sum")

    # A VGG-style stack: EpsilonPlusFlat with batch-norm merging only; relevance still conserves the logit.
    torch.manual_seed(0)
    vgg = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(8, 3, bias=False))
    with torch.no_grad():
        vgg[0].bias.zero_()
    (canonizer,) = composite_for(vgg).canonizers
    assert type(canonizer) is SequentialMergeBatchNorm
    handle = ModelHandle(vgg, input_size=16)
    images = torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    labels = torch.tensor([0, 1, 2, 1])
    rel = relevance(handle, images, labels)
    with torch.no_grad():
        logits = handle.logits(images)[torch.arange(4), labels]
    assert rel.shape == images.shape
    assert torch.allclose(rel.sum(dim=(1, 2, 3)), logits, rtol=0.05, atol=1e-3)
