"""The registry's truth in Redis, shared by every upload node and Django worker (DESIGN.md §7).

Entry records, claims, per-session bounds, cluster-unique entry ids and expiry live in Redis; each step that two
processes could race (admit, take over, claim, release, consume, cancel, expiry) is one Lua script
(:mod:`.redisscripts`), so exactly one of them wins. A node keeps in memory only the entries it streams.

Nodes hear about what happens to their entries elsewhere through a channel per node: ``cancel`` (the application
cancelled an entry the node streams) and ``moved`` (another node took the entry over). Each node also keeps a
heartbeat key with a TTL, so the others can tell which nodes are alive.

Every method returns a Deferred. A Redis that is down, refuses, errs or does not answer within ``timeout`` seconds
fails it with ``UploadError(registry_unavailable)`` naming the URL; nothing waits longer than that.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

from twisted.internet import defer, task
from twisted.logger import Logger

from . import redisscripts as scripts
from .errors import ErrorCode, UploadError
from .records import EntryRecord
from .redisclient import BoundedRedis, RedisAddress, SubscriberFactory
from .redisrecords import decode_record, encode_record
from .registry import CANCELLED_TTL

log = Logger()

#: Seconds a node's heartbeat key lives; it is renewed every third of that.
DEFAULT_HEARTBEAT_TTL = 10.0
#: Candidate ids sent with each admit; the script takes the first one no live entry has.
ID_CANDIDATES = 4


@dataclass(frozen=True)
class Cancellation:
    """What :meth:`RedisState.cancel_entry` did, for a caller that must delete bytes accordingly.

    ``outcome``: ``pending`` (claimed: dropped when the claim ends), ``removed`` (finished or paused: the record is
    gone and its bytes are the caller's to delete), ``cancelled`` (streaming: the owner node was told and deletes
    them), ``noop`` (already cancelled).
    """

    outcome: str
    previous_status: str
    record: EntryRecord


def default_node_id() -> str:
    """hostname-pid-random: unique per process, readable in ``redis-cli``."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"


def _bound(value: int | None) -> str:
    return "" if value is None else str(value)


class RedisState:
    """One process's handle on the shared registry: its node id, its connections, its heartbeat."""

    def __init__(self, redis: BoundedRedis, subscriber: SubscriberFactory, node_id: str, prefix: str,
                 heartbeat_ttl: float, reactor: Any) -> None:
        self._redis = redis
        self._subscriber = subscriber
        self.node_id = node_id
        self.prefix = prefix
        self.url = redis.address.display
        self.timeout = redis.timeout
        self.heartbeat_ttl = heartbeat_ttl
        self.reactor = reactor
        self._heartbeat = task.LoopingCall(self._renew)
        self._heartbeat.clock = reactor
        self._closed = False
        self._beat_failing = False

    @classmethod
    def connect(cls, url: str, *, node_id: str | None = None, timeout: float = 2.0, prefix: str = "tu:",
                reactor: Any = None, heartbeat_ttl: float = DEFAULT_HEARTBEAT_TTL) -> "defer.Deferred[RedisState]":
        """Connect, check that Redis answers, subscribe to this node's channel and start the heartbeat."""
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        try:
            address = RedisAddress.parse(url)
        except ValueError as error:
            return defer.fail(UploadError(ErrorCode.REGISTRY_UNAVAILABLE, f"UPLOADS_REDIS_URL: {error}"))
        node = node_id or default_node_id()
        redis = BoundedRedis(address, timeout, reactor)
        subscriber = SubscriberFactory(address, f"{prefix}events:{node}")
        state = cls(redis, subscriber, node, prefix, heartbeat_ttl, reactor)
        return state._start()

    @defer.inlineCallbacks
    def _start(self) -> Any:
        try:
            yield self._beat()  # fails as soon as the first connection attempt does (a refusal need not wait)
        except UploadError:
            yield self._redis.close()
            raise
        self._subscriber.startConnecting(self._redis.endpoint)
        self._heartbeat.start(self.heartbeat_ttl / 3, now=False).addErrback(
            lambda failure: log.failure("The heartbeat of node {node} stopped", failure, node=self.node_id))
        log.info("Upload registry on {url} as node {node}", url=self.url, node=self.node_id)
        return self

    def close(self) -> "defer.Deferred[None]":
        """Stop the heartbeat, mark this node gone (best effort) and disconnect."""
        if self._closed:
            return defer.succeed(None)
        self._closed = True
        if self._heartbeat.running:
            self._heartbeat.stop()

        def disconnect(_: Any) -> Any:
            closed = defer.gatherResults([self._redis.close(), self._subscriber.disconnect()], consumeErrors=True)
            return closed.addTimeout(self.timeout, self.reactor).addErrback(lambda failure: log.warn(
                "The Redis connections of node {node} did not close cleanly: {why}", node=self.node_id,
                why=failure.getErrorMessage()))

        departed = self._script("leaving", scripts.DEPART, self.node_id)
        departed.addErrback(lambda failure: log.warn("Could not mark node {node} gone: {why}", node=self.node_id,
                                                    why=failure.getErrorMessage()))
        return departed.addCallback(disconnect).addCallback(lambda _: None)

    # -- plumbing ---------------------------------------------------------------------------------------------

    def _script(self, action: str, source: str, *args: Any) -> "defer.Deferred[Any]":
        return self._redis.script(action, source, self.prefix, *args)

    def _beat(self) -> "defer.Deferred[Any]":
        return self._script("heartbeat", scripts.HEARTBEAT, self.node_id, int(self.heartbeat_ttl * 1000))

    def _renew(self) -> "defer.Deferred[None]":
        # A failed beat is logged and the loop goes on: a LoopingCall stops for good at the first error, and a node
        # that stopped beating after a Redis outage would look dead to the others once Redis is back.
        def renewed(_: Any) -> None:
            if self._beat_failing:
                self._beat_failing = False
                log.info("Node {node} renewed its heartbeat again", node=self.node_id)

        def failed(failure: Any) -> None:
            self._beat_failing = True
            log.warn("Node {node} could not renew its heartbeat: {why}", node=self.node_id,
                     why=failure.getErrorMessage())

        return self._beat().addCallbacks(renewed, failed)

    @staticmethod
    def _records(replies: Iterable[Sequence[Any]]) -> list[EntryRecord]:
        return [record for record in map(decode_record, replies) if record is not None]

    # -- records ----------------------------------------------------------------------------------------------

    @defer.inlineCallbacks
    def admit(self, record: EntryRecord, *, max_session_entries: int | None, max_entries: int | None,
              max_session_bytes: int | None) -> Any:
        """Give ``record`` a cluster-unique entry id and insert it, owned by this node, if the bounds allow.

        The bounds count every node's entries of the session (``None`` skips one: an errored no-JS post is
        recorded whatever the counts). Raises ``too_many_files``, ``too_many_entries`` or ``quota_exceeded``.
        """
        record.server = self.node_id
        for _attempt in range(8):
            candidates = [str(secrets.randbelow(0xFFFFFFFF) + 1) for _ in range(ID_CANDIDATES)]
            record.entry = 0
            reply = yield self._script(
                "admit", scripts.ADMIT, record.session, record.slot, record.size, _bound(max_session_entries),
                _bound(max_entries), _bound(max_session_bytes), len(candidates), *candidates, *encode_record(record))
            outcome, detail = reply[0], reply[1]
            if outcome == "ok":
                record.entry = int(detail)
                return record
            if outcome == "too_many_files":
                raise UploadError(ErrorCode.TOO_MANY_FILES, f"{record.slot} takes at most {max_entries} file(s)")
            if outcome == "too_many_entries":
                raise UploadError(ErrorCode.TOO_MANY_ENTRIES,
                                  f"this page holds {detail} uploads, its limit; reload it to start again")
            if outcome == "quota_exceeded":
                raise UploadError(ErrorCode.QUOTA_EXCEEDED)
        raise UploadError(ErrorCode.REGISTRY_UNAVAILABLE, f"the upload registry at {self.url} has no free entry id")

    def save(self, record: EntryRecord) -> "defer.Deferred[bool]":
        """Replace the record's own fields (its claim and owner stay as the scripts left them); stamps this node.

        The deadline index follows ``record.deadline``. False, and nothing written, when the record is gone
        (consumed, expired), was cancelled meanwhile, or another node took it over: this node's copy is stale.
        """
        record.server = self.node_id
        pairs = [pair for pair in _pairs(encode_record(record)) if pair[0] not in ("session", "server")]
        flat = [item for pair in pairs for item in pair]
        d = self._script("save", scripts.SAVE, self.node_id, record.entry, record.session, *flat)
        return d.addCallback(lambda reply: reply == "ok")

    def get(self, session_id: str, entry_id: int) -> "defer.Deferred[EntryRecord | None]":
        """The entry's record, or None."""
        d = self._redis.call("get", "hgetall", f"{self.prefix}e:{entry_id}")

        def parse(stored: Any) -> EntryRecord | None:
            flat = [item for pair in stored.items() for item in pair] if isinstance(stored, dict) else stored
            record = decode_record(flat)
            return record if record is not None and record.session == session_id else None

        return d.addCallback(parse)

    def session_records(self, session_id: str) -> "defer.Deferred[list[EntryRecord]]":
        """Every record of the session, oldest first."""
        return self._script("list", scripts.SESSION_RECORDS, session_id).addCallback(self._records)

    def delete(self, session_id: str, entry_id: int) -> "defer.Deferred[EntryRecord | None]":
        """Remove the record; return it (None when there was none)."""
        return self._script("delete", scripts.REMOVE, session_id, entry_id).addCallback(decode_record)

    def consume(self, session_id: str, entry_id: int) -> "defer.Deferred[EntryRecord | None]":
        """The application is done with the entry: remove its record (the caller deletes its bytes)."""
        return self._script("consume", scripts.REMOVE, session_id, entry_id).addCallback(decode_record)

    def take_over(self, session_id: str, entry_id: int, *,
                  states: Sequence[str] = ("paused", "uploading")) -> "defer.Deferred[EntryRecord | None]":
        """Make this node the entry's owner when its status is one of ``states``; the record as it was.

        The previous owner, when it is another node, is sent ``{"event": "moved", ...}`` so it stops streaming.
        """
        d = self._script("take over", scripts.TAKE_OVER, self.node_id, session_id, entry_id, *states)
        return d.addCallback(decode_record)

    def move(self, from_session: str, to_session: str, entry_id: int, *,
             states: Sequence[str] = ("paused", "uploading"),
             max_session_entries: int | None = None) -> "defer.Deferred[EntryRecord | None]":
        """Move an entry of an earlier page into a reloaded page's session (adoption); the moved record.

        None when the entry is not in ``from_session`` in one of ``states``; ``too_many_entries`` when the new
        session is full (``max_session_entries``).
        """
        d = self._script("move", scripts.MOVE, from_session, to_session, entry_id, _bound(max_session_entries),
                         *states)

        def parse(reply: Sequence[Any]) -> EntryRecord | None:
            if not reply:
                return None
            if reply[0] == "too_many_entries":
                raise UploadError(ErrorCode.TOO_MANY_ENTRIES)
            return decode_record(reply[1:])

        return d.addCallback(parse)

    def take_orphans(self, *, states: Sequence[str] = ("uploading",),
                     limit: int = 100) -> "defer.Deferred[list[EntryRecord]]":
        """Take over the entries in ``states`` whose owner node's heartbeat ran out (it died streaming them).

        They come back as they were (``server`` is the dead node), now owned by this node, which gives them a
        resume grace; two nodes calling it at once never get the same entry. Paused and finished entries of a dead
        node need no owner: their deadlines expire them (:meth:`take_due`).
        """
        d = self._script("take orphans", scripts.TAKE_ORPHANS, self.node_id, int(limit), *states)
        return d.addCallback(self._records)

    # -- claims -----------------------------------------------------------------------------------------------

    def claim_complete(self, session_id: str, slot: str, ttl: float,
                       now: float) -> "defer.Deferred[list[EntryRecord]]":
        """Claim the slot's complete entries nobody holds (and not past their deadline) until ``now + ttl``."""
        d = self._script("claim", scripts.CLAIM_COMPLETE, session_id, slot, repr(now + ttl), repr(now))
        return d.addCallback(self._records)

    def release(self, session_id: str, entry_ids: Iterable[int], now: float) -> "defer.Deferred[list[EntryRecord]]":
        """End the claims; remove and return the entries that must go now (cancelled meanwhile, or past due)."""
        d = self._script("release", scripts.RELEASE, session_id, repr(now), *[int(i) for i in entry_ids])
        return d.addCallback(self._records)

    def cancel(self, session_id: str, ref_or_entry_id: str | int, *, now: float | None = None,
               cancelled_ttl: float = CANCELLED_TTL) -> "defer.Deferred[EntryRecord]":
        """Cancel an entry by ref or id (see :meth:`cancel_entry`); the record after the cancel."""
        return self.cancel_entry(session_id, ref_or_entry_id, now=now, cancelled_ttl=cancelled_ttl).addCallback(
            lambda cancellation: cancellation.record)

    def cancel_entry(self, session_id: str, ref_or_entry_id: str | int, *, now: float | None = None,
                     cancelled_ttl: float = CANCELLED_TTL) -> "defer.Deferred[Cancellation]":
        """Cancel an entry: claimed → ``cancel_pending``; finished or paused → removed; streaming → ``cancelled``
        (listed ``cancelled_ttl`` more seconds). Its owner node is sent ``{"event": "cancel", ...}``.

        ``UploadError(unknown_entry)`` when the session has no such entry. A removed record comes back with status
        ``cancelled`` (what the application sees); ``previous_status`` says what it was.
        """
        moment = self.reactor.seconds() if now is None else now
        kind = "id" if isinstance(ref_or_entry_id, int) else "ref"
        d = self._script("cancel", scripts.CANCEL, session_id, kind, ref_or_entry_id, repr(moment),
                         repr(moment + cancelled_ttl))

        def parse(reply: Sequence[Any]) -> Cancellation:
            record = decode_record(reply[2:]) if reply[0] != "unknown" else None
            if record is None:
                raise UploadError(ErrorCode.UNKNOWN_ENTRY, f"no upload {ref_or_entry_id!r} in this session")
            if reply[0] == "removed":
                record.status = "cancelled"
            return Cancellation(reply[0], reply[1], record)

        return d.addCallback(parse)

    # -- expiry -----------------------------------------------------------------------------------------------

    def take_due(self, now: float, limit: int = 100) -> "defer.Deferred[list[EntryRecord]]":
        """Remove and return up to ``limit`` records past their deadline that no request holds a claim on.

        Any node may call it; each record comes back to exactly one caller, who deletes its bytes.
        """
        return self._script("expire", scripts.TAKE_DUE, repr(now), int(limit)).addCallback(self._records)

    # -- nodes ------------------------------------------------------------------------------------------------

    def publish(self, node_id: str, event: dict[str, Any]) -> "defer.Deferred[int]":
        """Send ``event`` to ``node_id``'s channel; how many subscribers got it."""
        return self._redis.call("publish", "publish", f"{self.prefix}events:{node_id}", json.dumps(event))

    def subscribe(self, callback: Callable[[dict[str, Any]], None]) -> "defer.Deferred[int]":
        """Call ``callback(event)`` for each event addressed to this node (across Redis restarts).

        Fires once the subscription is confirmed, with its generation (see :meth:`subscription`).
        """
        self._subscriber.callbacks.append(callback)
        return self.subscription()

    def subscription(self, after: int = 0, *, timeout: float | None = None) -> "defer.Deferred[int]":
        """Fires with the subscription's generation once one newer than ``after`` is live.

        Each reconnection (after a Redis restart) subscribes again and adds one: ``subscription(after=g)`` waits
        until the node hears its events again. ``registry_unavailable`` after ``timeout`` (the state's timeout by
        default) without one; the subscriber keeps trying all the same.
        """
        limit = self.timeout if timeout is None else timeout
        waiter = self._subscriber.subscribed(after)

        def late(failure: Any) -> Any:
            if failure.check(defer.TimeoutError):
                raise UploadError(ErrorCode.REGISTRY_UNAVAILABLE, f"the upload registry at {self.url} did not "
                                  f"confirm the subscription of node {self.node_id} within {limit:g} s")
            return failure

        return waiter.addTimeout(limit, self.reactor).addErrback(late)

    def alive_nodes(self) -> "defer.Deferred[set[str]]":
        """The ids of the nodes whose heartbeat has not run out."""
        return self._script("list nodes", scripts.ALIVE_NODES).addCallback(set)


def _pairs(flat: Sequence[str]) -> list[tuple[str, str]]:
    return list(zip(flat[::2], flat[1::2]))
