"""A Django upload handler that applies a slot's limits *while* a no-JavaScript form post is read.

Without it, Django spools every posted file whole (memory, then ``FILE_UPLOAD_TEMP_DIR``) before any view code
runs, so a 2 GB file posted to a 5 MB avatar slot is written to disk in full and only then refused.
:class:`SlotUploadHandler` (modelled on ``django/core/files/uploadhandler.py``) takes the files posted under the
view's declared slot names and, for each one,

* streams it to a private part file in ``UPLOADS_DIR/incoming`` — the upload server's own file system, so the
  registry's ``adopt`` is a rename, not a copy — computing its SHA-256 and keeping its first
  :data:`~twisted_uploads.validation.HEAD_BYTES` on the way (nothing of the file is held in memory beyond one
  chunk and that head, and the reactor reads nothing again);
* stops writing, and deletes what it wrote, the moment the file passes the slot's ``max_file_size``, its head
  fails the magic-byte / active-content check, or it is one file more than ``max_entries``; the rest of that file is
  read from the socket (the form's other fields follow it) but never stored.

Each such file reaches ``request.FILES[slot]`` as a :class:`ReadUpload`; the LiveView hands it to the upload server
with ``bridge.ingest_file(..., size=, sha256=, head=)`` or, refused, ``ingest_file(..., None, error=...)`` — after
the CSRF check, so a forged post records nothing. Files under other field names go to Django's own handlers.

Which slots apply is decided before the body is read, and the view id is *in* the body, so
:func:`install_upload_handler` looks in this order:

1. ``?dj_view=`` in the URL (the no-JS forms post there): that view state's slots and upload session, exactly;
2. otherwise the states of this view class in the Django session: one state → exactly its slots; several → per
   slot name the largest limits among them (the registry then applies the exact slot of the posted view);
3. otherwise (no state at all — an expired session, a hand-written form) no handler: Django spools the files as
   usual and the registry refuses what breaks a rule afterwards. The mount that would declare the slots may only
   run after the CSRF check, which needs the body, so there is nothing to derive a limit from sooner.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers
from django.http import HttpRequest
from twisted.logger import Logger
from twisted_uploads.errors import ErrorCode, UploadError
from twisted_uploads.slots import SlotConfig
from twisted_uploads.validation import HEAD_BYTES, check_announce, check_content, format_size, sanitize_name

from .conf import uploads_settings
from .state import SESSION_KEY, ViewState, looks_like_view_id

log = Logger()

#: Name prefix of the part files, so a sweep can tell them from anything else in the directory.
PART_PREFIX = "nojs-"


#: Part files older than this are left over from a process that died mid-post (no post is read for a day).
STALE_PART_AGE = 86400.0
_swept: set[Path] = set()


def part_directory() -> Path:
    """Where posted files are streamed: ``UPLOADS_DIR/incoming`` (created 0700), else Django's temp dir.

    The first time a process uses a directory it deletes the stale part files a crashed process left there (the
    upload server's own sweep looks only at its session directories).
    """
    directory = Path(uploads_settings().upload_dir) / "incoming"
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        directory = Path(settings.FILE_UPLOAD_TEMP_DIR or tempfile.gettempdir())
    if directory not in _swept:
        _swept.add(directory)
        sweep_parts(directory)
    return directory


def sweep_parts(directory: Path, max_age: float = STALE_PART_AGE) -> int:
    """Delete this handler's part files in ``directory`` older than ``max_age`` seconds; return how many."""
    removed = 0
    now = time.time()
    try:
        candidates = list(directory.glob(f"{PART_PREFIX}*.part"))
    except OSError:
        return 0
    for path in candidates:
        try:
            if now - path.stat().st_mtime > max_age:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    if removed:
        log.info("Deleted {count} stale no-JS part files from {directory}", count=removed, directory=str(directory))
    return removed


class ReadUpload:
    """One file the handler read for a slot: in ``request.FILES[slot]`` instead of a Django ``UploadedFile``.

    ``path`` is the part file holding the accepted bytes (None once handed over, or when refused); ``error`` the
    refusal. ``size`` counts every byte the client sent for it, stored or not; ``bytes_written`` those written to
    disk — never more than the slot's ``max_file_size``.
    """

    def __init__(self, field_name: str, name: str, content_type: str) -> None:
        self.field_name = field_name
        self.name = name
        self.content_type = content_type
        self.size = 0
        self.bytes_written = 0
        self.sha256: str | None = None
        self.head = b""
        self.path: str | None = None
        self.error: UploadError | None = None
        self._hash = hashlib.sha256()
        self._file: Any = None
        self._checked = False

    def __bool__(self) -> bool:  # MultiPartParser keeps a file only if it is truthy
        return True

    def __repr__(self) -> str:
        state = f"error={self.error.code.value}" if self.error else f"path={self.path!r}"
        return f"<ReadUpload {self.field_name}:{self.name!r} {self.size} bytes {state}>"

    def hand_over(self) -> str | None:
        """The part file's path, which the caller now owns (the registry moves or deletes it)."""
        path, self.path = self.path, None
        return path

    def refuse(self, error: UploadError) -> None:
        """Stop storing this file: delete what was written; later bytes are only counted."""
        self.error = error
        self.close()

    def close(self) -> None:
        """Release the part file unless it was handed over (called by Django at the end of the request)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        path, self.path = self.path, None
        if path is not None:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


class SlotUploadHandler(FileUploadHandler):
    """Streams the files of declared slots to part files, refusing them as soon as a rule is broken."""

    def __init__(self, request: HttpRequest | None, slots: Mapping[str, SlotConfig], directory: Path,
                 existing_entries: Callable[[str], int] | None = None) -> None:
        super().__init__(request)
        self.slots = dict(slots)
        self.directory = directory
        self._existing_entries = existing_entries
        self._taken: Counter[str] = Counter()
        self._current: ReadUpload | None = None
        self._uploads: list[ReadUpload] = []

    # -- FileUploadHandler ---------------------------------------------------------------------------------------
    def new_file(self, field_name: str, file_name: str, content_type: str, content_length: int | None,
                 charset: str | None = None, content_type_extra: dict[str, Any] | None = None) -> None:
        slot = self.slots.get(field_name)
        if slot is None:
            self._current = None
            return  # not an upload slot: Django's own handlers take it
        super().new_file(field_name, file_name, content_type, content_length, charset, content_type_extra)
        upload = self._current = ReadUpload(field_name, file_name, content_type or "")
        self._uploads.append(upload)
        name = sanitize_name(file_name)
        try:
            if self._taken[field_name] + self._existing(field_name) >= slot.max_entries:
                raise UploadError(ErrorCode.TOO_MANY_FILES, f"{field_name} takes at most {slot.max_entries} file(s)")
            check_announce(slot, name, upload.content_type, content_length or 0)
        except UploadError as error:
            upload.refuse(error)
            raise StopFutureHandlers from None
        try:
            descriptor, upload.path = tempfile.mkstemp(prefix=PART_PREFIX, suffix=".part", dir=self.directory)
            upload._file = os.fdopen(descriptor, "wb")
        except OSError as error:
            upload.refuse(_storage_failed(name, error))
        raise StopFutureHandlers

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        upload = self._current
        if upload is None:
            return raw_data
        upload.size += len(raw_data)
        if upload.error is not None:
            return None  # refused: read off the socket, never stored
        slot = self.slots[upload.field_name]
        if upload.size > slot.max_file_size:
            upload.refuse(UploadError(ErrorCode.TOO_LARGE))
            return None
        try:
            upload._file.write(raw_data)
        except OSError as error:  # disk full, quota: this file fails, the post and its other files go on
            upload.refuse(_storage_failed(sanitize_name(upload.name), error))
            return None
        upload.bytes_written += len(raw_data)
        upload._hash.update(raw_data)
        if len(upload.head) < HEAD_BYTES:
            upload.head += raw_data[: HEAD_BYTES - len(upload.head)]
            if len(upload.head) == HEAD_BYTES:
                self._check_head(upload, slot)
        return None

    def file_complete(self, file_size: int) -> ReadUpload | None:
        upload, self._current = self._current, None
        if upload is None:
            return None
        slot = self.slots[upload.field_name]
        if upload.error is None:
            self._check_head(upload, slot)
        if upload.error is not None and upload.error.code is ErrorCode.TOO_LARGE:
            name = sanitize_name(upload.name)
            upload.error = UploadError(ErrorCode.TOO_LARGE, f"{name} is {format_size(upload.size)}; the limit is "
                                                            f"{format_size(slot.max_file_size)}.")
        if upload.error is None:
            try:
                upload._file.close()
            except OSError as error:
                upload.refuse(_storage_failed(sanitize_name(upload.name), error))
        if upload.error is None:
            upload._file = None
            upload.sha256 = upload._hash.hexdigest()
            self._taken[upload.field_name] += 1
        return upload

    def upload_interrupted(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None

    # -- ours ------------------------------------------------------------------------------------------------------
    def discard(self) -> None:
        """Delete every part file not handed over (the request is over, whatever happened to it)."""
        for upload in self._uploads:
            upload.close()

    def _check_head(self, upload: ReadUpload, slot: SlotConfig) -> None:
        if upload._checked:
            return
        upload._checked = True
        try:
            check_content(slot, sanitize_name(upload.name), upload.content_type, upload.head)
        except UploadError as error:
            upload.refuse(error)

    def _existing(self, slot_name: str) -> int:
        if self._existing_entries is None:
            return 0
        try:
            return self._existing_entries(slot_name)
        except Exception as error:  # the registry counts again when the file is ingested
            log.warn("Could not count the existing entries of {slot}: {error}", slot=slot_name, error=error)
            self._existing_entries = None
            return 0


def _storage_failed(name: str, error: OSError) -> UploadError:
    log.warn("Could not store posted file {name}: {error}", name=name, error=error)
    return UploadError(ErrorCode.STORAGE_FAILED, f"could not store {name}: {error.strerror or error}")


def install_upload_handler(request: HttpRequest, view_class: str) -> SlotUploadHandler | None:
    """Put a :class:`SlotUploadHandler` first in ``request.upload_handlers`` (see the module docstring).

    Returns it (call :meth:`~SlotUploadHandler.discard` when the request is over), or None when the body was
    already parsed or no slots are known for this view.
    """
    if hasattr(request, "_files") or getattr(request, "session", None) is None:
        return None
    if request.content_type != "multipart/form-data":
        return None  # no files in it (the browser client's event posts are multipart, with no file parts)
    found = slots_for_post(request, view_class)
    if found is None:
        return None
    slots, upload_session = found
    existing = None
    if upload_session:
        existing = _entry_counter(upload_session)
    handler = SlotUploadHandler(request, slots, part_directory(), existing)
    request.upload_handlers.insert(0, handler)
    return handler


def slots_for_post(request: HttpRequest, view_class: str) -> tuple[dict[str, SlotConfig], str] | None:
    """The slots (and, when exactly known, the upload session) a POST to ``view_class`` may carry files for."""
    stored = request.session.get(SESSION_KEY) or {}
    states = []
    for view_id, raw in stored.items():
        try:
            state = ViewState.from_dict(raw)
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
        if state.view_class == view_class and state.upload_slots:
            states.append((view_id, state))
    wanted = request.GET.get("dj_view")
    if looks_like_view_id(wanted):
        for view_id, state in states:
            if view_id == wanted:
                return _parse_slots(state.upload_slots), state.upload_session
    if not states:
        return None
    if len(states) == 1:
        return _parse_slots(states[0][1].upload_slots), states[0][1].upload_session
    merged: dict[str, SlotConfig] = {}
    for _, state in states:
        for name, slot in _parse_slots(state.upload_slots).items():
            merged[name] = slot if name not in merged else _loosest(merged[name], slot)
    return merged, ""


def _parse_slots(raw: Mapping[str, Any]) -> dict[str, SlotConfig]:
    slots = {}
    for name, config in raw.items():
        try:
            slots[name] = SlotConfig.from_dict(config)
        except (TypeError, ValueError):
            continue
    return slots


def _loosest(a: SlotConfig, b: SlotConfig) -> SlotConfig:
    """A bound that refuses nothing either slot accepts (used when the posted view is not known yet)."""
    if a == b:
        return a
    return replace(a, accept="" if a.accept != b.accept else a.accept, max_entries=max(a.max_entries, b.max_entries),
                   max_file_size=max(a.max_file_size, b.max_file_size),
                   allow_active_content=a.allow_active_content or b.allow_active_content)


def _entry_counter(upload_session: str) -> Callable[[str], int]:
    def count(slot_name: str) -> int:
        from twisted_uploads.entries import EntryStatus

        from .bridge import get_bridge

        return sum(1 for info in get_bridge().list_entries(upload_session, slot_name)
                   if info.status not in (EntryStatus.ERROR, EntryStatus.CANCELLED))

    return count


__all__ = ["PART_PREFIX", "ReadUpload", "SlotUploadHandler", "install_upload_handler", "part_directory",
           "slots_for_post", "sweep_parts"]
