"""Evidence passes sharded over real Celery workers on Redis, and shared through S3 (moto server)."""
from __future__ import annotations

import os
import re
import signal
import socket
import time
import uuid

import pytest

from annotation import services
from annotation.models import Job
from tests.celery_processes import database_url, not_eager, redis_broker, start_worker, stop_worker, wait_for  # noqa: F401
from tests.conftest import TINY_BENCHMARK, TINY_TRAINING

pytestmark = [pytest.mark.slow, pytest.mark.celery_worker]

SHARDS, BATCH = 4, 16  # the tiny benchmark's 320 training images: 4 shards of 80
SALIENT = {"benchmark": TINY_BENCHMARK, "training": TINY_TRAINING, "k_features": 2, "k_images": 3, "pool": 10,
           "gold_panels": "none",
           "attack_steps": 2}
SHARD_RECEIVED = re.compile(r"Task workers\.tasks\.compute_evidence_shard\[\S+\] received")
STORED = re.compile(r"evidence shard \d+ of job \d+: computed (salient/\S+)")
PANELS = re.compile(r"evidence shard \d+ of job \d+: computed (salient_panels/\S+)")


@pytest.fixture
def shard_settings(settings):
    settings.SALIENT_EVIDENCE_SHARDS, settings.SALIENT_EVIDENCE_BATCH = SHARDS, BATCH
    return settings


def worker_env(settings, artifacts, queue: str, **extra) -> dict[str, str]:
    return {"SALIENT_ONE_QUEUE": queue, "DATABASE_URL": database_url(), "CELERY_BROKER_URL": redis_broker(),
            "SALIENT_ARTIFACT_DIR": str(artifacts),
            "SALIENT_BENCHMARK_DIR": str(settings.SALIENT_BENCHMARK_DIR), "SALIENT_EVIDENCE_SHARDS": str(SHARDS),
            "SALIENT_EVIDENCE_BATCH": str(BATCH), "OMP_NUM_THREADS": "1", **extra}


@pytest.fixture
def queue():
    from workers.celery import routed_to

    name = f"shards-{uuid.uuid4().hex[:8]}"
    with routed_to(name):
        yield name


def stored_shards(*logs, pattern=STORED) -> list[str]:
    return [name for log in logs for name in pattern.findall(log.read_text())]


def computed_study(researcher, name: str):
    from django.conf import settings

    from analysis.salient.benchmark_inputs import benchmark_inputs

    # The benchmark and the model are built here first, so the workers only compute evidence.
    benchmark_inputs(settings.SALIENT_BENCHMARK_DIR, benchmark=TINY_BENCHMARK, training=TINY_TRAINING,
                     flavours=["robust"])
    study = services.study_create(owner=researcher, name=name, kind="feature_panel", settings=SALIENT)
    job = services.study_start_computing(study=study)
    return study, job


def test_two_workers_share_one_studys_shards(transactional_db, shard_settings, not_eager, queue, researcher,
                                              tmp_path):
    artifacts = tmp_path / "artifacts"
    shard_settings.ARTIFACT_DIR = artifacts
    logs = [tmp_path / "one.log", tmp_path / "two.log"]
    workers = [start_worker(queue, log, worker_env(shard_settings, artifacts, queue)) for log in logs]
    try:
        study, job = computed_study(researcher, "two workers")
        wait_for(study, {"ready", "draft"}, timeout=300)
    finally:
        for proc in workers:
            stop_worker(proc)
    job.refresh_from_db()
    assert study.state == "ready", job.error
    per_worker = [stored_shards(log) for log in logs]
    assert all(per_worker), f"each worker should compute some shards, got {[len(p) for p in per_worker]}"
    assert sorted(sum(per_worker, [])) == sorted(set(sum(per_worker, []))) and len(sum(per_worker, [])) == SHARDS
    panels = [stored_shards(log, pattern=PANELS) for log in logs]
    assert len(sum(panels, [])) == len(set(sum(panels, []))) == SHARDS  # the panels' fan-out: 8 (class, feature) jobs
    # ran, waited for the features shards, ran, waited for the panel shards, ran
    assert job.state == "done" and study.tasks.count() == 8 and job.attempts == 3


VISIBILITY_SECONDS = 125  # just above the shortest time limit a worker accepts (CELERY_TASK_TIME_LIMIT >= 120)


def age_unacked_deliveries(seconds: float) -> int:
    """Move the delivery time of every unacknowledged message back by ``seconds``, as if that much time had passed
    since the killed worker took it. kombu's Redis transport keeps the delivery time as the message's score in the
    ``unacked_index`` sorted set; a worker hands a message on once its score is older than its visibility timeout
    (``QoS.restore_visible``). Returns how many messages were moved."""
    import redis

    client = redis.Redis.from_url(redis_broker())
    try:
        index = client.zrange("unacked_index", 0, -1, withscores=True)
        if index:
            client.zadd("unacked_index", {tag: score - seconds for tag, score in index})
        return len(index)
    finally:
        client.close()


@pytest.mark.timeout(1800)
def test_a_shard_killed_mid_way_is_recomputed_once_by_a_new_worker(transactional_db, shard_settings, not_eager, queue,
                                                                    researcher, tmp_path):
    artifacts = tmp_path / "artifacts"
    shard_settings.ARTIFACT_DIR = artifacts
    # Redis hands an unacknowledged message to another worker after the visibility timeout: short here (just above
    # the shortest time limit a worker accepts), and the new worker scans for such messages every second. The
    # killed worker's deliveries are moved back past that timeout instead of waiting it out (it was 2 of the test's
    # 2.5 minutes); a worker that did not take the timeout from the settings (kombu's default: an hour) would still
    # wait.
    env = worker_env(shard_settings, artifacts, queue, CELERY_TASK_TIME_LIMIT="120",
                     CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_SECONDS), CELERY_UNACKED_RESTORE_SECONDS="1")
    first = start_worker(queue, tmp_path / "first.log", env)
    study, job = computed_study(researcher, "killed")
    deadline = time.monotonic() + 240
    while not SHARD_RECEIVED.search((tmp_path / "first.log").read_text()):
        assert time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-2000:]
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)  # in the middle of its first shard
    first.wait()
    assert age_unacked_deliveries(VISIBILITY_SECONDS + 5) >= 1  # the shard it was computing, never acknowledged
    done_before = stored_shards(tmp_path / "first.log")
    second = start_worker(queue, tmp_path / "second.log", env)
    try:
        wait_for(study, {"ready", "draft"}, timeout=1200)
    finally:
        stop_worker(second)
    job.refresh_from_db()
    assert study.state == "ready", job.error
    names = done_before + stored_shards(tmp_path / "second.log")
    assert len(names) == len(set(names)) == SHARDS  # every shard stored once, none twice
    assert study.tasks.count() == 8 and Job.objects.filter(study=study, name="evidence").count() == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_bucket(monkeypatch, settings):
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_DEFAULT_REGION": "us-east-1"}
    for name, value in credentials.items():
        monkeypatch.setenv(name, value)
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="evidence")
    settings.SALIENT_ARTIFACT_URL, settings.SALIENT_S3_ENDPOINT_URL = "s3://evidence/studio", endpoint
    yield {"SALIENT_ARTIFACT_URL": "s3://evidence/studio", "SALIENT_S3_ENDPOINT_URL": endpoint, **credentials}
    server.stop()


def test_s3_mode_runs_a_study_and_a_second_host_reads_the_shards_from_s3(
        transactional_db, shard_settings, s3_bucket, researcher, make_worker, django_capture_on_commit_callbacks,
        tmp_path, queue):
    import boto3
    from django.test import Client
    from django.urls import reverse

    from tests.study_helpers import aggregate, crowd_answers

    shard_settings.ARTIFACT_DIR = tmp_path / "never-used"
    study, _ = computed_study(researcher, "s3")
    with django_capture_on_commit_callbacks(execute=True):
        pass
    study.refresh_from_db()
    assert study.state == "ready"
    keys = [o["Key"] for o in boto3.client("s3", endpoint_url=s3_bucket["SALIENT_S3_ENDPOINT_URL"]).list_objects_v2(
        Bucket="evidence")["Contents"]]
    assert sum("/named/shards/salient/" in k for k in keys) == SHARDS and any(k.endswith(".png") for k in keys)
    assert not (tmp_path / "never-used").exists()  # nothing went to the local disk
    client = Client()
    client.force_login(researcher)
    task = study.tasks.first()
    image = client.get(reverse("artifact_file", args=[task.payload["images"][0]]))
    assert image.status_code == 200 and b"".join(image.streaming_content)[:4] == b"\x89PNG"
    services.study_launch(study=study)
    assert crowd_answers(study, make_worker, n=5, accuracy=1.0) == 40
    assert "feature_labels.csv" in aggregate(study, django_capture_on_commit_callbacks)

    # A second host: its own empty local directory, the same bucket; recomputing reuses every shard.
    from workers.celery import app

    again = services.study_create(owner=researcher, name="s3 again", kind="feature_panel", settings=SALIENT)
    log = tmp_path / "host2.log"
    worker = start_worker(queue, log, worker_env(shard_settings, tmp_path / "host2-empty", queue, **s3_bucket))
    app.conf.task_always_eager = False
    try:
        services.study_start_computing(study=again)
        wait_for(again, {"ready", "draft"}, timeout=300)
    finally:
        app.conf.task_always_eager = True
        stop_worker(worker)
    assert again.state == "ready", again.error
    assert stored_shards(log) == [] and "compute_study_evidence" in log.read_text()
    assert not (tmp_path / "host2-empty").exists()
