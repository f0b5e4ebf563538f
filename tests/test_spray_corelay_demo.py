"""The demo's line on CoRelAy's clusterings of a planted-cue class (issue 32), from a hand-made SpRAy summary."""
from demo.harness import clustering_lines


def test_clustering_line_counts_clusters_noise_and_the_purest_cue_share():
    summary = {"classes": [
        {"name": "Coat", "planted": "watermark", "clusterings": {
            "kmeans": {"n_clusters": 2, "noise": 0, "clusters": [
                {"cluster": "1", "size": 40, "cue_share": {"watermark": 0.1}},
                {"cluster": "2", "size": 10, "cue_share": {"watermark": 0.9}}]},
            "dbscan": {"n_clusters": 2, "noise": 7, "clusters": [
                {"cluster": "1", "size": 30, "cue_share": {"watermark": 0.2}},
                {"cluster": "2", "size": 4, "cue_share": {"watermark": 1.0}},  # too small to count
                {"cluster": "noise", "size": 7, "cue_share": {"watermark": 1.0}}]},  # noise never counts
            "hdbscan": {"n_clusters": 0, "noise": 9, "clusters": [
                {"cluster": "noise", "size": 9, "cue_share": {"watermark": 0.5}}]}}},
        {"name": "Bag", "planted": "", "clusterings": {"kmeans": {"n_clusters": 2, "noise": 0, "clusters": []}}},
    ]}
    assert clustering_lines(summary) == [
        "clusterings of Coat (watermark cue): kmeans 2 clusters (purest 90%); "
        "dbscan 2 clusters + 7 noise (purest 20%); hdbscan 0 clusters + 9 noise (no cluster of 5+)"]
