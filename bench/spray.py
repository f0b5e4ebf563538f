"""Benchmark: SpRAy time per class, step by step, ours against CoRelAy's pipeline on the same heatmaps.

Heatmaps are real LRP maps (zennit, true class) of ``--n`` train images of one class (default the
watermark class, Coat) from the demo model in ``var/benchmark`` when it is there, else from a
small benchmark built in a temporary directory (4 classes, ``--n`` train images each, a width-8
model trained for 2 epochs).  Steps timed: LRP, preprocessing (channel sum, 32x32, sum 1),
distances, kNN graph + spectral embedding (32 eigenvectors), k-means for k = 2..30 with the
Fisher score tau, agglomerative clustering for the same k, and the UMAP view.

Gromov-Wasserstein rows (8x8 and 16x16 grids, all ``--n`` heatmaps): ours
(:func:`analysis.spray.distances.gromov_wasserstein`, default settings: exact batched solver,
candidate pairs from the euclidean kNN graph) against POT's all-pairs loop (BLAS on one thread),
timed on all pairs of the first ``--gw-n`` heatmaps and extrapolated to ``--n`` by the pair count; ours on the same
subset gives the per-pair ratio.  The adjusted Rand index compares SpRAy's k-means labels
(k = 2..10) from our pruned GW matrix with those from POT's all pairs on the first ``--ari-n``
heatmaps (8x8), for each rule of choosing the candidate pairs.

CoRelAy (``pip install corelay``; not a project dependency) runs its SpectralClustering steps --
SciPy pdist, SparseKNN(10), symmetric normal Laplacian, 32 eigenvectors (rows normalised),
k-means k = 2..30 -- on the same preprocessed heatmaps in the same process.  It has no GW
distance: with GW it would call a distance like POT's loop, so its GW total is POT's
extrapolated loop plus its other steps.

    .venv/bin/python bench/spray.py
    .venv/bin/python bench/spray.py --n 500 --gw-n 30 --ari-n 100
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.datasets.benchmark import BenchmarkConfig, cache_file_name  # noqa: E402
from analysis.salient.benchmark_inputs import benchmark_inputs  # noqa: E402
from analysis.spray.clustering import DEFAULT_KS, agglomerative_labels, cluster_space, kmeans_labels, umap_2d  # noqa: E402
from analysis.spray.distances import euclidean, gromov_wasserstein  # noqa: E402
from analysis.spray.embedding import knn_affinity, spectral_embedding  # noqa: E402
from analysis.spray.fisher import fisher_score  # noqa: E402
from analysis.spray.gromov import point_sets  # noqa: E402
from analysis.spray.lrp import relevance  # noqa: E402
from analysis.spray.preprocess import preprocess  # noqa: E402

DEMO_DIR = ROOT / "var" / "benchmark"
SMALL_TRAINING = {"standard": {"epochs": 2, "width": 8}}


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def load_inputs(tmp: Path, n: int):
    """(bench, handle, label) from the demo model if cached, else a small benchmark with n images per class."""
    if (DEMO_DIR / "benchmark" / cache_file_name(BenchmarkConfig())).is_file() and any(
            (DEMO_DIR / "models").glob("demo-standard-*.pt")):
        bench, handles, _ = benchmark_inputs(DEMO_DIR, flavours=("standard",))
        return bench, handles["standard"], "demo model (var/benchmark)"
    small = {"classes": [0, 2, 4, 6], "train_per_class": n, "test_per_class": 20, "image_size": 32,
             "garment_size": 16}
    bench, handles, _ = benchmark_inputs(tmp, benchmark=small, training=SMALL_TRAINING, flavours=("standard",))
    return bench, handles["standard"], f"small benchmark, 4 classes x {n}, width-8 model, 2 epochs"


def ours(flat: np.ndarray, ks: list[int]) -> dict[str, float]:
    """Seconds per step of our euclidean pipeline on preprocessed heatmaps."""
    t = {}
    t["distances"], dist = timed(lambda: euclidean(flat))
    rest, emb = downstream(dist, ks)
    t.update(rest)
    t["agglomerative"], _ = timed(lambda: agglomerative_labels(emb, ks))
    t["umap"], _ = timed(lambda: umap_2d(emb))
    return t


def downstream(dist: np.ndarray, ks: list[int]) -> tuple[dict[str, float], np.ndarray]:
    """Seconds of kNN + embedding and of k-means + tau on a distance matrix (CoRelAy's steps after distances)."""
    t = {}
    t["embedding"], (_, emb) = timed(lambda: spectral_embedding(knn_affinity(dist, 10), 32))
    measured = cluster_space(emb, 0)  # where the default pipeline clusters and measures tau
    t["k-means + tau"], _ = timed(lambda: [fisher_score(measured, lab) for lab in kmeans_labels(emb, ks).values()])
    return t, emb


def corelay_time(flat: np.ndarray, ks: list[int]) -> dict[str, float] | None:
    """Seconds per step of CoRelAy's processors (same choices as ours), or None if not installed."""
    try:
        from corelay.processor.affinity import SparseKNN
        from corelay.processor.clustering import KMeans
        from corelay.processor.distance import SciPyPDist
        from corelay.processor.embedding import EigenDecomposition
        from corelay.processor.laplacian import SymmetricNormalLaplacian
    except ImportError:
        return None
    t = {}
    t["distances"], dist = timed(lambda: SciPyPDist(metric="euclidean")(flat))
    knn, laplacian = SparseKNN(n_neighbors=10, symmetric=True), SymmetricNormalLaplacian()
    eigen = EigenDecomposition(n_eigval=32)
    t["embedding"], (_, vectors) = timed(lambda: eigen(laplacian(knn(dist))))
    t["k-means + tau"], _ = timed(lambda: [KMeans(n_clusters=k, kwargs={"n_init": 10, "random_state": 0})(vectors)
                                           for k in ks])
    return t


def pot_all_pairs(flat: np.ndarray) -> np.ndarray:
    """POT's loop on all pairs, its BLAS on one thread (faster for its small matrices than two)."""
    with threadpool_limits(limits=1):
        return gromov_wasserstein(flat, solver="pot", prune_above=None)


def gw_rows(rel: np.ndarray, side: int, gw_n: int, ks: list[int], device: str) -> dict[str, float]:
    """GW at one grid size: ours on all maps (default pruning), ours and POT on all pairs of a subset."""
    n = len(rel)
    flat = preprocess(rel, side)
    sub = flat[:gw_n]
    scale = (n * (n - 1) / 2) / (gw_n * (gw_n - 1) / 2)
    pot_t, _ = timed(lambda: pot_all_pairs(sub))
    ours_sub_t, _ = timed(lambda: gromov_wasserstein(sub, prune_above=None, device=device))
    ours_t, dist = timed(lambda: gromov_wasserstein(flat, device=device))
    rest, _ = downstream(dist, ks)
    sizes = (point_sets(flat) > 0).sum(axis=1)
    return {"ours": ours_t, "rest": sum(rest.values()), "pot_extrapolated": pot_t * scale,
            "ours_all_pairs_extrapolated": ours_sub_t * scale, "pot_sub": pot_t, "ours_sub": ours_sub_t,
            "pairs": int(np.isfinite(dist[np.triu_indices(n, 1)]).sum()), "points": float(sizes.mean())}


def gw_ari(rel: np.ndarray, ari_n: int, ks: list[int]) -> dict[str, float]:
    """Mean adjusted Rand index of SpRAy's k-means labels: ours (pruned, all pairs) vs POT's all pairs, 8x8."""
    flat = preprocess(rel[:ari_n], 8)
    reference = kmeans_labels(spectral_embedding(knn_affinity(pot_all_pairs(flat), 10), 32)[1], ks)
    out = {}
    rules = {"all pairs": {"prune_above": None},
             **{f"pruned ({by}, 20)": {"prune_above": 0, "candidates_by": by} for by in ("euclidean", "slb", "both")}}
    for name, options in rules.items():
        labels = kmeans_labels(spectral_embedding(knn_affinity(gromov_wasserstein(flat, **options), 10), 32)[1], ks)
        out[name] = float(np.mean([adjusted_rand_score(reference[k], labels[k]) for k in ks]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="heatmaps of one class")
    parser.add_argument("--gw-n", type=int, default=40, help="heatmaps whose all pairs POT solves (then extrapolated)")
    parser.add_argument("--ari-n", type=int, default=200, help="heatmaps for the adjusted Rand index against POT")
    parser.add_argument("--cls", type=int, default=None, help="class (default: the watermark class)")
    parser.add_argument("--device", default="cpu", help="torch device of our GW solver")
    parser.add_argument("--skip-gw", action="store_true", help="only the euclidean table")
    args = parser.parse_args()
    torch.manual_seed(0)
    ks = list(DEFAULT_KS)

    with tempfile.TemporaryDirectory() as tmp:
        bench, handle, source = load_inputs(Path(tmp), args.n)
    cls = bench.biased_labels()["watermark"] if args.cls is None else args.cls
    train = bench.split("train")
    idx = np.flatnonzero(train.labels == cls)[:args.n]
    images, labels = train.tensors(idx)
    n = len(idx)
    print(f"SpRAy on {n} heatmaps of class {bench.class_names[cls]} ({source}, "
          f"{images.shape[-1]}x{images.shape[-1]} px), {torch.get_num_threads()} torch threads")
    # warm-up outside the timings: numba compiles UMAP's kernels on first use (~50 s), zennit/torch set up
    warm = np.random.default_rng(0).random((40, 32))
    umap_2d(warm), kmeans_labels(warm, [2]), relevance(handle, images[:2], labels[:2])
    lrp_t, rel = timed(lambda: relevance(handle, images, labels))
    maps = rel.sum(dim=1).numpy()
    prep_t, flat = timed(lambda: preprocess(maps, 32))
    steps = ours(flat, ks)
    theirs = corelay_time(flat, ks)

    cols = ["LRP", "preprocess", "distances", "embedding", "k-means + tau", "agglomerative", "umap"]
    print(f"{'pipeline':34s}" + "".join(f"{c:>14s}" for c in cols) + f"{'total':>10s}")

    def row(name: str, values: dict) -> None:
        cells = "".join(f"{values[c]:14.2f}" if c in values else f"{'-':>14s}" for c in cols)
        print(f"{name:34s}{cells}{sum(values.values()):10.2f}")

    row(f"ours, euclidean 32x32, n={n}", {"LRP": lrp_t, "preprocess": prep_t, **steps})
    same = ("distances", "embedding", "k-means + tau")
    if theirs is None:
        print("corelay not installed (pip install corelay to compare)")
    else:
        row(f"CoRelAy 1.x, euclidean, n={n}", {"preprocess": prep_t, **theirs})
        print(f"same steps (distances + kNN/embedding + k-means 2..30): ours {sum(steps[c] for c in same):.2f} s, "
              f"CoRelAy {sum(theirs[c] for c in same):.2f} s (CoRelAy computes no tau; LRP is not part of it)")
    if args.skip_gw:
        return 0

    gw_n = min(args.gw_n, n)
    print(f"\nGromov-Wasserstein, n={n} heatmaps; POT's all-pairs loop timed on {gw_n} heatmaps and extrapolated "
          f"by the pair count; ours: exact batched solver on {args.device}, {torch.get_num_threads()} threads")
    head = ["grid", "points/map", "pairs solved", "ours GW (s)", "+kNN/emb/k-means", "POT all pairs (s)",
            "ratio", "per-pair ratio"]
    print("".join(f"{h:>18s}" for h in head))
    for side in (8, 16):
        r = gw_rows(maps, side, gw_n, ks, args.device)
        cells = [f"{side}x{side}", f"{r['points']:.0f}", str(r["pairs"]), f"{r['ours']:.1f}", f"{r['rest']:.1f}",
                 f"{r['pot_extrapolated']:.0f}", f"{r['pot_extrapolated'] / r['ours']:.1f}x",
                 f"{r['pot_sub'] / r['ours_sub']:.2f}x"]
        print("".join(f"{c:>18s}" for c in cells))
        if theirs is not None:
            print(f"{'':18s}CoRelAy + POT's loop as its distance, same steps: "
                  f"{r['pot_extrapolated'] + theirs['embedding'] + theirs['k-means + tau']:.0f} s; "
                  f"ours {r['ours'] + r['rest']:.1f} s")
    ari_n = min(args.ari_n, n)
    ari = gw_ari(maps, ari_n, [k for k in range(2, 11)])
    print(f"\nadjusted Rand index vs POT's all-pairs GW (8x8, first {ari_n} maps, k-means k = 2..10, mean): "
          + ", ".join(f"ours {name} {value:.3f}" for name, value in ari.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
