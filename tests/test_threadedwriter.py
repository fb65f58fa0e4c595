"""Tests for twisted_uploads.threadedwriter: writing and hashing off the reactor, with a real reactor and threads.

Nothing here sleeps: every test waits on the Deferreds the writer and the connection give (close, suspend, a
``complete`` message), which fire in the reactor thread once the worker finished.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks, maybeDeferred
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from twisted_uploads.codec import encode_chunk, encode_message
from twisted_uploads.connection import ConnectionLimits, UploadConnection
from twisted_uploads.registry import UploadRegistry
from twisted_uploads.slots import SlotConfig
from twisted_uploads.storage import IEntryWriter, TempFileStore, session_directory_name
from twisted_uploads.threadedwriter import ThreadedFileWriter, WriterPool
from twisted_uploads.tokens import HMACTokenVerifier, make_token

from .support import FakeTransport, stored_files

SECRET = "threaded-writer-test-secret"
CHUNK = 4096


class WriterTests(TestCase):
    """One writer: order, durable and its callbacks, close, suspend and reopen, abort, failures."""

    def setUp(self) -> None:
        self.directory = Path(self.mktemp())
        self.directory.mkdir()
        self.pool = WriterPool(reactor, threads=2)
        self.addCleanup(self.pool.stop)

    def writer(self, entry_id: int = 7, offset: int | None = None, after: Deferred[None] | None = None) -> Any:
        return ThreadedFileWriter(self.directory, entry_id, offset, self.pool, after=after)

    def test_provides_the_writer_interface(self) -> None:
        writer = self.writer()
        self.assertTrue(verifyObject(IEntryWriter, writer))
        return writer.abort()

    @inlineCallbacks
    def test_chunks_are_written_and_hashed_in_order(self) -> None:
        writer, digest = self.writer(), hashlib.sha256()
        chunks = [os.urandom(CHUNK) for _ in range(200)]
        for chunk in chunks:
            writer.write_hashed(chunk, digest)
        location = yield writer.close()
        data = b"".join(chunks)
        self.assertEqual(Path(location).read_bytes(), data)
        self.assertEqual(digest.hexdigest(), hashlib.sha256(data).hexdigest())
        self.assertEqual((writer.durable, writer.pending), (len(data), 0))
        self.assertFalse((self.directory / "7.part").exists())

    @inlineCallbacks
    def test_durable_grows_through_watch_in_the_reactor_thread(self) -> None:
        writer = self.writer()
        seen: list[tuple[int, bool]] = []
        writer.watch(lambda durable: seen.append((durable, threading.current_thread() is threading.main_thread())))
        writer.write(b"x" * CHUNK)
        # write returned before the worker wrote: nothing is durable yet, everything is pending.
        self.assertEqual((writer.durable, writer.pending), (0, CHUNK))
        yield writer.close()
        self.assertTrue(seen)
        self.assertEqual(seen[-1], (CHUNK, True))
        self.assertEqual([durable for durable, _ in seen], sorted(durable for durable, _ in seen))

    def test_an_idle_writer_closes_at_once(self) -> None:
        """An empty file is complete when its announce is answered: no Deferred to wait for."""
        location = self.writer().close()
        self.assertIsInstance(location, str)
        self.assertEqual(Path(location).read_bytes(), b"")

    @inlineCallbacks
    def test_suspend_keeps_queued_bytes_and_a_quick_reopen_continues_after_them(self) -> None:
        first, digest = self.writer(), hashlib.sha256()
        for _ in range(50):
            first.write_hashed(b"a" * CHUNK, digest)
        suspended = first.suspend()
        # Still in the reactor thread: the first writer cannot have finished, so the second one must wait for it.
        self.assertFalse(first.drained.called)
        second = self.writer(offset=50 * CHUNK, after=first.drained)
        for _ in range(10):
            second.write_hashed(b"b" * CHUNK, digest)
        location = yield second.close()
        yield suspended
        data = b"a" * 50 * CHUNK + b"b" * 10 * CHUNK
        self.assertEqual(Path(location).read_bytes(), data)
        self.assertEqual(digest.hexdigest(), hashlib.sha256(data).hexdigest())

    @inlineCallbacks
    def test_reopen_drops_bytes_past_the_offset(self) -> None:
        first = self.writer()
        first.write(b"0123456789")
        yield first.suspend()
        second = self.writer(offset=4)
        second.write(b"xy")
        location = yield second.close()
        self.assertEqual(Path(location).read_bytes(), b"0123xy")

    @inlineCallbacks
    def test_abort_drops_queued_bytes_and_deletes_the_file(self) -> None:
        writer = self.writer()
        for _ in range(100):
            writer.write(b"z" * CHUNK)
        yield writer.abort()
        self.assertEqual(os.listdir(self.directory), [])

    @inlineCallbacks
    def test_abort_after_close_leaves_no_file(self) -> None:
        writer = self.writer()
        writer.write(b"z" * CHUNK)
        closing = maybeDeferred(writer.close)
        closing.addErrback(lambda failure: failure.trap(OSError))
        yield writer.abort()
        yield closing
        self.assertEqual(os.listdir(self.directory), [])

    @inlineCallbacks
    def test_a_failed_write_fails_the_close_and_later_writes(self) -> None:
        (self.directory / "7.part").symlink_to("/dev/full")  # every write: ENOSPC
        writer = self.writer()
        writer.write(b"z" * CHUNK)
        yield self.assertFailure(maybeDeferred(writer.close), OSError)
        self.assertRaises(OSError, writer.write, b"more")
        self.assertEqual(writer.durable, 0)

    def test_a_reopen_of_a_missing_file_fails_at_once(self) -> None:
        self.assertRaises(OSError, self.writer, 9, 10)


class _Waiter(FakeTransport):
    """A FakeTransport that fires a Deferred when a message of some type arrives, and checks every ack."""

    def __init__(self, store_root: Path) -> None:
        super().__init__()
        self.root = store_root
        self.waiting: dict[str, Deferred[dict[str, Any]]] = {}
        self.bad_acks: list[tuple[int, int]] = []
        self.partial: Path | None = None

    def wait(self, message_type: str) -> Deferred[dict[str, Any]]:
        self.waiting[message_type] = Deferred()
        return self.waiting[message_type]

    def send_text(self, text: str) -> None:
        super().send_text(text)
        message = self.sent[-1]
        if message["type"] == "ack" and self.partial is not None and self.partial.exists():
            # Acknowledged bytes are in the file already (the worker wrote them before durable grew).
            if os.path.getsize(self.partial) < message["offset"]:
                self.bad_acks.append((message["offset"], os.path.getsize(self.partial)))
        waiter = self.waiting.pop(message["type"], None)
        if waiter is not None:
            waiter.callback(message)


class ThreadedStoreTests(TestCase):
    """The connection and registry on ``TempFileStore(threaded=True)``, on the real reactor."""

    slot = SlotConfig(max_file_size=64 << 20, chunk_size=CHUNK)

    def setUp(self) -> None:
        self.root = Path(self.mktemp())
        self.store = TempFileStore(self.root, threaded=True, reactor=reactor, threads=2)
        self.addCleanup(self.store.stop)
        self.registry = UploadRegistry(self.store, reactor)
        self.addCleanup(self.registry.shutdown)
        self.verifier = HMACTokenVerifier(SECRET)

    def connect(self, session: str = "s1") -> tuple[UploadConnection, _Waiter]:
        transport = _Waiter(self.root)
        connection = UploadConnection(self.registry, self.verifier, reactor, transport,
                                      ConnectionLimits(window_chunks=16))
        connection.connection_made()
        connection.text_received(encode_message("auth", token=make_token(SECRET, session, {"files": self.slot},
                                                                         3600)))
        self.addCleanup(connection.connection_lost)
        return connection, transport

    def announce(self, connection: UploadConnection, transport: _Waiter, size: int) -> int:
        connection.text_received(encode_message("announce", ref="r1", slot="files", name="a.bin", mime="",
                                                size=size))
        accepted = transport.last()
        self.assertEqual(accepted["type"], "accepted", accepted)
        entry = accepted["entry"]
        transport.partial = self.root.resolve() / session_directory_name("s1") / f"{entry}.part"
        return entry

    @staticmethod
    def send(connection: UploadConnection, entry: int, data: bytes, start: int = 0, end: int | None = None) -> None:
        for offset in range(start, len(data) if end is None else end, CHUNK):
            connection.binary_received(encode_chunk(entry, offset, data[offset:offset + CHUNK]))

    @inlineCallbacks
    def test_an_upload_completes_with_the_sha256_of_its_bytes(self) -> None:
        connection, transport = self.connect()
        data = os.urandom(300 * CHUNK + 123)
        entry = self.announce(connection, transport, len(data))
        completing = transport.wait("complete")
        # The client keeps within its window: send a window, then more as acks come (here: everything at once
        # past each ack would be the same bytes; the window bounds only what the client may send).
        self.send(connection, entry, data)
        complete = yield completing
        self.assertEqual(complete["sha256"], hashlib.sha256(data).hexdigest())
        [stored] = stored_files(self.root, records=False)
        self.assertEqual(stored.read_bytes(), data)
        self.assertEqual(transport.bad_acks, [])
        self.assertEqual(self.registry.open_files, 0)

    @inlineCallbacks
    def test_acks_wait_for_the_worker_and_then_come_from_its_callback(self) -> None:
        connection, transport = self.connect()
        data = os.urandom(64 * CHUNK)
        entry = self.announce(connection, transport, len(data))
        acked = transport.wait("ack")
        self.send(connection, entry, data, end=8 * CHUNK)
        # Nothing was written yet when the frames were handled (the worker runs once we yield): no ack so far.
        self.assertNotIn("ack", transport.types())
        ack = yield acked
        self.assertGreaterEqual(ack["offset"], 4 * CHUNK)
        self.assertEqual(transport.bad_acks, [])
        completing = transport.wait("complete")
        self.send(connection, entry, data, start=8 * CHUNK)
        yield completing

    @inlineCallbacks
    def test_a_resume_after_a_drop_continues_the_hash(self) -> None:
        connection, transport = self.connect()
        data = os.urandom(100 * CHUNK)
        entry = self.announce(connection, transport, len(data))
        self.send(connection, entry, data, end=60 * CHUNK)
        connection.connection_lost()  # paused: its writer drains in the background
        again, transport2 = self.connect()
        again.text_received(encode_message("resume", entry=entry))
        accepted = transport2.last()
        self.assertEqual((accepted["type"], accepted["offset"]), ("accepted", 60 * CHUNK))
        completing = transport2.wait("complete")
        self.send(again, entry, data, start=60 * CHUNK)
        complete = yield completing
        self.assertEqual(complete["sha256"], hashlib.sha256(data).hexdigest())
        [stored] = stored_files(self.root, records=False)
        self.assertEqual(stored.read_bytes(), data)

    @inlineCallbacks
    def test_a_cancel_in_flight_leaves_no_bytes(self) -> None:
        connection, transport = self.connect()
        data = os.urandom(100 * CHUNK)
        entry = self.announce(connection, transport, len(data))
        self.send(connection, entry, data, end=50 * CHUNK)
        writer = self.registry.sessions["s1"].entries[entry].writer
        connection.text_received(encode_message("cancel", entry=entry))
        self.assertIn("cancelled", transport.types())
        yield writer.drained
        self.assertEqual(stored_files(self.root, records=False), [])

    def test_an_empty_file_completes_with_its_accept(self) -> None:
        connection, transport = self.connect()
        connection.text_received(encode_message("announce", ref="r0", slot="files", name="empty.bin", mime="",
                                                size=0))
        self.assertEqual(transport.types()[-2:], ["accepted", "complete"])
        self.assertEqual(transport.last()["sha256"], hashlib.sha256(b"").hexdigest())


class ThreadedStoreMoveTests(TestCase):
    """A paused entry moved to another session (adoption after a reload) while its writer still drains."""

    @inlineCallbacks
    def test_a_moved_partial_is_reopened_after_its_writer_finished(self) -> None:
        store = TempFileStore(self.mktemp(), threaded=True, reactor=reactor, threads=2)
        self.addCleanup(store.stop)
        first = store.open("s1", 5)
        for _ in range(40):
            first.write(b"p" * CHUNK)
        suspended = first.suspend()
        store.move_partial("s1", "s2", 5)
        # Resuming from an earlier offset (the acknowledged one) drops what the first writer still has to write.
        second = store.reopen("s2", 5, 20 * CHUNK)
        self.assertIsNot(second, first)
        second.write(b"q" * CHUNK)
        location = yield second.close()
        yield suspended
        self.assertEqual(Path(location).read_bytes(), b"p" * 20 * CHUNK + b"q" * CHUNK)
        self.assertEqual(Path(location).parent.name, session_directory_name("s2"))
