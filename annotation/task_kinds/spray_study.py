"""A SpRAy study on the built-in benchmark: evidence (ranking, plots, cluster tasks), outputs, un-Hans job."""
from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
from django import forms

from analysis.salient.ground_truth import feature_truth
from annotation.task_kinds import OutputFile, Progress, TaskSpec
from annotation.task_kinds import salient_common as common
from annotation.task_kinds.benchmark_settings import BenchmarkOverridesForm, ClassListField

DEFAULTS: dict[str, Any] = {
    "dataset": "benchmark",
    "model": "standard",
    "classes": [],
    "per_class": 300,
    "size": 32,
    "metric": "euclidean",
    "max_k": 30,
    "review_classes": 3,
    "review_also": [],
    "examples": 8,
    "min_cluster_size": 5,
    "reason_min_length": 5,
    "benchmark": {},
    "training": {},
}
#: The crowd's answer for a cluster whose heatmaps sit on each planted cue.
CUE_FOCUS = {"background": "background", "watermark": "artifact", "object": "separate_object"}
SUMMARY = "spray_summary.json"


class SpraySettingsForm(BenchmarkOverridesForm):
    dataset = forms.ChoiceField(choices=[("benchmark", "Built-in planted-bias benchmark (Fashion-MNIST)")])
    model = forms.ChoiceField(choices=common.FLAVOURS, initial="standard", help_text="The model whose heatmaps are analysed.")
    classes = ClassListField()
    per_class = forms.IntegerField(min_value=10, max_value=6000, initial=300,
                                   help_text="Training images per class that get an LRP heatmap.")
    size = forms.IntegerField(min_value=4, max_value=64, initial=32, help_text="Heatmaps are downsampled to size × size.")
    metric = forms.ChoiceField(choices=[("euclidean", "Euclidean"), ("gromov_wasserstein", "Gromov-Wasserstein (slow: use size ≤ 8)")],
                               initial="euclidean")
    max_k = forms.IntegerField(min_value=2, max_value=30, initial=30, help_text="k-means for k = 2 … max_k; τ is their mean.")
    review_classes = forms.IntegerField(min_value=0, max_value=100, initial=3,
                                        help_text="The top classes by τ whose clusters the crowd reviews.")
    review_also = ClassListField(help_text="Also review the clusters of these classes (e.g. suspected ones), "
                                           "comma-separated.")
    examples = forms.IntegerField(min_value=1, max_value=16, initial=8, help_text="Example heatmaps per cluster task.")
    min_cluster_size = forms.IntegerField(min_value=1, max_value=1000, initial=5,
                                          help_text="Smaller clusters get no review task.")
    reason_min_length = forms.IntegerField(min_value=0, max_value=200, initial=5)

    def clean(self) -> dict:
        data = super().clean()
        if data.get("metric") == "gromov_wasserstein" and (data.get("size") or 0) > 12:
            self.add_error("size", "Gromov-Wasserstein needs a small grid (size ≤ 12); its cost grows with size⁶")
        return data


def conf(study) -> dict[str, Any]:
    return {**DEFAULTS, **study.settings}


def _inputs(study, progress: Progress, with_checkpoint: bool = False):
    """(benchmark, model handle[, checkpoint path]) of the study."""
    model = conf(study)["model"]
    bench, handles, paths = common.salient_inputs(study, progress, [model])
    return (bench, handles[model], paths[model]) if with_checkpoint else (bench, handles[model])


def _positive_maps(relevance: np.ndarray) -> np.ndarray:
    """Relevance (n, H, W) -> per-image [0, 1] maps of its positive part (for overlays and truth)."""
    pos = np.clip(relevance, 0, None)
    peak = pos.reshape(len(pos), -1).max(axis=1)
    return pos / np.where(peak > 0, peak, 1.0)[:, None, None]


def cluster_truth(bench, indices: np.ndarray, relevance: np.ndarray) -> str:
    """What the cluster's heatmaps focus on, from the planted masks (the simulated crowd's truth)."""
    from analysis.salient.benchmark_inputs import panel_cue_kind

    train = bench.split("train")
    cue = panel_cue_kind(bench, indices)
    answer = feature_truth(_positive_maps(relevance), train.object_masks[indices], train.bias_masks[indices], cue)
    if answer == "main_object":
        return "object"
    if answer == "separate_object" and cue is not None:
        return CUE_FOCUS[cue]
    return answer


def cue_share(bench, indices: np.ndarray) -> dict[str, float]:
    """Share of the images carrying each planted cue."""
    from analysis.datasets.benchmark import BIAS_KINDS

    kinds = bench.split("train").bias_kinds[np.asarray(indices)]
    return {kind: float(np.mean(kinds == i)) for i, kind in enumerate(BIAS_KINDS)}


def _examples(embedding: np.ndarray, members: np.ndarray, n: int) -> np.ndarray:
    """The ``n`` members nearest their cluster's centre in the spectral embedding (typical examples)."""
    centre = embedding[members].mean(axis=0)
    order = np.argsort(np.linalg.norm(embedding[members] - centre, axis=1), kind="stable")
    return members[order[:n]]


def spray_evidence(study, progress: Progress) -> Iterator[TaskSpec | OutputFile]:
    """Run SpRAy over the study's classes; yield the analysis files and one task per reviewed cluster."""
    from analysis.salient.benchmark_inputs import images_uint8
    from analysis.spray.dataset import display_k, spray_classes
    from analysis.spray.plots import cluster_grid, eigenvalue_plot, ranking_plot, umap_plot

    c = conf(study)
    bench, handle = _inputs(study, common.staged(progress, 0.0, 0.3))
    classes = c["classes"] or list(range(bench.num_classes))
    if max(classes) >= bench.num_classes:
        raise ValueError(f"class {max(classes)} does not exist; the dataset has {bench.num_classes} classes")
    unknown = sorted(set(c["review_also"]) - set(classes))
    if unknown:
        raise ValueError(f"review_also names class(es) {unknown} that are not among the analysed classes")
    images, labels = bench.split("train").tensors()
    spray = spray_classes(handle, images, labels, classes, per_class=c["per_class"], size=c["size"],
                          metric=c["metric"], ks=range(2, c["max_k"] + 1), progress=common.staged(progress, 0.3, 0.5))
    planted = {b.label: b.kind for b in bench.biases}
    rank_of = {cls: i + 1 for i, (cls, _) in enumerate(spray.ranking)}
    report = common.staged(progress, 0.8, 0.2)
    store = common.ImageStore()
    rows, per_class = [], {}
    for done, (cls, tau) in enumerate(spray.ranking):
        report(done, len(spray.ranking), f"plots and tasks of class {cls}")
        entry = spray.classes[cls]
        k = display_k(entry.result)
        cluster_ids = entry.result.labels[k]
        name = bench.class_names[cls]
        yield OutputFile(f"eigenvalues_{cls}.png", eigenvalue_plot(entry.result.eigenvalues, f"{name}: eigenvalues"),
                         f"Eigenvalues (1 − λ) of class {name}")
        if entry.result.umap is not None:
            yield OutputFile(f"umap_{cls}.png", umap_plot(entry.result.umap, cluster_ids, f"{name}: UMAP, k = {k}"),
                             f"UMAP of class {name}'s spectral embedding")
        yield OutputFile(f"clusters_{cls}.png",
                         cluster_grid(images_uint8(bench, entry.indices), entry.relevance, cluster_ids,
                                      title=f"{name}: example heatmaps per cluster (k = {k})"),
                         f"Example heatmaps per cluster of class {name}")
        clusters = []
        for cid in np.unique(cluster_ids):
            members = entry.indices[cluster_ids == cid]
            share = cue_share(bench, members)
            clusters.append({"cluster": int(cid), "size": int(len(members)), "cue_share": share})
            reviewed = rank_of[cls] <= c["review_classes"] or cls in c["review_also"]
            if not reviewed or len(members) < c["min_cluster_size"]:
                continue
            local = np.flatnonzero(cluster_ids == cid)
            shown = _examples(entry.result.embedding, local, c["examples"])
            shown_images = images_uint8(bench, entry.indices[shown])
            shown_maps = _positive_maps(entry.relevance[shown])
            yield TaskSpec(
                key=f"class{cls}-k{k}-cluster{int(cid)}",
                payload={**common.class_info(bench, cls), "cls": cls, "k": k, "cluster": int(cid),
                         "size": int(len(members)), "tau": round(tau, 4), "rank": rank_of[cls],
                         "examples": [{"image": i, "heatmap": h} for i, h in
                                      zip(store.images(shown_images), store.heatmaps(shown_images, shown_maps))],
                         "indices": [int(i) for i in members]},
                truth={"focus": cluster_truth(bench, members, entry.relevance[cluster_ids == cid])},
            )
        plots = {"eigenvalues": f"eigenvalues_{cls}.png", "UMAP": f"umap_{cls}.png",
                 "example heatmaps per cluster": f"clusters_{cls}.png"}
        if entry.result.umap is None:
            del plots["UMAP"]
        per_class[cls] = {"class": cls, "name": name, "tau": tau, "rank": rank_of[cls], "k": k,
                          "planted": planted.get(cls, ""), "clusters": clusters, "plots": plots}
        best = max(clusters, key=lambda r: max(r["cue_share"].values()) if r["size"] >= c["min_cluster_size"] else 0)
        rows.append({"rank": rank_of[cls], "class": cls, "name": name, "tau": round(tau, 4),
                     "planted_cue": planted.get(cls, ""), "k_shown": k, "n_heatmaps": int(len(entry.indices)),
                     "cluster_sizes": " ".join(str(r["size"]) for r in clusters),
                     "best_cue_purity": round(max(best["cue_share"].values()), 4)})
    table = pd.DataFrame(rows)
    yield OutputFile("spray_ranking.csv", table.to_csv(index=False).encode(), "Classes ranked by Fisher score τ")
    yield OutputFile("spray_ranking.png", ranking_plot(spray.ranking, bench.class_names), "Classes ranked by τ")
    summary = {"settings": {k: c[k] for k in ("model", "per_class", "size", "metric", "max_k")},
               "ranking": rows, "classes": [per_class[cls] for cls, _ in spray.ranking]}
    yield OutputFile(SUMMARY, json.dumps(summary, indent=1).encode(), "SpRAy results (JSON)")
    progress(1000, 1000, "SpRAy done")


def _relevance_maps(handle, bench, indices: np.ndarray) -> np.ndarray:
    """Channel-summed LRP relevance (n, H, W) of train images for their true class."""
    from analysis.spray.lrp import relevance

    images, labels = bench.split("train").tensors(np.asarray(indices))
    return relevance(handle, images, labels).sum(dim=1).numpy()


def spray_outputs(study, labels: pd.DataFrame, progress: Progress) -> list[OutputFile]:
    """Cluster labels with their planted-cue shares, and the artifact tests of clusters called artifacts."""
    from analysis.spray.artifacts import artifact_mask, artifact_patch, artifact_tests

    tasks = {t.pk: t for t in study.tasks.all()}
    if not any("indices" in t.payload for t in tasks.values()):
        return []  # answers imported from elsewhere: no clusters to test
    bench, handle = _inputs(study, common.staged(progress, 0.0, 0.3))
    rows = []
    for _, row in labels.iterrows():
        task = tasks[row["task"]]
        share = cue_share(bench, np.asarray(task.payload["indices"]))
        rows.append({"task": task.key, "class": task.payload["cls"], "class_name": task.payload["class_name"],
                     "k": task.payload["k"], "cluster": task.payload["cluster"], "size": task.payload["size"],
                     "label": row["label"], "complete": row["complete"], "n_answers": row["n_answers"],
                     **{c: row[c] for c in labels.columns if c.startswith("count_")},
                     **{f"share_{kind}": round(v, 4) for kind, v in share.items()}})
    files = [OutputFile("cluster_labels.csv", pd.DataFrame(rows).to_csv(index=False).encode(),
                        "Crowd label per cluster with the share of each planted cue")]
    artifacts = [r for r in rows if r["label"] == "artifact"]
    test_images, test_labels = bench.split("test").tensors()
    results = []
    for i, r in enumerate(artifacts):
        progress(300 + 650 * i // max(len(artifacts), 1), 1000, f"artifact tests of {r['task']}")
        task = next(t for t in tasks.values() if t.key == r["task"])
        indices = np.asarray(task.payload["indices"])
        mask = artifact_mask(_relevance_maps(handle, bench, indices))
        train_images, _ = bench.split("train").tensors(indices)
        patch = artifact_patch(train_images, mask)
        tests = artifact_tests(handle, test_images, test_labels, int(r["class"]), mask, patch)
        for test, effect in tests.items():
            results.append({"task": r["task"], "class": r["class"], "class_name": r["class_name"], "test": test,
                            "mask_pixels": int(mask.sum()), **effect})
    if results:
        table = pd.DataFrame(results)
        files.append(OutputFile("artifact_tests.csv", table.to_csv(index=False).encode(),
                                "Artifact tests: paste into other classes, remove from the class"))
        files.append(OutputFile("artifact_tests.json", table.to_json(orient="records", indent=1).encode(),
                                "Artifact tests (JSON)"))
    progress(1000, 1000, "outputs ready")
    return files


def unhans_form(study) -> type[forms.Form]:
    """Choose the reviewed cluster whose training images the un-Hans retrain leaves out."""
    tasks = list(study.tasks.filter(is_gold=False).order_by("id"))
    labels = {r.task_id: r.label for r in study.results.all()}
    choices = [(t.key, f"{t.payload.get('class_name', '')} · cluster {t.payload.get('cluster')} "
                       f"({t.payload.get('size')} images){' · crowd: ' + labels[t.pk] if labels.get(t.pk) else ''}")
               for t in tasks]
    initial = next((t.key for t in tasks if labels.get(t.pk) == "artifact"), choices[0][0] if choices else None)

    class UnhansForm(forms.Form):
        cluster = forms.ChoiceField(choices=choices, initial=initial,
                                    help_text="Its training images are left out of the retrain.")

    return UnhansForm


def run_unhans(study, params: Mapping[str, Any], progress: Progress) -> list[OutputFile]:
    """Retrain the study's model without a cluster's training images; bias-flipped accuracy before/after."""
    from analysis.spray.unhans import train_config_of, unhans_retrain

    task = study.tasks.filter(key=params.get("cluster", "")).first()
    if task is None or "indices" not in task.payload:
        raise ValueError(f"study {study.name!r} has no reviewed cluster {params.get('cluster')!r}")
    bench, handle, checkpoint = _inputs(study, common.staged(progress, 0.0, 0.1), with_checkpoint=True)
    report = unhans_retrain(bench, np.asarray(task.payload["indices"]), base_handle=handle,
                            base_config=train_config_of(checkpoint), artifact_class=int(task.payload["cls"]),
                            progress=common.staged(progress, 0.1, 0.9))
    report.pop("model")  # the retrained weights stay out of the study's files
    report = {"cluster": task.key, **report}
    return [OutputFile("unhans.json", json.dumps(report, indent=1, default=float).encode(),
                       f"Un-Hans retrain without {task.key}")]


def _read_json(outputs: Mapping[str, Any], name: str) -> Any:
    from annotation.artifacts import artifact_read

    output = outputs.get(name)
    return None if output is None else json.load(io.BytesIO(artifact_read(output.artifact)))


def results_context(study) -> dict[str, Any]:
    outputs = {o.name: o for o in study.outputs.select_related("artifact")}
    summary = _read_json(outputs, SUMMARY)
    return {"summary": summary, "artifact_tests": _read_json(outputs, "artifact_tests.json"),
            "unhans": _read_json(outputs, "unhans.json")}
