"""The size limits of uploaded checkpoints and image archives, enforced while the request streams in.

:class:`LimitedUploadHandler` is first in ``FILE_UPLOAD_HANDLERS``: it counts each file's bytes as they
arrive and stops the upload the moment a file passes its limit (``SALIENT_UPLOAD_MAX_CHECKPOINT_MB`` for a
field whose name holds ``checkpoint``, ``SALIENT_UPLOAD_MAX_DATASET_MB`` for any other file), so a too-big
file is never stored whole, in memory or on disk. The rest of the body is read and dropped, and the view
answers with :func:`refused` (``request.upload_refused``) instead of the form.
"""
from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

MB = 2**20


def limit_bytes(field_name: str) -> tuple[int, str]:
    """The byte limit of an upload field and the setting that sets it."""
    if "checkpoint" in field_name:
        return settings.SALIENT_UPLOAD_MAX_CHECKPOINT_MB * MB, "SALIENT_UPLOAD_MAX_CHECKPOINT_MB"
    return settings.SALIENT_UPLOAD_MAX_DATASET_MB * MB, "SALIENT_UPLOAD_MAX_DATASET_MB"


def too_big_message(file_name: str, field_name: str) -> str:
    limit, setting = limit_bytes(field_name)
    return f"{file_name or 'the file'} is larger than this server accepts ({limit // MB} MB, {setting})"


class LimitedUploadHandler(FileUploadHandler):
    """Passes chunks on to the next handler, counting them; past the field's limit the upload stops."""

    def new_file(self, field_name, file_name, *args, **kwargs):
        super().new_file(field_name, file_name, *args, **kwargs)
        self.received = 0
        self.limit, _ = limit_bytes(field_name)

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            if self.request is not None:
                self.request.upload_refused = (self.field_name, too_big_message(self.file_name, self.field_name))
            raise StopUpload(connection_reset=False)
        return raw_data

    def file_complete(self, file_size):
        return None


def refused(request) -> tuple[str, str] | None:
    """``(field, message)`` when the request's upload was stopped for its size (reads the body first)."""
    request.FILES  # noqa: B018 -- parsing the body runs the handlers
    return getattr(request, "upload_refused", None)
