"""``cluster_review`` (SpRAy, Anders et al.): the crowd says what a cluster of LRP heatmaps focuses on.

The evidence job runs SpRAy over the benchmark's classes (LRP heatmaps from a streamed, sharded pass
per split, :mod:`annotation.task_kinds.spray_heatmaps`; spectral clustering, Fisher score tau) and
stores the class ranking and per-class plots as analysis results. For the top-ranked classes each
cluster becomes a task: its example images with their heatmaps and "what do these heatmaps focus
on?" (the object, a separate object, the background, an artifact such as text or a watermark) plus a
reason; majority vote. After aggregation, the clusters the
crowd calls an artifact go through the artifact tests; un-Hans (fine-tuning on subsets A and B, or
retraining without a cluster) are jobs of their own (:mod:`annotation.task_kinds.spray_jobs`).
With ``embed_split = "train+val"`` the validation images are embedded with the training images
(Anders et al. Fig. 8): validation images that join a Clever-Hans cluster show its artifact too.
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
from annotation.task_kinds import (
    OutputFile,
    Progress,
    StudyContext,
    TaskKind,
    TaskSpec,
    register_task_kind,
    staged,
)
from annotation.task_kinds.base import TaskRecord, read_json
from annotation.task_kinds.benchmark import (
    BenchmarkOverridesForm,
    ClassListField,
    class_info,
    has_truth,
    heatmaps,
    model_field,
    validation_missing,
)
from annotation.task_kinds.fields import ChoiceField, TextField
from annotation.task_kinds.spray_heatmaps import full_relevance, pool_heatmaps
from annotation.task_kinds.spray_jobs import JOBS, VAL, artifact_test_rows, spray_inputs, task_members
from annotation.task_kinds.spray_virelay import EXPORT
from annotation.task_kinds.spray_virelay import JOBS as VIRELAY_JOBS

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
#: Every class's arrays (embedding, 2-D views, all clusterings, pooled heatmaps, its images' split and index):
#: what the ViRelAy export reads.
ARRAYS = "spray_arrays.npz"
#: Largest heatmap grid (size × size) Gromov-Wasserstein accepts.
GW_MAX_SIZE = 16
#: What needs the validation images besides a joint embedding (Anders et al. §3.3, Table 2 and 4).
ARTIFACT_TESTS = "The artifact tests and un-Hans"
#: Settings recorded in the summary (and shown on the results page).
SHOWN_SETTINGS = ("model", "per_class", "size", "preprocessing", "metric", "max_k", "embed_split", "space",
                  "weighted_tau")


class SpraySettingsForm(BenchmarkOverridesForm):
    model = model_field("standard", "The model whose heatmaps are analysed.")
    classes = ClassListField()
    per_class = forms.IntegerField(min_value=10, max_value=6000, initial=300,
                                   help_text="Images per class (of each split) that get an LRP heatmap.")
    embed_split = forms.TypedChoiceField(
        choices=[("train", "training images"), ("train+val", "training and validation images together (Fig. 8)")],
        initial="train", required=False, empty_value="train",
        help_text="Which images are embedded: validation images that join a cluster share its strategy (an "
                  "artifact there puts the validation accuracy in question).")
    size = forms.IntegerField(min_value=4, max_value=64, initial=32,
                              help_text="Pooled preprocessing and Gromov-Wasserstein: heatmaps are downsampled to "
                                        "size × size.")
    metric = forms.ChoiceField(choices=[("euclidean", "Euclidean"),
                                        ("gromov_wasserstein", f"Gromov-Wasserstein (slow: use size ≤ {GW_MAX_SIZE})")],
                               initial="euclidean")
    gw_solver = forms.TypedChoiceField(choices=[("emd", "exact (POT's conditional gradient)"),
                                                ("entropic", "entropic (Sinkhorn projections; for a GPU)")],
                                       initial="emd", required=False, empty_value="emd",
                                       help_text="Gromov-Wasserstein only.")
    gw_epsilon = forms.FloatField(min_value=1e-5, max_value=10.0, initial=0.01, required=False,
                                  help_text="Entropic regularisation (entropic solver only).")
    gw_candidates = forms.IntegerField(min_value=10, max_value=500, initial=20, required=False,
                                       help_text="Above gw_prune_above heatmaps, GW is solved only for each heatmap's "
                                                 "this many nearest candidates (at least the kNN graph's k, 10).")
    gw_prune_above = forms.IntegerField(min_value=10, max_value=100_000, initial=300, required=False,
                                        help_text="Up to this many heatmaps per class GW is solved for every pair.")
    space = forms.TypedChoiceField(choices=[("embedding", "the row-normalised 32-d embedding Φ (paper, CoRelAy)"),
                                            ("per_k", "the first k eigenvectors for k clusters (not the paper's)")],
                                   initial="embedding", required=False, empty_value="embedding",
                                   help_text="What k-means clusters, and where τ is measured.")
    preprocessing = forms.TypedChoiceField(
        choices=[("full", "full resolution, unaltered (paper §2.1; Euclidean only)"),
                 ("pooled", "pooled to size × size, each divided by its total relevance (not the paper's)")],
        initial="full", required=False, empty_value="full",
        help_text="What the distances compare. The paper omits the optional preprocessing (Anders et al. §2.1); "
                  "Gromov-Wasserstein needs the pooled grid.")
    weighted_tau = forms.BooleanField(required=False, initial=False,
                                      help_text="Weight the between-cluster scatter by cluster size (unchecked: "
                                                "Eq. 7, a small cluster counts as much as a big one).")
    max_k = forms.IntegerField(min_value=2, max_value=30, initial=30,
                               help_text="k-means for k = 2 … max_k; τ is their mean.")
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
        for name in ("gw_epsilon", "gw_candidates", "gw_prune_above"):  # left empty (or not sent): the default
            if name in data and data[name] is None:
                data[name] = self.fields[name].initial
        if data.get("metric") == "gromov_wasserstein" and data.get("preprocessing") == "full":
            self.add_error("preprocessing", "Gromov-Wasserstein needs pooled heatmaps (a small grid)")
        if data.get("metric") == "gromov_wasserstein" and (data.get("size") or 0) > GW_MAX_SIZE:
            self.add_error("size", f"Gromov-Wasserstein needs a small grid (size ≤ {GW_MAX_SIZE}); "
                                   f"its cost grows with size⁶")
        return data


def gw_options(conf: Mapping[str, Any]) -> dict | None:
    """Options of :func:`analysis.spray.distances.gromov_wasserstein` from the settings (None: euclidean)."""
    if conf["metric"] != "gromov_wasserstein":
        return None
    options = {"solver": conf["gw_solver"], "candidates": int(conf["gw_candidates"]),
               "prune_above": int(conf["gw_prune_above"])}
    if conf["gw_solver"] == "entropic":
        options["epsilon"] = float(conf["gw_epsilon"])
    return options


def spray_evidence(ctx: StudyContext, progress: Progress) -> Iterator[TaskSpec | OutputFile]:
    """Run SpRAy over the study's classes; yield the analysis files and one task per reviewed cluster."""
    # deferred: loads scikit-learn, scipy, torch
    from analysis.spray.benchmark_review import Pool, cluster_truth, cue_share, positive_maps, typical_members

    # deferred: loads scikit-learn, scipy, torch
    from analysis.spray.corelay_methods import METHOD_TITLES, METHODS, CorelayParams

    # deferred: loads scikit-learn, scipy, torch, zennit (torch)
    from analysis.spray.dataset import display_k, spray_maps

    # deferred: loads matplotlib, scikit-learn, scipy, torch
    from analysis.spray.plots import cluster_grid, eigenvalue_plot, grid_members, ranking_plot, umap_plot

    c = ctx.conf
    arrays: dict[str, np.ndarray] = {}
    bench, handle, model_path = spray_inputs(ctx, staged(progress, 0.0, 0.3), with_checkpoint=True)
    classes = c["classes"] or list(range(bench.num_classes))
    if max(classes) >= bench.num_classes:
        raise ValueError(f"class {max(classes)} does not exist; the dataset has {bench.num_classes} classes")
    unknown = sorted(set(c["review_also"]) - set(classes))
    if unknown:
        raise ValueError(f"review_also names class(es) {unknown} that are not among the analysed classes")
    joint = c["embed_split"] == "train+val"
    if joint and bench.split(VAL) is bench.split("train"):
        raise ValueError("embed_split 'train+val' needs validation images: the dataset has no validation folder")
    maps = pool_heatmaps(ctx, bench, model_path,
                         Pool.of(bench, ["train", VAL] if joint else ["train"], classes, c["per_class"]),
                         size=c["size"], full=has_truth(bench) or c["preprocessing"] == "full",
                         progress=staged(progress, 0.3, 0.3))
    pool = maps.pool
    full = c["preprocessing"] == "full"
    spray = spray_maps(maps.full if full else maps.heatmaps, maps.labels, classes, size=None if full else c["size"],
                       normalize="none" if full else "sum", metric=c["metric"],
                       ks=range(2, c["max_k"] + 1), gw_options=gw_options(c), space=c["space"],
                       weighted_tau=c["weighted_tau"], progress=staged(progress, 0.6, 0.2))
    planted = {b.label: b.kind for b in bench.biases}
    rank_of = {cls: i + 1 for i, (cls, _) in enumerate(spray.ranking)}
    report = staged(progress, 0.8, 0.2)
    rows, per_class = [], {}
    for done, (cls, tau) in enumerate(spray.ranking):
        report(done, len(spray.ranking), f"plots and tasks of class {cls}")
        entry = spray.classes[cls]
        k = display_k(entry.result)
        cluster_ids = entry.result.labels[k]
        numbers = cluster_number(cluster_ids)  # what every page, file and figure calls a cluster
        name = bench.class_names[cls]
        yield OutputFile(f"eigenvalues_{cls}.png", eigenvalue_plot(entry.result.eigenvalues, f"{name}: eigenvalues"),
                         f"Eigenvalues (1 − λ) of class {name}")
        if entry.result.umap is not None:
            yield OutputFile(f"umap_{cls}.png",
                             umap_plot(entry.result.umap, numbers, f"{name}: UMAP, k = {k}",
                                       splits=pool.split_of[entry.indices] if joint else None),
                             f"UMAP of class {name}'s spectral embedding")
        grid = grid_members(cluster_ids)
        yield OutputFile(f"clusters_{cls}.png",
                         cluster_grid(pool.field(bench, entry.indices[grid], "images"),
                                      full_relevance(handle, bench, maps, entry.indices[grid]), numbers,
                                      title=f"{name}: example heatmaps per cluster (k = {k})", members=grid),
                         f"Example heatmaps per cluster of class {name}")
        alternative, tsne_file = yield from corelay_views(entry, k, name, pool, bench, c["space"], arrays,
                                                          maps.heatmaps[entry.indices],
                                                          splits=pool.split_of[entry.indices] if joint else None)
        clusters = []
        for cid in np.unique(cluster_ids):
            local = np.flatnonzero(cluster_ids == cid)
            members = pool.members(entry.indices[local])
            share = cue_share(bench, members)
            clusters.append({"cluster": cluster_number(cid), "size": int(len(local)), "cue_share": share,
                             "validation": int(len(members.get(VAL, ())))})
            reviewed = rank_of[cls] <= c["review_classes"] or cls in c["review_also"]
            if not reviewed or len(local) < c["min_cluster_size"]:
                continue
            shown = typical_members(entry.result.embedding, local, c["examples"])
            shown_images = pool.field(bench, entry.indices[shown], "images")
            shown_maps = positive_maps(full_relevance(handle, bench, maps, entry.indices[shown]))
            split_members = {"indices": [int(i) for i in members["train"]]}
            if joint:
                split_members["val_indices"] = [int(i) for i in members[VAL]]
            yield TaskSpec(
                key=f"c{cls}-{slug(name)}-k{k}-cluster{cluster_number(cid)}",
                payload={**class_info(bench, cls), "cls": cls, "k": k, "cluster": cluster_number(cid),
                         "size": int(len(local)), "tau": round(tau, 4), "rank": rank_of[cls],
                         "examples": [{"image": i, "heatmap": h} for i, h in
                                      zip(ctx.store.images(shown_images), heatmaps(ctx, shown_images, shown_maps))],
                         **split_members},
                truth={"focus": cluster_truth(bench, members, maps.full[entry.indices[local]])} if has_truth(bench)
                else None,
            )
        plots = {"eigenvalues": f"eigenvalues_{cls}.png", "UMAP": f"umap_{cls}.png", "t-SNE": tsne_file,
                 "example heatmaps per cluster": f"clusters_{cls}.png"}
        if entry.result.umap is None:
            del plots["UMAP"]
        per_class[cls] = {"class": cls, "name": name, "tau": tau, "rank": rank_of[cls], "k": k,
                          "planted": planted.get(cls, ""), "clusters": clusters, "plots": plots,
                          "clusterings": alternative}
        best = max(clusters, key=lambda r: max(r["cue_share"].values()) if r["size"] >= c["min_cluster_size"] else 0)
        rows.append({"rank": rank_of[cls], "class": cls, "name": name, "tau": round(tau, 4),
                     "planted_cue": planted.get(cls, ""), "k_shown": k, "n_heatmaps": int(len(entry.indices)),
                     "n_validation": int((pool.split_of[entry.indices] == 1).sum()),
                     "cluster_sizes": " ".join(str(r["size"]) for r in clusters),
                     "best_cue_purity": round(max(best["cue_share"].values()), 4)})
    table = pd.DataFrame(rows)
    yield OutputFile("spray_ranking.csv", safe_csv_bytes(table), "Classes ranked by Fisher score τ")
    yield OutputFile("spray_ranking.png", ranking_plot(spray.ranking, bench.class_names), "Classes ranked by τ")
    summary = {"settings": {**{k: c[k] for k in SHOWN_SETTINGS}, "gw_options": gw_options(c),
                            "corelay": CorelayParams().as_dict()},
               "ranking": rows, "classes": [per_class[cls] for cls, _ in spray.ranking],
               "methods": [{"method": m, "title": METHOD_TITLES[m]} for m in METHODS]}
    yield OutputFile(SUMMARY, json.dumps(summary, indent=1).encode(), "SpRAy results (JSON)")
    arrays["splits"] = np.asarray(pool.splits)
    yield OutputFile(ARRAYS, npz_bytes(arrays), "SpRAy per class: embedding, eigenvalues, UMAP, t-SNE and every "
                                                "clustering (NumPy .npz; the ViRelAy export reads it)")
    progress(1000, 1000, "SpRAy done")


def corelay_views(entry, k: int, name: str, pool, bench, space: str, arrays: dict, heatmaps: np.ndarray,
                  splits=None):
    """CoRelAy's other clusterings (agglomerative, DBSCAN, HDBSCAN) and its t-SNE view of one class (yields
    their figures); returns the per-method summary and the t-SNE figure's name, and puts the class's arrays
    (its images, embedding, 2-D views, every clustering) into ``arrays`` for :data:`ARRAYS`."""
    # deferred: loads scikit-learn, scipy, torch
    from analysis.spray.benchmark_review import cue_share

    # deferred: loads scikit-learn, scipy, torch
    from analysis.spray.corelay_methods import METHOD_TITLES, alternatives, display_labels, method_name, tsne_of

    # deferred: loads matplotlib, scikit-learn, scipy, torch
    from analysis.spray.plots import umap_plot

    cls, result = entry.cls, entry.result
    methods = alternatives(result.embedding, result.labels, k, space=space, agglomerative=result.agglomerative)
    tsne = tsne_of(result.embedding)
    tsne_file = f"tsne_{cls}.png"
    yield OutputFile(tsne_file, umap_plot(tsne, cluster_number(methods["kmeans"]), f"{name}: t-SNE, k-means k = {k}",
                                          splits=splits), f"t-SNE of class {name}'s spectral embedding")
    summary = {}
    for method, ids in methods.items():
        shown = display_labels(ids)
        plots = {}
        if method != "kmeans":  # k-means has the class's UMAP and t-SNE figures above
            for view, coords in (("UMAP", result.umap), ("t-SNE", tsne)):
                if coords is None:
                    continue
                plots[view] = f"{'umap' if view == 'UMAP' else 'tsne'}_{cls}_{method}.png"
                yield OutputFile(plots[view], umap_plot(coords, shown, f"{name}: {view}, {METHOD_TITLES[method]}",
                                                        splits=splits), f"{view} of class {name}, {method}")
        rows = []
        for cid in sorted(set(ids.tolist()), key=lambda v: (v < 0, v)):
            local = np.flatnonzero(ids == cid)
            rows.append({"cluster": shown[local[0]], "size": int(len(local)),
                         "cue_share": cue_share(bench, pool.members(entry.indices[local]))})
        summary[method] = {"clusters": rows, "n_clusters": int(len({v for v in ids.tolist() if v >= 0})),
                           "noise": int((ids < 0).sum()), "plots": plots}
    arrays.update({f"{cls}/split": pool.split_of[entry.indices], f"{cls}/index": pool.index[entry.indices],
                   f"{cls}/heatmaps": np.asarray(heatmaps, dtype=np.float32),
                   f"{cls}/eigenvalues": result.eigenvalues, f"{cls}/embedding": result.embedding,
                   f"{cls}/tsne": tsne, f"{cls}/k": np.asarray(k)})
    if result.umap is not None:
        arrays[f"{cls}/umap"] = result.umap
    for kk, ids in result.labels.items():
        arrays[f"{cls}/cluster/{method_name('kmeans', kk)}"] = ids
    for kk, ids in result.agglomerative.items():
        arrays[f"{cls}/cluster/{method_name('agglomerative', kk)}"] = ids
    arrays[f"{cls}/cluster/{method_name('agglomerative', k)}"] = methods["agglomerative"]
    arrays[f"{cls}/cluster/{method_name('dbscan')}"] = methods["dbscan"]
    arrays[f"{cls}/cluster/{method_name('hdbscan')}"] = methods["hdbscan"]
    return summary, tsne_file


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Arrays as a compressed ``.npz`` file's bytes."""
    import io

    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


def cluster_number(cluster_id):
    """SpRAy's cluster ids (0, 1, …) as researchers count them, from 1: one numbering in tables, task keys, CSVs, the
    API, the figures and the un-Hans form (issue 28). Works on one id or an array of them."""
    return int(cluster_id) + 1 if np.ndim(cluster_id) == 0 else np.asarray(cluster_id) + 1


def slug(name: str) -> str:
    """A class name as part of a task key: lower case, letters and digits, words joined by ``_``."""
    import re

    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "class"


def spray_outputs(ctx: StudyContext, labels: pd.DataFrame, progress: Progress) -> list[OutputFile]:
    """Cluster labels with their planted-cue shares, and the artifact tests of clusters called artifacts."""
    # deferred: loads scikit-learn, scipy, torch
    from analysis.spray.benchmark_review import cue_share

    tasks = {t.pk: t for t in ctx.tasks()}
    if not any("indices" in t.payload for t in tasks.values()):
        return []  # answers imported from elsewhere: no clusters to test
    bench, handle = spray_inputs(ctx, staged(progress, 0.0, 0.3))
    rows = []
    for _, row in labels.iterrows():
        task = tasks[row["task"]]
        share = cue_share(bench, task_members(task.payload))
        rows.append({"task": task.key, "class": task.payload["cls"], "class_name": task.payload["class_name"],
                     "k": task.payload["k"], "cluster": task.payload["cluster"], "size": task.payload["size"],
                     "validation_images": len(task.payload.get("val_indices", [])),
                     "label": row["label"], "complete": row["complete"], "n_answers": row["n_answers"],
                     **{c: row[c] for c in labels.columns if c.startswith("count_")},
                     **{f"share_{kind}": round(v, 4) for kind, v in share.items()}})
    files = [OutputFile("cluster_labels.csv", safe_csv_bytes(pd.DataFrame(rows)),
                        "Crowd label per cluster with the share of each planted cue")]
    # Anders et al. test an artifact on held-out images: without a validation folder the tests are not run
    # (the results page says why) rather than run on training images.
    skipped = validation_missing(ctx.inputs.get("dataset"), ARTIFACT_TESTS)
    artifacts = [] if skipped else [r for r in rows if r["label"] == "artifact"]
    by_key = {t.key: t for t in tasks.values()}
    results = []
    for i, r in enumerate(artifacts):
        progress(300 + 650 * i // max(len(artifacts), 1), 1000, f"artifact tests of {r['task']}")
        members = task_members(by_key[r["task"]].payload)
        for test in artifact_test_rows(bench, handle, int(r["class"]), members):
            results.append({"task": r["task"], "class": r["class"], "class_name": r["class_name"], **test})
    if results:
        table = pd.DataFrame(results)
        files.append(OutputFile("artifact_tests.csv", safe_csv_bytes(table),
                                "Artifact tests: paste into other classes, remove from the affected images"))
        files.append(OutputFile("artifact_tests.json", table.to_json(orient="records", indent=1).encode(),
                                "Artifact tests (JSON)"))
    progress(1000, 1000, "outputs ready")
    return files


@register_task_kind
class ClusterReview(TaskKind):
    name = "cluster_review"
    title = "SpRAy: what does a cluster of heatmaps focus on?"
    template = "annotation/kinds/cluster_review.html"
    label_field = "focus"
    settings_form = SpraySettingsForm
    results_template = "annotation/kinds/cluster_review_results.html"
    jobs = {**JOBS, **VIRELAY_JOBS}

    def answer_fields(self, conf) -> list:
        return [ChoiceField("focus", FOCUS, FOCUS_LABELS),
                TextField("reason", required=True, min_length=int(conf["reason_min_length"]), max_length=2000)]

    def build_tasks(self, ctx: StudyContext, progress: Progress) -> Iterable[TaskSpec | OutputFile]:
        return spray_evidence(ctx, progress)

    def aggregator(self, conf: Mapping[str, Any]) -> MajorityVote:
        return MajorityVote(min_votes=int(conf["workers_per_task"]), labels=FOCUS)

    def simulate_answer(self, task, conf, rng: np.random.Generator, accuracy: float) -> dict[str, Any]:
        truth = (task.truth or {}).get("focus") or FOCUS[int(rng.integers(len(FOCUS)))]
        focus = noisy_choice(truth, FOCUS, accuracy, rng)
        return {"focus": focus, "reason": REASONS[focus]}

    def build_outputs(self, ctx: StudyContext, labels: pd.DataFrame, progress: Progress) -> list[OutputFile]:
        return spray_outputs(ctx, labels, progress)

    def validation_use(self, conf) -> str:
        return "embed_split 'train+val' (Fig. 8)" if conf["embed_split"] == "train+val" else ""

    def results_context(self, ctx: StudyContext) -> dict[str, Any]:
        return {"validation_missing": validation_missing(ctx.inputs.get("dataset"), ARTIFACT_TESTS),
                "summary": rows_with_tasks(read_json(ctx, SUMMARY), ctx.tasks()),
                "artifact_tests": read_json(ctx, "artifact_tests.json"),
                "unhans": read_json(ctx, "unhans_table2.json"), "unhans_drop": read_json(ctx, "unhans.json"),
                "virelay_export": EXPORT}


def rows_with_tasks(summary: dict | None, tasks: list[TaskRecord]) -> dict | None:
    """The summary's k-means cluster rows with the key of their task (``task``; only the reviewed classes'
    clusters of ``min_cluster_size`` images or more have one) and its ranking rows with ``reviewed`` (the class
    has tasks): the rows of the results page that open the task grid."""
    if not summary:
        return summary
    keys = {(t.payload.get("cls"), t.payload.get("k"), t.payload.get("cluster")): t.key for t in tasks}
    for c in summary.get("classes", []):
        for cluster in c.get("clusters", []):
            cluster["task"] = keys.get((c["class"], c["k"], cluster["cluster"]))
    reviewed = {cls for cls, _, _ in keys}
    for row in summary.get("ranking", []):
        row["reviewed"] = row["class"] in reviewed
    return summary
