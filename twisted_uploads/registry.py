"""Upload sessions → slots → entries, owned by the reactor thread, with their timers and durable records.

Everything here runs in the reactor thread and nowhere else: no locks. Other threads (the Django bridge) call in
through ``crochet`` and receive :class:`~twisted_uploads.entries.EntryInfo` copies. Time comes from an injected
``IReactorTime`` so that every TTL and timeout is testable with ``task.Clock``.

Every entry has a record (:mod:`.records`) written before its first byte is acknowledged and on every status
change, so :meth:`UploadRegistry.recover` can give a restarted server back what the last one held. Consuming is a
claim (:meth:`UploadRegistry.claim_complete`): a claimed entry is handed to one request only, and neither a cancel
nor its TTL deletes it until that request consumed or released it.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure
from twisted.logger import Logger

from .entries import Entry, EntryInfo, EntryOwner, EntryStatus
from .errors import ErrorCode, UploadError
from .records import DirectoryRecords, IEntryRecords, MemoryRecords
from .slots import SlotConfig
from .storage import IEntryStore
from .validation import HEAD_BYTES, check_announce, check_content, sanitize_name, sanitize_relative_path

log = Logger()

MAX_REF_LENGTH = 64
#: Entries one upload session may hold in any state; failed and cancelled ones count until they expire, so a loop
#: of "announce, send one bad byte" ends in ``too_many_entries`` instead of growing without bound.
DEFAULT_MAX_SESSION_ENTRIES = 100
#: Seconds a cancelled entry stays listed (so late frames for it are dropped quietly and views see the cancel).
CANCELLED_TTL = 60.0
#: Seconds a consuming request may hold its claim; the request's end releases it sooner (django_shim).
DEFAULT_CLAIM_TTL = 600.0
#: Seconds the server-wide count of streaming entries is reused for window shares (see uploading_count).
UPLOADING_COUNT_MAX_AGE = 0.1
#: What a new page may take over from an earlier page of the same user: paused entries, and streaming ones whose
#: page is going away (a reload's new page can authenticate before the old socket has closed).
ADOPTABLE_STATES = (EntryStatus.PAUSED, EntryStatus.UPLOADING)
#: Paused entries of earlier pages a new page is offered at most (resume after a reload).
MAX_ADOPTABLE = 20
#: Bytes of JSON a client's file fingerprint may take (bigger ones are not kept).
MAX_FINGERPRINT_LENGTH = 400


def default_max_open_files() -> int:
    """Half the process's file-descriptor limit (the other half is for sockets), at most 4096."""
    try:
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ValueError, OSError):
        return 512
    if soft == resource.RLIM_INFINITY:
        return 4096
    return max(4, min(4096, soft // 2))


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
                 complete_ttl: float = 3600.0, max_session_bytes: int = 10 * 1024**3,
                 max_session_entries: int = DEFAULT_MAX_SESSION_ENTRIES, max_open_files: int | None = None,
                 claim_ttl: float = DEFAULT_CLAIM_TTL, records: IEntryRecords | None = None) -> None:
        self.store = store
        self.clock = clock
        self.resume_grace = resume_grace
        self.complete_ttl = complete_ttl
        self.max_session_bytes = max_session_bytes
        self.max_session_entries = max_session_entries
        self.max_open_files = max_open_files if max_open_files is not None else default_max_open_files()
        self.claim_ttl = claim_ttl
        if records is None:
            root = getattr(store, "root", None)
            records = DirectoryRecords(root) if isinstance(root, Path) else MemoryRecords()
        self.records: IEntryRecords = records
        self.sessions: dict[str, UploadSession] = {}
        self.open_files = 0
        self._uploading_count: int | None = None
        self._uploading_counted_at = 0.0
        #: Authenticated connections open on this server (attach - detach), see connection_count().
        self._connections = 0
        self._used_ids: set[int] = set()
        self._expiry: dict[int, IDelayedCall] = {}
        self._timeouts: dict[int, IDelayedCall] = {}
        self._claims: dict[int, IDelayedCall] = {}

    # -- durability ---------------------------------------------------------------------------------------------

    def recover(self) -> int:
        """Take over the entries a dead server left in the directory (start-up); return how many.

        Complete and failed entries stay for the rest of their TTL, paused ones for the rest of their grace (an
        entry that was streaming when its server died gets a full grace from now: when it died is not known).
        Whatever has no record and is older than the longest TTL is deleted; live servers' files are left alone.
        """
        now = self.clock.seconds()
        recovered = 0
        for record in self.records.recover():
            session = self.sessions.get(record.session)
            if session is None:
                session = self.sessions[record.session] = UploadSession(record.session, {})
            try:
                entry = Entry.from_record(record)
            except (TypeError, ValueError) as error:
                log.warn("Dropping unusable upload record {entry}: {error}", entry=record.entry, error=error)
                self.records.delete(record.session, record.entry)
                continue
            if not self._restore_bytes(session, entry, now):
                self._drop_recovered(session, entry)
                continue
            session.entries[entry.entry_id] = entry
            self._used_ids.add(entry.entry_id)
            if entry.deadline is None or entry.deadline <= now:
                self._remove(session, entry)
                continue
            self._expire_after(session, entry, entry.deadline - now, persist=False)
            recovered += 1
        self.records.sweep(max(self.resume_grace, self.complete_ttl, CANCELLED_TTL))
        for session in list(self.sessions.values()):
            self._forget_if_idle(session)
        return recovered

    def _restore_bytes(self, session: UploadSession, entry: Entry, now: float) -> bool:
        """Find a recovered entry's bytes; False when they are gone (nothing left to give back)."""
        if entry.status is EntryStatus.COMPLETE:
            entry.path = self.store.complete_location(session.session_id, entry.entry_id)
            return entry.path is not None
        if entry.status in (EntryStatus.UPLOADING, EntryStatus.PAUSED):
            size = self.store.partial_size(session.session_id, entry.entry_id)
            if size is None:
                return False
            # Bytes past the declared size cannot be there (every chunk is checked first), but never trust it.
            entry.received = min(size, entry.client_size)
            if entry.status is EntryStatus.UPLOADING:
                entry.status = EntryStatus.PAUSED
                entry.deadline = now + self.resume_grace
            self._save(session, entry, durable=True)
        return True

    def _drop_recovered(self, session: UploadSession, entry: Entry) -> None:
        log.warn("Upload {name} ({entry}) lost its bytes; dropping its record", name=entry.client_name,
                 entry=entry.entry_id)
        self.records.delete(session.session_id, entry.entry_id)

    def _save(self, session: UploadSession, entry: Entry, durable: bool = True) -> None:
        """Write the entry's record; a record that cannot be written is logged (the bytes decide at recovery)."""
        try:
            self.records.save(entry.to_record(session.session_id), durable)
        except OSError as error:
            log.error("Could not write the record of upload {entry}: {error}", entry=entry.entry_id, error=error)

    def _new_entry_id(self) -> int:
        # Random ids say nothing about how many uploads the server has seen, and never repeat a live one.
        while True:
            entry_id = secrets.randbelow(0xFFFFFFFF) + 1
            if entry_id not in self._used_ids:
                self._used_ids.add(entry_id)
                return entry_id

    # -- open files -------------------------------------------------------------------------------------------

    def _check_open_files(self) -> None:
        if self.open_files >= self.max_open_files:
            raise UploadError(ErrorCode.SERVER_BUSY,
                              f"the server has {self.open_files} uploads open, its limit; try again shortly")

    def _release_writer(self, entry: Entry, *, keep_bytes: bool) -> None:
        """Close the entry's file: keep its bytes (pause) or delete them (fail, cancel)."""
        writer, entry.writer = entry.writer, None
        if writer is None:
            return
        self.open_files -= 1
        if keep_bytes:
            try:
                writer.suspend()
            except OSError as error:
                log.warn("Could not close upload {entry}: {error}", entry=entry.entry_id, error=error)
        else:
            writer.abort()

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
        self._connections += 1

    def detach(self, session: UploadSession, owner: EntryOwner) -> None:
        """A connection closed: its unfinished entries pause and wait ``resume_grace`` for a resume."""
        session.connections -= 1
        self._connections -= 1
        for entry in list(session.entries.values()):
            if entry.owner is owner:
                entry.owner = None
                if entry.status is EntryStatus.UPLOADING:
                    self._pause(session, entry)
        self._forget_if_idle(session)

    def _pause(self, session: UploadSession, entry: Entry) -> None:
        """The entry's connection went away: release its file and wait ``resume_grace`` for a resume."""
        entry.status = EntryStatus.PAUSED
        self._cancel_timeout(entry)
        self._release_writer(entry, keep_bytes=True)
        self._expire_after(session, entry, self.resume_grace)

    # -- entries from the protocol ----------------------------------------------------------------------------

    def announce(self, session: UploadSession, owner: EntryOwner, ref: str, slot_name: str, name: str,
                 mime: str, size: object, relative_path: str | None = None,
                 fingerprint: object = None) -> Entry:
        """Create an entry for an announced file, or raise :class:`UploadError` saying why not."""
        client_name = sanitize_name(name)
        slot = self._admit(session, slot_name, client_name, mime, size)
        assert isinstance(size, int)
        if size == 0:
            # An empty file is its own complete content: check it now, so a refusal creates no entry.
            check_content(slot, client_name, mime, b"")
        self._check_open_files()
        entry_id = self._new_entry_id()
        try:
            writer = self.store.open(session.session_id, entry_id)
        except OSError as error:
            self._used_ids.discard(entry_id)
            raise UploadError(ErrorCode.STORAGE_FAILED, f"could not store {client_name}: {error.strerror}") from error
        self.open_files += 1
        entry = Entry(entry_id, ref, slot_name, slot, client_name, mime, size, writer)
        entry.relative_path = sanitize_relative_path(relative_path)
        if fingerprint and len(json.dumps(fingerprint)) <= MAX_FINGERPRINT_LENGTH:
            entry.fingerprint = fingerprint
        try:
            # The record exists before the client may send (and be acknowledged) a single byte.
            self.records.save(entry.to_record(session.session_id), True)
        except OSError as error:
            self._release_writer(entry, keep_bytes=False)
            self._used_ids.discard(entry_id)
            raise UploadError(ErrorCode.STORAGE_FAILED, f"could not store {client_name}: {error.strerror}") from error
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
        if len(session.entries) >= self.max_session_entries:
            raise UploadError(ErrorCode.TOO_MANY_ENTRIES,
                              f"this page holds {len(session.entries)} uploads, its limit; reload it to start again")
        if session.declared_bytes() + size > self.max_session_bytes:
            raise UploadError(ErrorCode.QUOTA_EXCEEDED)
        return slot

    def claim(self, session: UploadSession, entry: Entry, owner: EntryOwner) -> None:
        """Make ``owner`` the connection streaming ``entry`` (announce, or resume after a reconnect).

        A paused entry's file is opened again (``server_busy`` when the server's open-file limit is reached), and
        an entry recovered after a restart has its running hash rebuilt from the stored bytes first. Raises
        :class:`UploadError`; the entry is then unchanged (or failed, if its stored bytes are unusable).
        """
        if not entry.status.finished and entry.writer is None:
            self._reopen(session, entry)
        previous = entry.owner
        entry.owner = owner
        if previous is not None and previous is not owner:
            previous.entry_changed(entry)
        if not entry.status.finished:
            resumed = entry.status is EntryStatus.PAUSED
            entry.status = EntryStatus.UPLOADING
            self._uploading_count = None
            entry.deadline = None
            self._cancel_expiry(entry)
            entry.last_activity = self.clock.seconds()
            self._schedule_timeout(session, entry, entry.slot.chunk_timeout)
            if resumed:
                self._save(session, entry, durable=False)

    def current(self, session: UploadSession, entry: Entry) -> Entry | None:
        """The entry as it is now, None once it is gone (a cluster registry asks Redis)."""
        return entry if session.entries.get(entry.entry_id) is entry else None

    def _reopen(self, session: UploadSession, entry: Entry) -> None:
        self._check_open_files()
        try:
            if entry.needs_hash_rebuild:
                with self.store.read_partial(session.session_id, entry.entry_id) as stored:
                    entry.rebuild_hash(stored, entry.received)
            writer = self.store.reopen(session.session_id, entry.entry_id, entry.received)
        except (OSError, UploadError) as error:
            failure = error if isinstance(error, UploadError) else UploadError(
                ErrorCode.STORAGE_FAILED, f"the stored bytes of {entry.client_name} are gone: {error.strerror}")
            self.fail(session, entry, failure)
            raise failure from None
        entry.writer = writer
        self.open_files += 1

    def complete(self, session: UploadSession, entry: Entry) -> "Deferred[None] | None":
        """Every byte arrived: close the file (final content check included) and start the consume TTL.

        A writer that closes in a thread makes this a Deferred, fired once the entry is complete (or failed).
        """
        try:
            closing = entry.finish()
        except UploadError as error:
            self.fail(session, entry, error)
            raise
        if closing is None:
            self._completed(session, entry)
            return None

        def failed(failure: Failure) -> Failure:
            if failure.check(UploadError):
                self.fail(session, entry, failure.value)
            return failure

        return closing.addCallbacks(lambda _: self._completed(session, entry), failed)

    def _completed(self, session: UploadSession, entry: Entry) -> None:
        self.open_files -= 1
        self._cancel_timeout(entry)
        self._expire_after(session, entry, self.complete_ttl)

    def fail(self, session: UploadSession, entry: Entry, error: UploadError) -> None:
        """Mark the entry failed and delete its bytes; the entry stays (its TTL) so the application can report it."""
        if entry.status.finished:
            return
        self._discard_bytes(session, entry)
        entry.status = EntryStatus.ERROR
        entry.error, entry.error_message = error.code, error.message
        self._cancel_timeout(entry)
        self._expire_after(session, entry, self.complete_ttl)

    def _discard_bytes(self, session: UploadSession, entry: Entry) -> None:
        self._release_writer(entry, keep_bytes=False)
        if entry.path is not None:
            self.store.delete(entry.path)
            entry.path = None
        else:
            # A paused entry's partial file is closed but still there.
            self.store.delete_partial(session.session_id, entry.entry_id)

    def uploading_count(self) -> int:
        """Entries being streamed right now, on every session (sizes flow-control windows).

        Asked at every ack, so the count is kept for :data:`UPLOADING_COUNT_MAX_AGE` seconds: an entry that starts
        streaming drops it at once (shares shrink immediately), one that stops lets it age out (shares grow back
        within that time) — instead of a walk over every entry of the server per ack.
        """
        now = self.clock.seconds()
        if self._uploading_count is None or now - self._uploading_counted_at >= UPLOADING_COUNT_MAX_AGE:
            self._uploading_count = sum(1 for session in self.sessions.values()
                                        for entry in session.entries.values()
                                        if entry.status is EntryStatus.UPLOADING)
            self._uploading_counted_at = now
        return self._uploading_count

    def connection_count(self) -> int:
        """Authenticated connections open on this server now (sizes first windows).

        Entries announced in a burst on already open sockets are accepted one by one: counted by uploading
        entries, the first of them would share the budget with nobody and take large windows the rest then queue
        behind. Counted by open connections, every one of them starts at its share.
        """
        return self._connections

    # -- resume after a reload ----------------------------------------------------------------------------------

    def adoptable(self, session_ids: Iterable[str], into: UploadSession) -> list[EntryInfo]:
        """Paused entries of earlier pages a new page may take over, newest session first, at most MAX_ADOPTABLE.

        ``session_ids`` come from the new page's signed token, which lists only upload sessions of the same Django
        session: that list is what keeps adoption inside one user's session.
        """
        found: list[EntryInfo] = []
        for session_id in session_ids:
            session = self.sessions.get(session_id)
            if session is None or session is into:
                continue
            found += [entry.info() for entry in session.entries.values()
                      if entry.status in ADOPTABLE_STATES and entry.slot_name in into.slots]
        return found[:MAX_ADOPTABLE]

    #: :meth:`adoptable` as known here and now (a cluster registry's ``adoptable`` asks Redis first).
    adoptable_now = adoptable

    def entry_ids(self, session_id: str) -> set[int]:
        """The ids of a session's unconsumed entries (empty for an unknown session)."""
        session = self.sessions.get(session_id)
        return set(session.entries) if session is not None else set()

    def adopt(self, from_session_id: str, entry_id: int, into: UploadSession, owner: EntryOwner, *,
              ref: str | None = None) -> Entry:
        """Move a paused entry of an earlier page into ``into`` and make ``owner`` stream it from its offset.

        Raises ``UploadError(unknown_entry)`` for anything that is not a paused entry of that session in a slot the
        new page has, and the errors of :meth:`claim` (``server_busy``); the entry is then left where it was.
        """
        source = self.sessions.get(from_session_id)
        entry = source.entries.get(entry_id) if source is not None and source is not into else None
        if source is None or entry is None or entry.status not in ADOPTABLE_STATES \
                or entry.slot_name not in into.slots:
            raise UploadError(ErrorCode.UNKNOWN_ENTRY, f"no paused upload {entry_id} to continue")
        if len(into.entries) >= self.max_session_entries:
            raise UploadError(ErrorCode.TOO_MANY_ENTRIES)
        self._check_open_files()
        if entry.status is EntryStatus.UPLOADING:
            # The earlier page's socket has not closed yet (a reload races its own unload): pause the entry here,
            # so its file is closed before it moves; the old connection is told ``moved`` when it is claimed.
            self._cancel_timeout(entry)
            self._release_writer(entry, keep_bytes=True)
            entry.status = EntryStatus.PAUSED
        try:
            self.store.move_partial(from_session_id, into.session_id, entry_id)
        except OSError as error:
            raise UploadError(ErrorCode.STORAGE_FAILED,
                              f"could not continue {entry.client_name}: {error.strerror}") from error
        self._cancel_expiry(entry)
        del source.entries[entry_id]
        self.records.delete(from_session_id, entry_id)
        if ref:
            entry.ref = ref
        into.entries[entry_id] = entry
        self._save(into, entry, durable=True)
        self._forget_if_idle(source)
        self.claim(into, entry, owner)
        return entry

    # -- calls from the application (through the bridge) -------------------------------------------------------

    def list_entries(self, session_id: str, slot: str | None = None) -> list[EntryInfo]:
        """Every unconsumed entry of the session (optionally of one slot), oldest first."""
        session = self.sessions.get(session_id)
        if session is None:
            return []
        return [e.info() for e in session.entries.values() if slot is None or e.slot_name == slot]

    def finished_entries(self, session_id: str, slot: str) -> list[EntryInfo]:
        """Complete and failed entries of a slot (a listing; consuming goes through :meth:`claim_complete`)."""
        return [info for info in self.list_entries(session_id, slot)
                if info.status in (EntryStatus.COMPLETE, EntryStatus.ERROR)]

    def claim_complete(self, session_id: str, slot: str, ttl: float | None = None) -> list[EntryInfo]:
        """Claim the slot's complete entries nobody holds, oldest first, for one consuming request.

        Two requests can never get the same entry: the claim is made here, in the reactor thread, in one step.
        A claimed entry outlives a cancel and its TTL until :meth:`consume` or :meth:`release` (or the claim's own
        ``ttl``, for a request that died without either).
        """
        session = self.sessions.get(session_id)
        if session is None:
            return []
        lease = self.claim_ttl if ttl is None else ttl
        claimed = []
        for entry in session.entries.values():
            if entry.slot_name != slot or entry.status is not EntryStatus.COMPLETE or entry.claimed_until is not None:
                continue
            entry.claimed_until = self.clock.seconds() + lease
            self._claims[entry.entry_id] = self.clock.callLater(lease, self._claim_expired, session, entry)
            claimed.append(entry.info())
        return claimed

    def release(self, session_id: str, entry_ids: Iterable[int]) -> None:
        """Give claimed entries back untouched (the consuming code raised); a cancel made meanwhile applies now."""
        session = self.sessions.get(session_id)
        if session is None:
            return
        for entry_id in entry_ids:
            entry = session.entries.get(entry_id)
            if entry is not None and entry.claimed_until is not None:
                self._end_claim(session, entry)

    def _claim_expired(self, session: UploadSession, entry: Entry) -> None:
        self._claims.pop(entry.entry_id, None)
        log.warn("The claim on upload {name} ran out before it was consumed; it is available again",
                 name=entry.client_name)
        self._end_claim(session, entry)

    def _end_claim(self, session: UploadSession, entry: Entry) -> None:
        entry.claimed_until = None
        call = self._claims.pop(entry.entry_id, None)
        if call is not None and call.active():
            call.cancel()
        if entry.cancel_pending:
            self._remove(session, entry)
        elif entry.deadline is not None and entry.deadline <= self.clock.seconds():
            self._remove(session, entry)

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
        """Cancel ``entry``, delete its bytes, and tell its connection (once).

        An entry a consuming request holds is not pulled from under it: it is dropped when the claim ends, unless
        the request consumed it first.
        """
        if entry.status is EntryStatus.CANCELLED:
            return
        if entry.claimed_until is not None:
            entry.cancel_pending = True
            return
        if entry.status in (EntryStatus.COMPLETE, EntryStatus.ERROR):
            # Cancelling a finished upload means the application does not want it: drop it now.
            self._remove(session, entry)
            entry.status = EntryStatus.CANCELLED
        else:
            self._discard_bytes(session, entry)
            entry.status = EntryStatus.CANCELLED
            entry.error = ErrorCode.CANCELLED
            entry.error_message = "cancelled"
            self._cancel_timeout(entry)
            # A cancelled entry is kept only briefly, so late frames for it are dropped quietly.
            self._expire_after(session, entry, 0 if entry.owner is None else min(self.complete_ttl, CANCELLED_TTL))
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
        entry = Entry(self._new_entry_id(), ref or secrets.token_hex(8), slot_name,
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
                sha256, head = sha256_and_head(source_path)
            entry.detected_type = check_content(entry.slot, name, client_type, head)
            entry.sha256 = sha256
            try:
                entry.path = self.store.adopt(session_id, entry.entry_id, source_path)
            except OSError as failure:
                raise UploadError(ErrorCode.STORAGE_FAILED,
                                  f"could not store {name}: {failure.strerror}") from failure
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
        self._discard_bytes(session, entry)
        self._cancel_expiry(entry)
        self._cancel_timeout(entry)
        call = self._claims.pop(entry.entry_id, None)
        if call is not None and call.active():
            call.cancel()
        entry.claimed_until = None
        self.records.delete(session.session_id, entry.entry_id)
        session.entries.pop(entry.entry_id, None)
        self._used_ids.discard(entry.entry_id)
        self._forget_if_idle(session)

    def _expire_after(self, session: UploadSession, entry: Entry, seconds: float, *, persist: bool = True) -> None:
        """Set the entry's deadline ``seconds`` from now (recorded durably) and delete it then."""
        self._cancel_expiry(entry)
        entry.deadline = self.clock.seconds() + max(0.0, seconds)
        if persist and seconds > 0:
            self._save(session, entry, durable=True)

        def expire() -> None:
            self._expiry.pop(entry.entry_id, None)
            if entry.claimed_until is not None:
                return  # a request is reading it: the claim's end removes it (the deadline has passed)
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
        """Stop every timer and close every file (service stop); the records let the next start recover it all.

        Entries being streamed are recorded as paused, so the next server gives them a grace for a resume.
        """
        for call in [*self._expiry.values(), *self._timeouts.values(), *self._claims.values()]:
            if call.active():
                call.cancel()
        self._expiry.clear()
        self._timeouts.clear()
        self._claims.clear()
        for session in self.sessions.values():
            for entry in session.entries.values():
                if entry.status is EntryStatus.UPLOADING:
                    entry.status = EntryStatus.PAUSED
                    entry.deadline = self.clock.seconds() + self.resume_grace
                    self._release_writer(entry, keep_bytes=True)
                    self._save(session, entry, durable=True)
        self.records.close()

    def __iter__(self) -> Iterator[UploadSession]:
        return iter(list(self.sessions.values()))


def sha256_and_head(path: str) -> tuple[str, bytes]:
    """The file's SHA-256 and its first HEAD_BYTES bytes, in one read."""
    digest = hashlib.sha256()
    with open(path, "rb") as source:
        head = source.read(HEAD_BYTES)
        digest.update(head)
        while block := source.read(1 << 20):
            digest.update(block)
    return digest.hexdigest(), head
