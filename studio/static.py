"""Static files: WhiteNoise serving the content-hashed, compressed files that ``collectstatic`` wrote."""
from __future__ import annotations

import os

from django.contrib.staticfiles.storage import StaticFilesStorage
from whitenoise.middleware import WhiteNoiseMiddleware
from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticStorage(CompressedManifestStaticFilesStorage):
    """Hashed names once ``collectstatic`` has written the manifest; plain names before it has run
    (tests, a first start), where a strict manifest would fail every page that links a static file.
    ``check --deploy`` warns when the manifest is missing (studio.W004)."""

    def url(self, name, force=False):
        if not self.hashed_files and not force:
            return StaticFilesStorage.url(self, name)
        return super().url(name, force)


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, without its warning on every new request handler while ``STATIC_ROOT`` is not collected
    yet (``check --deploy`` reports that once, as studio.W004)."""

    def add_files(self, root, prefix=None):
        if self.autorefresh or os.path.isdir(root):
            super().add_files(root, prefix)
