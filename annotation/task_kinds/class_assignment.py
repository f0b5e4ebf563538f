"""``class_assignment`` (Stock & Cisse §3.3): which of these classes does the target image belong to?

A task shows up to six classes as groups, each by the six images a selector picked for it
(prototypes only, or prototypes + criticisms), and one target image from the test split; the
answer is one group (its position "1".."n"; the truth names the target's group and class).
Condition = selector x shown (Adv, MMD, Probs with P or P+C; Random). Every target appears once
per condition; a worker sees each target once across conditions (the tasks
of one target share ``payload["exclusion_group"]``, honoured by the assignment logic).

Outputs after aggregation: the paper's Table 3 (accuracy per condition with its standard error
and number of valid answers, after discarding answers faster than ``min_answer_time`` or slower
than ``max_answer_time``), a bar plot with error bars, the selections and the answer table. With the
evidence, on the benchmark: ``cue_share_table.csv`` (§3.4's attribute shares: planted-cue images among
each selector's prototypes and criticisms per class, beside the class's cue rate).

With an ``attribute_question`` (§3.4's bias discovery, e.g. "Does the image show a person?") the study
asks that question instead, once per image Adv or MMD-critic picked as a prototype or criticism (yes /
no, majority vote); its outputs are the "yes" share per selector, role and class with 95 % Wilson
intervals (``attribute_shares.csv``, pooled in ``attribute_shares.json``). On the benchmark the truth
is the image's planted cue, shown beside the crowd's share.

MMD-critic's ``mmd_gamma`` is the paper's λ = 1e-5 (the RBF kernel's gamma); empty = the median
heuristic (:mod:`analysis.prototypes.mmd_critic`).
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from django import forms

from analysis.aggregation import MajorityVote
from analysis.crowd_sim import noisy_choice
from analysis.exports import safe_csv_bytes
from analysis.prototypes.attribute_shares import (
    attribute_share_table,
    picked_images,
    pooled_attribute_shares,
    share_gap,
)
from analysis.prototypes.cue_shares import cue_share_summary, cue_share_table
from analysis.prototypes.table import TimeFilter, accuracy_table, plot_accuracy
from annotation.task_kinds import OutputFile, Progress, StudyContext, TaskKind, TaskSpec, register_task_kind, staged
from annotation.task_kinds.base import read_json
from annotation.task_kinds.benchmark import (
    BenchmarkOverridesForm,
    data_source,
    has_truth,
    model_field,
    model_inputs,
    model_source,
    num_classes,
    require_validation,
)
from annotation.task_kinds.fields import ChoiceField

CUE_SHARES = "cue_shares.json"
ATTRIBUTE_SHARES = "attribute_shares.json"
YES_NO = ("yes", "no")


def attribute(conf: Mapping[str, Any]) -> str:
    """The study's attribute question ("" = the class-assignment study of §3.3)."""
    return (conf.get("attribute_question") or "").strip()


def positive(value) -> None:
    if value is not None and value <= 0:
        raise forms.ValidationError("gamma must be positive (empty = the median heuristic)")


class ClassAssignmentSettingsForm(BenchmarkOverridesForm):
    model = model_field("standard", "The classifier whose prototypes and criticisms are selected.")
    n_classes = forms.IntegerField(min_value=2, max_value=9, initial=6, help_text="Classes (groups) per task.")
    images_per_class = forms.IntegerField(min_value=2, max_value=12, initial=6,
                                          help_text="Images per group; P+C shows half prototypes, half criticisms.")
    targets_per_class = forms.IntegerField(min_value=1, max_value=200, initial=5,
                                           help_text="Target images per class (test split); each in every condition.")
    pool_per_class = forms.IntegerField(min_value=12, max_value=6000, initial=200,
                                        help_text="Candidate training images per class the selectors choose from.")
    attack_steps = forms.IntegerField(min_value=1, max_value=100, initial=10, help_text="Adv: IFGSM step cap M.")
    attack_eps = forms.FloatField(min_value=1e-5, max_value=0.1, initial=0.001, help_text="Adv: IFGSM step size.")
    mmd_gamma = forms.FloatField(
        required=False, initial=None, validators=[positive],
        help_text="MMD-critic: the RBF kernel's gamma, k(x, x') = exp(-gamma |x - x'|^2). The paper's "
                  "lambda = 1e-5 is this gamma (for ResNet features on ImageNet); empty = the median heuristic, "
                  "1 / median squared distance of the class's features.")
    mmd_reg = forms.FloatField(min_value=0, max_value=100, initial=1.0,
                               help_text="MMD-critic: weight of the criticisms' log-det diversity term (authors: 1).")
    min_answer_time = forms.FloatField(min_value=0, initial=20.0, help_text="Seconds; faster answers are discarded.")
    max_answer_time = forms.FloatField(min_value=1, initial=180.0, help_text="Seconds; slower answers are discarded.")
    seed = forms.IntegerField(min_value=0, initial=0)
    attribute_question = forms.CharField(
        required=False, initial="", max_length=200,
        help_text="Bias discovery (§3.4): a yes/no question the crowd answers of every image Adv and MMD-critic "
                  "picked as a prototype or criticism, e.g. \"Does the image show a person?\"; the results give "
                  "the yes share per selector, role and class. Empty: the class-assignment study (§3.3).")

    def clean(self) -> dict:
        data = super().clean()
        question = data.get("attribute_question") or ""
        if question and (len(question) < 5 or not any(ch.isalpha() for ch in question)):
            self.add_error("attribute_question", "write the question in words, e.g. \"Does the image show a person?\"")
        if data.get("max_answer_time") is not None and data.get("min_answer_time") is not None \
                and data["max_answer_time"] <= data["min_answer_time"]:
            self.add_error("max_answer_time", "must be longer than the minimum answer time")
        return data


def groups_shown(conf: Mapping[str, Any]) -> int:
    """Classes (groups) per task: ``n_classes``, at most the dataset's classes."""
    return min(int(conf["n_classes"]), num_classes(conf))


def class_pools(bench, c: Mapping[str, Any]) -> dict[int, np.ndarray]:
    """Per class: the seeded, sorted sample of ``pool_per_class`` train indices the selectors choose from."""
    rng = np.random.default_rng(int(c["seed"]))
    labels = bench.split("train").labels
    pools = {}
    for cls in range(bench.num_classes):
        members = np.flatnonzero(labels == cls)
        pools[cls] = np.sort(rng.choice(members, min(int(c["pool_per_class"]), len(members)), replace=False))
    return pools


def select_all(ctx: StudyContext, bench, model_path, c: Mapping[str, Any], progress: Progress) -> dict[str, Any]:
    """Per class: candidate train indices and each selector's prototypes/criticisms (train indices).

    Features, true-class probabilities and BIM flip steps of every class's pool come from one streamed,
    sharded ``prototype_features`` pass (``ctx.run_pass``); an unreadable image leaves its pool.
    """
    # deferred: loads torch
    from analysis.prototypes.adversarial import FlipSteps

    # deferred: loads torch
    from analysis.prototypes.selectors import SELECTORS, select_class

    # deferred: loads scikit-image, scikit-learn, scipy, torch, zennit (torch)
    from analysis.streaming import PassSpec

    pools = class_pools(bench, c)
    spec = PassSpec(kind="prototype_features", model=model_source(ctx, c["model"], model_path),
                    data=data_source(ctx, bench, "train"),
                    params={"attack_steps": int(c["attack_steps"]), "attack_eps": float(c["attack_eps"])},
                    indices=np.concatenate([pools[cls] for cls in range(bench.num_classes)]))
    evidence = ctx.run_pass(spec, staged(progress, 0.0, 0.9))
    row = {int(index): r for r, index in enumerate(evidence.indices)}
    k = int(c["images_per_class"])
    progress = staged(progress, 0.9, 0.1)
    out: dict[str, Any] = {}
    for cls in range(bench.num_classes):
        progress(cls, bench.num_classes, f"selecting prototypes and criticisms of {bench.class_names[cls]}")
        pool = np.asarray([i for i in pools[cls] if int(i) in row], dtype=np.int64)
        rows = [row[int(i)] for i in pool]
        flips = FlipSteps(evidence.flips.steps[rows], evidence.flips.margin[rows], evidence.flips.max_steps)
        per = {}
        for selector in SELECTORS:
            sel = select_class(selector, k=k, seed=int(c["seed"]) * 1000 + cls,
                               features=evidence.features[rows].astype(np.float64), probs=evidence.probs[rows],
                               flips=flips, mmd={"gamma": c.get("mmd_gamma"), "reg": float(c["mmd_reg"])})
            per[selector] = {"prototypes": pool[sel.prototypes].tolist(), "criticisms": pool[sel.criticisms].tolist()}
        out[str(cls)] = {"pool": len(pool), "selections": per,
                         "flip_steps": {int(s): int(n) for s, n in zip(*np.unique(flips.steps, return_counts=True))}}
    progress(bench.num_classes, bench.num_classes, "selections ready")
    return out


def target_plan(bench, c: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Targets (test indices) with the classes their tasks show, in a seeded random group order."""
    rng = np.random.default_rng(int(c["seed"]) + 1)
    test = bench.split("test")
    n_show = groups_shown(c)
    plan = []
    for cls in range(bench.num_classes):
        members = np.flatnonzero(test.labels == cls)
        for index in np.sort(rng.choice(members, min(int(c["targets_per_class"]), len(members)), replace=False)):
            others = rng.choice([o for o in range(bench.num_classes) if o != cls], n_show - 1, replace=False)
            plan.append({"index": int(index), "cls": cls, "classes": rng.permutation([cls, *others]).tolist()})
    return plan


@register_task_kind
class ClassAssignment(TaskKind):
    name = "class_assignment"
    title = "Prototypes and criticisms: assign the target image to a class"
    template = "annotation/kinds/class_assignment.html"
    results_template = "annotation/kinds/class_assignment_results.html"
    label_field = "choice"
    settings_form = ClassAssignmentSettingsForm

    def answer_fields(self, conf) -> list:
        # Values are group positions ("1".."n"), the same in every task of a study, so that agreement
        # statistics and label counts share one label set; the truth is the target's group position.
        if attribute(conf):
            return [ChoiceField("choice", YES_NO, ("Yes", "No"))]
        n = groups_shown(conf)
        return [ChoiceField("choice", tuple(str(i + 1) for i in range(n)), tuple(f"Group {i + 1}" for i in range(n)))]

    def validation_use(self, conf) -> str:
        if attribute(conf):
            return ""  # the attribute question shows training images only
        return "The class-assignment targets (held-out images, not the training images the groups come from)"

    def build_tasks(self, ctx: StudyContext, progress: Progress) -> Iterable[TaskSpec]:
        # deferred: loads torch
        from analysis.prototypes.selectors import CONDITIONS, Selection, condition_name, condition_title, shown_images

        c = ctx.conf
        require_validation(ctx, self.validation_use(c))
        bench, _, paths = model_inputs(ctx, [c["model"]], staged(progress, 0.0, 0.3))
        selections = select_all(ctx, bench, paths[c["model"]], c, staged(progress, 0.3, 0.5))
        store = ctx.store
        train, test = bench.split("train"), bench.split("test")
        k = int(c["images_per_class"])
        cache: dict[int, str] = {}

        def stored(indices: list[int]) -> list[str]:
            missing = [i for i in indices if i not in cache]
            if missing:
                cache.update(zip(missing, store.images(train.images[np.asarray(missing)])))
            return [cache[i] for i in indices]

        if has_truth(bench):
            yield from cue_share_outputs(bench, selections)
        if attribute(c):
            yield from attribute_tasks(ctx, bench, selections, staged(progress, 0.8, 0.2))
            return
        plan = target_plan(bench, c)
        report = staged(progress, 0.8, 0.2)
        for t, target in enumerate(plan):
            report(t, len(plan), "storing task images")
            target_image = store.images(test.images[[target["index"]]], kind="target")[0]
            # Latin-square order: target t starts at condition t, so a partial crowd still covers
            # every condition evenly (the assignment logic hands out tasks in creation order).
            for j in range(len(CONDITIONS)):
                selector, shown = CONDITIONS[(t + j) % len(CONDITIONS)]
                groups = []
                for cls in target["classes"]:
                    sel = selections[str(cls)]["selections"][selector]
                    chosen = shown_images(Selection(np.asarray(sel["prototypes"]), np.asarray(sel["criticisms"])),
                                          shown, k)
                    groups.append({"cls": int(cls), "class_name": bench.class_names[cls],
                                   "indices": [int(i) for i in chosen], "images": stored([int(i) for i in chosen])})
                name = condition_name(selector, shown)
                yield TaskSpec(
                    key=f"t{target['index']}-{name}",
                    payload={"condition": name, "condition_title": condition_title(selector, shown),
                             "selector": selector, "shown": shown, "target": target_image,
                             "target_index": target["index"], "exclusion_group": f"target-{target['index']}",
                             "groups": groups},
                    truth={"choice": str(target["classes"].index(target["cls"]) + 1), "class": int(target["cls"])},
                )

    def aggregator(self, conf: Mapping[str, Any]) -> MajorityVote:
        return MajorityVote(min_votes=int(conf["workers_per_task"]), labels=YES_NO if attribute(conf) else None)

    def simulate_answer(self, task, conf, rng: np.random.Generator, accuracy: float) -> dict[str, Any]:
        # On the benchmark the simulated crowd answers the attribute question by the image's planted cue.
        values = self.label_choices(conf)
        truth = (task.truth or {}).get("choice") or values[int(rng.integers(len(values)))]
        return {"choice": noisy_choice(truth, values, accuracy, rng)}

    def build_outputs(self, ctx: StudyContext, labels: pd.DataFrame, progress: Progress) -> list[OutputFile]:
        if attribute(ctx.conf):
            return attribute_outputs(ctx, labels)
        return class_assignment_outputs(ctx)

    def results_context(self, ctx: StudyContext) -> dict[str, Any]:
        cues = read_json(ctx, CUE_SHARES)
        if attribute(ctx.conf):  # the page's ``summary``: what says that results exist
            shares = read_json(ctx, ATTRIBUTE_SHARES)
            return {"summary": shares, "attribute": shares, "cue_shares": cues}
        return {"summary": read_json(ctx, "accuracy_table.json"), "cue_shares": cues}


def attribute_tasks(ctx: StudyContext, bench, selections: Mapping[str, Any], progress: Progress) -> Iterable[TaskSpec]:
    """One yes/no task per distinct image Adv or MMD-critic picked (§3.4), with the planted cue as its truth
    on the benchmark."""
    question = attribute(ctx.conf)
    train = bench.split("train")
    picked = picked_images(selections)
    cues = np.asarray(train.bias_kinds) >= 0 if has_truth(bench) else None
    names = ctx.store.images(train.images[np.asarray([p["index"] for p in picked], dtype=np.int64)]) if picked else []
    for i, (p, image) in enumerate(zip(picked, names)):
        progress(i, len(picked), "storing task images")
        yield TaskSpec(key=f"a{p['index']}",
                       payload={"attribute": question, "image": image, "index": p["index"], "cls": p["class"],
                                "class_name": bench.class_names[p["class"]], "roles": p["roles"]},
                       truth=None if cues is None else {"choice": "yes" if cues[p["index"]] else "no"})


def attribute_outputs(ctx: StudyContext, labels: pd.DataFrame) -> list[OutputFile]:
    """The crowd's yes share per selector, role and class and pooled (Wilson 95 %), beside the planted cue's share
    where the tasks know it (the benchmark)."""
    tasks = {t.pk: t for t in ctx.tasks() if "attribute" in t.payload and not t.is_gold}
    label = dict(zip(labels["task"], labels["label"])) if len(labels) else {}
    images = pd.DataFrame([{"class": t.payload["cls"], "class_name": t.payload["class_name"],
                            "label": label.get(pk), "roles": t.payload["roles"],
                            "truth": (t.truth or {}).get("choice")} for pk, t in tasks.items()],
                          columns=["class", "class_name", "label", "roles", "truth"])
    table = attribute_share_table(images)
    pooled = pooled_attribute_shares(table)
    known = images["truth"].notna().any()
    if known:
        cue = attribute_share_table(images.assign(label=images["truth"]))
        table["planted_cue_percent"] = cue["yes_share_percent"].to_numpy()
        pooled["planted_cue_percent"] = pooled_attribute_shares(cue)["yes_share_percent"].to_numpy()
    data = {"question": attribute(ctx.conf), "images": int(len(images)), "decided": int(images["label"].isin(
        YES_NO).sum()), "known": bool(known), "gap": share_gap(pooled),
            "pooled": json.loads(pooled.to_json(orient="records")),
            "classes": json.loads(table.to_json(orient="records"))}
    return [OutputFile("attribute_shares.csv", safe_csv_bytes(table, float_format="%.2f"),
                       "The attribute's yes share per class, selector and role with 95 % Wilson intervals (§3.4)"),
            OutputFile("attribute_shares_pooled.csv", safe_csv_bytes(pooled, float_format="%.2f"),
                       "The attribute's yes share per selector and role, pooled over classes (§3.4)"),
            OutputFile(ATTRIBUTE_SHARES, json.dumps(data, indent=1).encode(), "Attribute shares (JSON)")]


def cue_share_outputs(bench, selections: Mapping[str, Any]) -> list[OutputFile]:
    """Share of planted-cue images among each selector's prototypes and criticisms per class, beside the
    class's cue rate, and pooled over the biased classes (Stock & Cisse §3.4 on the benchmark)."""


    train = bench.split("train")
    table = cue_share_table(selections, np.asarray(train.bias_kinds) >= 0, train.labels, bench.class_names)
    pooled = cue_share_summary(table)
    data = {"classes": json.loads(table.to_json(orient="records")),
            "pooled": json.loads(pooled.to_json(orient="records"))}
    return [OutputFile("cue_share_table.csv", safe_csv_bytes(table, float_format="%.2f"),
                       "Planted-cue share among each selector's prototypes and criticisms per class (§3.4)"),
            OutputFile(CUE_SHARES, json.dumps(data).encode(), "Cue shares per class and pooled over biased classes")]


def study_answer_table(ctx: StudyContext) -> pd.DataFrame:
    """One row per answer that counts or was flagged for its time: condition, correctness, seconds."""
    tasks = {t.pk: t for t in ctx.tasks() if not t.is_gold}
    answers = ctx.answers()
    answers = answers[answers["counted"] | answers["flag"].isin(["too_fast", "too_slow"])]
    rows = []
    for a in answers.itertuples():
        task = tasks.get(a.task)
        if task is None or "condition" not in task.payload:
            continue
        p = task.payload
        truth = (task.truth or {}).get("choice")
        choice = a.payload.get("choice")
        chosen = p["groups"][int(choice) - 1]["cls"] if choice and choice.isdigit() and 0 < int(choice) <= len(
            p["groups"]) else None
        rows.append({"answer": a.answer, "task": a.task, "task_key": task.key, "worker": a.worker,
                     "condition": p["condition"], "title": p["condition_title"], "target_index": p["target_index"],
                     "true_class": (task.truth or {}).get("class"), "chosen_class": chosen, "truth": truth,
                     "choice": choice, "correct": choice == truth,
                     "seconds": (a.submitted_at - a.shown_at).total_seconds()})
    return pd.DataFrame(rows, columns=["answer", "task", "task_key", "worker", "condition", "title", "target_index",
                                       "true_class", "chosen_class", "truth", "choice", "correct", "seconds"])


def class_assignment_outputs(ctx: StudyContext) -> list[OutputFile]:
    # deferred: loads torch
    from analysis.prototypes.selectors import CONDITIONS, condition_name, condition_title

    c = ctx.conf
    answers = study_answer_table(ctx)
    time_filter = TimeFilter(float(c["min_answer_time"]),
                             None if c["max_answer_time"] is None else float(c["max_answer_time"]))
    conditions = [(condition_name(s, v), condition_title(s, v)) for s, v in CONDITIONS]
    table, counts = accuracy_table(answers, time_filter, conditions)
    answers = answers.assign(discarded=time_filter.reason(answers["seconds"]) if len(answers) else [])
    grouped = [t for t in ctx.tasks() if "groups" in t.payload]
    chance = 1 / len(grouped[0].payload["groups"]) if grouped else None
    summary = {"time_filter": {"min_seconds": time_filter.min_seconds, "max_seconds": time_filter.max_seconds},
               "answers": counts, "chance": chance,
               "table": json.loads(table.to_json(orient="records"))}
    selections = []
    for task in grouped:
        for g in task.payload["groups"]:
            selections.append({"selector": task.payload["selector"], "shown": task.payload["shown"],
                               "class": g["cls"], "class_name": g["class_name"],
                               "train_indices": " ".join(map(str, g["indices"]))})
    selections = pd.DataFrame(selections).drop_duplicates() if selections else pd.DataFrame()
    return [
        OutputFile("accuracy_table.csv", safe_csv_bytes(table, float_format="%.2f"),
                   f"Accuracy per condition (Table 3): {counts['valid']} valid of {counts['total']} answers, "
                   f"{counts['too_fast']} too fast, {counts['too_slow']} too slow"),
        OutputFile("accuracy_table.json", json.dumps(summary, indent=2).encode(), "Table 3 and the time filter counts"),
        OutputFile("accuracy.png", plot_accuracy(table, chance), "Accuracy per condition (± standard error)"),
        OutputFile("answers_timed.csv", safe_csv_bytes(answers),
                   "Answers with condition, correctness, seconds and discard reason"),
        OutputFile("selections.csv", safe_csv_bytes(selections),
                   "Images each selector showed per class (train indices)"),
    ]
