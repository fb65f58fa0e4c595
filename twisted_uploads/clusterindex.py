"""What Django calls in scale-out: the application side of the registry, on Redis and the shared store.

:class:`ClusterIndex` has the names and the meaning of :class:`~twisted_uploads.registry.UploadRegistry`'s
application calls (``list_entries``, ``claim_complete``, ``release``, ``consume``, ``cancel``, ``ingest_file``),
so the bridge calls either one the same way; here every call returns a Deferred. The entries may have been received
by any upload node: their records are in Redis (:class:`~twisted_uploads.redisstate.RedisState`), their bytes in
the store every node shares (a directory or an S3 bucket), which is where consume and cancel delete them.

Consuming is a claim, as in-process: a claimed entry is handed to one request only, and neither a cancel nor its
TTL deletes it until that request consumed or released it (or the claim's own TTL ran out).
"""

from __future__ import annotations

import os
import secrets
from typing import Any, Iterable

from twisted.internet import defer, threads
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from .clusterrecords import delete_stored_bytes
from .entries import Entry, EntryInfo
from .errors import ErrorCode, UploadError
from .records import EntryRecord
from .redisstate import RedisState, default_node_id
from .registry import DEFAULT_CLAIM_TTL, DEFAULT_MAX_SESSION_ENTRIES, sha256_and_head
from .slots import SlotConfig
from .validation import check_announce, check_content, sanitize_name, sanitize_relative_path

log = Logger()

#: Registry defaults (UploadRegistry's), so both modes apply the same limits unless configured.
DEFAULT_COMPLETE_TTL = 3600.0
DEFAULT_MAX_SESSION_BYTES = 10 * 1024**3


def entry_info(record: EntryRecord) -> EntryInfo:
    """The snapshot Django sees of a record (its ``path`` is where the bytes are: a file or ``s3://``)."""
    return Entry.from_record(record).info()


class ClusterIndex:
    """The application's view of every node's entries, for one Django process."""

    def __init__(self, state: RedisState, store: Any, *, clock: IReactorTime | None = None, reactor: Any = None,
                 complete_ttl: float = DEFAULT_COMPLETE_TTL, claim_ttl: float = DEFAULT_CLAIM_TTL,
                 max_session_entries: int = DEFAULT_MAX_SESSION_ENTRIES,
                 max_session_bytes: int = DEFAULT_MAX_SESSION_BYTES) -> None:
        self.state = state
        self.store = store
        self.reactor = reactor if reactor is not None else state.reactor
        #: Time for TTLs and claims (wall time in production; a ``task.Clock`` in tests).
        self.clock: IReactorTime = clock if clock is not None else self.reactor
        self.complete_ttl = complete_ttl
        self.claim_ttl = claim_ttl
        self.max_session_entries = max_session_entries
        self.max_session_bytes = max_session_bytes

    @classmethod
    def connect(cls, url: str, store: Any, *, timeout: float = 2.0, reactor: Any = None, prefix: str = "tu:",
                node_id: str | None = None, **options: Any) -> "defer.Deferred[ClusterIndex]":
        """Connect to the Redis at ``url``; ``registry_unavailable`` within ``timeout`` when it does not answer."""
        d = RedisState.connect(url, node_id=node_id or f"django-{default_node_id()}", timeout=timeout,
                               prefix=prefix, reactor=reactor)
        return d.addCallback(lambda state: cls(state, store, reactor=reactor, **options))

    def close(self) -> "defer.Deferred[None]":
        """Disconnect from Redis."""
        return self.state.close()

    # -- the application calls ----------------------------------------------------------------------------------

    @defer.inlineCallbacks
    def list_entries(self, session_id: str, slot: str | None = None) -> Any:
        """Every unconsumed entry of the session (optionally of one slot), oldest first."""
        records = yield self.state.session_records(session_id)
        now = self.clock.seconds()
        return [entry_info(record) for record in records
                if (slot is None or record.slot == slot) and not _expired(record, now)]

    @defer.inlineCallbacks
    def claim_complete(self, session_id: str, slot: str, ttl: float | None = None) -> Any:
        """Claim the slot's complete entries nobody holds, oldest first, for one consuming request.

        Two requests — in any processes — never get the same entry: the claim is one Redis script.
        """
        lease = self.claim_ttl if ttl is None else ttl
        records = yield self.state.claim_complete(session_id, slot, lease, self.clock.seconds())
        return [entry_info(record) for record in records]

    @defer.inlineCallbacks
    def release(self, session_id: str, entry_ids: Iterable[int]) -> Any:
        """Give claimed entries back untouched; one cancelled meanwhile (or past its deadline) goes now."""
        removed = yield self.state.release(session_id, list(entry_ids), self.clock.seconds())
        for record in removed:
            yield delete_stored_bytes(self.store, record)
        return None

    @defer.inlineCallbacks
    def consume(self, session_id: str, entry_id: int) -> Any:
        """The application is done with an entry: forget it and delete its bytes. Idempotent."""
        record = yield self.state.consume(session_id, entry_id)
        if record is not None:
            yield delete_stored_bytes(self.store, record)
        return None

    @defer.inlineCallbacks
    def cancel(self, session_id: str, ref_or_entry_id: str | int) -> Any:
        """Cancel an entry by its client ref or entry id; the node streaming it is told (and tells its client).

        A claimed entry is dropped when its claim ends; a finished or paused one goes now, bytes included; a
        streaming one is marked cancelled and its node deletes what it wrote. ``unknown_entry`` if there is none.
        """
        cancellation = yield self.state.cancel_entry(session_id, ref_or_entry_id, now=self.clock.seconds())
        if cancellation.outcome == "removed":
            yield delete_stored_bytes(self.store, cancellation.record, cancellation.previous_status)
        return entry_info(cancellation.record)

    @defer.inlineCallbacks
    def ingest_file(self, session_id: str, slots: dict[str, SlotConfig], slot_name: str, client_name: str,
                    client_type: str, source_path: str | None, ref: str | None = None, *,
                    size: int | None = None, sha256: str | None = None, head: bytes | None = None,
                    error: UploadError | None = None, relative_path: str | None = None) -> Any:
        """Record a file posted without the WebSocket, by the rules a streamed file obeys, and move it to the store.

        As :meth:`UploadRegistry.ingest_file`: a file that breaks a rule becomes an errored entry (its bytes
        deleted), not an exception. Only ``registry_unavailable`` is raised (the file is deleted then too).
        """
        name = sanitize_name(client_name)
        slot = slots.get(slot_name)
        if size is None:
            size = os.path.getsize(source_path) if source_path is not None else 0
        now = self.clock.seconds()
        record = EntryRecord(session=session_id, entry=0, ref=ref or secrets.token_hex(8), slot=slot_name,
                             config=(slot or SlotConfig()).to_dict(), name=name, type=client_type, size=size,
                             status="uploading", received=size, relative_path=sanitize_relative_path(relative_path),
                             deadline=now + self.complete_ttl)
        admitted = False
        try:
            if error is not None:
                raise error
            if source_path is None:
                raise UploadError(ErrorCode.STORAGE_FAILED, f"no stored bytes for {name}")
            if slot is None:
                raise UploadError(ErrorCode.UNKNOWN_SLOT, f"no upload slot named {slot_name!r}")
            check_announce(slot, name, client_type, size)
            record = yield self.state.admit(record, max_session_entries=self.max_session_entries,
                                            max_entries=slot.max_entries, max_session_bytes=self.max_session_bytes)
            admitted = True
            if sha256 is None or head is None:
                sha256, head = yield threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                                               sha256_and_head, source_path)
            record.detected_type = check_content(slot, name, client_type, head)
            record.sha256 = sha256
            try:
                record.location = yield defer.maybeDeferred(self.store.adopt, session_id, record.entry, source_path)
            except OSError as failure:
                raise UploadError(ErrorCode.STORAGE_FAILED, f"could not store {name}: {failure.strerror}") from None
            record.status = "complete"
        except UploadError as refusal:
            _unlink(source_path)
            if refusal.code is ErrorCode.REGISTRY_UNAVAILABLE:
                raise
            record.status, record.error, record.message = "error", refusal.code.value, refusal.message
        record.deadline = now + self.complete_ttl
        if not admitted:
            # Refused before it had a place: recorded anyway, so the page shows why (bounds do not apply).
            record = yield self.state.admit(record, max_session_entries=None, max_entries=None,
                                            max_session_bytes=None)
            return entry_info(record)
        try:
            yield self.state.save(record)
        except UploadError:
            if record.location is not None:
                yield delete_stored_bytes(self.store, record)
            raise
        return entry_info(record)

    # -- expiry ---------------------------------------------------------------------------------------------------

    @defer.inlineCallbacks
    def expire_due(self, limit: int = 100) -> Any:
        """Remove the records past their deadline that nobody holds, deleting their bytes; how many.

        Upload nodes sweep on their own (``ClusterRegistry.sweep``); any other process may too, since each record
        goes to one caller only.
        """
        records = yield self.state.take_due(self.clock.seconds(), limit)
        for record in records:
            yield delete_stored_bytes(self.store, record)
        return len(records)


def _expired(record: EntryRecord, now: float) -> bool:
    """Past its deadline and unclaimed: gone for the application, even before a node's expiry removed it."""
    if record.claimed_until is not None and record.claimed_until > now:
        return False
    return record.cancel_pending or (record.deadline is not None and record.deadline <= now)


def _unlink(path: str | None) -> None:
    if path is not None:
        try:
            os.unlink(path)
        except OSError:
            pass
