"""``cluster_review`` (SpRAy, Anders et al.): the crowd says what a cluster of LRP heatmaps focuses on.

The evidence job runs SpRAy over the benchmark's classes (LRP heatmaps, spectral clustering,
Fisher score tau) and stores the class ranking and per-class plots as analysis results. For the
top-ranked classes each cluster becomes a task: its example images with their heatmaps and
"what do these heatmaps focus on?" (the object, a separate object, the background, an artifact
such as text or a watermark) plus a reason; majority vote. After aggregation, the clusters the
crowd calls an artifact go through the artifact tests; the un-Hans retrain is a job of its own.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd
from django import forms

from analysis.aggregation import MajorityVote
from analysis.crowd_sim import noisy_choice
from analysis.exports import safe_csv_bytes
from analysis.spray.benchmark_review import cluster_truth, cue_share, positive_maps, typical_members
from annotation.task_kinds import (
    KindJob,
    OutputFile,
    Progress,
    StudyContext,
    TaskKind,
    TaskSpec,
    register_task_kind,
    staged,
)
from annotation.task_kinds.base import read_json
from annotation.task_kinds.benchmark import (
    BenchmarkOverridesForm,
    ClassListField,
    class_info,
    has_truth,
    heatmaps,
    model_field,
    model_inputs,
)
from annotation.task_kinds.fields import ChoiceField, TextField

FOCUS = ("object", "separate_object", "background", "artifact")
FOCUS_LABELS = (
    "The object itself",
    "A separate object",
    "The background",
    "An artifact (text, watermark, border)",
)
REASONS = {
    "object": "the red regions lie on the garment",
    "separate_object": "the red regions sit on a separate thing next to the garment",
    "background": "the red regions cover the background texture",
    "artifact": "the red regions sit on a small mark in the corner",
}
SUMMARY = "spray_summary.json"


class SpraySettingsForm(BenchmarkOverridesForm):
    model = model_field("standard", "The model whose heatmaps are analysed.")
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


def _inputs(ctx: StudyContext, progress: Progress, with_checkpoint: bool = False):
    """(benchmark, model handle[, checkpoint path]) of the study."""
    model = ctx.conf["model"]
    bench, handles, paths = model_inputs(ctx, [model], progress)
    return (bench, handles[model], paths[model]) if with_checkpoint else (bench, handles[model])


def spray_evidence(ctx: StudyContext, progress: Progress) -> Iterator[TaskSpec | OutputFile]:
    """Run SpRAy over the study's classes; yield the analysis files and one task per reviewed cluster."""
    from analysis.salient.benchmark_inputs import images_uint8
    from analysis.spray.dataset import display_k, spray_classes
    from analysis.spray.plots import cluster_grid, eigenvalue_plot, ranking_plot, umap_plot

    c = ctx.conf
    bench, handle = _inputs(ctx, staged(progress, 0.0, 0.3))
    classes = c["classes"] or list(range(bench.num_classes))
    if max(classes) >= bench.num_classes:
        raise ValueError(f"class {max(classes)} does not exist; the dataset has {bench.num_classes} classes")
    unknown = sorted(set(c["review_also"]) - set(classes))
    if unknown:
        raise ValueError(f"review_also names class(es) {unknown} that are not among the analysed classes")
    images, labels = bench.split("train").tensors()
    spray = spray_classes(handle, images, labels, classes, per_class=c["per_class"], size=c["size"],
                          metric=c["metric"], ks=range(2, c["max_k"] + 1), progress=staged(progress, 0.3, 0.5))
    planted = {b.label: b.kind for b in bench.biases}
    rank_of = {cls: i + 1 for i, (cls, _) in enumerate(spray.ranking)}
    report = staged(progress, 0.8, 0.2)
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
            shown = typical_members(entry.result.embedding, local, c["examples"])
            shown_images = images_uint8(bench, entry.indices[shown])
            shown_maps = positive_maps(entry.relevance[shown])
            yield TaskSpec(
                key=f"class{cls}-k{k}-cluster{int(cid)}",
                payload={**class_info(bench, cls), "cls": cls, "k": k, "cluster": int(cid),
                         "size": int(len(members)), "tau": round(tau, 4), "rank": rank_of[cls],
                         "examples": [{"image": i, "heatmap": h} for i, h in
                                      zip(ctx.store.images(shown_images), heatmaps(ctx, shown_images, shown_maps))],
                         "indices": [int(i) for i in members]},
                truth={"focus": cluster_truth(bench, members, entry.relevance[cluster_ids == cid])}
                if has_truth(bench) else None,
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
    yield OutputFile("spray_ranking.csv", safe_csv_bytes(table), "Classes ranked by Fisher score τ")
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


def spray_outputs(ctx: StudyContext, labels: pd.DataFrame, progress: Progress) -> list[OutputFile]:
    """Cluster labels with their planted-cue shares, and the artifact tests of clusters called artifacts."""
    from analysis.spray.artifacts import artifact_mask, artifact_patch, artifact_tests

    tasks = {t.pk: t for t in ctx.tasks()}
    if not any("indices" in t.payload for t in tasks.values()):
        return []  # answers imported from elsewhere: no clusters to test
    bench, handle = _inputs(ctx, staged(progress, 0.0, 0.3))
    rows = []
    for _, row in labels.iterrows():
        task = tasks[row["task"]]
        share = cue_share(bench, np.asarray(task.payload["indices"]))
        rows.append({"task": task.key, "class": task.payload["cls"], "class_name": task.payload["class_name"],
                     "k": task.payload["k"], "cluster": task.payload["cluster"], "size": task.payload["size"],
                     "label": row["label"], "complete": row["complete"], "n_answers": row["n_answers"],
                     **{c: row[c] for c in labels.columns if c.startswith("count_")},
                     **{f"share_{kind}": round(v, 4) for kind, v in share.items()}})
    files = [OutputFile("cluster_labels.csv", safe_csv_bytes(pd.DataFrame(rows)),
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
        files.append(OutputFile("artifact_tests.csv", safe_csv_bytes(table),
                                "Artifact tests: paste into other classes, remove from the class"))
        files.append(OutputFile("artifact_tests.json", table.to_json(orient="records", indent=1).encode(),
                                "Artifact tests (JSON)"))
    progress(1000, 1000, "outputs ready")
    return files


def unhans_form(ctx: StudyContext) -> type[forms.Form]:
    """Choose the reviewed cluster whose training images the un-Hans retrain leaves out."""
    tasks = sorted((t for t in ctx.tasks() if not t.is_gold), key=lambda t: t.pk)
    labels = ctx.labels()
    choices = [(t.key, f"{t.payload.get('class_name', '')} · cluster {t.payload.get('cluster')} "
                       f"({t.payload.get('size')} images){' · crowd: ' + labels[t.pk] if labels.get(t.pk) else ''}")
               for t in tasks]
    initial = next((t.key for t in tasks if labels.get(t.pk) == "artifact"), choices[0][0] if choices else None)

    class UnhansForm(forms.Form):
        cluster = forms.ChoiceField(choices=choices, initial=initial,
                                    help_text="Its training images are left out of the retrain.")

    return UnhansForm


def run_unhans(ctx: StudyContext, params: Mapping[str, Any], progress: Progress) -> list[OutputFile]:
    """Retrain the study's model without a cluster's training images; bias-flipped accuracy before/after."""
    from analysis.spray.unhans import train_config_of, unhans_retrain

    task = next((t for t in ctx.tasks() if t.key == params.get("cluster", "")), None)
    if task is None or "indices" not in task.payload:
        raise ValueError(f"study {ctx.name!r} has no reviewed cluster {params.get('cluster')!r}")
    bench, handle, checkpoint = _inputs(ctx, staged(progress, 0.0, 0.1), with_checkpoint=True)
    report = unhans_retrain(bench, np.asarray(task.payload["indices"]), base_handle=handle,
                            base_config=train_config_of(checkpoint), artifact_class=int(task.payload["cls"]),
                            progress=staged(progress, 0.1, 0.9))
    report.pop("model")  # the retrained weights stay out of the study's files
    report = {"cluster": task.key, **report}
    return [OutputFile("unhans.json", json.dumps(report, indent=1, default=float).encode(),
                       f"Un-Hans retrain without {task.key}")]


@register_task_kind
class ClusterReview(TaskKind):
    name = "cluster_review"
    title = "SpRAy: what does a cluster of heatmaps focus on?"
    template = "annotation/kinds/cluster_review.html"
    label_field = "focus"
    settings_form = SpraySettingsForm
    results_template = "annotation/kinds/cluster_review_results.html"
    jobs = {"unhans": KindJob("Retrain without a cluster's images (un-Hans)", unhans_form, run_unhans)}

    def answer_fields(self, conf) -> list:
        return [ChoiceField("focus", FOCUS, FOCUS_LABELS),
                TextField("reason", required=True, min_length=int(conf["reason_min_length"]), max_length=2000)]

    def build_tasks(self, ctx: StudyContext, progress: Progress) -> Iterable[TaskSpec | OutputFile]:
        return spray_evidence(ctx, progress)

    def aggregator(self, conf: Mapping[str, Any]) -> MajorityVote:
        return MajorityVote(min_votes=int(conf.get("workers_per_task", 5)), labels=FOCUS)

    def simulate_answer(self, task, conf, rng: np.random.Generator, accuracy: float) -> dict[str, Any]:
        truth = (task.truth or {}).get("focus") or FOCUS[int(rng.integers(len(FOCUS)))]
        focus = noisy_choice(truth, FOCUS, accuracy, rng)
        return {"focus": focus, "reason": REASONS[focus]}

    def build_outputs(self, ctx: StudyContext, labels: pd.DataFrame, progress: Progress) -> list[OutputFile]:
        return spray_outputs(ctx, labels, progress)

    def results_context(self, ctx: StudyContext) -> dict[str, Any]:
        return {"summary": read_json(ctx, SUMMARY), "artifact_tests": read_json(ctx, "artifact_tests.json"),
                "unhans": read_json(ctx, "unhans.json")}
