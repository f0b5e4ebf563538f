"""CoRelAy's other embeddings and clusterings on SpRAy's spectral embedding, and the ViRelAy project export
(issue 32): known clusters on hand-made embeddings, and the export read back in ViRelAy's layout."""
from __future__ import annotations

import numpy as np
import pytest

from analysis.spray.corelay_methods import (
    CorelayParams,
    alternatives,
    dbscan_labels,
    display_labels,
    hdbscan_labels,
    method_name,
    tsne_of,
)
from analysis.spray.virelay import Category, category_name, write_project
from tests.virelay_reader import read_project


def _directions(sizes, dims: int = 8, jitter: float = 0.02, seed: int = 0):
    """Rows pointing along axis i (one group per entry of ``sizes``), a little jittered; the truth per row."""
    rng = np.random.default_rng(seed)
    rows, truth = [], []
    for axis, size in enumerate(sizes):
        base = np.zeros(dims)
        base[axis] = 1.0
        rows.append(base + jitter * rng.standard_normal((size, dims)))
        truth += [axis] * size
    return np.concatenate(rows), np.asarray(truth)


def _same_partition(a, b) -> bool:
    """Two labelings group the points alike (up to renaming the clusters)."""
    a, b = np.asarray(a), np.asarray(b)
    return all(len(set(b[a == v])) == 1 for v in np.unique(a)) and all(len(set(a[b == v])) == 1 for v in np.unique(b))


def test_dbscan_finds_the_three_directions_and_calls_the_loners_noise():
    # three groups of 20 along axes 0-2 of Φ, and 3 single points along axes 3-5: each single point is
    # √2 from every other point, further than eps = 0.5, and alone (min_samples = 5) → noise (-1)
    points, truth = _directions([20, 20, 20, 1, 1, 1])
    labels = dbscan_labels(points)
    assert len(set(labels[:60])) == 3 and -1 not in labels[:60]
    assert _same_partition(labels[:60], truth[:60])
    assert list(labels[60:]) == [-1, -1, -1]
    # a smaller min_samples than a group's size keeps the groups; eps above √2 joins everything
    assert len(set(dbscan_labels(points, eps=1.5))) == 1


def test_hdbscan_finds_the_groups_with_corelays_min_cluster_size():
    points, truth = _directions([25, 25, 25, 2])
    labels = hdbscan_labels(points)
    assert _same_partition(labels[:75], truth[:75]) and -1 not in labels[:75]
    assert list(labels[75:]) == [-1, -1]  # 2 points < min_cluster_size 5


def test_alternatives_cluster_phi_and_keep_the_kmeans_labels_given():
    embedding, truth = _directions([15, 15, 15, 15], dims=6, seed=3)
    # row norms vary: Φ undoes them
    embedding = embedding * np.random.default_rng(4).uniform(0.5, 3.0, (len(embedding), 1))
    given = {4: (truth + 1) % 4}
    out = alternatives(embedding, given, 4)
    assert list(out) == ["kmeans", "agglomerative", "dbscan", "hdbscan"]
    assert out["kmeans"] is not None and np.array_equal(out["kmeans"], given[4])
    for method in ("agglomerative", "dbscan", "hdbscan"):
        assert _same_partition(out[method], truth), method
    assert len(set(out["agglomerative"])) == 4
    # k-means computed when not given (k = 3 merges two directions)
    assert len(set(alternatives(embedding, {}, 3)["kmeans"])) == 3


def test_tsne_separates_the_groups_and_is_seeded():
    embedding, truth = _directions([20, 20], dims=5, seed=5)
    coords = tsne_of(embedding, seed=0)
    assert coords.shape == (40, 2)
    centres = np.array([coords[truth == g].mean(axis=0) for g in (0, 1)])
    spread = max(np.linalg.norm(coords[truth == g] - centres[g], axis=1).max() for g in (0, 1))
    assert np.linalg.norm(centres[0] - centres[1]) > spread  # every point nearer its own group's centre
    assert np.array_equal(coords, tsne_of(embedding, seed=0))
    assert tsne_of(embedding[:5], seed=0).shape == (5, 2)  # perplexity clipped below the number of points


def test_names_and_display_labels_follow_virelay():
    assert method_name("kmeans", 5) == "kmeans-05"
    assert method_name("agglomerative", 12) == "agglomerative-12"
    assert method_name("dbscan", params=CorelayParams(dbscan_eps=0.3)) == "dbscan-eps=0.3"
    assert method_name("hdbscan") == "hdbscan"
    with pytest.raises(ValueError, match="unknown clustering"):
        method_name("spectral", 2)
    assert list(display_labels([-1, 0, 2])) == ["noise", "1", "3"]


def _study_arrays(seed: int = 0):
    rng = np.random.default_rng(seed)
    n, classes = 12, 3
    images = rng.random((n, 3, 8, 8)).astype(np.float32)
    labels = np.repeat(np.arange(classes), n // classes)
    relevance = rng.standard_normal((n, 8, 8)).astype(np.float32)
    predictions = rng.random((n, classes)).astype(np.float32)
    categories = []
    for c in range(classes):
        rows = np.flatnonzero(labels == c)
        categories.append(Category(
            name=category_name(c, ["n01", None, "n03"][c]), index=rows,
            embeddings={"spectral": rng.standard_normal((len(rows), 4)), "tsne": rng.standard_normal((len(rows), 2))},
            eigenvalues=np.sort(rng.random(4)),
            clusterings={"kmeans-02": rng.integers(0, 2, len(rows)), "dbscan-eps=0.5": rng.integers(-1, 2, len(rows))},
            k={"kmeans-02": 2}))
    return images, labels, relevance, predictions, categories


def test_virelay_project_reads_back_in_virelays_layout(tmp_path):
    images, labels, relevance, predictions, categories = _study_arrays()
    paths = write_project(tmp_path / "export", name="study 7", model="standard", dataset="benchmark",
                          class_names=["T-shirt", "Pullover", "Coat"], wnids=["n01", None, "n03"], images=images,
                          labels=labels, attributions=relevance, predictions=predictions, categories=categories)
    read = read_project(paths["project.yaml"])
    assert read["name"] == "study 7" and read["model"] == "standard"
    assert read["label_map"] == [(0, "n01", "T-shirt"), (1, "00000001", "Pullover"), (2, "n03", "Coat")]
    assert np.array_equal(read["data"], images) and read["data"].dtype == np.float32
    assert np.array_equal(read["label"], labels)
    (attr,) = read["attributions"]
    assert not attr["has_index"]  # row i is sample i
    assert attr["attribution"].shape == (12, 1, 8, 8)
    assert np.array_equal(attr["attribution"][:, 0], relevance)
    assert np.array_equal(attr["prediction"], predictions) and np.array_equal(attr["label"], labels)
    (analysis,) = read["analyses"]["Spectral"]
    assert sorted(analysis) == ["00000001", "n01", "n03"]
    for c in categories:
        got = analysis[c.name]
        assert got["human_readable"] == ["T-shirt", "Pullover", "Coat"][int(np.unique(labels[c.index])[0])]
        assert np.array_equal(got["index"], c.index)
        for key, coords in c.embeddings.items():
            assert np.allclose(got["embedding"][key], coords, atol=1e-6)
        assert list(got["eigenvalue"]) == ["spectral"]
        assert np.allclose(got["eigenvalue"]["spectral"], c.eigenvalues, atol=1e-7)
        for key, ids in c.clusterings.items():
            assert np.array_equal(got["cluster"][key], ids)
        attributes = got["cluster_attrs"]["kmeans-02"]
        assert attributes["k"] == 2 and attributes["embedding"] == "spectral"


def test_virelay_export_refuses_what_virelay_could_not_read(tmp_path):
    images, labels, relevance, predictions, categories = _study_arrays()
    odd = Category(name="odd", index=categories[0].index, embeddings=categories[0].embeddings,
                   eigenvalues=categories[0].eigenvalues, clusterings={"hdbscan": np.zeros(4)})
    common = dict(name="s", model="m", dataset="d", class_names=["a", "b", "c"], wnids=None, images=images,
                  labels=labels, attributions=relevance, predictions=predictions)
    with pytest.raises(ValueError, match="same embeddings and clusterings"):
        write_project(tmp_path / "a", categories=[*categories, odd], **common)
    with pytest.raises(ValueError, match="same samples"):
        write_project(tmp_path / "b", categories=categories, **{**common, "labels": labels[:-1]})
    outside = Category(name="x", index=np.array([0, 99]), embeddings=categories[0].embeddings,
                       eigenvalues=categories[0].eigenvalues, clusterings=categories[0].clusterings)
    with pytest.raises(ValueError, match="outside"):
        write_project(tmp_path / "c", categories=[outside], **common)
