"""The no-JavaScript path: files posted with a plain multipart form become the same entries as streamed ones.

Without the browser client, ``<input type="file" dj-upload="avatar" name="avatar">`` is posted with its form. Each
file under a declared slot's name is handed to the upload server's registry (through the bridge), which validates
it with the very rules a streamed file meets — size, accept, magic bytes, active content, max_entries — and records
a complete or an errored entry in the view's upload session. The event handler then finds it with
``consume_uploaded_entries()`` like any other.
"""

from __future__ import annotations

import os
import tempfile

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest
from twisted_uploads.entries import EntryInfo
from twisted_uploads.slots import SlotConfig

from .bridge import get_bridge


def ingest_posted_files(request: HttpRequest, upload_session: str, slots: dict[str, SlotConfig]) -> list[EntryInfo]:
    """Record every file posted under a slot's field name; return the entries made (errored ones included)."""
    posted = [(slot, uploaded) for slot in slots for uploaded in request.FILES.getlist(slot)]
    if not posted:
        return []
    bridge = get_bridge()
    entries = []
    for slot, uploaded in posted:
        path = _private_copy(uploaded)
        try:
            entries.append(bridge.ingest_file(upload_session, dict(slots), slot, uploaded.name or "upload",
                                              uploaded.content_type or "", path))
        finally:
            # The registry moves the file it accepts and deletes the one it rejects; anything left is ours.
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
    return entries


def _private_copy(uploaded: UploadedFile) -> str:
    """A path the registry may move or delete, without pulling Django's own temp file from under it."""
    temp_dir = settings.FILE_UPLOAD_TEMP_DIR or tempfile.gettempdir()
    descriptor, path = tempfile.mkstemp(prefix="dj-upload-", suffix=".part", dir=temp_dir)
    os.close(descriptor)
    source = getattr(uploaded, "temporary_file_path", None)
    if source is not None:
        # Same directory as Django's temp file in the usual setup: a hard link costs nothing.
        try:
            os.unlink(path)
            os.link(source(), path)
            return path
        except OSError:
            pass
    with open(path, "wb") as target:
        for chunk in uploaded.chunks():
            target.write(chunk)
    return path
