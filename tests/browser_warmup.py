"""A browser page fixture for tests whose live server's first request is slow (imports every view, torch
included): one plain request warms it up first, and pages wait up to 3 minutes on a loaded machine.
Use it with ``from tests.browser_warmup import page  # noqa: F401`` in the test module."""
from __future__ import annotations

import pytest


@pytest.fixture
def page(page, request):
    """The browser page, after one plain request has warmed the live server up."""
    if "live_server" in request.fixturenames:
        from urllib.request import urlopen

        urlopen(request.getfixturevalue("live_server").url + "/accounts/login/", timeout=900).read()
    page.set_default_timeout(180_000)
    return page
