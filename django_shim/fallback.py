"""The no-JavaScript path: files posted with a plain multipart form become the same entries as streamed ones.

Without the browser client, ``<input type="file" dj-upload="avatar" name="avatar">`` is posted with its form. Each
file under a declared slot's name is handed to the upload server's registry (through the bridge), which validates
it with the very rules a streamed file meets — size, accept, magic bytes, active content, max_entries — and records
a complete or an errored entry in the view's upload session. The event handler then finds it with
``consume_uploaded_entries()`` like any other.

The files are size-checked while Django reads the post (:mod:`django_shim.uploadhandler`), and the page
re-rendered after the post lists the ones refused (:func:`remember_refusals` / :func:`pop_refusals`): for a user
without JavaScript that page is where failures must show, since the seed's views only consume complete entries.
"""

from __future__ import annotations

import os
import tempfile

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.http import HttpRequest
from twisted_uploads.entries import EntryInfo, EntryStatus
from twisted_uploads.errors import MESSAGES, ErrorCode
from twisted_uploads.slots import SlotConfig

from .bridge import get_bridge
from .uploadhandler import ReadUpload


def ingest_posted_files(request: HttpRequest, upload_session: str, slots: dict[str, SlotConfig]) -> list[EntryInfo]:
    """Record every file posted under a slot's field name; return the entries made (errored ones included).

    A file :class:`~django_shim.uploadhandler.SlotUploadHandler` already read arrives as a ``ReadUpload``: its part
    file, hash and head — or its refusal — go to the registry as they are, so nothing is read or copied again. A
    file Django's own handlers spooled (no handler was installed) is linked or copied to a private path first.
    """
    posted = [(slot, uploaded) for slot in slots for uploaded in request.FILES.getlist(slot)]
    if not posted:
        return []
    bridge = get_bridge()
    entries = []
    for slot, uploaded in posted:
        name = uploaded.name or "upload"
        mime = uploaded.content_type or ""
        if isinstance(uploaded, ReadUpload):
            path = uploaded.hand_over()
            details = {"size": uploaded.size, "error": uploaded.error}
            if path is not None:
                details.update(sha256=uploaded.sha256, head=uploaded.head)
        else:
            path, details = _private_copy(uploaded), {}
        try:
            entries.append(bridge.ingest_file(upload_session, dict(slots), slot, name, mime, path, **details))
        finally:
            # The registry moves the file it accepts and deletes the one it rejects; anything left is ours.
            if path is not None:
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


#: Session key of the refusals each view instance still has to show (a no-JS post redirects before rendering).
REFUSALS_KEY = "twisted_uploads.refusals"


def remember_refusals(request: HttpRequest, view_id: str, entries: list[EntryInfo], max_views: int) -> None:
    """Keep the errored ``entries`` of a post for the next render of ``view_id`` (once)."""
    failed = [{"slot": info.slot, "name": info.client_name, "code": info.error or ErrorCode.STORAGE_FAILED.value}
              for info in entries if info.status is EntryStatus.ERROR]
    if not failed:
        return
    pending = dict(request.session.get(REFUSALS_KEY) or {})
    pending[view_id] = [*pending.pop(view_id, []), *failed][-50:]
    # Dicts keep insertion order: the oldest views' refusals go first when there are too many.
    request.session[REFUSALS_KEY] = dict(list(pending.items())[-max(1, max_views):])


def pop_refusals(request: HttpRequest, view_id: str) -> dict[str, list[str]]:
    """The refusals ``view_id`` has to show, as ``{slot: ["name: message", ...]}``; forgotten once returned."""
    session = getattr(request, "session", None)
    if session is None or not view_id:
        return {}
    pending = session.get(REFUSALS_KEY) or {}
    if view_id not in pending:
        return {}
    pending = dict(pending)
    failed = pending.pop(view_id) or []
    session[REFUSALS_KEY] = pending
    shown: dict[str, list[str]] = {}
    for item in failed:
        try:
            message = MESSAGES[ErrorCode(item["code"])]
        except (KeyError, ValueError, TypeError):
            message = MESSAGES[ErrorCode.STORAGE_FAILED]
        shown.setdefault(str(item.get("slot", "")), []).append(f"{item.get('name', 'upload')}: {message}")
    return shown
