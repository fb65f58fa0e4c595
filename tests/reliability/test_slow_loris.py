"""Slow-loris sockets: connections that send nothing, half a handshake, a byte at a time, or never authenticate.

The server closes each of them within a bound (the auth timeout for an open WebSocket; an idle timeout for an
HTTP request that never completes its handshake) while a good upload next to them completes untouched.
"""

from __future__ import annotations

import struct
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.task import LoopingCall

from twisted_uploads.client import FileUpload, UploadClient
from twisted_uploads.slots import SlotConfig

from .support import (ProtocolClient, ServerProcess, ServerTestCase, files_with_digest, observe, record_figures,
                      sha256_file, token, within)

AUTH_TIMEOUT = 2.0
#: How long any of them may hang on: the auth timeout plus generous slack for a loaded machine.
CLOSE_BOUND = AUTH_TIMEOUT + 10.0
SOCKETS = 40
DRIBBLE_INTERVAL = 0.02


def handshake(port: int) -> bytes:
    return (f"GET /uploads/ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Protocol: twisted-uploads.v1\r\n\r\n").encode("ascii")


class SlowSocket(Protocol):
    """Sends ``script`` at once, or a byte every ``interval`` seconds; records what the server sends back."""

    def __init__(self, script: bytes, interval: float | None) -> None:
        self.script = script
        self.interval = interval
        self.received = b""
        self.opened_at = 0.0
        self.lost: Deferred = Deferred()
        self._dribble: LoopingCall | None = None

    def connectionMade(self) -> None:
        self.opened_at = reactor.seconds()
        if self.interval is None:
            if self.script:
                self.transport.write(self.script)
            return
        remaining = iter(self.script)

        def one_byte() -> None:
            byte = next(remaining, None)
            if byte is None:
                self._dribble.stop()
            else:
                self.transport.write(bytes([byte]))

        self._dribble = LoopingCall(one_byte)
        self._dribble.start(self.interval)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Any = None) -> None:
        if self._dribble is not None and self._dribble.running:
            self._dribble.stop()
        self.lost.callback(reactor.seconds() - self.opened_at)

    def close_code(self) -> int | None:
        """The code of the WebSocket close frame the server sent after its 101 answer, if any."""
        head, _, frames = self.received.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 101"):
            return None
        while len(frames) >= 2:
            opcode, length = frames[0] & 0x0F, frames[1] & 0x7F
            start = 2
            if length == 126:
                length, start = struct.unpack(">H", frames[2:4])[0], 4
            payload, frames = frames[start:start + length], frames[start + length:]
            if opcode == 0x8 and len(payload) >= 2:
                return struct.unpack(">H", payload[:2])[0]
        return None


class _Factory(ClientFactory):
    def __init__(self, socket: SlowSocket) -> None:
        self.socket = socket
        self.connected: Deferred = Deferred()

    def buildProtocol(self, addr: Any) -> SlowSocket:
        self.connected.callback(self.socket)
        return self.socket

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.connected.errback(reason)


class SlowLorisTests(ServerTestCase):

    @inlineCallbacks
    def open_slow(self, server: ServerProcess, script: bytes, interval: float | None = None) -> Any:
        slow = SlowSocket(script, interval)
        factory = _Factory(slow)
        connector = reactor.connectTCP("127.0.0.1", server.port, factory)
        # Cleanups run last-in first-out: disconnect (if the server has not), then wait until it is closed.
        self.addCleanup(lambda: observe(slow.lost))
        self.addCleanup(lambda: slow.lost.called or connector.disconnect())
        yield within(20, factory.connected, "a slow socket connecting")
        return slow

    @inlineCallbacks
    def open_many(self, server: ServerProcess, script: bytes, interval: float | None = None) -> Any:
        sockets = yield DeferredList([self.open_slow(server, script, interval) for _ in range(SOCKETS)],
                                     fireOnOneErrback=True, consumeErrors=True)
        return [s for _, s in sockets]

    @inlineCallbacks
    def closed_in_time(self, sockets: list[SlowSocket], what: str) -> Any:
        """Seconds each socket lived; fails if the server left any open past the bound."""
        lived = yield within(CLOSE_BOUND, DeferredList([observe_seconds(s) for s in sockets],
                                                      fireOnOneErrback=True, consumeErrors=True),
                             f"the server closing {what}")
        return [seconds for _, seconds in lived]

    def start(self):
        return self.start_server(options=["--auth-timeout", str(AUTH_TIMEOUT)])

    @inlineCallbacks
    def test_connections_that_never_send_a_byte_are_closed_by_the_server(self):
        server = yield self.start()
        sockets = yield self.open_many(server, b"")
        lived = yield self.closed_in_time(sockets, "silent connections")
        self.assertNoCrash(server)
        record_figures(self, faults={"silent TCP connections": SOCKETS}, inputs=SOCKETS, files=0,
                       bytes_verified=0, bytes_lost=0, longest_lived_s=round(max(lived), 2))

    @inlineCallbacks
    def test_a_handshake_that_stops_half_way_is_closed_by_the_server(self):
        server = yield self.start()
        request = handshake(server.port)
        sockets = yield self.open_many(server, request[: len(request) // 2])
        lived = yield self.closed_in_time(sockets, "half-sent handshakes")
        self.assertNoCrash(server)
        record_figures(self, faults={"half-sent handshakes": SOCKETS}, inputs=SOCKETS, files=0,
                       bytes_verified=0, bytes_lost=0, longest_lived_s=round(max(lived), 2))

    @inlineCallbacks
    def test_a_handshake_sent_a_byte_at_a_time_that_never_authenticates_is_closed_with_4003(self):
        server = yield self.start()
        sockets = yield self.open_many(server, handshake(server.port), DRIBBLE_INTERVAL)
        # Each takes len(handshake) * DRIBBLE_INTERVAL to finish its handshake; then the auth timeout runs.
        yield within(len(handshake(server.port)) * DRIBBLE_INTERVAL * 3 + CLOSE_BOUND,
                     DeferredList([observe(s.lost) for s in sockets]), "the server closing dribbled handshakes")
        self.assertEqual({s.close_code() for s in sockets}, {4003})
        self.assertNoCrash(server)
        record_figures(self, faults={"handshakes one byte at a time": SOCKETS}, inputs=SOCKETS, files=0,
                       bytes_verified=0, bytes_lost=0)

    @inlineCallbacks
    def test_websockets_that_never_authenticate_are_closed_with_4003(self):
        server = yield self.start()
        clients = yield DeferredList([ProtocolClient.connect(self.ws_url(server)) for _ in range(SOCKETS)],
                                     fireOnOneErrback=True, consumeErrors=True)
        clients = [c for _, c in clients]
        for client in clients:
            self.addCleanup(client.abort)
        yield within(CLOSE_BOUND, DeferredList([observe(c.closed) for c in clients]), "the auth timeout")
        self.assertEqual({c.close_code for c in clients}, {4003})
        self.assertEqual({m.get("code") for c in clients for m in c.messages}, {"timeout"})
        self.assertNoCrash(server)
        record_figures(self, faults={"websockets never authenticating": SOCKETS}, inputs=SOCKETS, files=0,
                       bytes_verified=0, bytes_lost=0)

    @inlineCallbacks
    def test_a_good_upload_completes_while_slow_loris_sockets_hang_on(self):
        server = yield self.start()
        request = handshake(server.port)
        slow = []
        for script, interval in ((b"", None), (request[:40], None), (request, DRIBBLE_INTERVAL)):
            opened = yield self.open_many(server, script, interval)
            slow += opened
        source = self.make_file(4 * 1024 * 1024 + 1)
        client = UploadClient(self.ws_url(server), token(files=SlotConfig(max_file_size=10**8)))
        [result] = yield within(30, client.upload([FileUpload.from_path(source, "files")]), "the good upload")
        self.assertTrue(result.ok, result)
        self.assertEqual(client.reconnects, 0)
        self.assertEqual(result.sha256, sha256_file(source))
        self.assertTrue(files_with_digest(self.upload_dir, result.sha256))
        self.assertTrue(server.running)
        self.assertNoCrash(server)
        record_figures(self, faults={"slow-loris sockets": len(slow)}, inputs=len(slow) + 1, files=1,
                       bytes_verified=source.stat().st_size, bytes_lost=0)


def observe_seconds(socket: SlowSocket) -> Deferred:
    """Fires with how long ``socket`` lived, once the server has closed it."""
    seconds: Deferred = Deferred()
    socket.lost.addCallback(lambda lived: (seconds.callback(lived), lived)[1])
    return seconds
