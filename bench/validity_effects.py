"""The planted effects of ``bench/validity.py``: one function per method, each on one seed's benchmark and models.

Each effect function returns ``{column: Outcome}``: whether the planted effect was found and the
numbers behind the yes/no. The inputs of a seed (:class:`SeedInputs`) are the demo's quick profile
(:data:`demo.profile.QUICK`) with that seed in the benchmark's and every training config, so each
seed generates its own benchmark and trains its own models (cached by config and code version,
:mod:`analysis.code_version`). Plain Python: no Django.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import attrs
import numpy as np
import torch

from demo.profile import QUICK

#: The simulated crowd of the demo (``manage.py demo --accuracy``) and its panel size (workers per task).
CROWD_ACCURACY, CROWD_SIZE = 0.85, 5
#: SpRAy's acceptance check (tests/analysis/test_spray_demo_model.py): the watermark class among the top 3 by
#: tau, and at the eigengap k a cluster of >= 10 images with >= 95 % watermark images.
SPRAY_TOP, SPRAY_PURITY, SPRAY_MIN_SIZE = 3, 0.95, 10
#: Where un-Hans takes its artifact from: SpRAy's cluster (the method under test), or the planted watermark itself
#: (a diagnostic that leaves SpRAy out: does the un-Hans protocol show its effect with a perfect artifact?).
UNHANS_ARTIFACTS = ("spray", "planted")


@attrs.frozen
class Outcome:
    """One effect on one seed: found or not, and the numbers behind it (a short text for the table)."""

    found: bool
    detail: str


class SeedInputs:
    """One seed's benchmark and models at the quick profile, built (or read from ``work_dir``) when first used."""

    def __init__(self, seed: int, work_dir: Path, profile: dict | None = None,
                 flavours: tuple[str, ...] = ("standard", "robust"), unhans_artifact: str = "spray") -> None:
        if unhans_artifact not in UNHANS_ARTIFACTS:
            raise ValueError(f"unhans_artifact must be one of {UNHANS_ARTIFACTS}, got {unhans_artifact!r}")
        self.seed, self.work_dir, self.profile = seed, Path(work_dir), profile or QUICK
        self.flavours = tuple(f for f in ("standard", "robust") if f in flavours)
        self.unhans_artifact = unhans_artifact

    def _training(self, flavours) -> dict:
        return {f: {**self.profile["training"][f], "seed": self.seed} for f in flavours}

    @cached_property
    def demo(self):
        """(bench, {flavour: handle}) of the demo benchmark (cues on 90 % of their class) and the models of
        ``flavours`` (the standard model's cache key does not depend on the robust one)."""
        from analysis.salient.benchmark_inputs import benchmark_inputs

        bench, handles, _ = benchmark_inputs(self.work_dir, benchmark={**self.profile["benchmark"], "seed": self.seed},
                                             training=self._training(self.flavours), flavours=self.flavours)
        return bench, handles

    @cached_property
    def spray_demo(self):
        """(bench, standard handle) of SpRAy's benchmark variant (cues on 30 %), as the demo's cluster_review."""
        from analysis.salient.benchmark_inputs import benchmark_inputs
        from analysis.spray.benchmark_variant import SPRAY_BENCHMARK

        bench, handles, _ = benchmark_inputs(
            self.work_dir, benchmark={**SPRAY_BENCHMARK, **self.profile["benchmark"], "seed": self.seed},
            training=self._training(("standard",)), flavours=("standard",))
        return bench, handles["standard"]

    @cached_property
    def spray(self):
        """SpRAy of every class of SpRAy's variant (the quick profile's images per class)."""
        from analysis.spray.dataset import spray_classes

        bench, handle = self.spray_demo
        images, labels = bench.split("train").tensors()
        return spray_classes(handle, images, labels, per_class=self.profile["spray"]["per_class"], umap=False,
                             agglomerative=False)


def crowd_votes(truths: list[str], options: tuple[str, ...], seed: int) -> np.ndarray:
    """(tasks, workers) answers of the demo's simulated crowd to tasks with these true answers."""
    from analysis.crowd_sim import noisy_choice, simulated_crowd

    crowd = simulated_crowd(CROWD_SIZE, CROWD_ACCURACY, seed)
    rngs = [worker.rng() for worker in crowd]
    return np.array([[noisy_choice(t, options, w.accuracy, rng) for w, rng in zip(crowd, rngs)] for t in truths],
                    dtype=object).reshape(len(truths), len(crowd))


# -- Salient ImageNet: cue features among the biased classes' top 5, labelled spurious -------------------
#: The feature panel's answers (annotation/task_kinds/feature_panel.py) and the demo's threshold (3 of 5).
PANEL_CHOICES, SPURIOUS, SPURIOUS_THRESHOLD = ("main_object", "separate_object", "background"), \
    ("separate_object", "background"), 3


def salient_effect(inputs: SeedInputs) -> dict[str, Outcome]:
    """Per biased class of the robust model: features on the cue among its top 5 (the panel's truth) that the
    simulated crowd labels spurious (>= 3 of 5 answers). Found when every biased class has one. Not run
    without the robust model."""
    if "robust" not in inputs.flavours:
        return {}
    from analysis.salient.benchmark_inputs import panel_truth
    from analysis.salient.evidence import compute_salient_evidence

    bench, handles = inputs.demo
    biased = bench.biased_labels()
    images, labels = bench.split("train").tensors()
    evidence = compute_salient_evidence(handles["robust"], images, labels, classes=sorted(biased.values()),
                                        k_features=5, k_images=5, seed=inputs.seed, **inputs.profile["salient"])
    panels = [p for p in evidence.panels if p.cls in biased.values()]
    truths = [panel_truth(bench, p.top, p.top_nams) for p in panels]
    votes = crowd_votes(truths, PANEL_CHOICES, inputs.seed)
    spurious = np.isin(votes, SPURIOUS).sum(axis=1) >= SPURIOUS_THRESHOLD
    parts, found = [], True
    for kind, cls in biased.items():
        on_cue = [i for i, p in enumerate(panels) if p.cls == cls and truths[i] in SPURIOUS]
        labelled = sum(bool(spurious[i]) for i in on_cue)
        found &= labelled > 0
        parts.append(f"{kind[:2]} {labelled}/{len(on_cue)}")
    return {"salient": Outcome(found, " ".join(parts))}


# -- SpRAy: the watermark class's tau rank and its purest cluster at the eigengap k ------------------------
def _watermark_kind() -> int:
    from analysis.datasets.benchmark import BIAS_KINDS

    return BIAS_KINDS.index("watermark")


def _watermark(inputs: SeedInputs):
    bench, _ = inputs.spray_demo
    cls = bench.biased_labels()["watermark"]
    entry = inputs.spray[cls]
    flags = bench.split("train").bias_kinds[entry.indices] == _watermark_kind()
    return cls, entry, flags


def spray_effect(inputs: SeedInputs) -> dict[str, Outcome]:
    from analysis.spray.dataset import cluster_purity, display_k

    cls, entry, flags = _watermark(inputs)
    rank = inputs.spray.rank_of(cls)
    k = display_k(entry.result)
    _, purity, size = cluster_purity(entry.result.labels[k], flags, min_size=SPRAY_MIN_SIZE)
    return {"spray_rank": Outcome(rank <= SPRAY_TOP, f"rank {rank}"),
            "spray_purity": Outcome(purity >= SPRAY_PURITY, f"{purity:.2f} k={k} n={size}")}


# -- un-Hans (Anders et al. §3.3, Table 2): B vs A on cue-free and cue-carrying validation ----------------
def unhans_artifact(inputs: SeedInputs) -> tuple[np.ndarray, torch.Tensor, float]:
    """The artifact un-Hans pastes (mask, patch) and its mask's IoU with the planted watermark's true mask.

    ``inputs.unhans_artifact == "spray"``: isolated from the purest watermark cluster at the eigengap k, as the
    un-Hans job does from a reviewed cluster; ``"planted"``: the watermark's own mask (the pixels most of its
    training images mark) and those images' median inside it, without running SpRAy."""
    from analysis.spray.artifacts import artifact_mask, artifact_patch

    bench, _ = inputs.spray_demo
    train = bench.split("train")
    if inputs.unhans_artifact == "planted":
        cls = bench.biased_labels()["watermark"]
        marked = np.flatnonzero((np.asarray(train.bias_kinds) == _watermark_kind()) & (np.asarray(train.labels) == cls))
        mask = train.cue_mask(marked)
        return mask, artifact_patch(train.tensors(marked)[0], mask), 1.0
    from analysis.spray.dataset import cluster_purity, display_k

    _, entry, flags = _watermark(inputs)
    labels = entry.result.labels[display_k(entry.result)]
    cluster, _, _ = cluster_purity(labels, flags, min_size=SPRAY_MIN_SIZE)
    members = labels == cluster
    mask = artifact_mask(entry.relevance[members])
    patch = artifact_patch(train.tensors(entry.indices[members])[0], mask)
    truth = train.cue_mask(entry.indices[members & flags]) if (members & flags).any() else mask
    return mask, patch, float((mask & truth).sum() / max((mask | truth).sum(), 1))


def unhans_effect(inputs: SeedInputs) -> dict[str, Outcome]:
    """The artifact isolated from the purest watermark cluster at the eigengap k (or the planted watermark, see
    :func:`unhans_artifact`); A and B fine-tuned with the quick profile's un-Hans settings on the watermark class
    and 4 random others; validation: the test split's images of A's classes without any planted cue
    (cue-free), and the same with the artifact pasted on (cue-carrying, the paper's "artifact added")."""
    from analysis.spray.unhans import random_classes, unhans_table2

    bench, handle = inputs.spray_demo
    cls = bench.biased_labels()["watermark"]
    train = bench.split("train")
    mask, patch, iou = unhans_artifact(inputs)
    classes = random_classes(bench.num_classes, cls, 4, inputs.seed)
    test = bench.split("test")
    cue_free = np.flatnonzero(np.asarray(test.bias_kinds) < 0)
    val_x, val_y = test.tensors(cue_free)
    train_x, train_y = train.tensors()
    carries = np.asarray(train.bias_kinds) == _watermark_kind()  # left as they are in B
    settings = inputs.profile["unhans"]
    report = unhans_table2(handle, train_x, train_y, val_x, val_y, cls, patch, mask, carries=carries,
                           classes=classes, epochs=settings["epochs"], train_per_class=settings["train_per_class"],
                           seed=inputs.seed, snapshot_epochs=())
    rows = {r["model"]: r for r in report["table"]}
    a, b = rows["A"], rows["B"]
    free, marked = b["clean_accuracy"] - a["clean_accuracy"], b["artifact_accuracy"] - a["artifact_accuracy"]
    return {"unhans_free": Outcome(free > 0, f"B-A {free:+.3f} ({b['clean_accuracy']:.2f}) IoU {iou:.2f}"),
            "unhans_cue": Outcome(marked > 0, f"B-A {marked:+.3f} ({b['artifact_accuracy']:.2f})")}


# -- Recovered samples (seed 000 §4-§5.3.1): triggers in the best reconstructions, L1's accuracy ----------
def reconstruction_effect(inputs: SeedInputs) -> dict[str, Outcome]:
    """Base model and trigger levels L1-L3 at the demo's quick sizes, both effects as
    :func:`analysis.reconstruction.effects.planted_effects` reads them (its criteria)."""
    from analysis.reconstruction.effects import planted_effects

    effects = planted_effects(inputs.seed)
    shown = " ".join(f"{lv} {t['best_k_shown']:.1f}/{t['noise_shown']:.1f}" for lv, t in effects["trigger"].items())
    shown += " shortcut " + "/".join(f"{t['shortcut']:.2f}" for t in effects["trigger"].values())
    acc = " ".join(f"{lv} {a:.2f}" for lv, a in effects["test_accuracy"].items())
    return {"recon_trigger": Outcome(effects["trigger_shown"], shown),
            "recon_l1_acc": Outcome(effects["l1_accuracy_lowest"], acc)}


# -- Misclassification agreement (Stock & Cisse §3.2, Table 1): rectified share, flipped vs clean ----------
#: The demo study's threshold: an image is rectified with at least 4 of 5 yes answers.
RECTIFY_THRESHOLD = 4


def _present(bench, split, index: int, cls: int) -> bool:
    """Is class ``cls`` in the image: its own garment, or the planted cue of ``cls`` (the task's truth)."""
    from analysis.datasets.benchmark import BIAS_KINDS

    if int(split.labels[index]) == cls:
        return True
    kind = int(split.bias_kinds[index])
    return kind >= 0 and any(b.label == cls and b.kind == BIAS_KINDS[kind] for b in bench.biases)


def rectified_share(bench, handle, split_name: str, seed: int) -> tuple[float, int]:
    """Share of the model's top-1 mistakes on a split that the simulated crowd rectifies, and the mistakes."""
    from analysis.misclassification.evidence import misclassified, predict_topk

    split = bench.split(split_name)
    images, labels = split.tensors()
    top1 = predict_topk(handle, images, 1)
    wrong = misclassified(top1, labels.numpy(), 1)
    truths = ["yes" if _present(bench, split, i, int(top1[i, 0])) else "no" for i in wrong]
    if not truths:
        return float("nan"), 0
    yes = (crowd_votes(truths, ("yes", "no"), seed) == "yes").sum(axis=1)
    return float(np.mean(yes >= RECTIFY_THRESHOLD)), len(truths)


def misclassification_effect(inputs: SeedInputs) -> dict[str, Outcome]:
    """Per model (as the demo's study, both), its top-1 mistakes on the flipped split (cues on other classes)
    and on the test split: the crowd rectifies a larger share of the flipped split's mistakes."""
    bench, handles = inputs.demo
    out = {}
    for flavour in inputs.flavours:
        (flip, n_flip), (clean, n_clean) = (rectified_share(bench, handles[flavour], s, inputs.seed)
                                            for s in ("flipped", "test"))
        out[f"misclass_{flavour[:3]}"] = Outcome(bool(flip > clean), f"{flip:.2f}/{n_flip} vs {clean:.2f}/{n_clean}")
    return out


# -- Prototypes and criticisms (Stock & Cisse §3.4): cue share, criticisms vs prototypes -------------------
#: The demo study's selection (demo.py, class_assignment_form): 24 candidates per class, 6 prototypes and
#: 6 criticisms, BIM with 10 steps of 0.001, MMD-critic regulariser 1.
PROTOTYPES = {"pool_per_class": 24, "images_per_class": 6, "attack_steps": 10, "attack_eps": 0.001, "mmd_reg": 1.0}


def prototypes_effect(inputs: SeedInputs) -> dict[str, Outcome]:
    """Standard model; per selector (Adv, MMD-critic), pooled over the biased classes: the planted cue's share
    among the criticisms is below its share among the prototypes (the cue is the classes' typical look)."""
    from analysis.prototypes.adversarial import bim_flip_steps
    from analysis.prototypes.cue_shares import cue_share_summary, cue_share_table
    from analysis.prototypes.selectors import select_class

    bench, handles = inputs.demo
    handle, c = handles["standard"], PROTOTYPES
    train = bench.split("train")
    rng = np.random.default_rng(inputs.seed)
    selections = {}
    for cls in range(bench.num_classes):
        members = np.flatnonzero(train.labels == cls)
        pool = np.sort(rng.choice(members, min(c["pool_per_class"], len(members)), replace=False))
        images, labels = train.tensors(pool)
        with torch.no_grad():
            out = handle.features_and_maps(images)
            probs = torch.softmax(out.logits.double(), 1).gather(1, labels[:, None])[:, 0].numpy()
        flips = bim_flip_steps(handle, images, labels, max_steps=c["attack_steps"], eps=c["attack_eps"])
        selections[str(cls)] = {"selections": {}}
        for selector in ("adv", "mmd"):
            sel = select_class(selector, k=c["images_per_class"], seed=inputs.seed * 1000 + cls,
                               features=out.features.double().numpy(), probs=probs, flips=flips,
                               mmd={"gamma": None, "reg": c["mmd_reg"]})
            selections[str(cls)]["selections"][selector] = {"prototypes": pool[sel.prototypes].tolist(),
                                                            "criticisms": pool[sel.criticisms].tolist()}
    table = cue_share_table(selections, np.asarray(train.bias_kinds) >= 0, train.labels, bench.class_names)
    pooled = cue_share_summary(table).set_index(["selector", "role"])["cue_share_percent"]
    found = all(pooled[(s, "criticisms")] < pooled[(s, "prototypes")] for s in ("adv", "mmd"))
    shares = " ".join(f"{s} {pooled[(s, 'criticisms')]:.0f}%<{pooled[(s, 'prototypes')]:.0f}%" for s in ("adv", "mmd"))
    return {"prototypes": Outcome(found, shares)}


#: Effect groups by name, in table order, with the columns each fills.
EFFECTS: dict[str, tuple[Callable[[SeedInputs], dict[str, Outcome]], tuple[str, ...]]] = {
    "salient": (salient_effect, ("salient",)),
    "spray": (spray_effect, ("spray_rank", "spray_purity")),
    "unhans": (unhans_effect, ("unhans_free", "unhans_cue")),
    "reconstruction": (reconstruction_effect, ("recon_trigger", "recon_l1_acc")),
    "misclassification": (misclassification_effect, ("misclass_sta", "misclass_rob")),
    "prototypes": (prototypes_effect, ("prototypes",)),
}
