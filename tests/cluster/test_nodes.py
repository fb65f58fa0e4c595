"""Any node resumes any entry: two upload nodes on one real redis-server and one shared directory."""

from __future__ import annotations

import hashlib
from typing import Any

from twisted.internet import defer

from twisted_uploads.clusterindex import ClusterIndex
from twisted_uploads.entries import EntryStatus
from twisted_uploads.slots import SlotConfig

from ..support import text_bytes
from .support import ClusterTestCase

DATA = text_bytes(64 * 1024)
SHA = hashlib.sha256(DATA).hexdigest()


class ResumeOnAnotherNodeTests(ClusterTestCase):
    """A page that reconnects lands on whichever node the proxy picks, and continues where it stopped."""

    @defer.inlineCallbacks
    def start_upload(self, node: Any, upto: int, ref: str = "f1") -> Any:
        client = yield node.client()
        accepted = client.transport.next("accepted")
        client.send("announce", ref=ref, slot="files", name="a.txt", mime="text/plain", size=len(DATA))
        accepted = yield accepted
        client.stream(accepted["entry"], DATA, 0, upto)
        return client, accepted["entry"]

    @defer.inlineCallbacks
    def test_an_upload_dropped_on_one_node_completes_on_the_other_with_the_exact_hash(self) -> Any:
        first, entry_id = yield self.start_upload(self.a, 20 * 1024)
        first.drop()
        yield self.a.registry.records.idle()
        second = yield self.b.client()
        [listed] = second.welcome["entries"]
        self.assertEqual((listed["entry"], listed["status"]), (entry_id, "paused"))
        accepted = second.transport.next("accepted")
        second.send("resume", entry=entry_id)
        accepted = yield accepted
        self.assertEqual(accepted["offset"], 20 * 1024)
        complete = second.transport.next("complete")
        second.stream(entry_id, DATA, accepted["offset"], len(DATA))
        complete = yield complete
        self.assertEqual(complete["sha256"], SHA)

    @defer.inlineCallbacks
    def test_a_node_still_streaming_is_told_moved_when_another_takes_over(self) -> Any:
        first, entry_id = yield self.start_upload(self.a, 8 * 1024)
        moved = first.transport.next("moved")
        second = yield self.b.client()
        accepted = second.transport.next("accepted")
        second.send("resume", entry=entry_id)
        accepted = yield accepted
        moved = yield moved
        self.assertEqual(moved["entry"], entry_id)
        complete = second.transport.next("complete")
        second.stream(entry_id, DATA, accepted["offset"], len(DATA))
        self.assertEqual((yield complete)["sha256"], SHA)

    @defer.inlineCallbacks
    def test_an_upload_whose_node_died_gets_a_grace_and_completes_elsewhere(self) -> Any:
        _first, entry_id = yield self.start_upload(self.a, 12 * 1024)
        yield self.a.registry.records.idle()
        yield self.a.state.close()  # node a is gone: its heartbeat with it
        yield self.b.registry.sweep()
        record = yield self.b.state.get("page-1", entry_id)
        self.assertEqual((record.status, record.server), ("paused", "node-b"))
        self.assertGreater(record.deadline, self.b.registry.clock.seconds())
        second = yield self.b.client()
        accepted = second.transport.next("accepted")
        second.send("resume", entry=entry_id)
        accepted = yield accepted
        self.assertEqual(accepted["offset"], 12 * 1024)
        complete = second.transport.next("complete")
        second.stream(entry_id, DATA, accepted["offset"], len(DATA))
        self.assertEqual((yield complete)["sha256"], SHA)

    @defer.inlineCallbacks
    def test_the_slot_bound_counts_entries_on_every_node(self) -> Any:
        one = {"one": SlotConfig(max_entries=1, chunk_size=1024)}
        first = yield self.a.client(slots=one)
        second = yield self.b.client(slots=one)
        accepted = first.transport.next("accepted")
        first.send("announce", ref="x", slot="one", name="a.txt", mime="text/plain", size=10)
        yield accepted
        rejected = second.transport.next("rejected")
        second.send("announce", ref="y", slot="one", name="b.txt", mime="text/plain", size=10)
        self.assertEqual((yield rejected)["code"], "too_many_files")


class DjangoSideTests(ClusterTestCase):
    """What a Django worker does through ClusterIndex reaches the node that streams the entry."""

    @defer.inlineCallbacks
    def index(self) -> Any:
        index = yield ClusterIndex.connect(self.server.url, self.store, timeout=1.0)
        self.addCleanup(index.close)
        return index

    @defer.inlineCallbacks
    def test_a_cancel_from_a_view_reaches_the_client_of_the_streaming_node(self) -> Any:
        client = yield self.a.client()
        accepted = client.transport.next("accepted")
        client.send("announce", ref="f1", slot="files", name="a.txt", mime="text/plain", size=len(DATA))
        entry_id = (yield accepted)["entry"]
        client.stream(entry_id, DATA, 0, 4096)
        cancelled = client.transport.next("cancelled")
        index = yield self.index()
        yield index.cancel("page-1", entry_id)
        self.assertEqual((yield cancelled)["entry"], entry_id)
        self.assertIsNone(self.store.partial_size("page-1", entry_id))

    @defer.inlineCallbacks
    def test_a_complete_entry_is_claimed_once_by_any_worker_and_consumed(self) -> Any:
        client = yield self.b.client()
        accepted = client.transport.next("accepted")
        client.send("announce", ref="f1", slot="files", name="a.txt", mime="text/plain", size=len(DATA))
        entry_id = (yield accepted)["entry"]
        complete = client.transport.next("complete")
        client.stream(entry_id, DATA, 0, len(DATA))
        yield complete
        index = yield self.index()
        other = yield self.index()
        first, second = yield defer.gatherResults([index.claim_complete("page-1", "files"),
                                                   other.claim_complete("page-1", "files")])
        self.assertEqual(sorted(len(claimed) for claimed in (first, second)), [0, 1])
        [info] = first or second
        self.assertEqual((info.status, info.sha256), (EntryStatus.COMPLETE, SHA))
        with open(info.path, "rb") as stored:
            self.assertEqual(stored.read(), DATA)
        yield index.consume("page-1", entry_id)
        self.assertEqual((yield index.list_entries("page-1")), [])


    @defer.inlineCallbacks
    def complete_upload(self, node: Any) -> Any:
        client = yield node.client()
        accepted = client.transport.next("accepted")
        client.send("announce", ref="f1", slot="files", name="a.txt", mime="text/plain", size=len(DATA))
        entry_id = (yield accepted)["entry"]
        complete = client.transport.next("complete")
        client.stream(entry_id, DATA, 0, len(DATA))
        yield complete
        return client, entry_id

    @defer.inlineCallbacks
    def test_a_page_asking_after_an_entry_a_worker_consumed_hears_it_is_gone(self) -> Any:
        client, entry_id = yield self.complete_upload(self.a)
        index = yield self.index()
        [claimed] = yield index.claim_complete("page-1", "files")
        yield index.consume("page-1", claimed.entry_id)
        gone = client.transport.next("error")
        client.send("resume", entry=entry_id)  # what the browser asks after a submit
        gone = yield gone
        self.assertEqual((gone["entry"], gone["code"]), (entry_id, "unknown_entry"))

    @defer.inlineCallbacks
    def test_a_client_cancel_of_a_complete_entry_is_answered_and_removes_it(self) -> Any:
        client, entry_id = yield self.complete_upload(self.a)
        cancelled = client.transport.next("cancelled")
        client.send("cancel", entry=entry_id)  # the user replaced the file before saving
        self.assertEqual((yield cancelled)["entry"], entry_id)
        index = yield self.index()
        self.assertEqual((yield index.list_entries("page-1")), [])


class ExpiryTests(ClusterTestCase):
    """Deadlines are Redis's: a paused entry goes at the end of its grace, whichever node had it."""

    node_options = {"resume_grace": 30.0}

    def setUp(self) -> Any:
        from twisted.internet import reactor
        from twisted.internet.task import Clock

        self.clock = Clock()
        self.clock.advance(reactor.seconds())
        return super().setUp()

    @defer.inlineCallbacks
    def test_a_paused_entry_disappears_from_redis_and_the_store_at_its_deadline(self) -> Any:
        client = yield self.a.client()
        accepted = client.transport.next("accepted")
        client.send("announce", ref="f1", slot="files", name="a.txt", mime="text/plain", size=len(DATA))
        entry_id = (yield accepted)["entry"]
        client.stream(entry_id, DATA, 0, 2048)
        client.drop()
        yield self.a.registry.records.idle()
        self.clock.advance(29)
        yield self.sweeps()
        self.assertEqual(self.store.partial_size("page-1", entry_id), 2048)
        self.assertIsNotNone((yield self.a.state.get("page-1", entry_id)))
        self.clock.advance(2)
        yield self.sweeps()
        self.assertIsNone((yield self.a.state.get("page-1", entry_id)))
        self.assertIsNone(self.store.partial_size("page-1", entry_id))
