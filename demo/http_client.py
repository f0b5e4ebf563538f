"""HTTP clients that use the platform as a browser would: forms, cookies and CSRF tokens.

The demo and the integration tests drive researchers and (simulated) crowd workers through
these, so every answer passes through the real views.
"""
from __future__ import annotations

import re
import time
from typing import Any

import requests

TOKEN_RE = re.compile(r'name="token" value="([^"]+)"')


class ClientError(RuntimeError):
    def __init__(self, response: requests.Response, what: str) -> None:
        self.status = response.status_code
        super().__init__(f"{what}: HTTP {response.status_code} {response.text[:300]}")


class SiteClient:
    """A session against one server, keeping cookies and sending the CSRF token."""

    def __init__(self, base_url: str) -> None:
        self.base = base_url.rstrip("/")
        self.http = requests.Session()
        # No proxy, .netrc or CA settings from the environment: requests would otherwise read them on every
        # request (a fifth of the simulated crowd's own CPU), and a proxy has no business with our own server.
        self.http.trust_env = False

    def url(self, path: str) -> str:
        return self.base + path

    def csrf(self) -> str:
        token = self.http.cookies.get("csrftoken")
        if token is None:
            self.get("/accounts/login/")  # a fresh server's first request imports the views: the usual timeout
            token = self.http.cookies["csrftoken"]
        return token

    def post(self, path: str, data: dict[str, Any] | None = None, *, json_reply: bool = False,
             **kw) -> requests.Response:
        headers = {"X-CSRFToken": self.csrf(), "Referer": self.url(path)}
        if json_reply:
            headers["Accept"] = "application/json"
        kw.setdefault("timeout", 120)
        return self.http.post(self.url(path), data=data or {}, headers=headers, **kw)

    def get(self, path: str, **kw) -> requests.Response:
        return self.http.get(self.url(path), timeout=120, **kw)

    def login(self, username: str, password: str) -> None:
        reply = self.post("/accounts/login/", {"username": username, "password": password}, allow_redirects=False)
        if reply.status_code != 302:
            raise ClientError(reply, f"sign-in of {username!r}")


class ResearcherClient(SiteClient):
    def create_study(self, form: dict[str, Any]) -> int:
        reply = self.post("/studies/new/", form, allow_redirects=False)
        if reply.status_code != 302:
            raise ClientError(reply, "study creation")
        return int(reply.headers["Location"].rstrip("/").split("/")[-1])

    def action(self, study: int, action: str) -> str:
        # Without a broker the evidence and aggregation jobs run inside this request: allow them the job's time.
        reply = self.post(f"/studies/{study}/{action}/", json_reply=True, timeout=3 * 3600)
        if reply.status_code != 200:
            raise ClientError(reply, f"study action {action}")
        return reply.json()["state"]

    def progress(self, study: int) -> dict[str, Any]:
        reply = self.get(f"/studies/{study}/progress.json")
        if reply.status_code != 200:
            raise ClientError(reply, "progress")
        return reply.json()

    def wait_for_state(self, study: int, states: set[str], timeout: float = 600.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            progress = self.progress(study)
            if progress["state"] in states:
                return progress
            if progress["job"] and progress["job"]["state"] == "failed":
                raise RuntimeError(f"job failed: {progress['job']['error']}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"study {study} still {progress['state']} after {timeout:.0f}s")
            time.sleep(0.5)

    def start_job(self, study: int, name: str, values: dict[str, Any]) -> int:
        """Start one of the kind's own jobs with its form's values (without a broker it runs in this request)."""
        reply = self.post(f"/studies/{study}/jobs/{name}/", {f"{name}-{k}": v for k, v in values.items()},
                          json_reply=True, timeout=3 * 3600)
        if reply.status_code != 202:
            raise ClientError(reply, f"job {name}")
        return int(reply.json()["job"])

    def export(self, study: int, filename: str) -> bytes:
        """An export file; the archive is made by a job first (its progress is the study's newest job)."""
        if filename == "archive.zip":
            reply = self.post(f"/studies/{study}/export/{filename}", json_reply=True, timeout=3 * 3600)
            if reply.status_code != 202:
                raise ClientError(reply, f"export job {filename}")
            job = reply.json()["job"]
            while job["state"] in ("pending", "running"):
                time.sleep(0.5)
                newest = self.progress(study)["job"]
                job = newest if newest["id"] == job["id"] else {**job, "state": "done"}
            if job["state"] == "failed":
                raise RuntimeError(f"the export job of {filename} failed: {job['error']}")
        reply = self.get(f"/studies/{study}/export/{filename}")
        if reply.status_code != 200:
            raise ClientError(reply, f"export {filename}")
        return reply.content


class WorkerClient(SiteClient):
    def next_assignment(self) -> int | None:
        reply = self.post("/work/next/", json_reply=True)
        if reply.status_code != 200:
            raise ClientError(reply, "next task")
        return reply.json()["assignment"]

    def open_assignment(self, assignment: int) -> str:
        """Load the task page (which records when it was shown); returns its assignment token."""
        reply = self.get(f"/work/a/{assignment}/")
        if reply.status_code != 200:
            raise ClientError(reply, f"task page {assignment}")
        match = TOKEN_RE.search(reply.text)
        if match is None:
            raise RuntimeError(f"task page {assignment} carries no assignment token")
        return match.group(1)

    def submit(self, assignment: int, token: str, answer: dict[str, Any]) -> requests.Response:
        data = {"token": token, **{k: "" if v is None else v for k, v in answer.items()}}
        return self.post(f"/work/a/{assignment}/", data, json_reply=True)
