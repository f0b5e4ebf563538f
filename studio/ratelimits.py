"""Abuse limits applied where the URLs are wired (``studio/urls.py``), counted in the cache by django-ratelimit.

- Sign-up: at most ``SALIENT_SIGNUP_RATE`` attempts per client address; the next gets 429 before the
  view runs, so nothing is stored.
- Sign-in (researchers, workers, the admin): after ``SALIENT_LOGIN_FAILURE_RATE`` failed attempts from one
  address, or for one user name, every attempt gets 429 until the window ends, even with the right
  password. Failures count the same whether or not the account exists, and the refusal does not say
  which limit was hit, so neither reveals a user name.
- Crowd-site entry (``/ext/mturk/…``, ``/ext/prolific/…``): at most ``SALIENT_CROWD_ENTRY_RATE`` per client
  address (made-up worker ids change with every try; the address does not).
- Answer posts: at most ``SALIENT_ANSWER_RATE`` per signed-in worker on the pool's pages, per client address on
  the crowd-site pages (no worker exists there before the answer is stored).
"""
from __future__ import annotations

import functools
import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_ratelimit import core

from annotation.permissions import error_response

log = logging.getLogger(__name__)

SIGNUP_MESSAGE = "too many sign-up attempts from your network address: please wait a minute and try again"
LOGIN_MESSAGE = "too many failed sign-in attempts: please wait a minute and try again"


def _too_many(request: HttpRequest, message: str, retry_after: int) -> HttpResponse:
    response = error_response(request, message, 429)
    response["Retry-After"] = str(max(1, retry_after))
    return response


def _usage(request: HttpRequest, *, group: str, key, rate: str, increment: bool,
           method: str = "POST") -> dict | None:
    """django-ratelimit's count for this request; None (no limit) while the cache cannot be reached."""
    try:
        return core.get_usage(request, group=group, key=key, rate=rate, method=method, increment=increment)
    except Exception:  # an unreachable cache must not take sign-in down with it
        log.exception("rate limit %s not counted: the cache failed", group)
        return None


def rate_limited(*, group: str, key, rate_setting: str, message: str, method: str = "POST"):
    """A view decorator: requests of ``method`` beyond ``settings.<rate_setting>`` per ``key`` (django-ratelimit's
    ``"ip"``, or ``(group, request) -> str``) get 429 with ``message`` before the view runs."""

    def decorate(view):
        @functools.wraps(view)
        def wrapper(request, *args, **kwargs):
            usage = _usage(request, group=group, key=key, rate=getattr(settings, rate_setting), increment=True,
                           method=method)
            if usage is not None and usage["should_limit"]:
                return _too_many(request, message, usage["time_left"])
            return view(request, *args, **kwargs)

        return wrapper

    return decorate


signup_limited = rate_limited(group="signup", key="ip", rate_setting="SALIENT_SIGNUP_RATE", message=SIGNUP_MESSAGE)
ENTRY_MESSAGE = "too many crowd-site entries from your network address: please wait a minute and try again"
ANSWER_MESSAGE = "too many answers in a short time: please wait a minute and send your answer again"
crowd_entry_limited = rate_limited(group="crowd-entry", key="ip", rate_setting="SALIENT_CROWD_ENTRY_RATE",
                                   message=ENTRY_MESSAGE, method="GET")
# The signed-in user, else the client address (crowd-site pages carry no session).
answer_limited = rate_limited(group="answer", key="user_or_ip", rate_setting="SALIENT_ANSWER_RATE",
                              message=ANSWER_MESSAGE)


def _username(group: str, request: HttpRequest) -> str:
    return request.POST.get("username", "").strip().casefold()[:150]


LOGIN_COUNTERS = (("login-ip", "ip"), ("login-user", _username))


def login_throttled(view):
    """Count failed sign-in POSTs per address and per user name; at the limit, refuse every attempt."""

    def usages(request, *, increment: bool):
        return [_usage(request, group=group, key=key, rate=settings.SALIENT_LOGIN_FAILURE_RATE, increment=increment)
                for group, key in LOGIN_COUNTERS]

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        full = [u for u in usages(request, increment=False) if u is not None and u["count"] >= u["limit"]]
        if full:
            return _too_many(request, LOGIN_MESSAGE, max(u["time_left"] for u in full))
        response = view(request, *args, **kwargs)
        if request.method == "POST" and response.status_code != 302:  # a sign-in redirects only on success
            usages(request, increment=True)
        return response

    return wrapper
