"""One uploaded file: its lifecycle, its bytes on the way in, and the read-only copy other threads get.

:class:`Entry` is mutable and owned by the reactor thread. :class:`EntryInfo` is the frozen snapshot handed to
anything else (the Django bridge, tests), so no state is ever shared across threads.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from .errors import ErrorCode, UploadError
from .slots import SlotConfig
from .validation import HEAD_BYTES, check_content

if TYPE_CHECKING:
    from .records import EntryRecord
    from .storage import IEntryWriter


class EntryStatus(str, Enum):
    """Where an entry is in its life: uploading ⇄ paused → complete | error | cancelled, then consumed (forgotten)."""

    UPLOADING = "uploading"
    PAUSED = "paused"
    COMPLETE = "complete"
    ERROR = "error"
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value

    @property
    def finished(self) -> bool:
        """No more bytes will be accepted for the entry."""
        return self in (EntryStatus.COMPLETE, EntryStatus.ERROR, EntryStatus.CANCELLED)


@dataclass(frozen=True)
class EntryInfo:
    """An immutable snapshot of an entry, safe to hand to another thread."""

    entry_id: int
    ref: str
    slot: str
    client_name: str
    client_type: str
    client_size: int
    received: int
    status: EntryStatus
    error: str | None = None
    error_message: str | None = None
    sha256: str | None = None
    path: str | None = None
    #: The MIME type the content's magic bytes say (filetype), when recognised: trust this, not client_type.
    detected_type: str | None = None
    #: The file's path inside a dropped folder (sanitised segments, no ``..``), or None for a single file.
    relative_path: str | None = None
    #: What the client said identifies the file (name, size, mtime, hash of its head), to match it after a reload.
    fingerprint: Any = None

    @property
    def progress(self) -> int:
        """Percentage of the declared size the server has stored (0-100)."""
        if self.status is EntryStatus.COMPLETE or self.client_size == 0:
            return 100 if self.status is EntryStatus.COMPLETE else 0
        return min(100, self.received * 100 // self.client_size)

    @property
    def complete(self) -> bool:
        """Whether every declared byte arrived and passed validation."""
        return self.status is EntryStatus.COMPLETE

    def to_dict(self) -> dict[str, Any]:
        """The entry as listed in the ``welcome`` message (docs/protocol.md §3)."""
        return {"entry": self.entry_id, "ref": self.ref, "slot": self.slot, "name": self.client_name,
                "size": self.client_size, "offset": self.received, "status": self.status.value,
                **({"code": self.error} if self.error else {}),
                **({"sha256": self.sha256} if self.sha256 else {}),
                **({"fingerprint": self.fingerprint} if self.fingerprint else {})}


class EntryOwner(Protocol):
    """The connection currently streaming an entry; told about changes that did not come from its own frames."""

    def entry_changed(self, entry: "Entry") -> None:
        """The entry was cancelled by the application, timed out, or was claimed by another connection."""


class Entry:
    """A file being received: validates each chunk, hashes and stores it, and knows when it is complete."""

    def __init__(self, entry_id: int, ref: str, slot_name: str, slot: SlotConfig, client_name: str,
                 client_type: str, client_size: int, writer: "IEntryWriter | None") -> None:
        self.entry_id = entry_id
        self.ref = ref
        self.slot_name = slot_name
        self.slot = slot
        self.client_name = client_name
        self.client_type = client_type
        self.client_size = client_size
        self.writer = writer
        self.received = 0
        self.status = EntryStatus.UPLOADING
        self.error: ErrorCode | None = None
        self.error_message: str | None = None
        self.sha256: str | None = None
        self.path: str | None = None
        self.detected_type: str | None = None
        self.relative_path: str | None = None
        self.fingerprint: Any = None
        self.owner: EntryOwner | None = None
        self.last_activity = 0.0
        #: Absolute time (registry clock) at which a paused or finished entry expires; None while streaming.
        self.deadline: float | None = None
        #: Until when a consuming request holds the entry (consume is a claim); None when nobody does.
        self.claimed_until: float | None = None
        #: The application cancelled the entry while a request held it: drop it once the claim ends.
        self.cancel_pending = False
        #: What the store needs to continue the entry elsewhere (an S3 upload id and parts), from its writer.
        self.store_state: dict[str, Any] | None = None
        #: The node that owns the entry in a cluster ("" in one process).
        self.server = ""
        #: None after a restart, until :meth:`rebuild_hash` reads the stored bytes again, or for good once
        #: :meth:`hash_from_store` said the digest is computed from the stored object at the end.
        self._hash: Any = hashlib.sha256()
        self._hash_from_store = False
        self._head: bytearray | None = bytearray()

    @classmethod
    def from_record(cls, record: "EntryRecord") -> "Entry":
        """An entry recovered from its durable record (its writer and running hash are not restored)."""
        entry = cls(record.entry, record.ref, record.slot, SlotConfig.from_dict(record.config), record.name,
                    record.type, record.size, None)
        entry.status = EntryStatus(record.status)
        entry.received = record.received
        entry.sha256 = record.sha256
        entry.error = ErrorCode(record.error) if record.error else None
        entry.error_message = record.message
        entry.detected_type = record.detected_type
        entry.relative_path = record.relative_path
        entry.fingerprint = record.fingerprint
        entry.deadline = record.deadline
        entry.path = record.location
        entry.store_state = record.store
        entry.claimed_until = record.claimed_until
        entry.cancel_pending = record.cancel_pending
        entry.server = record.server
        entry._hash = None
        return entry

    def to_record(self, session_id: str) -> "EntryRecord":
        """The durable record of the entry's current state."""
        from .records import EntryRecord

        return EntryRecord(session=session_id, entry=self.entry_id, ref=self.ref, slot=self.slot_name,
                           config=self.slot.to_dict(), name=self.client_name, type=self.client_type,
                           size=self.client_size, status=self.status.value, received=self.received,
                           sha256=self.sha256, error=self.error.value if self.error else None,
                           message=self.error_message, detected_type=self.detected_type,
                           relative_path=self.relative_path, fingerprint=self.fingerprint,
                           deadline=self.deadline, location=self.path, store=self._store_state(),
                           claimed_until=self.claimed_until, cancel_pending=self.cancel_pending,
                           server=self.server)

    def _store_state(self) -> dict[str, Any] | None:
        writer_state = getattr(self.writer, "state", None)
        if writer_state is not None:
            self.store_state = writer_state() or None
        return self.store_state

    @property
    def needs_hash_rebuild(self) -> bool:
        """Whether the running hash died with an earlier process and must be rebuilt from the stored bytes."""
        return self._hash is None and not self._hash_from_store

    @property
    def hashed_by_store(self) -> bool:
        """Whether the SHA-256 is to be computed from the stored object once complete (see hash_from_store)."""
        return self._hash_from_store

    def restart_at(self, offset: int) -> None:
        """Continue from ``offset`` with no stored bytes to read back (see hash_from_store): from the start a
        fresh hash and head check; past it the digest comes from the stored object at the end."""
        self.received = offset
        if offset == 0:
            self._hash, self._hash_from_store, self._head = hashlib.sha256(), False, bytearray()
        else:
            self.hash_from_store()
            if offset >= min(HEAD_BYTES, self.client_size):
                self._head = None  # checked by the node that received those bytes

    def forget_hash(self) -> None:
        """The stored bytes changed under this copy (another process wrote them): rebuild the hash from them."""
        self._hash, self._hash_from_store = None, False

    def hash_from_store(self) -> None:
        """Give up the running hash: the stored bytes cannot be read back before the entry is complete (an S3
        multipart upload taken over from a dead node), so the digest is computed from the finished object."""
        self._hash = None
        self._hash_from_store = True

    def rebuild_hash(self, stored: BinaryIO, received: int) -> None:
        """Hash the first ``received`` stored bytes again (and the head, if it was not complete yet)."""
        digest = hashlib.sha256()
        head = bytearray()
        remaining = received
        while remaining > 0:
            block = stored.read(min(1 << 20, remaining))
            if not block:
                raise UploadError(ErrorCode.STORAGE_FAILED, f"the stored bytes of {self.client_name} are short")
            if len(head) < HEAD_BYTES:
                head += block[: HEAD_BYTES - len(head)]
            digest.update(block)
            remaining -= len(block)
        self._hash = digest
        self.received = received
        # The head was checked as soon as it was complete, before those bytes were written.
        self._head = None if len(head) >= min(HEAD_BYTES, self.client_size) else head

    def info(self) -> EntryInfo:
        """A frozen copy of the entry's current state."""
        return EntryInfo(self.entry_id, self.ref, self.slot_name, self.client_name, self.client_type,
                         self.client_size, self.received, self.status,
                         self.error.value if self.error else None, self.error_message, self.sha256, self.path,
                         self.detected_type, self.relative_path, self.fingerprint)

    def receive(self, offset: int, payload: bytes | memoryview) -> bool:
        """Store one chunk; return True when the entry just completed. Raises :class:`UploadError`.

        The caller fails the entry on any error; this method never leaves a partially applied chunk behind,
        because every check runs before the write.
        """
        if offset != self.received:
            raise UploadError(ErrorCode.BAD_OFFSET, f"expected offset {self.received}, got {offset}")
        size = len(payload)
        if size > self.slot.chunk_size:
            raise UploadError(ErrorCode.FRAME_TOO_LARGE,
                              f"chunk of {size} bytes exceeds the slot's chunk size {self.slot.chunk_size}")
        if self.received + size > self.client_size:
            raise UploadError(ErrorCode.SIZE_MISMATCH,
                              f"{self.client_name} sent more than its declared {self.client_size} bytes")
        head = self._head
        if head is not None:
            head += payload[: HEAD_BYTES - len(head)]
            if len(head) >= min(HEAD_BYTES, self.client_size):
                self._check_head()
        writer = self.writer
        assert writer is not None
        digest = self._hash
        try:
            if digest is not None and getattr(writer, "hashes", False):
                # The writer hashes in its worker thread, in order, after writing (twisted_uploads.threadedwriter).
                writer.write_hashed(payload, digest)
                digest = None
            else:
                writer.write(payload)
        except OSError as error:
            message = f"could not store {self.client_name}: {error.strerror}"
            raise UploadError(ErrorCode.STORAGE_FAILED, message) from error
        if digest is not None:
            digest.update(payload)
        self.received += size
        return self.received == self.client_size

    def _check_head(self) -> None:
        head, self._head = self._head, None
        self.detected_type = check_content(self.slot, self.client_name, self.client_type, bytes(head or b""))

    def finish(self) -> "Deferred[None] | None":
        """Close the stored file once every byte arrived (also the path for zero-byte files).

        A writer working in a thread may answer with a Deferred of the location: the entry is then complete when
        it fires (the returned Deferred), unless it was released meanwhile (cancelled, failed: ``cancelled``).
        """
        self.check_whole_head()
        writer = self.writer
        assert writer is not None
        try:
            location = writer.close()
        except OSError as error:
            raise self._storage_failed(error) from error
        if not isinstance(location, Deferred):
            self.completed_at(location)
            return None

        def closed(location: str) -> None:
            if self.writer is not writer:
                raise UploadError(ErrorCode.CANCELLED, f"{self.client_name} was dropped while it was stored")
            self.completed_at(location)

        def failed(failure: Failure) -> Failure:
            if failure.check(OSError):
                return Failure(self._storage_failed(failure.value))
            return failure

        return location.addCallbacks(closed, failed)

    def _storage_failed(self, error: OSError) -> UploadError:
        return UploadError(ErrorCode.STORAGE_FAILED, f"could not store {self.client_name}: {error.strerror}")

    def check_whole_head(self) -> None:
        """Check the content of a file shorter than the head (its head check waited for more bytes)."""
        if self._head is not None:
            self._check_head()

    def completed_at(self, location: str, sha256: str | None = None) -> None:
        """The store holds every byte at ``location``; ``sha256`` when it was computed from the stored object."""
        self.path = location
        self.writer = None
        self.sha256 = sha256 or (self._hash.hexdigest() if self._hash is not None else None)
        self.status = EntryStatus.COMPLETE
