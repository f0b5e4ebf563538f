"""Evidence passes over a study's images: streamed, sharded, and spread over the ``evidence`` queue.

A kind asks for a pass with ``ctx.run_pass(spec, progress)``: a :class:`analysis.streaming.PassSpec`
(a pass over images) or a :class:`analysis.streaming.PanelsSpec` (the Salient panels' second fan-out,
sharded over (class, feature) jobs). Shard results are named objects of the one artifact store
(``shards/<kind>/<digest>/<start>-<stop>.npz``, local or S3), so a finished shard is never recomputed,
whichever host made it.

* Embedded default (Celery eager, no broker): every shard runs in this process.
* With a broker: the missing shards go to the ``evidence`` queue as one Celery task each and the
  evidence job steps aside (state ``waiting``, :class:`EvidenceDeferred`). The shard that completes the
  set puts the job back on the queue; the job runs again, finds every shard in the store and goes on.
  A shard redelivered after its worker died recomputes that shard only.
"""
from __future__ import annotations

from typing import Any

import attrs
from django.conf import settings
from django.db.models import F

from analysis.artifact_store import NamedObjects
from annotation.artifacts import artifact_store
from annotation.models import Job
from workers.celery import app

SHARD_PREFIX = "shards"


class EvidenceDeferred(Exception):
    """The evidence job waits for shard tasks; the last one to finish queues it again."""

    def __init__(self, spec, n_shards: int, missing: int) -> None:
        super().__init__(f"waiting for {missing} of {n_shards} {spec.kind} shards")
        self.spec, self.n_shards, self.missing = spec, n_shards, missing

    def complete(self) -> bool:
        """Whether every shard of the pass is stored now."""
        return all_stored(self.spec, self.n_shards)


def all_stored(spec, n_shards: int) -> bool:
    # deferred: loads scikit-image, scikit-learn, scipy, torch, zennit (torch)
    from analysis.streaming import shard_name

    store, digest = shard_store(), spec.digest()
    return all(store.get(shard_name(spec, s, digest)) is not None for s in spec.plan(n_shards, execution()))


def shard_store() -> NamedObjects:
    return NamedObjects(artifact_store(), SHARD_PREFIX)


def execution():
    """How this process runs passes: ``SALIENT_EVIDENCE_BATCH``, ``_LOADER_WORKERS``, ``SALIENT_DEVICE``."""
    # deferred: loads scikit-image, scikit-learn, scipy, torch, zennit (torch)
    from analysis.streaming import Execution

    return Execution(batch_size=settings.SALIENT_EVIDENCE_BATCH, num_workers=settings.SALIENT_EVIDENCE_LOADER_WORKERS,
                     device=settings.SALIENT_DEVICE or None)


def distributed() -> bool:
    return not app.conf.task_always_eager


class PassRunner:
    """``ctx.run_pass`` of one evidence job: a pass's result, or :class:`EvidenceDeferred` while shards run."""

    def __init__(self, job_id: int | None) -> None:
        self.job_id = job_id

    def __call__(self, spec, progress) -> Any:
        # deferred: loads scikit-image, scikit-learn, scipy, torch, zennit (torch)
        from analysis.streaming import Partial, PassSpec, run_work, shard_name

        run = execution()
        n_shards = max(1, int(settings.SALIENT_EVIDENCE_SHARDS))
        store = shard_store()
        if settings.SALIENT_AMP and isinstance(spec, PassSpec) and spec.make_pass().forward_only:
            spec = attrs.evolve(spec, amp=True)
        if self.job_id is None or not distributed():
            return run_work(spec, n_shards, execution=run, progress=progress, store=store)
        digest = spec.digest()
        shards = spec.plan(n_shards, run)
        found = {i: store.get(shard_name(spec, s, digest)) for i, s in enumerate(shards)}
        missing = [i for i, data in found.items() if data is None]
        if missing:
            self._dispatch(spec, missing, len(shards))
            raise EvidenceDeferred(spec, len(shards), len(missing))
        progress(len(spec), len(spec), f"{spec.kind}: {len(shards)} shards merged")
        return spec.result([Partial.from_bytes(found[i]) for i in range(len(shards))], digest)

    def _dispatch(self, spec, missing: list[int], n_shards: int) -> None:
        # lazy: breaks the services ↔ workers.tasks cycle
        from workers.tasks import compute_evidence_shard

        total = len(spec)
        Job.objects.filter(pk=self.job_id).update(total=total, done=0,
                                                  message=f"{spec.kind} pass: {len(missing)} shards queued")
        for index in missing:
            compute_evidence_shard.delay(self.job_id, spec.to_dict(), index, n_shards)


def evidence_shard_run(*, job_id: int, spec: dict, index: int, n_shards: int) -> tuple[str, bool]:
    """Compute one shard (unless stored already) and store it.

    Returns what was done (``"computed <name>"`` or ``"reused <name>"``) and whether the shard completed
    its pass's set, in which case the waiting evidence job has been put back in line (``pending``).
    """
    # deferred: loads scikit-image, scikit-learn, scipy, torch, zennit (torch)
    from analysis.streaming import shard_name, work_from_dict

    work = work_from_dict(spec)
    run = execution()
    digest = work.digest()
    shard = work.plan(n_shards, run)[index]
    store = shard_store()
    name = shard_name(work, shard, digest)
    done = f"reused {name}"
    if store.get(name) is None:
        partial = work.compute(shard, execution=run, digest=digest)
        store.put(name, partial.to_bytes())
        done = f"computed {name} ({len(shard)} items, {len(partial.skipped)} unreadable)"
    Job.objects.filter(pk=job_id).update(done=F("done") + len(shard))
    Job.objects.filter(pk=job_id, done__gt=F("total")).update(done=F("total"))
    if not all_stored(work, n_shards):
        return done, False
    return done, bool(Job.objects.filter(pk=job_id, state=Job.State.WAITING).update(state=Job.State.PENDING))
