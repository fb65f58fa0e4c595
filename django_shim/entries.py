"""``UploadEntry``: one uploaded file as a Django view sees it.

It wraps an ``EntryInfo`` snapshot handed over by the bridge (never live reactor state). ``entry.file`` follows
Django's own upload split: a file up to ``FILE_UPLOAD_MAX_MEMORY_SIZE`` is an ``InMemoryUploadedFile``, a larger one
an ``UploadedFile`` over the stored file with ``temporary_file_path()`` — so ``default_storage.save()`` and a model
``FileField`` accept it unchanged and ``FileSystemStorage`` *moves* it instead of copying it.

The move must not take the bytes away from the entry while it is still unconsumed (if the loop body raises after
``save()``, the entry stays and may be consumed again), so ``temporary_file_path()`` hands out a hard link to the
stored file: renaming the link is as cheap as renaming the file, and the entry's own copy stays until it is
consumed. Nothing is opened or read until ``file`` or ``data`` is asked for.

In scale-out mode an entry may live in an S3 bucket (``entry.location`` is ``"s3://bucket/key"``): ``entry.file`` is
then an ``UploadedFile`` that streams the object through the store's ``open_read`` (small files are read into
memory as above), which ``default_storage.save()`` and a ``FileField`` copy chunk by chunk. A project whose own
storage is S3 can instead copy the object server-side from ``entry.location`` / ``entry.s3_object`` (``bucket,
key``) without the bytes passing through Django.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
from contextlib import closing
from io import BytesIO
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from django.conf import settings
from django.core.files.uploadedfile import InMemoryUploadedFile, UploadedFile
from twisted_uploads.entries import EntryInfo, EntryStatus
from twisted_uploads.errors import MESSAGES, ErrorCode

_link_counter = itertools.count(1)


class StoredUploadedFile(UploadedFile):
    """A completed entry's stored file, shaped like Django's ``TemporaryUploadedFile``."""

    def __init__(self, path: str, name: str, content_type: str, size: int) -> None:
        super().__init__(open(path, "rb"), name, content_type, size, None)  # noqa: SIM115 - closed by close()
        self._stored_path = path
        self._links: list[str] = []

    def temporary_file_path(self) -> str:
        """Return a path storage may move away: a fresh hard link (or copy) of the stored file."""
        link = f"{self._stored_path}.take-{os.getpid()}-{next(_link_counter)}"
        try:
            os.link(self._stored_path, link)
        except OSError:
            shutil.copyfile(self._stored_path, link)
        self._links.append(link)
        return link

    def close(self) -> None:
        """Close the file and remove any link storage did not move away."""
        try:
            super().close()
        finally:
            for link in self._links:
                try:
                    os.unlink(link)
                except FileNotFoundError:
                    pass
            self._links.clear()


class StreamedUploadedFile(UploadedFile):
    """A completed entry's object in the store (S3), read as a stream: no local copy, no ``temporary_file_path``."""

    def __init__(self, stream: BinaryIO, name: str, content_type: str, size: int) -> None:
        super().__init__(stream, name, content_type, size, None)


def is_remote(location: str | None) -> bool:
    """Whether ``location`` names an object in a store rather than a local path."""
    return bool(location) and "://" in str(location)


_store_lock = threading.Lock()
_reading_store: tuple[tuple[Any, ...], Any] | None = None


def reading_store() -> Any:
    """The store that can read this project's remote locations (``UPLOADS_STORAGE``), made once per settings.

    Only its synchronous ``open_read`` is used here, from Django's thread: nothing of the reactor is touched.
    """
    global _reading_store
    from .bridge import make_store
    from .conf import uploads_settings

    config = uploads_settings()
    key = (config.storage, repr(sorted(config.s3_options.items())) if isinstance(config.s3_options, dict) else "")
    with _store_lock:
        if _reading_store is None or _reading_store[0] != key:
            _reading_store = (key, make_store(config))
        return _reading_store[1]


def open_location(location: str) -> BinaryIO:
    """A readable file over a complete entry's bytes: the local file, or the store's stream of the object."""
    if is_remote(location):
        store = reading_store()
        if not hasattr(store, "open_read"):
            raise RuntimeError(f"upload {location} is in an object store, but UPLOADS_STORAGE names none that can "
                               "read it: Django and the upload nodes need the same UPLOADS_STORAGE")
        return store.open_read(location)  # type: ignore[no-any-return]
    return open(location, "rb")  # noqa: SIM115 - the caller closes it


class UploadEntry:
    """One file of an upload slot: the seed's properties plus ``ref``, ``sha256``, ``error_code`` and ``status``."""

    def __init__(self, info: EntryInfo) -> None:
        self._info = info
        self._file: UploadedFile | None = None
        self._data: bytes | None = None

    # -- the seed's properties -------------------------------------------------------------------------------------
    @property
    def client_name(self) -> str:
        """The file's name as sent by the client, reduced by the server to a safe bare file name."""
        return self._info.client_name

    @property
    def client_type(self) -> str:
        """The MIME type the client declared (checked against the content's magic bytes by the server)."""
        return self._info.client_type

    @property
    def client_size(self) -> int:
        """The size in bytes the client declared; a complete entry has exactly this many."""
        return self._info.client_size

    @property
    def progress(self) -> int:
        """Percentage (0-100) of the declared bytes the server holds."""
        return self._info.progress

    @property
    def complete(self) -> bool:
        """True once every byte arrived and passed validation."""
        return self._info.complete

    @property
    def error(self) -> str | None:
        """A readable message if the upload failed (the seed shows it to users), else ``None``."""
        if self._info.error is None:
            return None
        if self._info.error_message:
            return self._info.error_message
        try:
            return MESSAGES[ErrorCode(self._info.error)]
        except ValueError:
            return self._info.error

    @property
    def data(self) -> bytes | None:
        """The whole content, read from disk on first access; ``None`` if the entry holds no bytes."""
        if self._data is None:
            if self._file is not None and isinstance(self._file, InMemoryUploadedFile):
                self._data = self._file.file.getvalue()  # type: ignore[union-attr]
            elif self.complete and self._info.path:
                self._data = _read(self._info.path)
        return self._data

    @property
    def location(self) -> str | None:
        """Where the complete entry's bytes are: a local path, or ``"s3://bucket/key"`` (``None`` until complete).

        An S3-backed Django storage can copy the object server-side from here instead of streaming it through
        ``entry.file``; the object is deleted when the entry is consumed, so copy it inside the consuming loop.
        """
        return self._info.path if self.complete else None

    @property
    def s3_object(self) -> tuple[str, str] | None:
        """``(bucket, key)`` of an entry stored in S3 (for ``copy_object``), else ``None``."""
        location = self.location
        if not location or not location.startswith("s3://"):
            return None
        parts = urlsplit(location)
        return parts.netloc, parts.path.lstrip("/")

    @property
    def file(self) -> UploadedFile | None:
        """A Django ``UploadedFile`` over the content (in memory if small), opened on first access.

        ``None`` for an entry that failed or is still uploading: it has no bytes to save.
        """
        if self._file is None and self.complete and self._info.path:
            name, content_type, size = self.client_name, self.client_type, self.client_size
            if size <= settings.FILE_UPLOAD_MAX_MEMORY_SIZE:
                content = self._data if self._data is not None else _read(self._info.path)
                self._file = InMemoryUploadedFile(BytesIO(content), None, name, content_type, size, None)
            elif is_remote(self._info.path):
                self._file = StreamedUploadedFile(open_location(self._info.path), name, content_type, size)
            else:
                self._file = StoredUploadedFile(self._info.path, name, content_type, size)
        return self._file

    # -- additions --------------------------------------------------------------------------------------------------
    @property
    def ref(self) -> str:
        """The client's reference for this file (``data-upload-ref`` in the DOM; what ``cancel_upload`` takes)."""
        return self._info.ref

    @property
    def entry_id(self) -> int:
        """The server's id of this entry."""
        return self._info.entry_id

    @property
    def upload_name(self) -> str:
        """The slot this entry belongs to."""
        return self._info.slot

    @property
    def sha256(self) -> str | None:
        """Hex SHA-256 of the content, computed while it streamed in (``None`` until complete)."""
        return self._info.sha256

    @property
    def detected_type(self) -> str | None:
        """The MIME type the server read from the content's magic bytes (``None`` if unrecognised).

        Unlike ``client_type`` this is not the browser's claim, so a view deciding how to treat a file uses it.
        """
        return self._info.detected_type

    @property
    def client_relative_path(self) -> str | None:
        """The file's path inside a dropped folder (``photos/2024/a.png``), sanitised; ``None`` for a lone file."""
        return self._info.relative_path

    @property
    def error_code(self) -> str | None:
        """The protocol error code (``too_large``, ``type_mismatch``…) if the upload failed."""
        return self._info.error

    @property
    def status(self) -> str:
        """``uploading``, ``paused``, ``complete``, ``error`` or ``cancelled``."""
        status = self._info.status
        return status.value if isinstance(status, EntryStatus) else str(status)

    @property
    def received(self) -> int:
        """Bytes the server holds."""
        return self._info.received

    @property
    def info(self) -> EntryInfo:
        """The underlying snapshot."""
        return self._info

    def close(self) -> None:
        """Release the open file, if any (done by ``consume_uploaded_entries`` after the loop body)."""
        if self._file is not None:
            self._file.close()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary, handy for keeping in view state or templates."""
        return {"ref": self.ref, "name": self.client_name, "type": self.client_type, "size": self.client_size,
                "progress": self.progress, "status": self.status, "error": self.error, "error_code": self.error_code}

    def __repr__(self) -> str:
        return f"<UploadEntry {self.upload_name}/{self.ref} {self.client_name!r} {self.status} {self.progress}%>"


def _read(location: str) -> bytes:
    if is_remote(location):
        with closing(open_location(location)) as stream:
            return stream.read()
    return Path(location).read_bytes()
