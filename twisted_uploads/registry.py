"""Upload sessions → slots → entries, owned by the reactor thread, with their timers.

Everything here runs in the reactor thread and nowhere else: no locks. Other threads (the Django bridge) call in
through ``crochet`` and receive :class:`~twisted_uploads.entries.EntryInfo` copies. Time comes from an injected
``IReactorTime`` so that every TTL and timeout is testable with ``task.Clock``.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import secrets
from dataclasses import dataclass, field
from typing import Iterator

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

from .entries import Entry, EntryInfo, EntryOwner, EntryStatus
from .errors import ErrorCode, UploadError
from .slots import SlotConfig
from .storage import IEntryStore
from .validation import HEAD_BYTES, check_announce, check_content, sanitize_name, sanitize_relative_path

log = Logger()

MAX_REF_LENGTH = 64


@dataclass
class UploadSession:
    """One page's uploads: the slots its token granted and its entries, oldest first."""

    session_id: str
    slots: dict[str, SlotConfig]
    entries: dict[int, Entry] = field(default_factory=dict)
    connections: int = 0

    def entry_by_ref(self, ref: str) -> Entry | None:
        """The unconsumed entry the client labelled ``ref``."""
        return next((e for e in self.entries.values() if e.ref == ref), None)

    def active_in_slot(self, slot: str) -> int:
        """Entries counting against ``max_entries``: not failed, cancelled or consumed."""
        return sum(1 for e in self.entries.values()
                   if e.slot_name == slot and e.status not in (EntryStatus.ERROR, EntryStatus.CANCELLED))

    def declared_bytes(self) -> int:
        """Bytes the session's live entries declared, for the session quota."""
        return sum(e.client_size for e in self.entries.values()
                   if e.status not in (EntryStatus.ERROR, EntryStatus.CANCELLED))


class UploadRegistry:
    """All upload sessions of one server."""

    def __init__(self, store: IEntryStore, clock: IReactorTime, *, resume_grace: float = 300.0,
                 complete_ttl: float = 3600.0, max_session_bytes: int = 10 * 1024**3) -> None:
        self.store = store
        self.clock = clock
        self.resume_grace = resume_grace
        self.complete_ttl = complete_ttl
        self.max_session_bytes = max_session_bytes
        self.sessions: dict[str, UploadSession] = {}
        # Random start so that ids say nothing about how many uploads the server has seen.
        self._ids = itertools.count(secrets.randbelow(1 << 30) + 1)
        self._expiry: dict[int, IDelayedCall] = {}
        self._timeouts: dict[int, IDelayedCall] = {}

    # -- sessions -------------------------------------------------------------------------------------------

    def open_session(self, session_id: str, slots: dict[str, SlotConfig]) -> UploadSession:
        """Return the session, creating it; the newest token's slot configs win."""
        session = self.sessions.get(session_id)
        if session is None:
            session = self.sessions[session_id] = UploadSession(session_id, dict(slots))
        else:
            session.slots = dict(slots)
        return session

    def _forget_if_idle(self, session: UploadSession) -> None:
        if not session.entries and not session.connections and self.sessions.get(session.session_id) is session:
            del self.sessions[session.session_id]
            self.store.discard_session(session.session_id)

    def attach(self, session: UploadSession) -> None:
        """A connection authenticated to ``session``."""
        session.connections += 1

    def detach(self, session: UploadSession, owner: EntryOwner) -> None:
        """A connection closed: its unfinished entries pause and wait ``resume_grace`` for a resume."""
        session.connections -= 1
        for entry in list(session.entries.values()):
            if entry.owner is owner:
                entry.owner = None
                if entry.status is EntryStatus.UPLOADING:
                    entry.status = EntryStatus.PAUSED
                    self._cancel_timeout(entry)
                    self._expire_after(session, entry, self.resume_grace)
        self._forget_if_idle(session)

    # -- entries from the protocol ----------------------------------------------------------------------------

    def announce(self, session: UploadSession, owner: EntryOwner, ref: str, slot_name: str, name: str,
                 mime: str, size: object, relative_path: str | None = None) -> Entry:
        """Create an entry for an announced file, or raise :class:`UploadError` saying why not."""
        client_name = sanitize_name(name)
        slot = self._admit(session, slot_name, client_name, mime, size)
        assert isinstance(size, int)
        if size == 0:
            # An empty file is its own complete content: check it now, so a refusal creates no entry.
            check_content(slot, client_name, mime, b"")
        entry_id = next(self._ids) & 0xFFFFFFFF
        try:
            writer = self.store.open(session.session_id, entry_id)
        except OSError as error:
            raise UploadError(ErrorCode.STORAGE_FAILED, f"could not store {client_name}: {error.strerror}") from error
        entry = Entry(entry_id, ref, slot_name, slot, client_name, mime, size, writer)
        entry.relative_path = sanitize_relative_path(relative_path)
        session.entries[entry_id] = entry
        self.claim(session, entry, owner)
        if size == 0:
            self.complete(session, entry)
        return entry

    def _admit(self, session: UploadSession, slot_name: str, client_name: str, mime: str,
               size: object) -> SlotConfig:
        """The rules a file must pass before it becomes an entry, streamed or posted; returns its slot."""
        slot = session.slots.get(slot_name)
        if slot is None:
            raise UploadError(ErrorCode.UNKNOWN_SLOT, f"no upload slot named {slot_name!r}")
        check_announce(slot, client_name, mime, size)
        assert isinstance(size, int)
        if session.active_in_slot(slot_name) >= slot.max_entries:
            raise UploadError(ErrorCode.TOO_MANY_FILES, f"{slot_name} takes at most {slot.max_entries} file(s)")
        if session.declared_bytes() + size > self.max_session_bytes:
            raise UploadError(ErrorCode.QUOTA_EXCEEDED)
        return slot

    def claim(self, session: UploadSession, entry: Entry, owner: EntryOwner) -> None:
        """Make ``owner`` the connection streaming ``entry`` (announce, or resume after a reconnect)."""
        previous = entry.owner
        entry.owner = owner
        if previous is not None and previous is not owner:
            previous.entry_changed(entry)
        if not entry.status.finished:
            entry.status = EntryStatus.UPLOADING
            self._cancel_expiry(entry)
            entry.last_activity = self.clock.seconds()
            self._schedule_timeout(session, entry, entry.slot.chunk_timeout)

    def complete(self, session: UploadSession, entry: Entry) -> None:
        """Every byte arrived: close the file (final content check included) and start the consume TTL."""
        try:
            entry.finish()
        except UploadError as error:
            self.fail(session, entry, error)
            raise
        self._cancel_timeout(entry)
        self._expire_after(session, entry, self.complete_ttl)

    def fail(self, session: UploadSession, entry: Entry, error: UploadError) -> None:
        """Mark the entry failed and delete its bytes; the entry stays so the application can report it."""
        if entry.status.finished:
            return
        self._discard_bytes(entry)
        entry.status = EntryStatus.ERROR
        entry.error, entry.error_message = error.code, error.message
        self._cancel_timeout(entry)
        self._expire_after(session, entry, self.complete_ttl)

    def _discard_bytes(self, entry: Entry) -> None:
        if entry.writer is not None:
            entry.writer.abort()
            entry.writer = None
        if entry.path is not None:
            self.store.delete(entry.path)
            entry.path = None

    def uploading_count(self) -> int:
        """Entries being streamed right now, on every session (sizes flow-control windows)."""
        return sum(1 for session in self.sessions.values() for entry in session.entries.values()
                   if entry.status is EntryStatus.UPLOADING)

    # -- calls from the application (through the bridge) -------------------------------------------------------

    def list_entries(self, session_id: str, slot: str | None = None) -> list[EntryInfo]:
        """Every unconsumed entry of the session (optionally of one slot), oldest first."""
        session = self.sessions.get(session_id)
        if session is None:
            return []
        return [e.info() for e in session.entries.values() if slot is None or e.slot_name == slot]

    def finished_entries(self, session_id: str, slot: str) -> list[EntryInfo]:
        """Complete and failed entries of a slot, ready for ``consume_uploaded_entries``."""
        return [info for info in self.list_entries(session_id, slot)
                if info.status in (EntryStatus.COMPLETE, EntryStatus.ERROR)]

    def consume(self, session_id: str, entry_id: int) -> None:
        """The application is done with an entry: delete its file and forget it. Idempotent."""
        session = self.sessions.get(session_id)
        entry = session.entries.get(entry_id) if session else None
        if session is None or entry is None:
            return
        self._remove(session, entry)

    def cancel(self, session_id: str, ref_or_entry_id: str | int) -> EntryInfo:
        """Cancel an entry by its client ref or entry id; the streaming connection is told."""
        session = self.sessions.get(session_id)
        entry = self._find(session, ref_or_entry_id) if session else None
        if session is None or entry is None:
            raise UploadError(ErrorCode.UNKNOWN_ENTRY, f"no upload {ref_or_entry_id!r} in this session")
        self.cancel_entry(session, entry)
        return entry.info()

    def cancel_entry(self, session: UploadSession, entry: Entry) -> None:
        """Cancel ``entry``, delete its bytes, and tell its connection (once)."""
        if entry.status is EntryStatus.CANCELLED:
            return
        if entry.status in (EntryStatus.COMPLETE, EntryStatus.ERROR):
            # Cancelling a finished upload means the application does not want it: drop it now.
            self._remove(session, entry)
            entry.status = EntryStatus.CANCELLED
        else:
            self._discard_bytes(entry)
            entry.status = EntryStatus.CANCELLED
            entry.error = ErrorCode.CANCELLED
            entry.error_message = "cancelled"
            self._cancel_timeout(entry)
            # A cancelled entry is kept only briefly, so late frames for it are dropped quietly.
            self._expire_after(session, entry, 0 if entry.owner is None else min(self.complete_ttl, 60.0))
        owner = entry.owner
        if owner is not None:
            owner.entry_changed(entry)

    def ingest_file(self, session_id: str, slots: dict[str, SlotConfig], slot_name: str, client_name: str,
                    client_type: str, source_path: str | None, ref: str | None = None, *,
                    size: int | None = None, sha256: str | None = None, head: bytes | None = None,
                    error: UploadError | None = None, relative_path: str | None = None) -> EntryInfo:
        """Record a file that arrived without the WebSocket (the no-JavaScript form POST).

        The same rules apply as for a streamed file. A file that breaks one becomes an errored entry (its bytes
        deleted) rather than an exception, exactly as a streamed file would. A caller that read the file itself
        (Django's upload handler) passes ``size``, ``sha256`` and ``head`` so nothing is read again here, and
        ``error`` for a file it refused while reading (``source_path`` is then ``None``).
        """
        session = self.sessions.get(session_id) or self.open_session(session_id, slots)
        session.slots.update(slots)
        name = sanitize_name(client_name)
        if size is None:
            size = os.path.getsize(source_path) if source_path is not None else 0
        entry = Entry(next(self._ids) & 0xFFFFFFFF, ref or secrets.token_hex(8), slot_name,
                      session.slots.get(slot_name, SlotConfig()), name, client_type, size, None)
        entry.relative_path = sanitize_relative_path(relative_path)
        entry.received = size
        try:
            if error is not None:
                raise error
            if source_path is None:
                raise UploadError(ErrorCode.STORAGE_FAILED, f"no stored bytes for {name}")
            self._admit(session, slot_name, name, client_type, size)
            if sha256 is None or head is None:
                sha256, head = _sha256_and_head(source_path)
            entry.detected_type = check_content(entry.slot, name, client_type, head)
            entry.sha256 = sha256
            entry.path = self.store.adopt(session_id, entry.entry_id, source_path)
            entry.status = EntryStatus.COMPLETE
        except UploadError as refusal:
            entry.status, entry.error, entry.error_message = EntryStatus.ERROR, refusal.code, refusal.message
            if source_path is not None:
                try:
                    os.unlink(source_path)
                except OSError:
                    pass
        session.entries[entry.entry_id] = entry
        self._expire_after(session, entry, self.complete_ttl)
        return entry.info()

    # -- helpers --------------------------------------------------------------------------------------------------

    @staticmethod
    def _find(session: UploadSession, ref_or_entry_id: str | int) -> Entry | None:
        if isinstance(ref_or_entry_id, int):
            return session.entries.get(ref_or_entry_id)
        entry = session.entry_by_ref(ref_or_entry_id)
        if entry is None and ref_or_entry_id.isdigit():
            entry = session.entries.get(int(ref_or_entry_id))
        return entry

    def _remove(self, session: UploadSession, entry: Entry) -> None:
        self._discard_bytes(entry)
        self._cancel_expiry(entry)
        self._cancel_timeout(entry)
        session.entries.pop(entry.entry_id, None)
        self._forget_if_idle(session)

    def _expire_after(self, session: UploadSession, entry: Entry, seconds: float) -> None:
        self._cancel_expiry(entry)

        def expire() -> None:
            self._expiry.pop(entry.entry_id, None)
            log.info("Upload {name} ({status}) expired unconsumed", name=entry.client_name, status=entry.status)
            self._remove(session, entry)

        if seconds <= 0:
            expire()
        else:
            self._expiry[entry.entry_id] = self.clock.callLater(seconds, expire)

    def _cancel_expiry(self, entry: Entry) -> None:
        call = self._expiry.pop(entry.entry_id, None)
        if call is not None and call.active():
            call.cancel()

    def _schedule_timeout(self, session: UploadSession, entry: Entry, delay: float) -> None:
        # One timer per entry that re-arms itself, instead of resetting a timer on every chunk (hot path).
        def check() -> None:
            self._timeouts.pop(entry.entry_id, None)
            if entry.status is not EntryStatus.UPLOADING:
                return
            idle = self.clock.seconds() - entry.last_activity
            if idle < entry.slot.chunk_timeout:
                self._schedule_timeout(session, entry, entry.slot.chunk_timeout - idle)
                return
            self.fail(session, entry, UploadError(
                ErrorCode.TIMEOUT, f"no data for {entry.client_name} in {entry.slot.chunk_timeout:g} s"))
            if entry.owner is not None:
                entry.owner.entry_changed(entry)

        self._cancel_timeout(entry)
        self._timeouts[entry.entry_id] = self.clock.callLater(delay, check)

    def _cancel_timeout(self, entry: Entry) -> None:
        call = self._timeouts.pop(entry.entry_id, None)
        if call is not None and call.active():
            call.cancel()

    def shutdown(self) -> None:
        """Stop every timer (service stop); stored files stay for the next start's sweep."""
        for call in [*self._expiry.values(), *self._timeouts.values()]:
            if call.active():
                call.cancel()
        self._expiry.clear()
        self._timeouts.clear()
        for session in self.sessions.values():
            for entry in session.entries.values():
                if entry.writer is not None:
                    entry.writer.abort()
                    entry.writer = None

    def __iter__(self) -> Iterator[UploadSession]:
        return iter(list(self.sessions.values()))


def _sha256_and_head(path: str) -> tuple[str, bytes]:
    """The file's SHA-256 and its first HEAD_BYTES bytes, in one read."""
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        head = source.read(HEAD_BYTES)
        digest.update(head)
        while block := source.read(1 << 20):
            digest.update(block)
    return digest.hexdigest(), head
