"""The connection with a registry that answers later (a cluster registry asks Redis first).

The registry here is the real one, each answer held back in a Deferred the test releases, so the ordering rules of
:class:`~twisted_uploads.connection.UploadConnection` are checked one step at a time.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import TestCase

from twisted_uploads.connection import ConnectionState
from twisted_uploads.errors import CLOSE_TRY_AGAIN, ErrorCode, UploadError
from twisted_uploads.registry import UploadRegistry
from twisted_uploads.storage import TempFileStore, TempFileWriter

from .support import Server, sha256, text_bytes


class HeldRegistry(UploadRegistry):
    """Answers ``open_session``, ``announce`` and ``complete`` only when the test releases them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held: list[tuple[str, Callable[[], Any], Deferred[Any]]] = []
        self.refuse: UploadError | Exception | None = None

    def _hold(self, name: str, answer: Callable[[], Any]) -> Deferred[Any]:
        deferred: Deferred[Any] = Deferred()
        self.held.append((name, answer, deferred))
        return deferred

    def release(self, name: str | None = None) -> None:
        """Answer the oldest held call (of ``name``)."""
        index = next(i for i, (held, _, _) in enumerate(self.held) if name is None or held == name)
        _, answer, deferred = self.held.pop(index)
        try:
            result = answer()
        except Exception as error:  # the held call's own failure goes to its Deferred
            deferred.errback(error)
            return
        deferred.callback(result)

    def open_session(self, session_id, slots):  # type: ignore[no-untyped-def,override]
        return self._hold("open_session", lambda: super(HeldRegistry, self).open_session(session_id, slots))

    def announce(self, *args, **kwargs):  # type: ignore[no-untyped-def,override]
        if self.refuse is not None:
            return fail(self.refuse)
        return self._hold("announce", lambda: super(HeldRegistry, self).announce(*args, **kwargs))

    def complete(self, session, entry):  # type: ignore[no-untyped-def,override]
        return self._hold("complete", lambda: super(HeldRegistry, self).complete(session, entry))


class HeldServer(Server):
    def __init__(self, root: str) -> None:
        super().__init__(root)
        self.registry = HeldRegistry(self.store, self.clock)


class OrderingTests(TestCase):
    """Control messages are answered one at a time, in order; data frames never wait."""

    def setUp(self) -> None:
        self.server = HeldServer(self.mktemp())
        self.registry: HeldRegistry = self.server.registry  # type: ignore[assignment]
        self.client = self.server.connect()
        self.client.send("auth", token=self.server.token())

    def announce(self, ref: str = "f1", size: int = 2048) -> None:
        self.client.send("announce", ref=ref, slot="files", name="a.txt", mime="text/plain", size=size)

    def test_messages_after_auth_wait_for_the_welcome(self) -> None:
        self.announce()
        self.assertEqual(self.client.transport.sent, [])
        self.registry.release("open_session")
        self.assertEqual(self.client.transport.types(), ["welcome"])
        self.registry.release("announce")
        self.assertEqual(self.client.transport.types(), ["welcome", "accepted"])

    def test_a_second_announce_of_one_ref_is_refused_even_while_the_first_is_pending(self) -> None:
        self.registry.release("open_session")
        self.client.transport.take()
        self.announce("same")
        self.announce("same")
        self.registry.release("announce")
        answers = self.client.transport.take()
        self.assertEqual([m["type"] for m in answers], ["accepted", "rejected"])
        self.assertEqual(answers[1]["code"], ErrorCode.PROTOCOL_ERROR.value)
        self.assertEqual(self.registry.held, [])

    def test_a_refused_announce_is_answered_with_its_code(self) -> None:
        self.registry.release("open_session")
        self.client.transport.take()
        self.registry.refuse = UploadError(ErrorCode.REGISTRY_UNAVAILABLE, "Redis is down")
        self.announce()
        [rejected] = self.client.transport.take()
        self.assertEqual((rejected["type"], rejected["code"]), ("rejected", "registry_unavailable"))
        self.assertIs(self.client.connection.state, ConnectionState.OPEN)

    def test_an_unexpected_failure_closes_the_connection_and_is_logged(self) -> None:
        self.registry.release("open_session")
        self.client.transport.take()
        self.registry.refuse = RuntimeError("bug")
        self.announce()
        self.assertEqual(self.client.transport.last()["code"], ErrorCode.SERVER_BUSY.value)
        self.assertEqual(self.client.transport.closed[0], CLOSE_TRY_AGAIN)  # the client reconnects later
        self.assertIs(self.client.connection.state, ConnectionState.CLOSED)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_an_unreachable_registry_at_auth_closes_with_try_again(self) -> None:
        _, _, deferred = self.registry.held.pop()
        deferred.errback(UploadError(ErrorCode.REGISTRY_UNAVAILABLE, "Redis at redis://127.0.0.1:1 is down"))
        self.assertEqual(self.client.transport.last()["code"], "registry_unavailable")
        self.assertEqual(self.client.transport.closed[0], CLOSE_TRY_AGAIN)

    def test_a_socket_gone_during_auth_attaches_nothing(self) -> None:
        self.client.connection.connection_lost()
        self.registry.release("open_session")
        self.assertEqual(self.client.transport.sent, [])
        self.assertEqual(self.registry.sessions["session-1"].connections, 0)

    def test_complete_is_told_only_once_the_registry_stored_it(self) -> None:
        self.registry.release("open_session")
        self.announce(size=2048)
        self.registry.release("announce")
        entry_id = self.client.transport.take()[-1]["entry"]
        data = text_bytes(2048)
        self.client.stream(entry_id, data)
        self.assertNotIn("complete", self.client.transport.types())
        self.client.frame(entry_id, 2048, b"late")  # a frame after the last byte: dropped, not an error
        self.registry.release("complete")
        sent = self.client.transport.take()
        self.assertEqual(sent[-1], {"type": "complete", "entry": entry_id, "size": 2048, "sha256": sha256(data)})
        self.assertNotIn("error", [m["type"] for m in sent])


class PartWriter(TempFileWriter):
    """A local writer whose bytes become durable a "part" at a time, when the test says so (like S3's)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.written = self.durable
        self.callback: Callable[[int], None] | None = None

    def write(self, data: bytes) -> None:
        durable = self.durable
        super().write(data)
        self.written += len(data)
        self.durable = durable

    @property
    def pending(self) -> int:  # type: ignore[override]
        return self.written - self.durable

    def watch(self, callback: Callable[[int], None]) -> None:
        self.callback = callback

    def part_done(self) -> None:
        self.durable = self.written
        assert self.callback is not None
        self.callback(self.durable)


class PartStore(TempFileStore):
    durable_step = 4096

    def open(self, session_id: str, entry_id: int) -> PartWriter:
        self.writer = PartWriter(self._session_dir(session_id), entry_id)
        return self.writer


class DurableAckTests(TestCase):
    """Acks never cover bytes the store could not give back after a crash."""

    def setUp(self) -> None:
        self.server = Server(self.mktemp())
        self.store = PartStore(self.server.store.root)
        self.server.registry = UploadRegistry(self.store, self.server.clock)
        self.client = self.server.client()

    def test_acks_wait_for_the_part_and_then_cover_it(self) -> None:
        accepted = self.client.announce(size=100_000)
        entry_id = accepted["entry"]
        self.client.stream(entry_id, text_bytes(6144))
        self.assertNotIn("ack", self.client.transport.types())
        self.store.writer.part_done()
        ack = self.client.transport.last()
        self.assertEqual((ack["type"], ack["entry"], ack["offset"]), ("ack", entry_id, 6144))

    def test_the_window_lets_two_parts_be_in_flight(self) -> None:
        accepted = self.client.announce(size=100_000)
        self.assertGreaterEqual(accepted["window"], 2 * PartStore.durable_step + 1024)
