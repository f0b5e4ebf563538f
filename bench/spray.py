"""Benchmark: SpRAy time per class, step by step, ours against CoRelAy's pipeline on the same heatmaps.

Heatmaps are real LRP maps (zennit, true class) of ``--n`` train images of one class (default the
watermark class, Coat) from the demo model in ``var/benchmark`` when it is there, else from the tiny
test benchmark (built in a temporary directory; it has only 80 images per class).  Steps timed:
LRP, preprocessing (channel sum, 32x32, sum 1), distances, kNN graph + spectral embedding (32
eigenvectors), k-means for k = 2..30 with the Fisher score tau, agglomerative clustering for the
same k, and the UMAP view.  Gromov-Wasserstein runs on an 8x8 grid for ``--gw-n`` heatmaps (one
POT problem per pair, so its time grows with n^2) and is extrapolated to ``--n`` from the pair
count.  CoRelAy (``pip install corelay``; not a project dependency) runs its SpectralClustering
pipeline -- SciPy pdist, SparseKNN(10), symmetric normal Laplacian, 32 eigenvectors, k-means
k = 2..30 -- on the same preprocessed heatmaps in the same process.

    .venv/bin/python bench/spray.py
    .venv/bin/python bench/spray.py --n 500 --gw-n 60
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.datasets.benchmark import BenchmarkConfig, cache_file_name  # noqa: E402
from analysis.salient.benchmark_inputs import benchmark_inputs  # noqa: E402
from analysis.spray.clustering import DEFAULT_KS, agglomerative_labels, kmeans_labels, umap_2d  # noqa: E402
from analysis.spray.distances import euclidean, gromov_wasserstein  # noqa: E402
from analysis.spray.embedding import knn_affinity, spectral_embedding  # noqa: E402
from analysis.spray.fisher import fisher_score  # noqa: E402
from analysis.spray.lrp import relevance  # noqa: E402
from analysis.spray.preprocess import preprocess  # noqa: E402

DEMO_DIR = ROOT / "var" / "benchmark"
TINY_BENCHMARK = {"classes": [0, 2, 4, 6], "train_per_class": 80, "test_per_class": 20, "image_size": 32,
                  "garment_size": 16}
TINY_TRAINING = {"standard": {"epochs": 2, "width": 8}}


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def load_inputs(tmp: Path):
    """(bench, handle, label) from the demo model if cached, else the tiny benchmark."""
    if (DEMO_DIR / "benchmark" / cache_file_name(BenchmarkConfig())).is_file() and any(
            (DEMO_DIR / "models").glob("demo-standard-*.pt")):
        bench, handles, _ = benchmark_inputs(DEMO_DIR, flavours=("standard",))
        return bench, handles["standard"], "demo model (var/benchmark)"
    bench, handles, _ = benchmark_inputs(tmp, benchmark=TINY_BENCHMARK, training=TINY_TRAINING,
                                         flavours=("standard",))
    return bench, handles["standard"], "tiny benchmark (no demo model in var/benchmark)"


def ours(flat: np.ndarray, metric: str, ks: list[int]) -> dict[str, float]:
    """Seconds per step of our pipeline on preprocessed heatmaps."""
    t = {}
    t["distances"], dist = timed(lambda: euclidean(flat) if metric == "euclidean" else gromov_wasserstein(flat))
    t["embedding"], (_, emb) = timed(lambda: spectral_embedding(knn_affinity(dist, 10), 32))
    t["k-means + tau"], _ = timed(lambda: [fisher_score(emb, lab) for lab in kmeans_labels(emb, ks).values()])
    t["agglomerative"], _ = timed(lambda: agglomerative_labels(emb, ks))
    t["umap"], _ = timed(lambda: umap_2d(emb))
    return t


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="heatmaps of one class")
    parser.add_argument("--gw-n", type=int, default=100, help="heatmaps for Gromov-Wasserstein (8x8 grid)")
    parser.add_argument("--cls", type=int, default=None, help="class (default: the watermark class)")
    args = parser.parse_args()
    torch.manual_seed(0)
    ks = list(DEFAULT_KS)

    with tempfile.TemporaryDirectory() as tmp:
        bench, handle, source = load_inputs(Path(tmp))
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
    prep_t, flat = timed(lambda: preprocess(rel.numpy(), 32))
    steps = ours(flat, "euclidean", ks)
    gw_n = min(args.gw_n, n)
    gw_prep_t, gw_flat = timed(lambda: preprocess(rel[:gw_n].numpy(), 8))
    gw_steps = ours(gw_flat, "gromov_wasserstein", [k for k in ks if k < gw_n])
    pairs = n * (n - 1) / 2 / (gw_n * (gw_n - 1) / 2)
    theirs = corelay_time(flat, ks)

    cols = ["LRP", "preprocess", "distances", "embedding", "k-means + tau", "agglomerative", "umap"]
    print(f"{'pipeline':34s}" + "".join(f"{c:>14s}" for c in cols) + f"{'total':>10s}")

    def row(name: str, values: dict) -> None:
        cells = "".join(f"{values[c]:14.2f}" if c in values else f"{'-':>14s}" for c in cols)
        print(f"{name:34s}{cells}{sum(values.values()):10.2f}")

    row(f"ours, euclidean 32x32, n={n}", {"LRP": lrp_t, "preprocess": prep_t, **steps})
    row(f"ours, GW 8x8, n={gw_n} (measured)", {"preprocess": gw_prep_t, **gw_steps})
    print(f"{'ours, GW 8x8, n=' + str(n) + ' (extrapolated)':34s}{'':28s}{gw_steps['distances'] * pairs:14.0f}"
          f"   (distances x {pairs:.0f} pairs ratio)")
    if theirs is None:
        print("corelay not installed (pip install corelay to compare)")
    else:
        row(f"CoRelAy 1.x, euclidean, n={n}", {"preprocess": prep_t, **theirs})
        print("(CoRelAy: same preprocessed maps; pdist + SparseKNN + Laplacian + eigsh, k-means only, no tau;"
              " LRP is not part of CoRelAy)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
