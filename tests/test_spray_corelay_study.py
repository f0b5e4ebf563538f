"""The SpRAy study's CoRelAy alternatives and ViRelAy export (issue 32), on the tiny benchmark and on a registered
folder: the evidence stores DBSCAN, HDBSCAN, agglomerative and t-SNE beside k-means (the results page switches
between them), and the ViRelAy project job's files, read back in ViRelAy's layout, hold the study's arrays."""
from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest
from django.urls import reverse

from analysis.spray.corelay_methods import dbscan_labels, hdbscan_labels
from analysis.spray.clustering import cluster_space
from tests.study_helpers import output_files, study_from_form
from tests.test_own_model_and_images import BASE, KINDS, own_files, registered  # noqa: F401  (fixtures)
from tests.test_spray_study import FORM
from tests.virelay_reader import read_project

pytestmark = pytest.mark.slow


def _arrays(files) -> dict:
    with np.load(io.BytesIO(files["spray_arrays.npz"])) as data:
        return {key: data[key] for key in data.files}


def check_alternatives(study, client) -> dict:
    """The stored clusterings are DBSCAN/HDBSCAN of the stored Φ with CoRelAy's defaults; the summary's tables and
    the results page agree with them."""
    files = output_files(study)
    arrays, summary = _arrays(files), json.loads(files["spray_summary.json"])
    assert summary["settings"]["corelay"] == {"dbscan_eps": 0.5, "dbscan_min_samples": 5, "hdbscan_min_cluster_size": 5,
                                              "linkage": "ward", "tsne_perplexity": 30.0,
                                              "tsne_early_exaggeration": 12.0}
    assert [m["method"] for m in summary["methods"]] == ["kmeans", "agglomerative", "dbscan", "hdbscan"]
    page = client.get(reverse("study_results", args=[study.pk])).content.decode()
    assert page.count('<option value="') >= 4 and '<option value="kmeans" selected>' in page
    for entry in summary["classes"]:
        cls, k = entry["class"], entry["k"]
        phi = cluster_space(arrays[f"{cls}/embedding"], 0, "embedding")
        assert np.array_equal(arrays[f"{cls}/cluster/dbscan-eps=0.5"], dbscan_labels(phi, 0.5, 5))
        assert np.array_equal(arrays[f"{cls}/cluster/hdbscan"], hdbscan_labels(phi, 5))
        assert int(arrays[f"{cls}/k"]) == k
        kmeans = arrays[f"{cls}/cluster/kmeans-{k:02d}"] + 1  # the clusters the tables and tasks number from 1
        assert {c["cluster"]: c["size"] for c in entry["clusters"]} == {int(v): int((kmeans == v).sum())
                                                                          for v in np.unique(kmeans)}
        assert arrays[f"{cls}/tsne"].shape == (len(arrays[f"{cls}/index"]), 2)
        assert files[f"tsne_{cls}.png"][:4] == b"\x89PNG"
        for method in ("agglomerative", "dbscan", "hdbscan"):
            got = entry["clusterings"][method]
            ids = arrays[f"{cls}/cluster/{method}-{k:02d}" if method == "agglomerative" else
                         f"{cls}/cluster/{'dbscan-eps=0.5' if method == 'dbscan' else 'hdbscan'}"]
            assert got["noise"] == int((ids < 0).sum()) and got["n_clusters"] == len(set(ids[ids >= 0].tolist()))
            assert sorted(c["size"] for c in got["clusters"]) == sorted(np.unique(ids, return_counts=True)[1].tolist())
            assert sum(c["cluster"] == "noise" for c in got["clusters"]) == int(got["noise"] > 0)
            for file in got["plots"].values():
                assert files[file][:4] == b"\x89PNG" and f"/outputs/{file}" in page
            section = page.split(f'id="class-{cls}"')[1].split(f'data-method="{method}"')[1].split("</table>")[0]
            assert section.count("<tr><td>") == len(got["clusters"])
    return summary


def export(study, client, capture) -> dict:
    """Run the ViRelAy job through the results page's form (JSON reply, as a script would) and compare its files,
    read as ViRelAy reads them, with the study's arrays."""
    url = reverse("study_job_start", args=[study.pk, "virelay"])
    reply = client.post(url, {"virelay-max_side": 2}, HTTP_ACCEPT="application/json")
    assert reply.status_code == 400 and "max_side" in reply.json()["error"]
    with capture(execute=True):
        reply = client.post(url, {"virelay-max_side": 64}, HTTP_ACCEPT="application/json")
    assert reply.status_code == 202, reply.content
    job = study.jobs.get(name="virelay")
    assert job.state == "done", job.error
    files = output_files(study)
    arrays, summary = _arrays(files), json.loads(files["spray_summary.json"])
    page = client.get(reverse("study_results", args=[study.pk])).content.decode()
    assert 'id="virelay-download"' in page and "/outputs/virelay_project.zip" in page
    folder = zipfile.ZipFile(io.BytesIO(files["virelay_project.zip"]))
    assert sorted(folder.namelist()) == sorted(f"virelay/{n}" for n in (
        "project.yaml", "label-map.json", "dataset.input.h5", "spray.attribution.h5", "spray.analysis.h5"))
    return {"zip": folder, "arrays": arrays, "summary": summary}


def check_project(tmp_path, made, class_names, images_of) -> None:
    made["zip"].extractall(tmp_path)
    read = read_project(tmp_path / "virelay" / "project.yaml")
    arrays = made["arrays"]
    classes = sorted(int(key.split("/")[0]) for key in arrays if key.endswith("/index"))
    assert [name for _, _, name in read["label_map"]] == list(class_names)
    rows = np.concatenate([arrays[f"{c}/index"] for c in classes])
    splits = np.concatenate([arrays[f"{c}/split"] for c in classes])
    assert len(read["data"]) == len(rows)
    assert np.allclose(read["data"], images_of(splits, rows), atol=1e-6)
    labels = np.concatenate([np.full(len(arrays[f"{c}/index"]), c) for c in classes])
    assert np.array_equal(read["label"], labels)
    (attr,) = read["attributions"]
    assert np.array_equal(attr["attribution"][:, 0], np.concatenate([arrays[f"{c}/heatmaps"] for c in classes]))
    assert np.array_equal(attr["label"], labels)
    assert np.allclose(attr["prediction"].sum(axis=1), 1, atol=1e-5)
    (analysis,) = read["analyses"]["Spectral"]
    assert len(analysis) == len(classes)
    names = {c: wnid for c, wnid, _ in read["label_map"]}
    start = 0
    for c in classes:
        got, n = analysis[names[c]], len(arrays[f"{c}/index"])
        assert got["human_readable"] == class_names[c]
        assert np.array_equal(got["index"], np.arange(start, start + n))  # rows of the attribution file
        assert np.array_equal(read["label"][got["index"]], np.full(n, c))
        assert np.allclose(got["embedding"]["spectral"], arrays[f"{c}/embedding"], atol=1e-6)
        assert np.allclose(got["eigenvalue"]["spectral"], arrays[f"{c}/eigenvalues"], atol=1e-6)
        assert np.allclose(got["embedding"]["tsne"], arrays[f"{c}/tsne"], atol=1e-4)
        k = int(arrays[f"{c}/k"])
        for name in (f"kmeans-{k:02d}", f"agglomerative-{k:02d}", "dbscan-eps=0.5", "hdbscan"):
            assert np.array_equal(got["cluster"][name], arrays[f"{c}/cluster/{name}"]), name
        assert got["cluster_attrs"][f"kmeans-{k:02d}"]["k"] == k
        start += n


def study_dataset(study):
    """The study's dataset as its jobs read it (the built-in benchmark or the registered folder)."""
    from annotation import services
    from annotation.task_kinds.spray_jobs import spray_inputs

    return spray_inputs(services.study_context(study), lambda *args: None)[0]


def images_from(bench):
    def images_of(splits, rows):
        return np.concatenate([bench.split(("train", "test")[s]).tensors(np.array([r]))[0].numpy()
                               for s, r in zip(splits, rows)])
    return images_of


def test_benchmark_study_alternatives_and_virelay_export(researcher_client, django_capture_on_commit_callbacks,
                                                         tmp_path):
    study = study_from_form(researcher_client, FORM, django_capture_on_commit_callbacks)
    summary = check_alternatives(study, researcher_client)
    # the crowd's tasks are k-means's clusters still (the paper's): each task's members are its k-means cluster
    arrays = _arrays(output_files(study))
    for task in study.tasks.all():
        cls, k = task.payload["cls"], task.payload["k"]
        ids = arrays[f"{cls}/cluster/kmeans-{k:02d}"] + 1
        train = arrays[f"{cls}/index"][(ids == task.payload["cluster"]) & (arrays[f"{cls}/split"] == 0)]
        assert sorted(train.tolist()) == sorted(task.payload["indices"])
    made = export(study, researcher_client, django_capture_on_commit_callbacks)
    bench = study_dataset(study)
    check_project(tmp_path, made, bench.class_names, images_from(bench))
    assert summary["classes"]


def test_registered_folder_study_alternatives_and_virelay_export(registered, researcher_client,  # noqa: F811
                                                                 django_capture_on_commit_callbacks, tmp_path):
    from annotation.models import RegisteredDataset

    form = {**BASE, "name": "own-spray", "kind": "cluster_review", **KINDS["cluster_review"]}
    study = study_from_form(researcher_client, form, django_capture_on_commit_callbacks)
    check_alternatives(study, researcher_client)
    made = export(study, researcher_client, django_capture_on_commit_callbacks)
    names = [c["name"] for c in RegisteredDataset.objects.get(name="fish").classes]
    check_project(tmp_path, made, names, images_from(study_dataset(study)))
