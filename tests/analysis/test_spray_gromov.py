"""Batched Gromov-Wasserstein (issue 18, item 7): POT's values, point sets, pruning, SpRAy clusters."""
from __future__ import annotations

import numpy as np
import ot
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from analysis.spray.distances import gromov_wasserstein
from analysis.spray.gromov import all_pairs, candidate_pairs, distance_quantiles, grid_distances, gw_pairs, point_sets
from analysis.spray.pipeline import spray_class
from analysis.spray.preprocess import mass_support


def _random_maps(n: int, side: int, seed: int) -> np.ndarray:
    """Flat maps of one or two gaussian blobs of random position and width, plus signed noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]
    maps = []
    for _ in range(n):
        m = np.zeros((side, side))
        for _ in range(rng.integers(1, 3)):
            cy, cx = rng.uniform(0, side, 2)
            s = rng.uniform(0.1, 0.25) * side
            m += rng.uniform(0.5, 1) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))
        maps.append((m + 0.05 * rng.standard_normal((side, side))).ravel())
    return np.asarray(maps)


def _pot(weights: np.ndarray, cost: np.ndarray, i: int, j: int, **kw) -> float:
    si, sj = weights[i] > 0, weights[j] > 0
    fn = ot.gromov.entropic_gromov_wasserstein2 if "epsilon" in kw else ot.gromov.gromov_wasserstein2
    return float(fn(cost[np.ix_(si, si)], cost[np.ix_(sj, sj)], weights[i, si], weights[j, sj],
                    loss_fun="square_loss", **kw))


def test_mass_support_takes_largest_pixels_up_to_the_share():
    w = np.array([[0.5, 0.3, 0.15, 0.05, -1.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    keep = mass_support(w, 0.9)
    # 0.5 + 0.3 = 0.8 < 0.9, so 0.15 is needed; 0.05 is not; negative relevance never counts.
    assert keep[0].tolist() == [True, True, True, False, False]
    assert keep[1].all()  # no positive mass: every pixel
    assert mass_support(w, 1.0)[0].tolist() == [True, True, True, True, False]
    with pytest.raises(ValueError, match="mass"):
        mass_support(w, 0.0)
    weights = point_sets(_random_maps(5, 8, 0))
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    assert (weights >= 0).all() and ((weights > 0).sum(axis=1) < 64).all()


def test_exact_solver_matches_pot_on_random_pairs():
    side, n = 8, 14
    weights, cost = point_sets(_random_maps(n, side, 1)), grid_distances(side)
    pairs = all_pairs(n)[::3]
    ours = gw_pairs(weights, cost, pairs, batch_size=8, workers=2)
    ref = np.array([_pot(weights, cost, i, j) for i, j in pairs])
    # Same algorithm as POT (conditional gradient + network simplex): equal up to round-off.
    np.testing.assert_allclose(ours, ref, rtol=1e-7, atol=1e-12)
    assert ref.min() > 1e-4  # the maps differ: a zero solver would fail
    # One big batch or the loop in threads: the same values.
    np.testing.assert_allclose(gw_pairs(weights, cost, pairs, batch_size=1000, workers=1), ours, rtol=1e-9)


def test_entropic_solver_matches_pot_entropic():
    side, n = 6, 8
    weights, cost = point_sets(_random_maps(n, side, 2)), grid_distances(side)
    pairs = all_pairs(n)[::2]
    ours = gw_pairs(weights, cost, pairs, solver="entropic", epsilon=0.02, device=torch.device("cpu"))
    ref = np.array([_pot(weights, cost, i, j, epsilon=0.02) for i, j in pairs])
    np.testing.assert_allclose(ours, ref, rtol=1e-5)


def test_distance_matrix_with_the_entropic_solver():
    """The settings form offers "entropic": the distance matrix takes it (it named it "sinkhorn" and failed)."""
    side, n = 6, 6
    maps = _random_maps(n, side, 4)
    d = gromov_wasserstein(maps, solver="entropic", epsilon=0.02)
    weights, cost = point_sets(maps), grid_distances(side)
    pairs = all_pairs(n)
    ref = np.array([_pot(weights, cost, i, j, epsilon=0.02) for i, j in pairs])
    np.testing.assert_allclose(d[pairs[:, 0], pairs[:, 1]], ref, rtol=1e-5)
    np.testing.assert_allclose(d, d.T)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_solvers_on_cuda_match_cpu():
    weights, cost = point_sets(_random_maps(6, 6, 3)), grid_distances(6)
    pairs = all_pairs(6)
    for solver in ("emd", "entropic"):
        cpu = gw_pairs(weights, cost, pairs, solver=solver)
        np.testing.assert_allclose(gw_pairs(weights, cost, pairs, solver=solver, device="cuda"), cpu, rtol=1e-6)


def test_invariance_and_matrix_shape():
    side = 8
    yy, xx = np.mgrid[0:side, 0:side]
    blob = np.exp(-((yy - 2) ** 2 + (xx - 2) ** 2) / 2.0)
    maps = np.stack([blob, blob[::-1], np.roll(blob, 3, axis=1), blob + blob[::-1, ::-1]]).reshape(4, -1)
    d = gromov_wasserstein(maps)
    np.testing.assert_allclose(d, d.T)
    np.testing.assert_allclose(np.diag(d), 0)
    # Mirrored and shifted: the same point set up to an isometry, so far closer than one blob to two
    # (not 0: the conditional gradient ends in a local minimum, as POT's does).
    assert max(d[0, 1], d[0, 2]) < 0.2 * d[0, 3]
    with pytest.raises(ValueError, match="solver"):
        gromov_wasserstein(maps, solver="magic")
    with pytest.raises(ValueError, match="grid"):
        gromov_wasserstein(maps[:, :60])


def test_pruning_solves_only_euclidean_candidates():
    maps = _random_maps(40, 6, 4)
    pairs = candidate_pairs(maps, 5)
    assert (pairs[:, 0] < pairs[:, 1]).all() and len(np.unique(pairs, axis=0)) == len(pairs)
    e = np.linalg.norm(maps[:, None] - maps[None], axis=2)
    np.fill_diagonal(e, np.inf)
    nearest = np.argsort(e, axis=1)[:, :5]
    listed = {tuple(p) for p in pairs.tolist()}
    assert all((min(i, j), max(i, j)) in listed for i in range(40) for j in nearest[i])
    full = gromov_wasserstein(maps)
    pruned = gromov_wasserstein(maps, prune_above=10, candidates=5, candidates_by="euclidean")
    finite = np.isfinite(pruned)
    assert finite.sum() == 2 * len(pairs) + 40 < 40 * 40
    np.testing.assert_allclose(pruned[finite], full[finite], rtol=1e-9, atol=1e-15)


def test_slb_candidates_find_shifted_copies():
    """The distance-distribution bound ignores position: a shifted copy is a candidate, a near blob is not."""
    side = 10
    yy, xx = np.mgrid[0:side, 0:side]

    def blob(cy, cx, s):
        return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s)).ravel()

    maps = np.stack([blob(2, 2, 0.8), blob(7, 7, 0.8), blob(2.5, 2.5, 2.0), blob(7, 2, 2.0), blob(5, 5, 1.3)])
    weights, cost = point_sets(maps), grid_distances(side)
    q = distance_quantiles(weights, cost)
    np.testing.assert_allclose(q[0], q[1])  # same shape elsewhere: the same distance distribution
    slb_pairs = {tuple(p) for p in candidate_pairs(maps, 1, by="slb", weights=weights, cost=cost)}
    assert {(0, 1), (2, 3)} <= slb_pairs and (0, 2) not in slb_pairs
    assert (0, 2) in {tuple(p) for p in candidate_pairs(maps, 1, by="euclidean")}  # overlap, not shape
    both = candidate_pairs(maps, 2, by="both", weights=weights, cost=cost)
    assert (0, 1) in {tuple(p) for p in both}
    with pytest.raises(ValueError, match="weights"):
        candidate_pairs(maps, 1, by="slb")
    with pytest.raises(ValueError, match="by must"):
        candidate_pairs(maps, 1, by="wasserstein")
    # SLB is a lower bound of GW (up to its quantile discretisation).
    slb = ((q[0] - q[4]) ** 2).mean()
    assert slb <= gw_pairs(weights, cost, np.array([[0, 4]]))[0] * 1.05


def _strategies(per_group: int, side: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Heatmaps of three shapes (one blob, two blobs, a bar) at random positions: translation-invariant groups."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side]

    def blob(cy, cx, s=0.9):
        return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * s * s))

    maps, truth = [], []
    for group in range(3):
        for _ in range(per_group):
            cy, cx = rng.uniform(1.5, side - 2.5, 2)
            shape = [blob(cy, cx), blob(cy, cx) + blob(side - 1 - cy, side - 1 - cx),
                     sum(blob(cy, cx + d) for d in (-1.5, 0, 1.5)) if cx > 2 else blob(cy, cx, 2.0)][group]
            maps.append(shape + 0.03 * rng.random((side, side)))
            truth.append(group)
    return np.asarray(maps), np.asarray(truth)


def test_spray_clusters_with_batched_gw_match_pot():
    maps, _ = _strategies(12, 8, 5)
    kw = dict(size=8, metric="gromov_wasserstein", n_neighbors=5, ks=[2, 3, 4], umap=False, agglomerative=False)
    ref = spray_class(maps, gw_options={"solver": "pot"}, **kw)
    ours = spray_class(maps, gw_options={"solver": "emd", "workers": 2}, **kw)
    for k in (2, 3, 4):
        assert adjusted_rand_score(ref.labels[k], ours.labels[k]) == 1.0
    np.testing.assert_allclose(ours.eigenvalues, ref.eigenvalues, atol=1e-8)
    with pytest.raises(ValueError, match="gw_options"):
        spray_class(maps, size=8, gw_options={"solver": "pot"})
