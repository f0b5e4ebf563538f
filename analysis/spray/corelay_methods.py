"""The embeddings and clusterings CoRelAy offers beside k-means, run on SpRAy's spectral embedding.

CoRelAy (``virelay/corelay``, ``src/corelay/processor/clustering.py`` and ``embedding.py``) clusters
the output of ``EigenDecomposition(normalize=True)`` — the row-normalised eigenvectors Φ, the space
:func:`analysis.spray.clustering.cluster_space` gives — with k-means, DBSCAN, HDBSCAN or agglomerative
clustering, and draws it in 2-D with t-SNE or UMAP; ViRelAy's ``docs/examples/meta_analysis.py`` runs
them all side by side and stores each under its own name (``kmeans-05``, ``dbscan-eps=0.5``,
``hdbscan``, ``agglomerative-05``). The parameters here are CoRelAy's defaults:

* DBSCAN (``clustering.py`` ``DBSCAN``): ``eps=0.5``, ``min_samples=5``, euclidean metric; noise points
  get the label -1.
* HDBSCAN (``clustering.py`` ``HDBSCAN``): ``min_cluster_size=5`` (CoRelAy's ``n_clusters``), euclidean;
  CoRelAy calls the ``hdbscan`` package, here scikit-learn's port of it.
* agglomerative (``clustering.py`` ``AgglomerativeClustering``): ward linkage, euclidean, per k
  (:func:`analysis.spray.clustering.agglomerative_labels`).
* t-SNE (``embedding.py`` ``TSNEEmbedding``): 2 components, euclidean, ``perplexity=30``,
  ``early_exaggeration=12``, ``init="random"``; seeded here, and the perplexity clipped below the number
  of points (scikit-learn refuses a larger one).
"""
from __future__ import annotations

from collections.abc import Mapping

import attrs
import numpy as np
from sklearn.cluster import DBSCAN, HDBSCAN, AgglomerativeClustering, KMeans
from sklearn.manifold import TSNE

from .clustering import cluster_space


@attrs.frozen
class CorelayParams:
    """The parameters of the alternatives (CoRelAy's defaults)."""

    dbscan_eps: float = 0.5
    dbscan_min_samples: int = 5
    hdbscan_min_cluster_size: int = 5
    linkage: str = "ward"
    tsne_perplexity: float = 30.0
    tsne_early_exaggeration: float = 12.0

    def as_dict(self) -> dict:
        return attrs.asdict(self)


#: The clustering methods a study stores, in the order the results page lists them (k-means first: the paper's).
METHODS = ("kmeans", "agglomerative", "dbscan", "hdbscan")
METHOD_TITLES = {"kmeans": "k-means (the paper's)", "agglomerative": "agglomerative (ward)", "dbscan": "DBSCAN",
                 "hdbscan": "HDBSCAN"}


def dbscan_labels(points: np.ndarray, eps: float = 0.5, min_samples: int = 5) -> np.ndarray:
    """DBSCAN cluster per point (-1: noise), CoRelAy's ``DBSCAN`` with euclidean distances."""
    return DBSCAN(eps=eps, min_samples=min_samples, metric="euclidean").fit_predict(points)


def hdbscan_labels(points: np.ndarray, min_cluster_size: int = 5) -> np.ndarray:
    """HDBSCAN cluster per point (-1: noise), CoRelAy's ``HDBSCAN`` (``min_cluster_size`` = its ``n_clusters``)."""
    size = max(2, min(int(min_cluster_size), len(points)))
    return HDBSCAN(min_cluster_size=size, metric="euclidean", copy=True).fit_predict(points)


def tsne_2d(points: np.ndarray, perplexity: float = 30.0, early_exaggeration: float = 12.0,
            seed: int = 0) -> np.ndarray:
    """t-SNE coordinates (N, 2), CoRelAy's ``TSNEEmbedding`` (random init), seeded."""
    n = len(points)
    if n < 3:
        raise ValueError(f"t-SNE needs at least 3 points, got {n}")
    return np.asarray(TSNE(n_components=2, init="random", metric="euclidean", perplexity=min(perplexity, n - 1.0),
                           early_exaggeration=early_exaggeration, random_state=seed).fit_transform(points),
                      dtype=np.float64)


def method_name(method: str, k: int | None = None, params: CorelayParams = CorelayParams()) -> str:
    """ViRelAy's name of a clustering (``docs/examples/meta_analysis.py``): ``kmeans-05``, ``dbscan-eps=0.5`` …"""
    if method in ("kmeans", "agglomerative"):
        return f"{method}-{int(k):02d}"
    if method == "dbscan":
        return f"dbscan-eps={params.dbscan_eps:.1f}"
    if method == "hdbscan":
        return "hdbscan"
    raise ValueError(f"unknown clustering method {method!r}; one of {METHODS}")


def alternatives(embedding: np.ndarray, kmeans: Mapping[int, np.ndarray], k: int, *, seed: int = 0,
                 params: CorelayParams = CorelayParams(), space: str = "embedding",
                 agglomerative: Mapping[int, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Every method's clustering of one class's spectral embedding, by method (k-means and agglomerative at ``k``).

    Parameters
    ----------
    embedding : ndarray, shape (N, E)
        Spectral embedding (:func:`analysis.spray.embedding.spectral_embedding`).
    kmeans : mapping of int to ndarray
        The k-means labels SpRAy already computed (:attr:`analysis.spray.pipeline.SprayResult.labels`).
    k : int
        The cluster count shown (for k-means and agglomerative).
    space : {"embedding", "per_k"}
        Where k-means and agglomerative ran (:func:`analysis.spray.clustering.cluster_space`); DBSCAN and
        HDBSCAN, which choose their own number of clusters, always run on Φ, the row-normalised embedding
        CoRelAy clusters.
    agglomerative : mapping of int to ndarray, optional
        Agglomerative labels already computed; computed at ``k`` otherwise.
    """
    phi = cluster_space(embedding, 0, "embedding")
    if k in kmeans:
        km = np.asarray(kmeans[k])
    else:
        km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit_predict(cluster_space(embedding, k, space))
    agg = (agglomerative or {}).get(k)
    if agg is None:
        agg = AgglomerativeClustering(n_clusters=k, linkage=params.linkage).fit_predict(
            cluster_space(embedding, k, space))
    return {"kmeans": km, "agglomerative": np.asarray(agg),
            "dbscan": dbscan_labels(phi, params.dbscan_eps, params.dbscan_min_samples),
            "hdbscan": hdbscan_labels(phi, params.hdbscan_min_cluster_size)}


def tsne_of(embedding: np.ndarray, *, seed: int = 0, params: CorelayParams = CorelayParams()) -> np.ndarray:
    """t-SNE of Φ, the row-normalised spectral embedding (what CoRelAy's pipeline hands its ``TSNEEmbedding``)."""
    return tsne_2d(cluster_space(embedding, 0, "embedding"), params.tsne_perplexity, params.tsne_early_exaggeration,
                   seed)


def display_labels(labels) -> np.ndarray:
    """Cluster ids as the pages and figures show them: from 1, and DBSCAN/HDBSCAN's noise (-1) as ``noise``."""
    labels = np.asarray(labels).reshape(-1)
    return np.array(["noise" if v < 0 else str(int(v) + 1) for v in labels], dtype=object)
