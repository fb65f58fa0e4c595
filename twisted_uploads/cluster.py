"""The registry of an upload node in a cluster: Redis holds the truth, the node streams (DESIGN.md §6–7).

Several upload nodes (behind HAProxy or nginx, no stickiness) share one Redis and one store (an S3 bucket or a shared
directory). Redis (:mod:`.redisstate`) holds every entry's record, the claims, the session bounds and the deadlines;
a node keeps in memory only what it streams and what its connected pages need to see. So:

- ``announce`` is admitted by Redis (entry ids unique across nodes, bounds over every node's entries) before the
  client hears ``accepted``; ``complete`` is told only once Redis has the complete record, so the Django worker that
  handles the form's POST (any worker, any host) finds the file.
- ``resume`` always asks Redis to hand the entry over (``take_over``): whichever node streamed it before (dead, or
  alive with the old socket) is told ``moved`` over pub/sub, and this node continues from the *durable* offset — the
  bytes in the store, never more: acknowledgements only ever covered those (for S3 the parts already uploaded, and
  the record names them before the client hears the ack). Where the running hash died with another node, the
  SHA-256 is computed from the stored bytes (read back from a shared directory at once, from S3 once complete).
- Expiry is Redis's too: every node sweeps the deadline index once a second and deletes what it took; an entry a
  Django request has claimed is never due. Local timers only watch chunk timeouts of entries streamed here.
- Cancels from a Django view reach the node streaming the entry over pub/sub; that node tells its client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

from twisted.internet.defer import Deferred, DeferredList, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from .entries import Entry, EntryInfo, EntryOwner, EntryStatus
from .errors import ErrorCode, UploadError
from .clusterrecords import RecordedWriter, RedisRecords, delete_stored_bytes, logged, unavailable, when_done
from .records import EntryRecord
from .registry import UploadRegistry, UploadSession
from .slots import SlotConfig
from .validation import check_announce, sanitize_name

if TYPE_CHECKING:
    from .redisstate import RedisState

log = Logger()

#: Seconds between two sweeps of the cluster's deadline index (expiry of paused and unconsumed entries).
SWEEP_INTERVAL = 1.0
#: How often, and how far apart (seconds), a node tries to record a completed entry before giving up on it.
COMPLETE_SAVE_ATTEMPTS = 5
COMPLETE_SAVE_DELAY = 1.0


class ClusterRegistry(UploadRegistry):
    """An :class:`UploadRegistry` whose records, claims, bounds and deadlines live in Redis (see module doc).

    The connection-facing methods that must ask Redis return Deferreds (``open_session``, ``adoptable``,
    ``announce``, ``claim``, ``adopt``, ``complete``, ``cancel``); the connection accepts either.
    """

    def __init__(self, store: Any, clock: IReactorTime, state: "RedisState | None" = None, *,
                 sweep_interval: float = SWEEP_INTERVAL, **options: Any) -> None:
        self.state: RedisState | None = None
        super().__init__(store, clock, records=RedisRecords(self), **options)
        self.records: RedisRecords  # type: ignore[assignment]
        self.sweep_interval = sweep_interval
        self._sweeper: LoopingCall | None = None
        self._sweeping: Deferred[None] | None = None
        self._admitted: int | None = None
        self._fresh: set[int] = set()
        self._zero_complete: dict[int, Deferred[Any]] = {}
        if state is not None:
            self.connected(state)

    # -- Redis --------------------------------------------------------------------------------------------------

    def connected(self, state: "RedisState") -> Deferred[Any]:
        """Start using ``state``: listen for this node's events and sweep deadlines."""
        self.state = state
        self._sweeper = LoopingCall(self.sweep)
        self._sweeper.clock = self.clock
        self._sweeper.start(self.sweep_interval, now=False)
        return logged(state.subscribe(self._event), "subscribe to events of")

    @property
    def node_id(self) -> str:
        return self.state.node_id if self.state is not None else ""

    def _redis(self) -> "RedisState":
        if self.state is None:
            raise unavailable()
        return self.state

    @property
    def remote_store(self) -> bool:
        """Whether acknowledgements wait for parts (S3) rather than for the local write (a shared directory)."""
        return bool(getattr(self.store, "durable_step", 0))

    # -- sessions -------------------------------------------------------------------------------------------

    def open_session(self, session_id: str, slots: dict[str, SlotConfig]) -> Deferred[UploadSession]:  # type: ignore[override]
        """The session with every entry Redis holds for it (streamed on any node), the newest token's slots."""
        try:
            state = self._redis()
        except UploadError as error:
            return fail(error)

        def loaded(records: list[EntryRecord]) -> UploadSession:
            session = UploadRegistry.open_session(self, session_id, slots)
            self._merge(session, records)
            return session

        return state.session_records(session_id).addCallback(loaded)

    def _merge(self, session: UploadSession, records: Iterable[EntryRecord]) -> None:
        """Bring the local view of ``session`` in line with Redis (entries streamed here stay as they are)."""
        listed = {}
        for record in records:
            listed[record.entry] = record
            entry = session.entries.get(record.entry)
            if entry is None:
                try:
                    session.entries[record.entry] = Entry.from_record(record)
                except (TypeError, ValueError) as error:
                    log.warn("Ignoring an unusable record of upload {entry}: {error}", entry=record.entry,
                             error=error)
            elif not self._streamed_here(entry):
                _refresh(entry, record)
        for entry_id, entry in list(session.entries.items()):
            if entry_id not in listed and not self._streamed_here(entry):
                del session.entries[entry_id]  # consumed, expired or moved away since

    def _streamed_here(self, entry: Entry) -> bool:
        return entry.writer is not None or (entry.owner is not None and entry.server == self.node_id)

    def detach(self, session: UploadSession, owner: EntryOwner) -> None:
        super().detach(session, owner)
        self._forget_unused(session)

    def _forget_unused(self, session: UploadSession) -> None:
        """A session nobody is connected to is forgotten here: Redis has every record it needs."""
        if session.connections > 0 or any(self._streamed_here(e) for e in session.entries.values()):
            return
        for entry in session.entries.values():
            self._cancel_timeout(entry)
            self._cancel_expiry(entry)
        if self.sessions.get(session.session_id) is session:
            del self.sessions[session.session_id]

    # -- announce -------------------------------------------------------------------------------------------

    def _admit(self, session: UploadSession, slot_name: str, client_name: str, mime: str,
               size: object) -> SlotConfig:
        # The counts are Redis's (over every node's entries): only the slot's own rules are checked here.
        slot = session.slots.get(slot_name)
        if slot is None:
            raise UploadError(ErrorCode.UNKNOWN_SLOT, f"no upload slot named {slot_name!r}")
        check_announce(slot, client_name, mime, size)
        return slot

    def _new_entry_id(self) -> int:
        if self._admitted is None:
            return super()._new_entry_id()
        entry_id, self._admitted = self._admitted, None
        return entry_id

    def announce(self, session: UploadSession, owner: EntryOwner, ref: str, slot_name: str,  # type: ignore[override]
                 name: str, mime: str, size: object, relative_path: str | None = None,
                 fingerprint: object = None) -> Deferred[Entry]:
        try:
            state = self._redis()
            client_name = sanitize_name(name)
            slot = self._admit(session, slot_name, client_name, mime, size)
            self._check_open_files()
        except UploadError as error:
            return fail(error)
        assert isinstance(size, int)
        record = EntryRecord(session=session.session_id, entry=0, ref=ref, slot=slot_name, config=slot.to_dict(),
                             name=client_name, type=mime, size=size, status=EntryStatus.UPLOADING.value,
                             server=state.node_id)

        def admitted(record: EntryRecord) -> Deferred[Entry]:
            self._admitted = record.entry
            self._fresh.add(record.entry)
            try:
                entry = UploadRegistry.announce(self, session, owner, ref, slot_name, name, mime, size,
                                                relative_path=relative_path, fingerprint=fingerprint)
            except UploadError as error:
                self._admitted = None
                logged(state.delete(session.session_id, record.entry), "forget the refused entry of")
                return fail(error)
            finally:
                self._fresh.discard(record.entry)
            stored = self._zero_complete.pop(entry.entry_id, None) or self.records.flush(
                session.session_id, entry.entry_id)
            return stored.addCallback(lambda _: entry)

        return state.admit(record, max_session_entries=self.max_session_entries, max_entries=slot.max_entries,
                           max_session_bytes=self.max_session_bytes).addCallback(admitted)

    # -- resume and take-over ---------------------------------------------------------------------------------

    def claim(self, session: UploadSession, entry: Entry, owner: EntryOwner) -> Any:
        """Stream ``entry`` to ``owner``: a fresh entry at once; any other only after Redis handed it over."""
        if entry.entry_id in self._fresh:
            entry.server = self.node_id
            result = super().claim(session, entry, owner)
            self._wrap_writer(session, entry)
            return result
        try:
            state = self._redis()
        except UploadError as error:
            return fail(error)

        def handed_over(record: EntryRecord | None) -> Entry:
            if record is None:
                self._drop_local(session, entry)
                raise UploadError(ErrorCode.UNKNOWN_ENTRY, f"upload {entry.entry_id} is gone")
            if EntryStatus(record.status).finished:
                _refresh(entry, record)
                return entry
            if record.server == self.node_id and entry.writer is not None:
                super(ClusterRegistry, self).claim(session, entry, owner)  # from another connection here
                return entry
            owner_before = entry.owner
            _refresh(entry, record)
            entry.owner = owner_before
            entry.server = self.node_id
            self._continue_at_durable_offset(session, entry)
            super(ClusterRegistry, self).claim(session, entry, owner)
            self._wrap_writer(session, entry)
            return entry

        return state.take_over(session.session_id, entry.entry_id).addCallback(handed_over)

    def current(self, session: UploadSession, entry: Entry) -> Deferred[Entry | None]:  # type: ignore[override]
        """The entry as Redis has it now (None once consumed or expired): a page asks after a finished entry it
        handed to the application, and the node that answers may never have heard of the consume."""
        try:
            state = self._redis()
        except UploadError as error:
            return fail(error)

        def found(record: EntryRecord | None) -> Entry | None:
            if record is None:
                self._drop_local(session, entry)
                return None
            if not self._streamed_here(entry):
                _refresh(entry, record)
            return entry

        return state.get(session.session_id, entry.entry_id).addCallback(found)

    def _continue_at_durable_offset(self, session: UploadSession, entry: Entry) -> None:
        """Set the entry's offset to what the store can give back, and how its hash continues."""
        if self.remote_store:
            parts = (entry.store_state or {}).get("parts") or []
            offset = sum(int(part[2]) for part in parts)
            if not (offset == entry.received and not entry.needs_hash_rebuild and not entry.hashed_by_store):
                entry.restart_at(offset)
            return
        size = self.store.partial_size(session.session_id, entry.entry_id)
        if size is None:
            error = UploadError(ErrorCode.STORAGE_FAILED, f"the stored bytes of {entry.client_name} are gone")
            self.fail(session, entry, error)
            raise error
        if min(size, entry.client_size) != entry.received:
            # Another node wrote more (or less) than this copy knows: its hash is rebuilt from the file.
            entry.received = min(size, entry.client_size)
            entry.forget_hash()

    def _reopen(self, session: UploadSession, entry: Entry) -> None:
        if not self.remote_store:
            super()._reopen(session, entry)
            return
        self._check_open_files()
        try:
            writer = self.store.reopen(session.session_id, entry.entry_id, entry.received, entry.store_state or {})
        except (OSError, UploadError) as error:
            failure = error if isinstance(error, UploadError) else UploadError(
                ErrorCode.STORAGE_FAILED, f"could not continue {entry.client_name}: {error}")
            self.fail(session, entry, failure)
            raise failure from None
        entry.writer = writer
        self.open_files += 1

    def _wrap_writer(self, session: UploadSession, entry: Entry) -> None:
        writer = entry.writer
        if not self.remote_store or writer is None or isinstance(writer, RecordedWriter):
            return
        entry.writer = RecordedWriter(writer, lambda: self.records.save_checked(entry.to_record(session.session_id)))
        on_failure = getattr(writer, "on_failure", None)
        if on_failure is not None:
            on_failure(lambda error: self._store_failed(session, entry, writer, error))

    def _store_failed(self, session: UploadSession, entry: Entry, writer: Any, error: UploadError) -> None:
        """A part could not be stored (the store is down): the entry fails now, its client is told."""
        current = entry.writer
        if not isinstance(current, RecordedWriter) or current.inner is not writer or entry.status.finished:
            return
        log.warn("Upload {name} failed in the store: {error}", name=entry.client_name, error=error.message)
        self.fail(session, entry, error)
        if entry.owner is not None:
            entry.owner.entry_changed(entry)

    def adoptable(self, session_ids: Iterable[str], into: UploadSession) -> Any:  # type: ignore[override]
        """Paused entries of the user's earlier pages, as Redis has them (loaded here for ``adopt``)."""
        try:
            state = self._redis()
        except UploadError as error:
            return fail(error)
        wanted = [sid for sid in session_ids if sid != into.session_id]

        def load(session_id: str) -> Deferred[None]:
            def loaded(records: list[EntryRecord]) -> None:
                session = self.sessions.get(session_id) or UploadRegistry.open_session(self, session_id, {})
                self._merge(session, records)
                self._forget_unused_if_empty(session)
            return state.session_records(session_id).addCallback(loaded)

        def all_loaded(_: object) -> list[EntryInfo]:
            return UploadRegistry.adoptable(self, wanted, into)

        return DeferredList([load(sid) for sid in wanted], fireOnOneErrback=True, consumeErrors=True).addCallbacks(
            all_loaded, lambda failure: failure.value.subFailure)

    def _forget_unused_if_empty(self, session: UploadSession) -> None:
        if not session.entries and not session.connections and self.sessions.get(session.session_id) is session:
            del self.sessions[session.session_id]

    def adopt(self, from_session_id: str, entry_id: int, into: UploadSession, owner: EntryOwner, *,  # type: ignore[override]
              ref: str | None = None) -> Deferred[Entry]:
        try:
            state = self._redis()
            source = self.sessions.get(from_session_id)
            entry = source.entries.get(entry_id) if source is not None else None
            if source is None or entry is None or entry.status.finished or entry.slot_name not in into.slots:
                raise UploadError(ErrorCode.UNKNOWN_ENTRY, f"no paused upload {entry_id} to continue")
            if len(into.entries) >= self.max_session_entries:
                raise UploadError(ErrorCode.TOO_MANY_ENTRIES)
            self._check_open_files()
        except UploadError as error:
            return fail(error)

        def moved(record: EntryRecord | None) -> Any:
            assert source is not None and entry is not None
            if record is None:
                self._drop_local(source, entry)
                raise UploadError(ErrorCode.UNKNOWN_ENTRY, f"no paused upload {entry_id} to continue")
            if entry.writer is not None:
                # Streaming here on the earlier page's socket: close its file before the bytes move.
                self._cancel_timeout(entry)
                self._release_writer(entry, keep_bytes=True)
                entry.status = EntryStatus.PAUSED
            move_partial = getattr(self.store, "move_partial", None)
            if move_partial is not None and not self.remote_store:
                try:
                    move_partial(from_session_id, into.session_id, entry_id)
                except OSError as error:
                    raise UploadError(ErrorCode.STORAGE_FAILED,
                                      f"could not continue {entry.client_name}: {error.strerror}") from error
            source.entries.pop(entry_id, None)
            self._forget_unused_if_empty(source)
            _refresh(entry, record)
            if ref:
                entry.ref = ref
            into.entries[entry_id] = entry
            return self.claim(into, entry, owner)

        return state.move(from_session_id, into.session_id, entry_id).addCallback(moved)

    # -- completion -----------------------------------------------------------------------------------------

    def complete(self, session: UploadSession, entry: Entry) -> Deferred[Entry]:  # type: ignore[override]
        """Close the stored object (S3: the last part and the completion), hash it where the running hash was
        lost, and return once Redis holds the complete record."""
        try:
            entry.check_whole_head()
        except UploadError as error:
            self.fail(session, entry, error)
            return fail(error)
        writer = entry.writer
        assert writer is not None
        stored: Deferred[Any] = maybeDeferred(writer.close)

        def closed(location: str) -> Any:
            entry.writer = None
            entry.path = location
            self.open_files -= 1
            if entry.hashed_by_store:
                return maybeDeferred(self.store.sha256_and_head, location).addCallback(
                    lambda hashed: (location, hashed[0]))
            return (location, None)

        def done(result: tuple[str, str | None]) -> Deferred[Entry]:
            location, sha256 = result
            entry.completed_at(location, sha256)
            self._cancel_timeout(entry)
            self._cancel_expiry(entry)
            entry.deadline = self.clock.seconds() + self.complete_ttl
            return self._record_complete(session, entry, COMPLETE_SAVE_ATTEMPTS)

        def failed(failure: Failure) -> Failure:
            error = failure.value if isinstance(failure.value, UploadError) else UploadError(
                ErrorCode.STORAGE_FAILED, f"could not store {entry.client_name}: {failure.getErrorMessage()}")
            self.fail(session, entry, error)
            return Failure(error)

        result = stored.addCallback(closed).addCallback(done).addErrback(failed)
        if entry.client_size == 0:
            self._zero_complete[entry.entry_id] = result
            result = result.addErrback(lambda failure: None)  # the announce reports it
        return result

    def _record_complete(self, session: UploadSession, entry: Entry, attempts: int) -> Deferred[Entry]:
        """The client hears ``complete`` only once Redis has the complete record (any Django worker then finds
        it): a save that fails is tried again a few times; then the entry fails ``registry_unavailable``."""
        def retry(failure: Failure) -> Any:
            if attempts <= 1 or entry.status is not EntryStatus.COMPLETE:
                error = UploadError(ErrorCode.REGISTRY_UNAVAILABLE,
                                    f"{entry.client_name} arrived but the registry could not record it; upload it again")
                entry.status = EntryStatus.UPLOADING  # so fail() applies: its bytes are deleted
                self.fail(session, entry, error)
                return Failure(error)
            waited: Deferred[None] = Deferred()
            self.clock.callLater(COMPLETE_SAVE_DELAY, waited.callback, None)
            return waited.addCallback(lambda _: self._record_complete(session, entry, attempts - 1))

        def saved(current: object) -> Entry:
            if current is False:
                # Redis refused a stale copy: the entry was cancelled or taken over meanwhile. This node stands
                # down; the stored object is named in the log for an operator (nothing references it any more).
                log.warn("Upload {name} ({entry}) changed in the registry while it completed here; its bytes at "
                         "{location} are no longer referenced", name=entry.client_name, entry=entry.entry_id,
                         location=entry.path)
                entry.error, entry.error_message = ErrorCode.UNKNOWN_ENTRY, "the upload was cancelled or moved"
                self._drop_local(session, entry)
                raise UploadError(ErrorCode.UNKNOWN_ENTRY, "the upload was cancelled or moved")
            return entry

        return self.records.save_checked(entry.to_record(session.session_id)).addCallbacks(saved, retry)

    # -- cancel, failure, expiry ------------------------------------------------------------------------------

    def cancel_entry(self, session: UploadSession, entry: Entry) -> None:
        """Cancel: an entry streamed here is dropped here; any other goes through Redis (claims are Redis's)."""
        if not entry.status.finished and self._streamed_here(entry):
            super().cancel_entry(session, entry)
            return
        if entry.status is EntryStatus.CANCELLED:
            return
        entry.status = EntryStatus.CANCELLED
        owner = entry.owner

        def answered(_: object) -> None:
            # Told once Redis let go of it, so the file chosen next is not counted against it.
            if owner is not None:
                owner.entry_changed(entry)

        logged(self.cancel(session.session_id, entry.entry_id), "cancel").addBoth(answered)

    def cancel(self, session_id: str, ref_or_entry_id: str | int) -> Deferred[EntryInfo]:  # type: ignore[override]
        """Cancel through Redis (a claimed entry stays for its request); delete the bytes when Redis let go."""
        try:
            state = self._redis()
        except UploadError as error:
            return fail(error)

        def cancelled(cancellation: Any) -> EntryInfo:
            record = cancellation.record
            session = self.sessions.get(session_id)
            entry = session.entries.get(record.entry) if session is not None else None
            if entry is not None and session is not None and cancellation.outcome in ("removed", "cancelled"):
                if self._streamed_here(entry) and not entry.status.finished:
                    UploadRegistry.cancel_entry(self, session, entry)  # our own stream: its bytes go here
                elif cancellation.outcome == "removed":
                    self._drop_local(session, entry)
            if cancellation.outcome == "removed" and not (entry is not None and self._streamed_here(entry)):
                delete_stored_bytes(self.store, record, cancellation.previous_status)  # streaming elsewhere ("cancelled"): that node deletes them
            return Entry.from_record(record).info()

        return state.cancel_entry(session_id, ref_or_entry_id, now=self.clock.seconds()).addCallback(cancelled)

    def _expire_after(self, session: UploadSession, entry: Entry, seconds: float, *, persist: bool = True) -> None:
        if seconds <= 0:
            super()._expire_after(session, entry, seconds, persist=persist)
            return
        # Redis's deadline index expires it (on whichever node sweeps first): no local timer.
        self._cancel_expiry(entry)
        entry.deadline = self.clock.seconds() + seconds
        if persist:
            self._save(session, entry, durable=True)

    def _discard_bytes(self, session: UploadSession, entry: Entry) -> None:
        streaming = entry.writer is not None
        self._release_writer(entry, keep_bytes=False)
        if entry.path is not None:
            logged(maybeDeferred(self.store.delete, entry.path), "delete")
            entry.path = None
        elif not streaming:
            delete_stored_bytes(self.store, entry.to_record(session.session_id))

    def sweep(self) -> Deferred[Any]:
        """Delete every entry whose deadline passed (any node's), unless a request holds it."""
        if self.state is None:
            return succeed(None)
        if self._sweeping is not None:
            return when_done(self._sweeping)  # one sweep at a time: the caller waits for the one running
        self._sweeping = sweeping = Deferred()

        def due(records: list[EntryRecord]) -> Deferred[Any]:
            deleted = []
            for record in records:
                session = self.sessions.get(record.session)
                entry = session.entries.get(record.entry) if session is not None else None
                if entry is not None and session is not None:
                    self._drop_local(session, entry)
                log.info("Upload {name} ({status}) expired unconsumed", name=record.name, status=record.status)
                deleted.append(delete_stored_bytes(self.store, record))
            for session in list(self.sessions.values()):
                self._forget_unused(session)
            return DeferredList(deleted)

        def finished(result: object) -> None:
            self._sweeping = None
            if isinstance(result, Failure):
                log.warn("Could not sweep expired uploads: {error}", error=result.getErrorMessage())
            sweeping.callback(None)

        def orphans(records: list[EntryRecord]) -> None:
            # Entries a dead node was streaming have no deadline: they become paused here, with a full grace
            # (when the node died is not known), for their client to resume on any node.
            now = self.clock.seconds()
            for record in records:
                record.status = EntryStatus.PAUSED.value
                record.deadline = now + self.resume_grace
                record.server = self.node_id
                self.records.save(record)

        state = self.state
        return state.take_due(self.clock.seconds()).addCallback(due).addCallback(
            lambda _: state.take_orphans()).addCallback(orphans).addBoth(finished)

    def _drop_local(self, session: UploadSession, entry: Entry) -> None:
        """Forget an entry here without touching its record or bytes (Redis or another node has it now)."""
        self._cancel_timeout(entry)
        self._cancel_expiry(entry)
        if entry.writer is not None:
            self._release_writer(entry, keep_bytes=True)
        if session.entries.get(entry.entry_id) is entry:
            del session.entries[entry.entry_id]

    # -- events from other nodes and from Django ------------------------------------------------------------

    def _event(self, event: dict[str, Any]) -> None:
        session = self.sessions.get(str(event.get("session")))
        entry_id = event.get("entry")
        entry = session.entries.get(entry_id) if session is not None and isinstance(entry_id, int) else None
        if session is None or entry is None:
            return
        kind = event.get("event")
        if kind == "moved":
            self._moved_away(session, entry, str(event.get("to") or ""))
        elif kind == "cancel":
            if not entry.status.finished and self._streamed_here(entry):
                UploadRegistry.cancel_entry(self, session, entry)
            else:
                self._drop_local(session, entry)

    def _moved_away(self, session: UploadSession, entry: Entry, to: str) -> None:
        """Another node took the entry over: stop streaming it here; the connection tells its client ``moved``."""
        owner = entry.owner
        entry.owner = None
        entry.server = to
        if entry.status is EntryStatus.UPLOADING:
            entry.status = EntryStatus.PAUSED
        self._drop_local(session, entry)
        if owner is not None:
            owner.entry_changed(entry)

    # -- stop -------------------------------------------------------------------------------------------------

    def shutdown(self) -> None:
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        super().shutdown()

    def stopped(self) -> Deferred[Any]:
        """Fires once every record the shutdown wrote is in Redis (then the connection may close)."""
        return self.records.idle()


def _refresh(entry: Entry, record: EntryRecord) -> None:
    """Take what Redis says about an entry that is not streamed here."""
    entry.status = EntryStatus(record.status)
    entry.ref = record.ref
    entry.received = record.received
    entry.sha256 = record.sha256
    entry.error = ErrorCode(record.error) if record.error else None
    entry.error_message = record.message
    entry.path = record.location
    entry.store_state = record.store
    entry.deadline = record.deadline
    entry.claimed_until = record.claimed_until
    entry.cancel_pending = record.cancel_pending
    entry.server = record.server
