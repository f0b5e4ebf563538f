"""A Python client of Salient Studio's REST API (requests + pandas, no Django).

>>> from salient_studio.client import Studio
>>> studio = Studio("https://studio.example.org", token="ss_…")   # token from /api/tokens/
>>> study = studio.create("Subjects", "image_choice", settings={"images": ["astronaut", "coffee"]},
...                       workers_per_task=5)
>>> studio.compute(study); studio.wait(study, "ready"); studio.launch(study)
>>> studio.wait(study, "answered"); studio.close(study); studio.aggregate(study)   # waits for the job
>>> studio.labels(study)             # one row per task: label, tie, count_<value>, ...
>>> studio.answers(study)            # task, worker, label, ... : crowd-kit's input as it is
>>> studio.upload_model("mine", "resnet18", "model.pt")         # a local checkpoint, streamed
>>> studio.upload_dataset("birds", "birds/")                    # a folder of class folders (or a .zip / .tar)

Errors of the server are raised as :class:`StudioError` with its status, message and the field at fault.
"""
from __future__ import annotations

import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import requests

#: Columns crowd-kit's aggregators read, first in :meth:`Studio.answers`.
CROWD_KIT_COLUMNS = ["task", "worker", "label"]
PAGE = 1000


class StudioError(Exception):
    """A refused request: ``status`` (HTTP), ``message`` and ``field`` (the parameter at fault, or "")."""

    def __init__(self, status: int, message: str, field: str = "") -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message, self.field = status, message, field


class MultipartBody:
    """A ``multipart/form-data`` body that reads its files in 1 MiB chunks as it is sent (never whole into
    memory), with its length known beforehand, so the request carries a Content-Length."""

    CHUNK = 1 << 20

    def __init__(self, fields: dict[str, str], files: dict[str, Path],
                 progress: Callable[[int, int], None] | None = None) -> None:
        boundary = uuid.uuid4().hex
        self.content_type = f"multipart/form-data; boundary={boundary}"
        self.parts: list[bytes | Path] = []
        for key, value in fields.items():
            self.parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'.encode()
                              + value.encode() + b"\r\n")
        for key, path in files.items():
            filename = path.name.replace('"', "_")
            self.parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"; filename="{filename}"\r\n'
                           "Content-Type: application/octet-stream\r\n\r\n".encode(), path, b"\r\n"]
        self.parts.append(f"--{boundary}--\r\n".encode())
        self.length = sum(len(p) if isinstance(p, bytes) else p.stat().st_size for p in self.parts)
        self.progress = progress

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator[bytes]:
        sent = 0
        for part in self.parts:
            chunks = [part] if isinstance(part, bytes) else _file_chunks(part, self.CHUNK)
            for chunk in chunks:
                sent += len(chunk)
                yield chunk
                if self.progress is not None:
                    self.progress(sent, self.length)


def _file_chunks(path: Path, size: int) -> Iterator[bytes]:
    with path.open("rb") as handle:
        yield from iter(lambda: handle.read(size), b"")


def _study_id(study: int | dict) -> int:
    return int(study["id"]) if isinstance(study, dict) else int(study)


class Studio:
    """One researcher's connection: ``Studio(base_url, token)``; studies are given as ids or as returned dicts."""

    def __init__(self, base_url: str, token: str, *, timeout: float = 60.0,
                 session: requests.Session | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    # -- plumbing ------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        reply = self.session.request(method, f"{self.base_url}/api{path}", timeout=self.timeout, **kwargs)
        if reply.status_code >= 400:
            try:
                body = reply.json()
            except ValueError:
                raise StudioError(reply.status_code, reply.text[:500]) from None
            raise StudioError(reply.status_code, body.get("error", str(body)), body.get("field", ""))
        return reply

    def _get(self, path: str, **params) -> Any:
        return self._request("GET", path, params=params).json()

    def _post(self, path: str, body: dict | None = None) -> Any:
        return self._request("POST", path, json=body).json()

    def _pages(self, path: str, **params) -> Iterator[dict]:
        offset = 0
        while True:
            page = self._get(path, **params, offset=offset, limit=PAGE)
            yield from page["items"]
            offset += len(page["items"])
            if not page["items"] or offset >= page["count"]:
                return

    # -- registry ------------------------------------------------------------------------------------
    def kinds(self) -> pd.DataFrame:
        return pd.DataFrame(self._get("/registry/kinds"))

    def models(self) -> pd.DataFrame:
        return pd.DataFrame(self._get("/registry/models"))

    def datasets(self) -> pd.DataFrame:
        return pd.DataFrame(self._get("/registry/datasets"))

    def register_model(self, name: str, architecture: str, checkpoint: str, **options) -> dict:
        """Register a checkpoint the server can read: a path on the server or ``s3://bucket/key``; ``options``:
        ``format``, ``input_size``, ``mean``/``std`` (3 numbers), ``title``."""
        return self._register("/registry/models", {"name": name, "architecture": architecture,
                                                   "checkpoint": checkpoint, **options})

    def upload_model(self, name: str, architecture: str, path: str | Path, *,
                     progress: Callable[[int, int], None] | None = None, **options) -> dict:
        """Upload a local checkpoint file (streamed; ``progress(sent, total)`` after each chunk) and register it;
        the server reads it with ``torch.load(weights_only=True)``. ``options`` as :meth:`register_model`."""
        return self._register("/registry/models", {"name": name, "architecture": architecture, **options},
                              {"checkpoint_file": Path(path)}, progress)

    def register_dataset(self, name: str, root: str, val_root: str = "", class_metadata: str = "",
                         title: str = "") -> dict:
        """Register an image folder the server can read: a server folder of class folders, or ``s3://bucket/
        prefix`` (fetched into the server's storage area with the same checks as an upload)."""
        return self._register("/registry/datasets", {"name": name, "root": root, "val_root": val_root,
                                                     "class_metadata": class_metadata, "title": title})

    def upload_dataset(self, name: str, path: str | Path, *, class_metadata: str | Path | None = None,
                       title: str = "", progress: Callable[[int, int], None] | None = None) -> dict:
        """Upload images and register them: ``path`` is a zip or tar of class folders (or of ``train/`` and
        ``val/``), or a local folder laid out so, zipped here first. ``class_metadata``: a local CSV."""
        path = Path(path)
        files = {"class_metadata_file": Path(class_metadata)} if class_metadata else {}
        if not path.is_dir():
            return self._register("/registry/datasets", {"name": name, "title": title},
                                  {"archive": path, **files}, progress)
        with tempfile.TemporaryDirectory() as scratch:
            archive = Path(scratch) / f"{path.name or 'images'}.zip"
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as packed:
                for item in sorted(path.rglob("*")):
                    if item.is_file():
                        packed.write(item, item.relative_to(path).as_posix())
            return self._register("/registry/datasets", {"name": name, "title": title},
                                  {"archive": archive, **files}, progress)

    def _register(self, route: str, fields: dict, files: dict[str, Path] | None = None,
                  progress: Callable[[int, int], None] | None = None) -> dict:
        fields = {k: (", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v))
                  for k, v in fields.items() if v not in (None, "")}
        body = MultipartBody(fields, files or {}, progress)
        return self._request("POST", route, data=body, headers={"Content-Type": body.content_type}).json()

    # -- studies -------------------------------------------------------------------------------------
    def studies(self) -> pd.DataFrame:
        return pd.DataFrame(self._get("/studies"))

    def create(self, name: str, kind: str, settings: dict | None = None, **options) -> dict:
        """Create a draft study; ``options`` are the form's fields (``workers_per_task``, ``reward_cents``,
        ``backend``, ``gold_rate``, ``early_stopping``, …)."""
        return self._post("/studies", {"name": name, "kind": kind, "settings": settings or {}, **options})

    def study(self, study: int | dict) -> dict:
        return self._get(f"/studies/{_study_id(study)}")

    def compute(self, study: int | dict) -> dict:
        return self._post(f"/studies/{_study_id(study)}/compute")

    def launch(self, study: int | dict) -> dict:
        return self._post(f"/studies/{_study_id(study)}/launch")

    def close(self, study: int | dict) -> dict:
        return self._post(f"/studies/{_study_id(study)}/close")

    def aggregate(self, study: int | dict, *, wait: bool = True, timeout: float = 3600.0, poll: float = 1.0) -> dict:
        """Aggregate (a job on the server); returns the study once the job is done, or with ``wait=False`` at
        once with the queued job under ``"job"``. A failed job raises :class:`StudioError`."""
        reply = self._post(f"/studies/{_study_id(study)}/aggregate")
        if not wait:
            return reply
        self.wait_job(study, reply["job"], timeout=timeout, poll=poll)
        return self.study(study)

    def progress(self, study: int | dict) -> dict:
        return self._get(f"/studies/{_study_id(study)}/progress")

    def jobs(self, study: int | dict) -> pd.DataFrame:
        return pd.DataFrame(self._get(f"/studies/{_study_id(study)}/jobs"))

    def wait_job(self, study: int | dict, job: int | dict, *, timeout: float = 3600.0, poll: float = 1.0) -> dict:
        """Poll a job of the study until it is done and return it; a failed job or the timeout raises."""
        job_id = int(job["id"]) if isinstance(job, dict) else int(job)
        deadline = time.monotonic() + timeout
        while True:
            job = self._get(f"/studies/{_study_id(study)}/jobs/{job_id}")
            if job["state"] == "done":
                return job
            if job["state"] == "failed":
                raise StudioError(409, f"the {job['name']} job failed: {job['error']}")
            if time.monotonic() > deadline:
                raise StudioError(408, f"waited {timeout:.0f} s for the {job['name']} job; it is {job['state']} "
                                       f"({job['done']}/{job['total']} {job['message']})")
            time.sleep(poll)

    def wait(self, study: int | dict, until: str = "ready", *, timeout: float = 3600.0, poll: float = 3.0) -> dict:
        """Poll until the study is in state ``until`` (e.g. ``"ready"``, ``"aggregated"``) or, with
        ``until="answered"``, until every answer wanted is in; returns the last progress. A failed job raises
        :class:`StudioError`; so does the timeout."""
        deadline = time.monotonic() + timeout
        while True:
            progress = self.progress(study)
            job = progress.get("job") or {}
            if job.get("state") == "failed":
                raise StudioError(409, f"the {job.get('name')} job failed: {job.get('error')}")
            if (progress["state"] == until if until != "answered"
                    else progress["wanted"] > 0 and progress["received"] >= progress["wanted"]):
                return progress
            if time.monotonic() > deadline:
                raise StudioError(408, f"waited {timeout:.0f} s for {until!r}; the study is {progress['state']} "
                                       f"with {progress['received']}/{progress['wanted']} answers")
            time.sleep(poll)

    # -- tables --------------------------------------------------------------------------------------
    def tasks(self, study: int | dict, **filters) -> pd.DataFrame:
        return pd.DataFrame(list(self._pages(f"/studies/{_study_id(study)}/tasks", **filters)))

    def answers(self, study: int | dict, **filters) -> pd.DataFrame:
        """Every answer (filters: ``task``, ``worker``, ``status``, ``label``, ``order``), first columns
        ``task, worker, label`` as crowd-kit reads them, then the answer's own fields as columns."""
        rows = list(self._pages(f"/studies/{_study_id(study)}/answers", **filters))
        table = pd.DataFrame(rows, columns=[*CROWD_KIT_COLUMNS, "task_key", "assignment", "status", "flag", "gold",
                                            "fields", "shown_at", "submitted_at"])
        fields = pd.DataFrame(list(table.pop("fields")), index=table.index) if len(table) else pd.DataFrame()
        fields = fields.drop(columns=[c for c in fields.columns if c in table.columns])
        return pd.concat([table, fields], axis=1)

    def labels(self, study: int | dict) -> pd.DataFrame:
        return pd.DataFrame(self._get(f"/studies/{_study_id(study)}/labels"))

    # -- decisions -----------------------------------------------------------------------------------
    def approve(self, assignment: int) -> dict:
        return self._post(f"/assignments/{int(assignment)}/approve")

    def reject(self, assignment: int) -> dict:
        return self._post(f"/assignments/{int(assignment)}/reject")

    def bonus(self, assignment: int, cents: int, reason: str = "") -> dict:
        return self._post(f"/assignments/{int(assignment)}/bonus", {"cents": cents, "reason": reason})

    # -- files ---------------------------------------------------------------------------------------
    def outputs(self, study: int | dict) -> pd.DataFrame:
        return pd.DataFrame(self._get(f"/studies/{_study_id(study)}/outputs"))

    def output(self, study: int | dict, name: str, path: str | Path | None = None) -> bytes:
        """An output file's bytes (also written to ``path`` when given)."""
        return self._download(f"/studies/{_study_id(study)}/outputs/{name}", path)

    def archive(self, study: int | dict, path: str | Path | None = None, *, timeout: float = 3600.0,
                poll: float = 1.0) -> bytes:
        """The study's export archive (zip of answers, labels, workers, quality and outputs), made now by a job."""
        job = self.wait_job(study, self._post(f"/studies/{_study_id(study)}/archive"), timeout=timeout, poll=poll)
        return self._download(f"/studies/{_study_id(study)}/jobs/{job['id']}/file", path)

    def _download(self, path: str, target: str | Path | None) -> bytes:
        data = self._request("GET", path).content
        if target is not None:
            Path(target).write_bytes(data)
        return data
