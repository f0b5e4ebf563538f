"""The second fan-out of a Salient study: per (class, feature), the NAMs and feature-attack images.

:func:`panel_jobs` reads the merged :class:`SalientStats` into one :class:`PanelJob` per
(class, top feature); :func:`run_panels` computes any slice of the jobs (a Celery task each, or
all at once) into a :class:`Partial`; :func:`assemble_evidence` joins the slices into the
:class:`analysis.salient.evidence.SalientEvidence` the study kinds already read.
:class:`PanelsSpec` shards the jobs like a pass (a Celery task per shard on the platform);
:func:`salient_evidence` runs the whole chain in this process.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import attrs
import numpy as np
import torch

from analysis.salient.attack import feature_attack
from analysis.salient.evidence import FeaturePanel, SalientEvidence
from analysis.salient.nam import neural_activation_maps, to_uint8_images

from .device import resolve_device
from .partial import Partial
from .shards import ShardStore, image_loader, in_order, plan_shards, run_pass, run_work
from .sources import DataSource, ModelSource, cached_dataset, cached_handle, cached_labels, canonical_json
from .spec import Execution, PassSpec

PANEL_KIND = "salient_panels"


@attrs.frozen
class PanelJob:
    """One (class, feature) panel: its images, chosen from the merged statistics."""

    cls: int
    feature: int
    rank: int
    importance: float
    top: tuple[int, ...] = attrs.field(converter=lambda v: tuple(int(i) for i in v))
    bottom: tuple[int, ...] = attrs.field(converter=lambda v: tuple(int(i) for i in v))
    pool: tuple[int, ...] = attrs.field(default=(), converter=lambda v: tuple(int(i) for i in v))
    label_top: tuple[int, ...] = attrs.field(default=(), converter=lambda v: tuple(int(i) for i in v))
    grouping: str = "prediction"

    def to_dict(self) -> dict:
        return attrs.asdict(self)

    @classmethod
    def from_dict(cls, value: dict) -> "PanelJob":
        return cls(**value)


def panel_jobs(stats, *, classes: Sequence[int] | None = None, k_features: int = 5, k_images: int = 5,
               pool: int = 65, panel_by: str = "prediction") -> list[PanelJob]:
    """One job per (class, top-``k_features`` feature), in class then rank order, as
    :func:`analysis.salient.evidence.compute_salient_evidence` chooses them.

    ``top``: the ``k_images`` highest images among those predicted c (``panel_by="prediction"``, the
    paper's App. C; by label for a class predicted fewer than ``k_images`` times) or labelled c;
    ``pool``: D(c, i), the top-``pool`` by label; ``label_top`` its first and ``bottom`` its last ``k_images``.
    """
    chosen = stats.top_features(k_features)
    classes = range(len(chosen)) if classes is None else [int(c) for c in classes]
    jobs = []
    for c in classes:
        grouping = "prediction" if panel_by == "prediction" and stats.predicted_counts[c] >= k_images else "label"
        for rank, f in enumerate(chosen[c].tolist()):
            pool_images = stats.top_images(c, int(f), pool, by="label")
            jobs.append(PanelJob(cls=c, feature=int(f), rank=rank, importance=float(stats.importance[c, f]),
                                 top=stats.top_images(c, int(f), k_images, by=grouping),
                                 bottom=pool_images[-k_images:], pool=pool_images,
                                 label_top=pool_images[:k_images], grouping=grouping))
    return jobs


def default_attack_step(height: int, width: int) -> float:
    """Singla & Feizi §3.2 (feature attack): L2 steps of 10 on [0, 1] images at 224 x 224, scaled by
    sqrt(pixels / 224²)."""
    return 10.0 * math.sqrt(height * width / 224 ** 2)


def panels_digest(spec: PassSpec, jobs: Sequence[PanelJob], settings: dict) -> str:
    blob = canonical_json({"pass": spec.digest(), "jobs": [j.to_dict() for j in jobs], "settings": settings})
    return hashlib.sha256(blob.encode()).hexdigest()


def _load_images(spec: PassSpec, indices: np.ndarray, execution: Execution, device: torch.device) -> torch.Tensor:
    wanted = np.unique(indices)
    found: dict[int, torch.Tensor] = {}
    for item in image_loader(cached_dataset(spec.data), wanted, execution, device):
        if len(item["skipped"]):
            raise ValueError(f"image(s) {item['skipped'].tolist()} can no longer be read")
        found.update(zip(item["indices"].tolist(), item["images"]))
    return torch.stack([found[int(i)] for i in indices])


def run_panels(spec: PassSpec, jobs: Sequence[PanelJob], *, start: int = 0, attack_steps: int = 100,
               attack_step_size: float | None = None, execution: Execution = Execution(), handle=None,
               progress=None) -> Partial:
    """NAMs of every job's top and bottom images and feature attacks of its top images.

    ``jobs`` may be a slice ``all_jobs[start:start + len(jobs)]`` of :func:`panel_jobs`; the partial
    covers positions ``start:start + len(jobs)`` of the job list.  Arrays: ``top_nams`` and
    ``bottom_nams`` (images, H, W) float32, ``attacked`` (images, H, W, 3) uint8, jobs' images in order.
    """
    if not jobs:
        raise ValueError("no panel jobs given")
    device = resolve_device(execution.device)
    handle = handle if handle is not None else cached_handle(spec.model, device)
    sets = {name: np.concatenate([getattr(job, name) for job in jobs]).astype(np.int64)
            for name in ("top", "label_top", "bottom")}
    set_features = {name: np.concatenate([[job.feature] * len(getattr(job, name)) for job in jobs]).astype(np.int64)
                    for name in sets}
    top, top_features = sets["top"], set_features["top"]
    images = _load_images(spec, np.concatenate(list(sets.values())), execution, handle.device)
    step = attack_step_size if attack_step_size is not None else default_attack_step(*images.shape[-2:])
    features = torch.from_numpy(np.concatenate(list(set_features.values())))
    nams = []
    with torch.no_grad():
        for first in range(0, len(images), execution.batch_size):
            maps = handle.feature_maps(images[first:first + execution.batch_size].to(handle.device))
            nams.append(neural_activation_maps(maps, features[first:first + execution.batch_size],
                                               tuple(images.shape[-2:])).cpu())
    nams_np = torch.cat(nams).numpy().astype(np.float32)
    attacked = []
    for first in range(0, len(top), execution.batch_size):
        if progress is not None:
            progress(first, len(top), f"feature attacks ({attack_steps} steps)")
        with torch.enable_grad():
            attacked.append(feature_attack(handle, images[first:first + min(execution.batch_size, len(top) - first)],
                                           torch.from_numpy(top_features[first:first + execution.batch_size]),
                                           steps=attack_steps, step_size=step, batch_size=execution.batch_size))
    if progress is not None:
        progress(len(top), len(top), "panels computed")
    settings = {"attack_steps": attack_steps, "attack_step_size": step}
    return Partial(kind=PANEL_KIND, digest=panels_digest(spec, jobs, settings), start=start, stop=start + len(jobs),
                   arrays={"top_nams": nams_np[:len(top)],
                           "label_top_nams": nams_np[len(top):len(top) + len(sets["label_top"])],
                           "bottom_nams": nams_np[len(top) + len(sets["label_top"]):],
                           "attacked": to_uint8_images(torch.cat(attacked)) if attacked else
                           np.zeros((0, *images.shape[-2:], 3), np.uint8),
                           "attack_step_size": np.array(step)})


@attrs.frozen
class PanelsSpec:
    """The panels fan-out of one Salient pass, sharded over job positions like a pass over images.

    It has a pass's surface (``kind``, ``digest``, ``len``, ``plan``, ``compute``, ``result``,
    ``to_dict``), so :func:`analysis.streaming.run_work` and the platform's shard tasks run either.
    """

    source: PassSpec
    jobs: tuple[PanelJob, ...] = attrs.field(converter=tuple)
    attack_steps: int = 100
    attack_step_size: float | None = None
    kind = PANEL_KIND

    def __len__(self) -> int:
        return len(self.jobs)

    def settings(self) -> dict:
        return {"attack_steps": self.attack_steps, "attack_step_size": self.attack_step_size}

    def digest(self) -> str:
        return panels_digest(self.source, self.jobs, self.settings())

    def plan(self, n_shards: int, execution: Execution) -> list:
        return plan_shards(len(self), n_shards)

    def compute(self, shard, *, execution: Execution = Execution(), progress=None, handle=None,
                digest: str | None = None) -> Partial:
        partial = run_panels(self.source, self.jobs[shard.start:shard.stop], start=shard.start,
                             attack_steps=self.attack_steps, attack_step_size=self.attack_step_size,
                             execution=execution, handle=handle, progress=progress)
        return attrs.evolve(partial, digest=digest or self.digest())

    def result(self, partials: Sequence[Partial], digest: str | None = None) -> list[Partial]:
        """The partials in job order, checked to be this fan-out's and to cover every job."""
        digest = digest or self.digest()
        foreign = [p for p in partials if p.digest != digest or p.kind != self.kind]
        if foreign:
            raise ValueError(f"{len(foreign)} partial(s) belong to other panels than {digest[:12]}")
        ordered = in_order(partials)
        if not ordered or ordered[0].start != 0 or ordered[-1].stop != len(self):
            raise ValueError(f"the panel partials do not cover all {len(self)} jobs")
        return ordered

    def to_dict(self) -> dict:
        return {"work": PANEL_KIND, "source": self.source.to_dict(), "jobs": [j.to_dict() for j in self.jobs],
                "attack_steps": self.attack_steps, "attack_step_size": self.attack_step_size}

    @classmethod
    def from_dict(cls, value: dict) -> "PanelsSpec":
        return cls(source=PassSpec.from_dict(value["source"]), jobs=[PanelJob.from_dict(j) for j in value["jobs"]],
                   attack_steps=int(value["attack_steps"]), attack_step_size=value.get("attack_step_size"))


def work_from_dict(value: dict):
    """A :class:`PassSpec` or a :class:`PanelsSpec` from its ``to_dict()`` (e.g. a Celery task argument)."""
    return PanelsSpec.from_dict(value) if value.get("work") == PANEL_KIND else PassSpec.from_dict(value)


def class_examples(labels: np.ndarray, num_classes: int, n_examples: int = 3, seed: int = 0) -> np.ndarray:
    """(C, n_examples) seeded random images of each class by label; (0, n_examples) if a class has too few."""
    if any((labels == c).sum() < n_examples for c in range(num_classes)):
        return np.zeros((0, n_examples), int)
    rng = np.random.default_rng(seed)
    return np.stack([rng.choice(np.flatnonzero(labels == c), size=n_examples, replace=False)
                     for c in range(num_classes)])


def assemble_evidence(stats, jobs: Sequence[PanelJob], partials: Sequence[Partial], *, examples: np.ndarray,
                      settings: dict) -> SalientEvidence:
    """The study's evidence from the merged stats, all jobs and the partials of :func:`run_panels` covering them."""
    ordered = in_order(partials)
    if not ordered or ordered[0].start != 0 or ordered[-1].stop != len(jobs):
        covered = f"{ordered[0].start}-{ordered[-1].stop}" if ordered else "nothing"
        raise ValueError(f"the panel partials cover jobs {covered}, not all {len(jobs)}")
    arrays = {key: np.concatenate([p.arrays[key] for p in ordered])
              for key in ("top_nams", "label_top_nams", "bottom_nams", "attacked")}
    panels, n_top, n_label, n_bottom = [], 0, 0, 0
    for job in jobs:
        panels.append(FeaturePanel(
            cls=job.cls, feature=job.feature, rank=job.rank, importance=job.importance,
            top=np.array(job.top, np.int64), bottom=np.array(job.bottom, np.int64),
            top_nams=arrays["top_nams"][n_top:n_top + len(job.top)],
            bottom_nams=arrays["bottom_nams"][n_bottom:n_bottom + len(job.bottom)],
            attacked=arrays["attacked"][n_top:n_top + len(job.top)], pool=np.array(job.pool, np.int64),
            label_top=np.array(job.label_top, np.int64),
            label_top_nams=arrays["label_top_nams"][n_label:n_label + len(job.label_top)], grouping=job.grouping))
        n_top += len(job.top)
        n_label += len(job.label_top)
        n_bottom += len(job.bottom)
    step = float(ordered[0].arrays["attack_step_size"])
    k_features = settings.get("k_features", len({j.rank for j in jobs}))
    return SalientEvidence(importance=stats.importance, top_features=stats.top_features(k_features),
                           examples=examples, panels=panels, settings={**settings, "attack_step_size": step})


def salient_evidence(model: ModelSource, data: DataSource, *, n_shards: int = 1, indices: Sequence[int] | None = None,
                     classes: Sequence[int] | None = None, k_features: int = 5, k_images: int = 5, pool: int = 65,
                     attack_steps: int = 100, attack_step_size: float | None = None, n_examples: int = 3,
                     seed: int = 0, panel_by: str = "prediction", amp: bool = False,
                     execution: Execution = Execution(), progress=None, store: ShardStore | None = None
                     ) -> SalientEvidence:
    """Streamed, sharded Salient evidence in this process: features pass, merge, panels (in as many shards),
    assembly."""
    spec = PassSpec(kind="salient", model=model, data=data, params={"pool": max(pool, k_images)}, indices=indices,
                    amp=amp)
    stats = run_pass(spec, n_shards, execution=execution, progress=progress, store=store)
    weight_classes = len(stats.importance)
    classes = list(range(weight_classes)) if classes is None else [int(c) for c in classes]
    jobs = panel_jobs(stats, classes=classes, k_features=k_features, k_images=k_images, pool=pool, panel_by=panel_by)
    panels = PanelsSpec(source=spec, jobs=jobs, attack_steps=attack_steps, attack_step_size=attack_step_size)
    partials = run_work(panels, min(n_shards, len(jobs)), execution=execution, progress=progress, store=store)
    labels = cached_labels(data)
    labels = labels if indices is None else labels[np.asarray(indices)]
    examples = class_examples(labels, weight_classes, n_examples, seed)
    if indices is not None and len(examples):
        examples = np.asarray(indices)[examples]
    settings = {"k_features": k_features, "k_images": k_images, "pool": pool, "attack_steps": attack_steps,
                "classes": classes, "panel_by": panel_by}
    return assemble_evidence(stats, jobs, partials, examples=examples, settings=settings)
