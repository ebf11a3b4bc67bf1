"""Uploads stop at the import cap while the request is read, not after it was stored.

Django reads a multipart body (for the CSRF check, before any view) and stores each file through the upload
handlers. `CappedUploadHandler`, first in FILE_UPLOAD_HANDLERS, stops storing a file as soon as the request
declares more than IMPORT_MAX_BYTES (plus the multipart allowance) or the file's bytes pass the cap: the rest
of the body is read and discarded, the fields before the file (the CSRF token) are kept, and the request is
marked `upload_too_large`, which the import page and API answer with 413. The other handlers never see more
than the cap, so a 1 GB upload costs neither memory nor disk.
"""
from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

MULTIPART_ALLOWANCE = 64 * 1024  # boundaries and the form's other fields around the file


def upload_too_large(request) -> bool:
    """Whether the upload handler stopped a file of this request at the cap (Django or DRF request)."""
    return bool(getattr(getattr(request, "_request", request), "upload_too_large", False))


class CappedUploadHandler(FileUploadHandler):
    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        self.declared = content_length or 0
        return None  # parse as usual: the fields before the file still arrive

    def _stop(self):
        self.request.upload_too_large = True
        raise StopUpload(connection_reset=False)

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.received = 0
        if self.declared > settings.IMPORT_MAX_BYTES + MULTIPART_ALLOWANCE:
            self._stop()

    def receive_data_chunk(self, raw_data, start):
        self.received = start + len(raw_data)
        if self.received > settings.IMPORT_MAX_BYTES:
            self._stop()
        return raw_data  # on to the storing handlers

    def file_complete(self, file_size):
        return None  # the next handler builds the file
