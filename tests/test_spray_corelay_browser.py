"""The SpRAy results page's clustering switch (issue 32) in a real browser: k-means (the paper's) shows first;
choosing DBSCAN shows its table and figures and hides k-means's, under the site's Content-Security-Policy."""
import json

import pytest

from annotation import services
from annotation.artifacts import artifact_store_bytes
from annotation.models import Study, StudyOutput
from tests.study_helpers import sign_in

pytestmark = [pytest.mark.slow, pytest.mark.browser]

METHODS = [{"method": "kmeans", "title": "k-means (the paper's)"},
           {"method": "agglomerative", "title": "agglomerative"},
           {"method": "dbscan", "title": "DBSCAN"}, {"method": "hdbscan", "title": "HDBSCAN"}]


def _summary() -> dict:
    share = {"watermark": 0.0}
    clusters = {m: {"n_clusters": 2, "noise": 3 if m == "dbscan" else 0, "plots": {},
                    "clusters": [{"cluster": "1", "size": 7, "cue_share": share},
                                 {"cluster": "2", "size": 5, "cue_share": share}]
                    + ([{"cluster": "noise", "size": 3, "cue_share": share}] if m == "dbscan" else [])}
                for m in ("kmeans", "agglomerative", "dbscan", "hdbscan")}
    settings = {"model": "standard", "per_class": 15, "size": 16, "preprocessing": "pooled", "metric": "euclidean",
                "max_k": 3, "embed_split": "train", "space": "embedding", "weighted_tau": False, "gw_options": None,
                "corelay": {"dbscan_eps": 0.5, "dbscan_min_samples": 5, "hdbscan_min_cluster_size": 5,
                            "linkage": "ward", "tsne_perplexity": 30.0, "tsne_early_exaggeration": 12.0}}
    return {"settings": settings, "methods": METHODS,
            "ranking": [{"rank": 1, "class": 0, "name": "Shirt", "tau": 1.0, "planted_cue": "", "k_shown": 2,
                         "cluster_sizes": "7 5", "best_cue_purity": 0.0}],
            "classes": [{"class": 0, "name": "Shirt", "tau": 1.0, "rank": 1, "k": 2, "planted": "",
                         "clusters": [{"cluster": 1, "size": 8, "cue_share": share, "validation": 0},
                                      {"cluster": 2, "size": 7, "cue_share": share, "validation": 0}],
                         "plots": {}, "clusterings": clusters}]}


def test_the_clustering_select_swaps_the_tables(live_server, page, researcher):
    study = services.study_create(owner=researcher, name="spray", kind="cluster_review", settings={})
    Study.objects.filter(pk=study.pk).update(state=Study.State.READY)
    StudyOutput.objects.create(study=study, name="spray_summary.json", stage="evidence", title="SpRAy",
                               artifact=artifact_store_bytes(data=json.dumps(_summary()).encode(), ext="json"))
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    sign_in(page, live_server.url, researcher.username)
    page.goto(f"{live_server.url}/studies/{study.pk}/results/")
    card = page.locator("#class-0")
    kmeans, dbscan = card.locator(".clustering[data-method=kmeans]"), card.locator(".clustering[data-method=dbscan]")
    assert kmeans.is_visible() and not dbscan.is_visible()
    assert page.locator("#clustering-select").input_value() == "kmeans"
    page.select_option("#clustering-select", "dbscan")
    page.wait_for_function("() => !document.querySelector('#class-0 .clustering[data-method=dbscan]').hidden")
    assert dbscan.is_visible() and not kmeans.is_visible()
    assert not card.locator(".clustering[data-method=hdbscan]").is_visible()
    assert "2 clusters, 3 noise points" in dbscan.inner_text()
    rows = dbscan.locator("tbody tr")
    assert rows.count() == 3 and rows.nth(2).locator("td").first.inner_text() == "noise"
    assert not [e for e in errors if "Content Security Policy" in e or "Refused" in e], errors
