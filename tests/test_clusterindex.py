"""Tests for twisted_uploads.clusterindex: Django's registry calls in scale-out, on a real redis-server.

The store is the local TempFileStore in the test's temp directory (what a shared directory is); time for TTLs and
claims is a ``task.Clock`` while Redis I/O runs on the real reactor.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.task import Clock

from twisted_uploads.clusterindex import ClusterIndex
from twisted_uploads.entries import EntryStatus
from twisted_uploads.errors import ErrorCode, UploadError
from twisted_uploads.records import EntryRecord
from twisted_uploads.slots import SlotConfig
from twisted_uploads.storage import TempFileStore

from .engines.redis import RedisTestCase, event_waiter
from .support import png_bytes

NOW = 1_800_000_000.0
SLOTS = {"avatar": SlotConfig(accept=".png", max_entries=2, max_file_size=10**6),
         "docs": SlotConfig(accept=".txt", max_entries=5)}


class ClusterIndexTestCase(RedisTestCase):
    """A Redis, a shared store, and Django processes (ClusterIndex instances) on a common clock."""

    def setUp(self) -> None:
        super().setUp()
        self.clock = Clock()
        self.clock.advance(NOW)
        self.store = TempFileStore(Path(self.mktemp()))
        self.incoming = Path(self.mktemp())
        self.incoming.mkdir()

    @defer.inlineCallbacks
    def index(self, **options: Any) -> Any:
        """A Django process's ClusterIndex, closed after the test."""
        index = yield ClusterIndex.connect(self.server.url, self.store, timeout=1.0, reactor=reactor,
                                           clock=self.clock, **options)
        self.addCleanup(index.close)
        return index

    def posted(self, content: bytes, name: str = "me.png") -> str:
        """A file as Django's upload handler leaves it on disk."""
        path = self.incoming / f"{len(os.listdir(self.incoming))}-{name}"
        path.write_bytes(content)
        return str(path)

    def ingest(self, index: ClusterIndex, content: bytes = png_bytes(100), *, slot: str = "avatar",
               name: str = "me.png", mime: str = "image/png", **details: Any) -> "defer.Deferred[Any]":
        return index.ingest_file("s1", SLOTS, slot, name, mime, self.posted(content, name), **details)


class IngestTests(ClusterIndexTestCase):
    """ingest_file: the no-JS POST, by the same rules, its file moved into the shared store."""

    @defer.inlineCallbacks
    def test_ingested_file_is_moved_into_the_store_complete(self) -> Any:
        index = yield self.index()
        content = png_bytes(100)
        source = self.posted(content)
        info = yield index.ingest_file("s1", SLOTS, "avatar", "me.png", "image/png", source)
        self.assertEqual((info.status, info.sha256, Path(info.path).read_bytes(), os.path.exists(source),
                          Path(info.path).parent.parent == self.store.root, info.detected_type),
                         (EntryStatus.COMPLETE, hashlib.sha256(content).hexdigest(), content, False, True,
                          "image/png"))

    @defer.inlineCallbacks
    def test_ingested_entry_is_listed_by_another_process(self) -> Any:
        first, second = yield defer.gatherResults([self.index(), self.index()])
        info = yield self.ingest(first, ref="mine")
        listed = yield second.list_entries("s1", "avatar")
        self.assertEqual(listed, [info])

    @defer.inlineCallbacks
    def test_a_file_whose_content_contradicts_its_type_becomes_an_errored_entry(self) -> Any:
        index = yield self.index()
        source = self.posted(b"plain text, not a PNG")
        info = yield index.ingest_file("s1", SLOTS, "avatar", "me.png", "image/png", source)
        self.assertEqual((info.status, info.error, info.path, os.path.exists(source),
                          [i.status for i in (yield index.list_entries("s1"))]),
                         (EntryStatus.ERROR, "type_mismatch", None, False, [EntryStatus.ERROR]))

    @defer.inlineCallbacks
    def test_a_file_the_handler_refused_becomes_an_errored_entry(self) -> Any:
        index = yield self.index()
        info = yield index.ingest_file("s1", SLOTS, "avatar", "big.png", "image/png", None, size=10**7,
                                       error=UploadError(ErrorCode.TOO_LARGE, "big.png is 10.0 MB"))
        self.assertEqual((info.status, info.error, info.error_message), (EntryStatus.ERROR, "too_large",
                                                                        "big.png is 10.0 MB"))

    @defer.inlineCallbacks
    def test_the_slot_bound_counts_the_entries_of_every_process(self) -> Any:
        first, second = yield defer.gatherResults([self.index(), self.index()])
        results = yield defer.gatherResults([self.ingest(index) for index in (first, second, first)])
        self.assertEqual(sorted(info.error or "ok" for info in results), ["ok", "ok", "too_many_files"])

    @defer.inlineCallbacks
    def test_an_unknown_slot_becomes_an_errored_entry(self) -> Any:
        index = yield self.index()
        info = yield self.ingest(index, slot="nope")
        self.assertEqual(info.error, "unknown_slot")

    @defer.inlineCallbacks
    def test_ingest_with_the_handlers_hash_reads_nothing_again(self) -> Any:
        index = yield self.index()
        content = png_bytes(50)
        info = yield self.ingest(index, content, size=len(content), sha256="f" * 64, head=content)
        self.assertEqual(info.sha256, "f" * 64)


class ClaimTests(ClusterIndexTestCase):
    """Consuming is a claim: one request gets an entry; a claimed entry outlives cancel and its TTL."""

    @defer.inlineCallbacks
    def test_racing_claims_of_two_processes_never_both_get_an_entry(self) -> Any:
        first, second = yield defer.gatherResults([self.index(), self.index()])
        ingested = yield defer.gatherResults([self.ingest(first, slot="docs", name=f"{i}.txt", mime="text/plain",
                                                          content=b"hello %d" % i) for i in range(5)])
        claims = yield defer.gatherResults([index.claim_complete("s1", "docs") for index in (first, second) * 3])
        claimed = [info.entry_id for claim in claims for info in claim]
        self.assertEqual(sorted(claimed), sorted(info.entry_id for info in ingested))

    @defer.inlineCallbacks
    def test_consume_deletes_the_bytes_and_the_record(self) -> Any:
        index = yield self.index()
        info = yield self.ingest(index)
        (claimed,) = yield index.claim_complete("s1", "avatar")
        yield index.consume("s1", claimed.entry_id)
        self.assertEqual((os.path.exists(info.path), (yield index.list_entries("s1"))), (False, []))

    @defer.inlineCallbacks
    def test_consume_twice_is_harmless(self) -> Any:
        index = yield self.index()
        info = yield self.ingest(index)
        yield index.consume("s1", info.entry_id)
        self.assertIsNone((yield index.consume("s1", info.entry_id)))

    @defer.inlineCallbacks
    def test_released_entry_can_be_claimed_again(self) -> Any:
        first, second = yield defer.gatherResults([self.index(), self.index()])
        info = yield self.ingest(first)
        yield first.claim_complete("s1", "avatar")
        yield first.release("s1", [info.entry_id])
        again = yield second.claim_complete("s1", "avatar")
        self.assertEqual(([i.entry_id for i in again], os.path.exists(info.path)), ([info.entry_id], True))

    @defer.inlineCallbacks
    def test_claimed_entry_outlives_a_cancel_until_released(self) -> Any:
        first, second = yield defer.gatherResults([self.index(), self.index()])
        info = yield self.ingest(first)
        yield first.claim_complete("s1", "avatar")
        yield second.cancel("s1", info.ref)
        listed_while_claimed = yield second.list_entries("s1")
        yield first.release("s1", [info.entry_id])
        self.assertEqual(([i.entry_id for i in listed_while_claimed], (yield second.list_entries("s1")),
                          os.path.exists(info.path)), ([info.entry_id], [], False))

    @defer.inlineCallbacks
    def test_claimed_entry_outlives_its_ttl_until_released(self) -> Any:
        index = yield self.index(complete_ttl=60)
        info = yield self.ingest(index)
        yield index.claim_complete("s1", "avatar", ttl=600)
        self.clock.advance(120)
        expired_while_claimed = yield index.expire_due()
        listed = yield index.list_entries("s1")
        yield index.release("s1", [info.entry_id])
        self.assertEqual((expired_while_claimed, [i.entry_id for i in listed], os.path.exists(info.path),
                          (yield index.list_entries("s1"))), (0, [info.entry_id], False, []))

    @defer.inlineCallbacks
    def test_a_claim_whose_ttl_ran_out_can_be_claimed_again(self) -> Any:
        first, second = yield defer.gatherResults([self.index(), self.index()])
        info = yield self.ingest(first)
        yield first.claim_complete("s1", "avatar", ttl=10)
        self.clock.advance(11)
        again = yield second.claim_complete("s1", "avatar")
        self.assertEqual([i.entry_id for i in again], [info.entry_id])


class CancelTests(ClusterIndexTestCase):
    """cancel: by ref or id, bytes deleted, the streaming node told."""

    @defer.inlineCallbacks
    def test_cancel_of_a_complete_entry_deletes_it_and_its_bytes(self) -> Any:
        index = yield self.index()
        info = yield self.ingest(index)
        cancelled = yield index.cancel("s1", info.entry_id)
        self.assertEqual((cancelled.status, os.path.exists(info.path), (yield index.list_entries("s1"))),
                         (EntryStatus.CANCELLED, False, []))

    @defer.inlineCallbacks
    def test_cancel_of_a_paused_entry_deletes_its_partial_bytes(self) -> Any:
        index = yield self.index()
        node = yield self.node("node-a")
        record = yield self.admitted(node, _record(status="paused"))
        writer = self.store.open("s1", record.entry)
        writer.write(b"half")
        writer.suspend()
        yield index.cancel("s1", "r1")
        self.assertEqual(self.store.partial_size("s1", record.entry), None)

    @defer.inlineCallbacks
    def test_cancel_of_a_streaming_entry_tells_the_node_streaming_it(self) -> Any:
        index = yield self.index()
        node = yield self.node("node-a")
        events, first, callback = event_waiter()
        yield node.subscribe(callback)
        record = yield self.admitted(node, _record(status="uploading"))
        cancelled = yield index.cancel("s1", "r1")
        event = yield first
        self.assertEqual((cancelled.status, cancelled.error, event),
                         (EntryStatus.CANCELLED, "cancelled",
                          {"event": "cancel", "session": "s1", "entry": record.entry}))

    @defer.inlineCallbacks
    def test_cancel_of_an_unknown_entry_is_unknown_entry(self) -> Any:
        index = yield self.index()
        error = yield self.assertFailure(index.cancel("s1", "nope"), UploadError)
        self.assertEqual(error.code, ErrorCode.UNKNOWN_ENTRY)


class ListAndExpiryTests(ClusterIndexTestCase):
    """Entries any node received are listed; at their deadline they go, from Redis and from the store."""

    @defer.inlineCallbacks
    def test_entries_a_node_received_are_listed_oldest_first(self) -> Any:
        index = yield self.index()
        node = yield self.node("node-a")
        first = yield self.admitted(node, _record(ref="a"))
        second = yield self.admitted(node, _record(ref="b", slot="avatar"))
        listed = yield index.list_entries("s1")
        only_avatar = yield index.list_entries("s1", "avatar")
        self.assertEqual(([i.entry_id for i in listed], [i.entry_id for i in only_avatar]),
                         ([first.entry, second.entry], [second.entry]))

    @defer.inlineCallbacks
    def test_an_entry_past_its_deadline_is_not_listed_and_expiry_deletes_its_bytes(self) -> Any:
        index = yield self.index(complete_ttl=60)
        info = yield self.ingest(index)
        self.clock.advance(61)
        listed = yield index.list_entries("s1")
        expired = yield index.expire_due()
        self.assertEqual((listed, expired, os.path.exists(info.path)), ([], 1, False))

    @defer.inlineCallbacks
    def test_an_expired_paused_entry_loses_its_partial_bytes(self) -> Any:
        index = yield self.index()
        node = yield self.node("node-a")
        record = yield self.admitted(node, _record(status="paused", deadline=NOW + 5))
        writer = self.store.open("s1", record.entry)
        writer.write(b"half")
        writer.suspend()
        before = yield index.expire_due()
        self.clock.advance(6)
        after = yield index.expire_due()
        self.assertEqual((before, after, self.store.partial_size("s1", record.entry)), (0, 1, None))


class UnavailableTests(ClusterIndexTestCase):
    """A Redis that is down: every call gives registry_unavailable, and a posted file is not left behind."""

    @defer.inlineCallbacks
    def test_every_call_gives_registry_unavailable_when_redis_stopped(self) -> Any:
        index = yield self.index()
        self.server.stop()
        for call in (lambda: index.list_entries("s1"), lambda: index.claim_complete("s1", "avatar"),
                     lambda: index.release("s1", [1]), lambda: index.consume("s1", 1),
                     lambda: index.cancel("s1", "r1")):
            error = yield self.assertFailure(call(), UploadError)
            self.assertEqual((error.code, self.server.url in error.message),
                             (ErrorCode.REGISTRY_UNAVAILABLE, True))

    @defer.inlineCallbacks
    def test_ingest_when_redis_stopped_is_unavailable_and_deletes_the_posted_file(self) -> Any:
        index = yield self.index()
        self.server.stop()
        source = self.posted(png_bytes(10))
        error = yield self.assertFailure(index.ingest_file("s1", SLOTS, "avatar", "me.png", "image/png", source),
                                         UploadError)
        self.assertEqual((error.code, os.path.exists(source)), (ErrorCode.REGISTRY_UNAVAILABLE, False))

    @defer.inlineCallbacks
    def test_connect_to_a_stopped_redis_is_unavailable(self) -> Any:
        self.server.stop()
        error = yield self.assertFailure(ClusterIndex.connect(self.server.url, self.store, timeout=0.5),
                                         UploadError)
        self.assertEqual(error.code, ErrorCode.REGISTRY_UNAVAILABLE)


def _record(*, status: str = "complete", ref: str = "r1", slot: str = "docs",
            deadline: float | None = None) -> EntryRecord:
    return EntryRecord(session="s1", entry=0, ref=ref, slot=slot, config=SLOTS[slot].to_dict(), name="a.txt",
                       type="text/plain", size=4, status=status, deadline=deadline)
