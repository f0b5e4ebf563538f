"""Batched Gromov-Wasserstein distances between heatmaps on one shared grid, in torch (CPU or CUDA).

All heatmaps live on the same ``side x side`` pixel grid, so every GW problem takes its costs from
one spatial distance matrix and only the weights differ. Each heatmap is the point set of the
pixels covering 99 % of its positive mass (Anders et al. §2.2); a pair's problem is restricted to
its two point sets, and many pairs are solved at once, padded to the batch's largest point set
(padding weighs 0; pairs are batched by size so that little padding is needed).

:func:`gw_batch` runs one of POT's two square-loss GW solvers on a batch of problems, each
problem leaving the batch when it converges:

* ``solver="emd"`` -- the conditional gradient (Frank-Wolfe) of ``ot.gromov.gromov_wasserstein2``:
  start at ``p q^T``, linearise, move to the linear minimiser, exact line search on the
  quadratic, POT's stopping tolerances. The linear step is solved exactly by POT's network
  simplex, per problem, on the CPU; the tensor work is batched. The values are POT's up to
  round-off (maps with exact ties, e.g. perfectly symmetric ones, can end in another local
  minimum as the simplex breaks a tie differently). Per pair it costs about what POT costs (the
  simplex dominates); the gain comes from threads and from pruning the pairs.
* ``solver="entropic"`` -- the projected gradient of ``ot.gromov.entropic_gromov_wasserstein2``
  (Sinkhorn projections with regularisation ``epsilon``), entirely in batched tensor operations:
  the solver for CUDA. Its values are POT's entropic ones (larger than the exact GW by the
  blur of the entropic plan).

With many heatmaps only candidate pairs are solved (:func:`candidate_pairs`: each heatmap's
nearest neighbours by a cheap lower bound of GW that shares its invariances, or by euclidean
distance); the kNN graph of SpRAy then picks its neighbours among them.
"""
from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from scipy.spatial.distance import cdist
from sklearn.neighbors import NearestNeighbors

from .preprocess import mass_support


def grid_distances(side: int) -> np.ndarray:
    """Euclidean distances between the pixel positions of a ``side x side`` grid, normalized to max 1."""
    yy, xx = np.meshgrid(np.arange(side), np.arange(side), indexing="ij")
    coords = np.stack([yy.ravel(), xx.ravel()], axis=1).astype(np.float64)
    dist = cdist(coords, coords)
    return dist / max(dist.max(), 1e-12)


def _emd_targets(cost: torch.Tensor, c1: torch.Tensor, p: torch.Tensor, q: torch.Tensor, n1, n2):
    """Exact linear minimisers T (POT's network simplex), each on its problem's own support, and ``c1 @ T``.

    ``c1 @ T`` is summed over T's non-zeros: a vertex of the transport polytope has at most
    n1 + n2 - 1, and every column of a problem's support holds at least one.
    """
    # deferred: loads POT
    from ot.lp.emd_wrap import emd_c

    cost_np, c1_np = cost.double().cpu().numpy(), c1.double().cpu().numpy()
    p_np, q_np = p.double().cpu().numpy(), q.double().cpu().numpy()
    target, c1_target = np.zeros(cost_np.shape), np.zeros(cost_np.shape)
    for b in range(len(target)):
        a, c = n1[b], n2[b]
        plan, _, _, _, code = emd_c(p_np[b, :a], q_np[b, :c], np.ascontiguousarray(cost_np[b, :a, :c]), 1_000_000, 1)
        if code != 1:
            warnings.warn(f"network simplex did not reach the optimum (code {code}); raise its iterations")
        target[b, :a, :c] = plan
        cols, rows = np.nonzero(plan.T)  # sorted by column
        starts = np.flatnonzero(np.r_[True, cols[1:] != cols[:-1]])
        c1_target[b, :, :c] = np.add.reduceat(c1_np[b][:, rows] * plan[rows, cols], starts, axis=1)
    return torch.from_numpy(target).to(cost), torch.from_numpy(c1_target).to(cost)


def _sinkhorn_knopp(kernel: torch.Tensor, p: torch.Tensor, q: torch.Tensor, n_iter: int, tol: float) -> torch.Tensor:
    """POT's ``sinkhorn_knopp`` on a batch: scalings from uniform, marginal error checked every 10 sweeps."""
    u = (p > 0).to(p) / (p > 0).sum(1, keepdim=True)
    v = (q > 0).to(q) / (q > 0).sum(1, keepdim=True)
    ids = torch.arange(len(p), device=p.device)
    k_, p_, q_, u_, v_ = kernel, p, q, u, v
    for it in range(n_iter):
        v_ = torch.where(q_ > 0, q_ / torch.bmm(k_.transpose(1, 2), u_.unsqueeze(2)).squeeze(2), 0)
        u_ = torch.where(p_ > 0, p_ / torch.bmm(k_, v_.unsqueeze(2)).squeeze(2), 0)
        if it % 10 == 0 or it == n_iter - 1:
            u[ids], v[ids] = u_, v_
            col = torch.einsum("bi,bij,bj->bj", u_, k_, v_)
            going = torch.linalg.vector_norm(col - q_, dim=1) > tol
            if not bool(going.any()):
                break
            ids, k_, p_, q_, u_, v_ = (t[going] for t in (ids, k_, p_, q_, u_, v_))
    return u.unsqueeze(2) * kernel * v.unsqueeze(1)


def _entropic_batch(c1, c2, p, q, row, col, cross, plan, *, epsilon, max_iter, tol, sinkhorn_iter, sinkhorn_tol):
    """POT's ``entropic_gromov_wasserstein`` (projected gradient) on a batch; returns the final couplings."""
    ids = torch.arange(len(p), device=p.device)
    for it in range(max_iter):
        grad = 2 * (row[ids].unsqueeze(2) + col[ids].unsqueeze(1)) - 4 * cross[ids]
        new = _sinkhorn_knopp(torch.exp(-grad / epsilon), p[ids], q[ids], sinkhorn_iter, sinkhorn_tol)
        if it % 10 == 0:
            going = torch.linalg.matrix_norm(new - plan[ids]) > tol
        plan[ids] = new
        cross[ids] = torch.bmm(torch.bmm(c1[ids], new), c2[ids])
        if it % 10 == 0:
            ids = ids[going]
            if not len(ids):
                break
    return plan, cross


def _conditional_gradient(c1, c2, p, q, row, col, cross, plan, loss, *, max_iter, tol):
    """POT's ``gromov_wasserstein`` conditional gradient on a batch; updates ``loss`` in place."""
    n1, n2 = (p > 0).sum(1).cpu().numpy(), (q > 0).sum(1).cpu().numpy()
    ids = torch.arange(len(p), device=p.device)  # the problems still iterating
    state = [c1, c2, p, q, plan, cross, row, col]
    for _ in range(max_iter):
        c1_, c2_, p_, q_, plan_, cross_, row_, col_ = state
        sub = ids.cpu().numpy()
        linear = 2 * (row_.unsqueeze(2) + col_.unsqueeze(1)) - 4 * cross_  # POT's gradient
        target, c1_target = _emd_targets(linear, c1_, p_, q_, n1[sub], n2[sub])
        d_cross = torch.bmm(c1_target, c2_).sub_(cross_)
        delta = target.sub_(plan_)
        a = -2 * torch.einsum("bij,bij->b", d_cross, delta)
        b = -4 * torch.einsum("bij,bij->b", cross_, delta)
        alpha = torch.where(a > 0, (-b / (2 * a.clamp(min=1e-300))).clamp(0, 1), (a + b < 0).to(a.dtype))
        plan_.add_(alpha[:, None, None] * delta)
        cross_.add_(alpha[:, None, None] * d_cross)
        change = a * alpha ** 2 + b * alpha  # POT's update of the loss from the line search
        loss[ids] = new = loss[ids] + change
        going = (change.abs() > tol * new.abs()) & (change.abs() > tol)
        if not bool(going.all()):
            ids = ids[going]
            state = [t[going] for t in state]
        if not len(ids):
            break


def gw_batch(c1: torch.Tensor, c2: torch.Tensor, p: torch.Tensor, q: torch.Tensor, *, solver: str = "emd",
             max_iter: int | None = None, tol: float = 1e-9, epsilon: float = 1e-2, sinkhorn_iter: int = 1000,
             sinkhorn_tol: float = 1e-9) -> torch.Tensor:
    """Gromov-Wasserstein loss (square loss, POT's ``gromov_wasserstein2``) of B problems at once.

    Parameters
    ----------
    c1, c2 : Tensor, shape (B, n1, n1) and (B, n2, n2)
        Symmetric cost matrices of the two spaces of each problem.
    p, q : Tensor, shape (B, n1) and (B, n2)
        Weights, each row summing to 1; padding (weight 0) must come after a row's points.
    solver : {"emd", "entropic"}
        ``"emd"``: POT's conditional gradient (``gromov_wasserstein2``), each linear step solved
        exactly by POT's network simplex on the CPU: the values are POT's up to round-off.
        ``"entropic"``: POT's ``entropic_gromov_wasserstein2`` (projected gradient, Sinkhorn
        projections with regularisation ``epsilon``), entirely in batched tensor operations.
    max_iter, tol
        Outer iterations at most (default 10,000 for "emd", 1,000 for "entropic", as POT) and the
        stopping tolerance (POT's ``tol_rel``/``tol_abs``, or the change of the plan for "entropic").
    epsilon, sinkhorn_iter, sinkhorn_tol
        "entropic" only: regularisation (absolute, on the gradient's scale) and the Sinkhorn limits.

    Returns
    -------
    Tensor, shape (B,)
        ``sum_ijkl (c1_ik - c2_jl)^2 T_ij T_kl`` at the final coupling T.
    """
    if solver not in ("emd", "entropic"):
        raise ValueError(f"solver must be 'emd' or 'entropic', got {solver!r}")
    # The loss is <const, T> - 2 <c1 T c2, T> with const_ij = row_i + col_j, and <const, T> is the
    # same for every coupling T of (p, q): only cross = c1 T c2 changes.
    row, col = ((c1 ** 2) @ p.unsqueeze(2)).squeeze(2), ((c2 ** 2) @ q.unsqueeze(2)).squeeze(2)
    offset = (row * p).sum(1) + (col * q).sum(1)
    plan = p.unsqueeze(2) * q.unsqueeze(1)
    cross = torch.bmm(torch.bmm(c1, plan), c2)
    loss = offset - 2 * torch.einsum("bij,bij->b", cross, plan)
    if solver == "emd":
        _conditional_gradient(c1, c2, p, q, row, col, cross, plan, loss, max_iter=max_iter or 10_000, tol=tol)
    else:
        plan, cross = _entropic_batch(c1, c2, p, q, row, col, cross, plan, epsilon=epsilon,
                                      max_iter=max_iter or 1000, tol=tol, sinkhorn_iter=sinkhorn_iter,
                                      sinkhorn_tol=sinkhorn_tol)
        loss = offset - 2 * torch.einsum("bij,bij->b", cross, plan)
    return loss.clamp(min=0)


def point_sets(heatmaps: np.ndarray, mass: float = 0.99) -> np.ndarray:
    """GW weights: each row's positive part on the pixels covering ``mass`` of it, summing to 1.

    Rows without positive relevance become uniform over every pixel.
    """
    h = np.asarray(heatmaps, dtype=np.float64)
    keep = mass_support(h, mass)
    w = np.where(keep, np.clip(h, 0, None), 0.0)
    w[w.sum(axis=1) <= 0] = 1.0
    return w / w.sum(axis=1, keepdims=True)


def distance_quantiles(weights: np.ndarray, cost: np.ndarray, levels: int = 64) -> np.ndarray:
    """Quantile function of each point set's pairwise distances, shape (N, levels).

    Row i holds the quantiles, at ``levels`` evenly spaced probabilities, of ``cost[a, b]`` with
    (a, b) drawn from ``weights[i] x weights[i]``. The squared euclidean distance between two rows
    (divided by ``levels``) approximates the 1-D Wasserstein distance between the two distance
    distributions, Memoli's "second lower bound" of GW (2011, Thm. 6.3): like GW it ignores where the
    points lie, so neighbours under it are GW candidates also for shifted or mirrored maps.
    """
    w = np.asarray(weights, dtype=np.float64)
    values, inverse = np.unique(np.round(np.asarray(cost, dtype=np.float64), 12), return_inverse=True)
    inverse = inverse.reshape(cost.shape)
    hist = np.stack([np.einsum("ia,ab,ib->i", w, (inverse == v).astype(np.float64), w) for v in range(len(values))],
                    axis=1)
    cdf = np.cumsum(hist, axis=1)
    cdf /= cdf[:, -1:]
    probs = (np.arange(levels) + 0.5) / levels
    idx = np.stack([np.searchsorted(row, probs) for row in cdf])
    return values[np.minimum(idx, len(values) - 1)]


CANDIDATE_RULES = ("slb", "euclidean", "both")


def candidate_pairs(heatmaps: np.ndarray, neighbors: int, *, by: str = "euclidean", weights=None,
                    cost=None) -> np.ndarray:
    """Pairs ``(i, j)``, i < j, where j is among i's ``neighbors`` nearest or vice versa.

    ``by``: ``"euclidean"`` -- nearest rows of ``heatmaps``; ``"slb"`` -- nearest by the
    distance-distribution bound of :func:`distance_quantiles` (needs the GW ``weights`` and
    ``cost``); ``"both"`` -- the union of ``neighbors // 2`` of each (at least one each).
    """

    if by not in CANDIDATE_RULES:
        raise ValueError(f"by must be one of {CANDIDATE_RULES}, got {by!r}")
    h = np.asarray(heatmaps, dtype=np.float64)
    k = min(int(neighbors), len(h) - 1)
    if k < 1:
        raise ValueError(f"neighbors must be at least 1 and below the number of heatmaps ({len(h)}), got {neighbors}")
    if by == "both":
        half = max(1, k // 2)
        pairs = np.concatenate([candidate_pairs(h, half, by="euclidean"),
                                candidate_pairs(h, k - half, by="slb", weights=weights, cost=cost)])
        return np.unique(pairs, axis=0)
    if by == "slb":
        if weights is None or cost is None:
            raise ValueError("candidates by 'slb' need the GW weights and cost")
        h = distance_quantiles(weights, cost)
    _, idx = NearestNeighbors(n_neighbors=k + 1).fit(h).kneighbors(h)
    rows = np.repeat(np.arange(len(h)), k + 1)
    pairs = np.stack([rows, idx.ravel()], axis=1)
    pairs = np.sort(pairs[pairs[:, 0] != pairs[:, 1]], axis=1)
    return np.unique(pairs, axis=0)


def all_pairs(n: int) -> np.ndarray:
    """Every pair ``(i, j)`` with i < j < n, shape (n (n - 1) / 2, 2)."""
    return np.stack(np.triu_indices(n, k=1), axis=1)


def gw_pairs(weights: np.ndarray, cost: np.ndarray, pairs: np.ndarray, *, solver: str = "emd",
             device: str | torch.device = "cpu", batch_size: int | None = None, workers: int | None = None,
             **solver_options) -> np.ndarray:
    """GW loss of each listed pair of weight rows over one shared cost matrix.

    Parameters
    ----------
    weights : ndarray, shape (N, n)
        Rows sum to 1; a row's zeros are left out of its point set.
    cost : ndarray, shape (n, n)
        Symmetric distances between the n points (e.g. :func:`grid_distances`).
    pairs : ndarray of int, shape (P, 2)
    solver : {"emd", "entropic"}
        See :func:`gw_batch`.
    device : str or torch.device
        Where the batched tensor work runs ("emd" still solves its LPs on the CPU).
    batch_size : int, optional
        Problems per batch; default 32 on the CPU (keeps a batch in cache), 4096 on CUDA.
    workers : int, optional
        Batches solved in parallel threads; default ``torch.get_num_threads()`` on the CPU, 1 on CUDA.
    **solver_options
        Passed to :func:`gw_batch` (max_iter, tol, epsilon, sinkhorn_iter, sinkhorn_tol).

    Returns
    -------
    ndarray, shape (P,)
    """
    device = torch.device(device)
    w = np.asarray(weights, dtype=np.float64)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if len(pairs) == 0:
        return np.zeros(0)
    on_gpu = device.type == "cuda"
    batch_size = batch_size or (4096 if on_gpu else 32)
    workers = workers or (1 if on_gpu else torch.get_num_threads())
    sizes = (w > 0).sum(axis=1)
    # Each problem's points in a fixed order (pixel index), padded after them; pairs grouped by size.
    order = np.argsort(w <= 0, axis=1, kind="stable")
    order_t = torch.from_numpy(order)
    w_sorted = torch.from_numpy(np.take_along_axis(w, order, axis=1))
    cost_t = torch.as_tensor(cost, dtype=torch.float64)
    by_size = np.lexsort((sizes[pairs[:, 1]], sizes[pairs[:, 0]]))

    def solve(batch: np.ndarray) -> np.ndarray:
        i, j = pairs[batch, 0], pairs[batch, 1]
        m1, m2 = int(sizes[i].max()), int(sizes[j].max())
        idx1, idx2 = order_t[i, :m1], order_t[j, :m2]
        c1 = cost_t[idx1[:, :, None], idx1[:, None, :]].to(device)
        c2 = cost_t[idx2[:, :, None], idx2[:, None, :]].to(device)
        p, q = w_sorted[i, :m1].to(device), w_sorted[j, :m2].to(device)
        return gw_batch(c1, c2, p, q, solver=solver, **solver_options).cpu().numpy()

    batches = [by_size[s:s + batch_size] for s in range(0, len(by_size), batch_size)]
    out = np.empty(len(pairs))
    if workers == 1:
        for batch in batches:
            out[batch] = solve(batch)
        return out
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for batch, values in zip(batches, pool.map(solve, batches)):
            out[batch] = values
    return out
