"""A real Celery worker process on Redis runs the evidence job of a study (not eager)."""
from __future__ import annotations

import os
import re
import time
import uuid

import pytest
from django.conf import settings

from analysis.artifact_store import LocalArtifactStore
from annotation import services
from tests.celery_processes import (  # noqa: F401
    database_url,
    not_eager,
    redis_broker,
    start_worker,
    stop_worker,
    wait_for,
)

pytestmark = [pytest.mark.slow, pytest.mark.celery_worker]


@pytest.fixture(scope="module")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory, benchmark_dir):
    """Start ``celery worker`` on a queue of its own, sharing the test database and artifact dir."""
    from workers.celery import routed_to

    broker = redis_broker()
    queue = f"test-{uuid.uuid4().hex[:8]}"
    artifacts = tmp_path_factory.getbasetemp() / "artifacts"
    with django_db_blocker.unblock():
        env = {**os.environ, "DATABASE_URL": database_url(), "SALIENT_ARTIFACT_DIR": str(artifacts),
               "CELERY_BROKER_URL": broker, "SALIENT_BENCHMARK_DIR": str(benchmark_dir),
               "SALIENT_ONE_QUEUE": queue}  # tasks the worker itself sends (evidence shards) stay on its queue
    log = tmp_path_factory.mktemp("celery") / "worker.log"
    proc = start_worker(queue, log, env)
    with routed_to(queue):
        yield {"process": proc, "log": log}
    stop_worker(proc)


def test_real_worker_computes_the_evidence(transactional_db, celery_worker_process, not_eager, researcher):
    study = services.study_create(owner=researcher, name="real", kind="image_choice",
                                  settings={"images": ["astronaut", "coins"], "image_size": 40})
    job = services.study_start_computing(study=study)
    wait_for(study, {"ready", "draft"})
    job.refresh_from_db()
    assert study.state == "ready", job.error
    assert (job.state, job.done, job.total) == ("done", 2, 2)
    assert sorted(study.tasks.values_list("key", flat=True)) == ["img-astronaut", "img-coins"]
    for task in study.tasks.all():
        name = task.payload["images"][0]
        assert LocalArtifactStore(settings.ARTIFACT_DIR).path(name).stat().st_size > 0
    assert "compute_study_evidence[" in celery_worker_process["log"].read_text()


def test_real_worker_aggregates_and_makes_the_archive(transactional_db, celery_worker_process, not_eager, researcher,
                                                      make_worker):
    """The Aggregate button and the archive button only queue: the worker process runs both jobs."""
    import io
    import zipfile

    from django.test import Client
    from django.urls import reverse

    from annotation.models import Job
    from tests.study_helpers import crowd_answers

    study = services.study_create(owner=researcher, name="agg", kind="image_choice",
                                  settings={"images": ["astronaut", "coins"], "image_size": 40}, workers_per_task=2)
    services.study_start_computing(study=study)
    wait_for(study, {"ready", "draft"})
    services.study_launch(study=study)
    crowd_answers(study, make_worker, n=2, accuracy=1.0)
    services.study_close(study=study)
    client = Client()
    client.force_login(researcher)
    reply = client.post(reverse("study_action", args=[study.pk, "aggregate"]), HTTP_ACCEPT="application/json")
    assert reply.status_code == 200 and reply.json()["job"]["name"] == "aggregate"
    wait_for(study, {"aggregated"})
    job = Job.objects.get(pk=reply.json()["job"]["id"])
    assert job.state == "done" and study.results.exclude(label="").count() == 2
    made = client.post(reverse("study_export", args=[study.pk, "archive.zip"]), HTTP_ACCEPT="application/json")
    export = Job.objects.get(pk=made.json()["job"]["id"])
    deadline = time.monotonic() + 60
    while export.state not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.3)
        export.refresh_from_db()
    assert export.state == "done", export.error
    archive = client.get(reverse("study_export", args=[study.pk, "archive.zip"]))
    assert f"study{study.pk}/labels.csv" in zipfile.ZipFile(io.BytesIO(b"".join(archive.streaming_content))).namelist()
    log = celery_worker_process["log"].read_text()
    assert "aggregate_study[" in log and "export_study[" in log


def test_real_worker_failure_returns_the_study_to_draft(transactional_db, celery_worker_process, not_eager, researcher):
    study = services.study_create(owner=researcher, name="broken", kind="image_choice",
                                  settings={"images": ["no_such_image"]})
    job = services.study_start_computing(study=study)
    wait_for(study, {"draft", "ready"})
    job.refresh_from_db()
    assert study.state == "draft"
    assert job.state == "failed" and "no_such_image" in job.error
    assert not study.tasks.exists()


def test_real_worker_computes_the_salient_evidence(transactional_db, celery_worker_process, not_eager, researcher):
    from tests.conftest import TINY_BENCHMARK, TINY_TRAINING

    study = services.study_create(owner=researcher, name="salient", kind="feature_panel", settings={
        "benchmark": TINY_BENCHMARK, "training": TINY_TRAINING, "k_features": 2, "k_images": 3, "pool": 10,
        "attack_steps": 3})
    job = services.study_start_computing(study=study)
    wait_for(study, {"ready", "draft"}, timeout=300)
    job.refresh_from_db()
    assert study.state == "ready", job.error
    assert job.state == "done" and study.tasks.filter(is_gold=False).count() == 8
    for task in study.tasks.all():
        for name in task.payload["images"] + task.payload["heatmaps"] + task.payload["attacks"]:
            assert LocalArtifactStore(settings.ARTIFACT_DIR).exists(name)


def test_real_worker_runs_spray_and_the_unhans_job(transactional_db, celery_worker_process, not_eager, researcher):
    """SpRAy evidence (LRP, spectral clustering, UMAP, plots) and the kind's own un-Hans job on a real worker."""
    from tests.conftest import TINY_BENCHMARK, TINY_TRAINING

    study = services.study_create(owner=researcher, name="spray", kind="cluster_review", settings={
        "benchmark": TINY_BENCHMARK, "training": TINY_TRAINING, "per_class": 30, "size": 16, "max_k": 5,
        "review_classes": 1, "examples": 3, "min_cluster_size": 3})
    job = services.study_start_computing(study=study)
    wait_for(study, {"ready", "draft"}, timeout=300)
    job.refresh_from_db()
    assert study.state == "ready", job.error
    assert study.outputs.filter(stage="evidence", name="spray_ranking.csv").exists()
    # The LRP heatmaps were shard tasks of the worker: the job ran, waited for them, and ran again.
    assert re.search(rf"evidence shard \d+ of job {job.pk}: computed lrp/", celery_worker_process["log"].read_text())
    assert job.attempts == 2
    task = study.tasks.order_by("-id").first()
    assert task is not None and task.payload["indices"]
    unhans = services.study_start_kind_job(study=study, name="unhans", params={"cluster": task.key, "epochs": 1,
                                                                                "train_per_class": 10})
    deadline = time.monotonic() + 300
    while unhans.state in ("pending", "running") and time.monotonic() < deadline:
        time.sleep(0.5)
        unhans.refresh_from_db()
    assert unhans.state == "done", unhans.error
    assert study.outputs.filter(stage="unhans", name="unhans_table2.csv").exists()


def test_real_worker_reconstructs_training_samples(transactional_db, celery_worker_process, not_eager, researcher):
    """The recovered-sample evidence job (train, reconstruct, score, plots) on a real worker, with its progress."""
    study = services.study_create(owner=researcher, name="recon", kind="reconstruction_review", settings={
        "classes": [0, 8], "per_side": 4, "size": 8, "variant": "contrast", "hidden": 16, "steps": 20,
        "review_k": 1})
    job = services.study_start_computing(study=study)
    wait_for(study, {"ready", "draft"}, timeout=300)
    job.refresh_from_db()
    assert study.state == "ready", job.error
    assert job.state == "done" and job.done == job.total > 0
    assert set(study.outputs.values_list("name", flat=True)) == {
        "pairs_base.png", "loss_base.png", "pairs_contrast.png", "loss_contrast.png", "accuracy_vs_ssim.csv",
        "accuracy_vs_ssim.png", "reconstruction_summary.json", "table2.csv"}
    assert {t.payload["side"] for t in study.tasks.all()} == {-1, 1}
