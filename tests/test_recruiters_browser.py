"""A real browser: the task page framed as MTurk frames it, posting to a local stand-in for ``turkSubmitTo``."""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode

import pytest

from annotation import services
from annotation.models import Answer, Assignment

pytestmark = [pytest.mark.slow, pytest.mark.browser]


class FakeMTurk:
    """An outer page with an iframe (as MTurk's worker site) and ``/mturk/externalSubmit`` on 127.0.0.1."""

    def __init__(self) -> None:
        self.posts: list[dict[str, list[str]]] = []
        self.frame_src = ""
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = (f'<!doctype html><title>HIT</title><h1>Mechanical Turk (stand-in)</h1>'
                        f'<iframe id="hit" src="{outer.frame_src}" width="900" height="900"></iframe>').encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                if self.path == "/mturk/externalSubmit":
                    outer.posts.append(parse_qs(self.rfile.read(length).decode()))
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(b"<p id='turk-done'>HIT submitted</p>")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> "FakeMTurk":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_framed_hit_stores_the_answer_then_posts_to_turk_submit_to(live_server, page, make_study, settings,
                                                                   django_capture_on_commit_callbacks, monkeypatch):
    from annotation.recruiters.mturk import MTurkRecruiter

    # MTurk cannot be asked from here: the answer is stored unconfirmed (reconciliation confirms it later).
    monkeypatch.setattr(MTurkRecruiter, "confirm_assignment", lambda self, task, a, w: None)
    study = make_study(images=["astronaut"], workers_per_task=2, backend="mturk", live=False)
    task = study.tasks.get()
    services.task_set_external_id(task=task, external_id="HITFRAMED")
    services.study_launch(study=study)  # recruitment is not opened: the HIT id is set by hand above
    with FakeMTurk() as turk:
        settings.SALIENT_FRAME_ANCESTORS = [turk.origin]
        settings.SALIENT_MTURK_SUBMIT_ORIGINS = [turk.origin]
        query = {"assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "hitId": "HITFRAMED", "workerId": "",
                 "turkSubmitTo": turk.origin}
        # First the preview, as MTurk shows it before the worker accepts.
        turk.frame_src = f"{live_server.url}/ext/mturk/{task.pk}/?{urlencode(query)}"
        page.goto(turk.origin + "/")
        frame = page.frame_locator("#hit")
        frame.locator("#preview-note").wait_for()
        assert frame.locator("form").count() == 0
        assert not Assignment.objects.exists()

        query.update(assignmentId="ASSIGN1", workerId="WORKER1")
        turk.frame_src = f"{live_server.url}/ext/mturk/{task.pk}/?{urlencode(query)}"
        page.goto(turk.origin + "/")
        frame.locator("#answer-form img").wait_for()
        # The image is served without a session: the frame has no cookie of ours.
        assert frame.locator("#answer-form img").evaluate("img => img.complete && img.naturalWidth > 0")
        frame.locator("input[name=choice][value=person]").check()
        frame.locator("textarea[name=reason]").fill("a person in a suit")
        frame.locator("input[name=confidence][value='4']").check()
        frame.locator("#submit-answer").click()
        frame.locator("#turk-done").wait_for()
        deadline = time.monotonic() + 10
        while not turk.posts and time.monotonic() < deadline:
            time.sleep(0.05)
        assert turk.posts and turk.posts[0]["assignmentId"] == ["ASSIGN1"]
        answer = Answer.objects.get()
        assert turk.posts[0]["answer"] == [str(answer.pk)]  # stored before the post to MTurk
        assert answer.worker.external_id == "WORKER1" and answer.payload["reason"] == "a person in a suit"
        assert answer.flag == "unconfirmed" and answer.assignment.state == "rejected"
        assert not any(c["name"] in ("sessionid", "csrftoken") for c in page.context.cookies())


def test_researcher_page_cannot_be_framed(live_server, page, make_study, settings, researcher):
    make_study()
    with FakeMTurk() as turk:
        settings.SALIENT_FRAME_ANCESTORS = [turk.origin]
        turk.frame_src = f"{live_server.url}/accounts/login/"
        page.goto(turk.origin + "/")
        time.sleep(1.0)
        frame = page.frame(url=lambda u: "/accounts/login/" in u)
        # Chromium blocks the DENY page: the frame stays empty (no login form inside).
        assert frame is None or frame.locator("#id_username").count() == 0
