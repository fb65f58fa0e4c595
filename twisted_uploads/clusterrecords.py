"""How a cluster node's registry writes to Redis: entry saves in order, and acks only for recorded parts.

:class:`RedisRecords` is the in-process registry's record seam (:class:`~.records.IEntryRecords`) written to Redis;
:class:`RecordedWriter` holds back a remote store's durable offset until the entry's record names the new part.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from twisted.internet.defer import Deferred, DeferredList, fail, maybeDeferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from .errors import ErrorCode, UploadError
from .records import EntryRecord, IEntryRecords

if TYPE_CHECKING:
    from .cluster import ClusterRegistry

log = Logger()


def unavailable() -> UploadError:
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
            return fail(unavailable())
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
        return when_done(last)

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
        return logged(maybeDeferred(self.inner.suspend), "pause")

    def close(self) -> Deferred[str]:
        return maybeDeferred(self.inner.close)

    def abort(self) -> Deferred[Any]:
        return logged(maybeDeferred(self.inner.abort), "discard")


def when_done(deferred: Deferred[None]) -> Deferred[None]:
    """A Deferred that fires after ``deferred`` (which keeps its own result for its other waiters)."""
    waiter: Deferred[None] = Deferred()
    deferred.addBoth(lambda result: (waiter.callback(None), result)[1])
    return waiter


def logged(deferred: Deferred[Any], doing: str) -> Deferred[Any]:
    def failed(failure: Failure) -> None:
        log.warn("Could not {doing} an upload in the store: {error}", doing=doing, error=failure.getErrorMessage())
    return deferred.addErrback(failed)


def delete_stored_bytes(store: Any, record: EntryRecord, status: str | None = None) -> Deferred[Any]:
    """Delete what the store holds for a record Redis let go of: its complete object or file, or the partial bytes
    of an entry that was paused (``status``, default the record's: what it was before a cancel removed it).

    An entry that was streaming keeps its bytes here: its node holds the writer and deletes them itself. Failures
    are logged, not raised: the record is gone, so there is nothing left to retry against.
    """
    status = record.status if status is None else status
    if record.location:
        deleting, doing = maybeDeferred(store.delete, record.location), "delete"
    elif status != "paused":
        return succeed(None)
    elif record.store and hasattr(store, "abort_state"):
        deleting, doing = maybeDeferred(store.abort_state, record.store), "abort"
    elif hasattr(store, "delete_partial"):
        deleting, doing = maybeDeferred(store.delete_partial, record.session, record.entry), "delete"
    else:
        return succeed(None)
    return logged(deleting, doing)
