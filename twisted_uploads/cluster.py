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

from typing import TYPE_CHECKING, Any, Callable, Iterable

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, fail, maybeDeferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from .entries import Entry, EntryInfo, EntryOwner, EntryStatus
from .errors import ErrorCode, UploadError
from .records import EntryRecord, IEntryRecords
from .registry import UploadRegistry, UploadSession
from .slots import SlotConfig
from .validation import check_announce, sanitize_name

if TYPE_CHECKING:
    from .redisstate import RedisState
    from .service import UploadServer

log = Logger()

#: Seconds between two sweeps of the cluster's deadline index (expiry of paused and unconsumed entries).
SWEEP_INTERVAL = 1.0
#: Seconds a node waits before it tries Redis again after a failed connect at start-up.
RECONNECT_DELAY = 2.0
#: How often, and how far apart (seconds), a node tries to record a completed entry before giving up on it.
COMPLETE_SAVE_ATTEMPTS = 5
COMPLETE_SAVE_DELAY = 1.0


def _unavailable() -> UploadError:
    return UploadError(ErrorCode.REGISTRY_UNAVAILABLE, "the upload registry (Redis) is not connected yet")


@implementer(IEntryRecords)
class RedisRecords:
    """The in-process registry's record seam, written to Redis: saves of one entry are chained in order, and
    :meth:`flush` says when the latest one is stored (``accepted`` and ``complete`` wait for it)."""

    def __init__(self, registry: "ClusterRegistry") -> None:
        self._registry = registry
        self._last: dict[tuple[str, int], Deferred[Any]] = {}

    @property
    def server_id(self) -> str:
        state = self._registry.state
        return state.node_id if state is not None else ""

    def _chain(self, key: tuple[str, int], step: Callable[[], Deferred[Any]]) -> Deferred[Any]:
        """Run ``step`` after the entry's previous save; the result fails when this save did (logged here)."""
        previous = self._last.get(key)
        settled: Deferred[None] = Deferred()  # never fails: the next save of the entry waits for it
        outcome: Deferred[Any] = Deferred()

        def run(_: object = None) -> Deferred[Any]:
            return maybeDeferred(step)

        source = run() if previous is None else previous.addBoth(lambda _: run())

        def done(result: object) -> None:
            if self._last.get(key) is settled:
                del self._last[key]
            if isinstance(result, Failure):
                log.warn("Could not store the record of upload {entry}: {error}", entry=key[1],
                         error=result.getErrorMessage())
            settled.callback(None)
            outcome.callback(result) if not isinstance(result, Failure) else outcome.errback(result)

        self._last[key] = settled
        source.addBoth(done)
        return outcome

    def save(self, record: EntryRecord, durable: bool = True) -> Deferred[Any]:
        """Save in order; a failure is logged (the registry's status changes need no answer)."""
        return self.save_checked(record).addErrback(lambda failure: None)

    def save_checked(self, record: EntryRecord) -> Deferred[Any]:
        """Save in order; the Deferred fails when Redis did not take it (what must be known before an ack)."""
        state = self._registry.state
        record.server = self.server_id or record.server
        if state is None:
            return fail(_unavailable())
        return self._chain((record.session, record.entry), lambda: state.save(record))

    def delete(self, session_id: str, entry_id: int) -> Deferred[Any]:
        state = self._registry.state
        if state is None:
            return succeed(None)
        return self._chain((session_id, entry_id), lambda: state.delete(session_id, entry_id)).addErrback(
            lambda failure: None)

    def flush(self, session_id: str, entry_id: int) -> Deferred[None]:
        """Fires once the entry's latest save or delete is done (failures were logged)."""
        last = self._last.get((session_id, entry_id))
        if last is None:
            return succeed(None)
        return _when_done(last)

    def idle(self) -> Deferred[Any]:
        """Fires once every save and delete issued so far is done (service stop)."""
        return DeferredList([self.flush(*key) for key in list(self._last)])

    def recover(self) -> list[EntryRecord]:
        return []  # a node never "recovers": the entries are in Redis, and any node resumes any of them

    def sweep(self, max_age: float) -> int:
        return 0

    def close(self) -> None:
        pass


class RecordedWriter:
    """Wraps a remote store's writer so its ``durable`` offset grows only once the record names the new part.

    A node that dies right after acknowledging must leave a record from which another node finds every
    acknowledged byte: so a part's completion is first written to Redis, and only then passed on to the
    connection (which acknowledges up to ``durable``).
    """

    def __init__(self, inner: Any, save: Callable[[], Deferred[Any]]) -> None:
        self.inner = inner
        self.durable: int = inner.durable
        self._save = save
        self._callback: Callable[[int], None] | None = None
        inner.watch(self._grew)

    @property
    def pending(self) -> int:
        return int(self.inner.pending) + (int(self.inner.durable) - self.durable)

    def _grew(self, durable: int) -> None:
        def recorded(_: object) -> None:
            if durable > self.durable:
                self.durable = durable
                if self._callback is not None:
                    self._callback(durable)

        # A save that failed (Redis down) acknowledges nothing: the next part's save names this one too, and a
        # client that waits too long reconnects and resumes from what the record says.
        self._save().addCallbacks(recorded, lambda failure: None)

    def watch(self, callback: Callable[[int], None]) -> None:
        self._callback = callback

    def write(self, data: bytes) -> None:
        self.inner.write(data)

    def state(self) -> dict[str, Any]:
        return dict(self.inner.state())

    def suspend(self) -> Deferred[Any]:
        return _logged(maybeDeferred(self.inner.suspend), "pause")

    def close(self) -> Deferred[str]:
        return maybeDeferred(self.inner.close)

    def abort(self) -> Deferred[Any]:
        return _logged(maybeDeferred(self.inner.abort), "discard")


def _when_done(deferred: Deferred[None]) -> Deferred[None]:
    """A Deferred that fires after ``deferred`` (which keeps its own result for its other waiters)."""
    waiter: Deferred[None] = Deferred()
    deferred.addBoth(lambda result: (waiter.callback(None), result)[1])
    return waiter


def _logged(deferred: Deferred[Any], doing: str) -> Deferred[Any]:
    def failed(failure: Failure) -> None:
        log.warn("Could not {doing} an upload in the store: {error}", doing=doing, error=failure.getErrorMessage())
    return deferred.addErrback(failed)


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
        return _logged(state.subscribe(self._event), "subscribe to events of")

    @property
    def node_id(self) -> str:
        return self.state.node_id if self.state is not None else ""

    def _redis(self) -> "RedisState":
        if self.state is None:
            raise _unavailable()
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
                _logged(state.delete(session.session_id, record.entry), "forget the refused entry of")
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

        return self.records.save_checked(entry.to_record(session.session_id)).addCallbacks(
            lambda _: entry, retry)

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

        _logged(self.cancel(session.session_id, entry.entry_id), "cancel").addBoth(answered)

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
                self._delete_bytes(record)  # streaming elsewhere ("cancelled"): that node deletes them
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
            _logged(maybeDeferred(self.store.delete, entry.path), "delete")
            entry.path = None
        elif not streaming:
            self._delete_bytes(entry.to_record(session.session_id))

    def sweep(self) -> Deferred[Any]:
        """Delete every entry whose deadline passed (any node's), unless a request holds it."""
        if self.state is None:
            return succeed(None)
        if self._sweeping is not None:
            return _when_done(self._sweeping)  # one sweep at a time: the caller waits for the one running
        self._sweeping = sweeping = Deferred()

        def due(records: list[EntryRecord]) -> Deferred[Any]:
            deleted = []
            for record in records:
                session = self.sessions.get(record.session)
                entry = session.entries.get(record.entry) if session is not None else None
                if entry is not None and session is not None:
                    self._drop_local(session, entry)
                log.info("Upload {name} ({status}) expired unconsumed", name=record.name, status=record.status)
                deleted.append(self._delete_bytes(record))
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

    def _delete_bytes(self, record: EntryRecord) -> Deferred[Any]:
        """Delete a record's bytes wherever they are (complete object, S3 upload in progress, partial file)."""
        if record.location:
            return _logged(maybeDeferred(self.store.delete, record.location), "delete")
        if self.remote_store:
            if record.store:
                return _logged(maybeDeferred(self.store.abort_state, record.store), "abort")
            return succeed(None)
        return _logged(maybeDeferred(self.store.delete_partial, record.session, record.entry), "delete")

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


class ClusterService(Service):
    """Connects an :class:`UploadServer` to Redis as a cluster node (``twistd uploads --node``).

    The server answers ``registry_unavailable`` until Redis answers (clients retry with backoff); a node whose
    Redis is down at start keeps trying every :data:`RECONNECT_DELAY` seconds instead of exiting.
    """

    def __init__(self, server: "UploadServer", redis_url: str, store: Any, *, timeout: float = 2.0,
                 node_id: str | None = None, sweep_interval: float = SWEEP_INTERVAL) -> None:
        self.server = server
        self.redis_url = redis_url
        self.store = store
        self.timeout = timeout
        self.node_id = node_id
        self.registry = ClusterRegistry(store, server.clock, sweep_interval=sweep_interval,
                                        **server._registry_options)
        self._retry: Any = None
        self._state: RedisState | None = None

    def startService(self) -> None:
        super().startService()
        self.server.use_registry(self.registry)
        self._connect()

    def _connect(self) -> None:
        from .redisstate import RedisState

        self._retry = None

        def connected(state: "RedisState") -> None:
            if not self.running:
                _logged(state.close(), "close the Redis connection of")
                return
            self._state = state
            log.info("Upload node {node} connected to Redis at {url}", node=state.node_id, url=self.redis_url)
            self.registry.connected(state)

        def failed(failure: Failure) -> None:
            if not self.running:
                return
            log.warn("Redis at {url} is unreachable ({error}); trying again in {delay:g} s", url=self.redis_url,
                     error=failure.getErrorMessage(), delay=RECONNECT_DELAY)
            self._retry = self.server.clock.callLater(RECONNECT_DELAY, self._connect)

        RedisState.connect(self.redis_url, node_id=self.node_id, timeout=self.timeout).addCallbacks(
            connected, failed)

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self.registry.shutdown()

        def close(_: object) -> Any:
            if self._state is not None:
                return _logged(self._state.close(), "close the Redis connection of")
            return None

        return self.registry.stopped().addBoth(close)


def cluster_service(server: "UploadServer", redis_url: str, store: Any, *, timeout: float = 2.0,
                    node_id: str | None = None) -> ClusterService:
    """The service that makes ``server`` an upload node of the cluster on ``redis_url`` storing into ``store``."""
    return ClusterService(server, redis_url, store, timeout=timeout, node_id=node_id)
