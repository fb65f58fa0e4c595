"""For the client's tests: the CLI as a real subprocess, and scripted peers on loopback that a real server cannot
(yet) be made to imitate — one that says nothing at all, one that moves an entry to another connection.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import protocol, reactor
from twisted.internet.defer import Deferred
from twisted.trial import unittest

from twisted_uploads import SUBPROTOCOL
from twisted_uploads.codec import decode_chunk

#: A test that would hang on a client that hangs: trial fails it after this many seconds instead.
HANG_DEADLINE = 10.0


def deadline(seconds: float = HANG_DEADLINE) -> Callable[[Any], Any]:
    """Give one test method trial's ``timeout``: a hang becomes a failure within ``seconds``."""

    def mark(method: Any) -> Any:
        method.timeout = seconds
        return method

    return mark


@dataclass
class CliRun:
    """How one run of ``python -m twisted_uploads`` ended."""

    status: int
    stdout: str
    stderr: str

    @property
    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]


class Collect(protocol.ProcessProtocol):
    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self.ended: Deferred[CliRun] = Deferred()
        self.running = True

    def outReceived(self, data: bytes) -> None:
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:
        self.err.append(data)

    def processEnded(self, reason: Any) -> None:
        self.running = False
        status = reason.value.exitCode
        if status is None:
            status = -(reason.value.signal or 0)
        self.ended.callback(CliRun(status, b"".join(self.out).decode(), b"".join(self.err).decode()))


def run_cli(test: unittest.TestCase, *args: str, env: dict[str, str] | None = None) -> "Deferred[CliRun]":
    """Start the CLI with ``args``; the Deferred fires when it exits. A run still alive at cleanup is killed."""
    return start_cli(test, *args, env=env)[1]


def start_cli(test: unittest.TestCase, *args: str, env: dict[str, str] | None = None,
              command: list[str] | None = None) -> "tuple[Any, Deferred[CliRun]]":
    """Like :func:`run_cli`, also returning the process transport (to signal it); ``command`` replaces
    ``python -m twisted_uploads`` (the console script)."""
    collect = Collect()
    environment = {key: value for key, value in os.environ.items() if key != "TWISTED_UPLOADS_SECRET"}
    environment.update(env or {})
    argv = [*(command or [sys.executable, "-m", "twisted_uploads"]), *args]
    transport = reactor.spawnProcess(collect, argv[0], argv, env=environment)

    def stop() -> Deferred | None:
        if not collect.running:
            return None
        transport.signalProcess("KILL")
        return collect.ended

    test.addCleanup(stop)
    return transport, collect.ended


def listen(test: unittest.TestCase, factory: protocol.Factory) -> int:
    """Listen on 127.0.0.1:0 for the length of the test; the port number."""
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    test.addCleanup(port.stopListening)
    return port.getHost().port


class _Silent(protocol.Protocol):
    def connectionMade(self) -> None:
        self.factory.connections.append(self)
        if not self.factory.accepted.called:
            self.factory.accepted.callback(self)


class SilentServer(protocol.Factory):
    """Accepts TCP connections and never answers: a server that hangs, or a firewall that swallows packets."""

    protocol = _Silent

    def __init__(self) -> None:
        self.connections: list[_Silent] = []
        self.accepted: Deferred[_Silent] = Deferred()

    def close_all(self) -> None:
        for connection in self.connections:
            if connection.transport is not None:
                connection.transport.abortConnection()


def closed_port(test: unittest.TestCase) -> int:
    """A loopback port where nothing listens (it was just released)."""
    port = reactor.listenTCP(0, protocol.Factory(), interface="127.0.0.1")
    number = port.getHost().port
    port.stopListening()
    return number


class _PeerProtocol(WebSocketServerProtocol):
    factory: "ScriptedPeer"

    def onConnect(self, request: Any) -> str | None:
        return SUBPROTOCOL if SUBPROTOCOL in request.protocols else None

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        peer = self.factory
        if isBinary:
            entry, offset, data = decode_chunk(payload)
            peer.on_chunk(self, entry, offset, bytes(data))
            return
        message = json.loads(payload)
        peer.received.append(message)
        if message["type"] == "auth":
            peer.on_auth(self, message)
        elif message["type"] == "announce":
            peer.on_announce(self, message)
        elif message["type"] == "resume":
            peer.on_resume(self, message)

    def send(self, message: dict[str, Any]) -> None:
        self.sendMessage(json.dumps(message).encode(), isBinary=False)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if not self.factory.closed.called:
            self.factory.closed.callback(code)


class ScriptedPeer(WebSocketServerFactory):
    """Speaks the protocol's handshake and ``welcome`` like a server; subclasses script the rest."""

    protocol = _PeerProtocol

    def __init__(self, chunk_size: int = 1024) -> None:
        super().__init__()
        self.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0)
        self.chunk_size = chunk_size
        self.received: list[dict[str, Any]] = []
        self.closed: Deferred[int | None] = Deferred()

    def on_auth(self, protocol: _PeerProtocol, message: dict[str, Any]) -> None:
        protocol.send({"type": "welcome", "protocol": 1, "session": "s", "max_parallel": 8, "max_frame": 1 << 20,
                       "entries": [], "slots": {"files": {"chunk_size": self.chunk_size}}})

    def on_announce(self, protocol: _PeerProtocol, message: dict[str, Any]) -> None:
        raise NotImplementedError

    def on_chunk(self, protocol: _PeerProtocol, entry: int, offset: int, data: bytes) -> None:
        raise NotImplementedError

    def on_resume(self, protocol: _PeerProtocol, message: dict[str, Any]) -> None:
        raise NotImplementedError


class MovingPeer(ScriptedPeer):
    """A server whose every entry another connection takes over after its first chunk.

    The real server tells the old connection ``moved`` when a second connection resumes its entry; this peer does
    it on cue, so the client's side is tested whichever server it runs against.
    """

    def __init__(self, chunk_size: int = 1024) -> None:
        super().__init__(chunk_size)
        self.refs: dict[int, str] = {}
        self.moved: set[int] = set()
        self.frames: list[tuple[int, int, int, bool]] = []

    def on_announce(self, protocol: _PeerProtocol, message: dict[str, Any]) -> None:
        entry = 100 + len(self.refs)
        self.refs[entry] = message["ref"]
        protocol.send({"type": "accepted", "ref": message["ref"], "entry": entry, "offset": 0,
                       "window": 4 * self.chunk_size, "chunk_size": self.chunk_size})

    def on_chunk(self, protocol: _PeerProtocol, entry: int, offset: int, data: bytes) -> None:
        self.frames.append((entry, offset, len(data), entry in self.moved))
        if entry not in self.moved:
            self.moved.add(entry)
            protocol.send({"type": "moved", "entry": entry, "ref": self.refs[entry]})
            # A client that missed the move would take this ack as room to send one more chunk.
            protocol.send({"type": "ack", "entry": entry, "offset": offset + len(data)})


class StoppedReaderPeer(ScriptedPeer):
    """Grants a window as large as the file, acknowledges nothing yet (an ``ack`` of offset 0 right behind
    ``accepted``) and stops reading its socket until :meth:`resume`; then completes the entry once every byte came.
    What the client has sent when that first ack reaches it is what it let queue in its own process."""

    def __init__(self, chunk_size: int = 65536) -> None:
        super().__init__(chunk_size)
        self.size = 0
        self.hash = hashlib.sha256()
        self.stopped: _PeerProtocol | None = None

    def on_announce(self, protocol: _PeerProtocol, message: dict[str, Any]) -> None:
        self.size = message["size"]
        protocol.send({"type": "accepted", "ref": message["ref"], "entry": 1, "offset": 0, "window": self.size,
                       "chunk_size": self.chunk_size})
        protocol.send({"type": "ack", "entry": 1, "offset": 0, "window": self.size})
        protocol.transport.pauseProducing()
        self.stopped = protocol

    def resume(self) -> None:
        if self.stopped is not None and self.stopped.transport is not None:
            self.stopped.transport.resumeProducing()

    def on_chunk(self, protocol: _PeerProtocol, entry: int, offset: int, data: bytes) -> None:
        self.hash.update(data)
        if offset + len(data) == self.size:
            protocol.send({"type": "complete", "entry": 1, "size": self.size, "sha256": self.hash.hexdigest()})


class DeafAfterCompletePeer(StoppedReaderPeer):
    """Completes the entry, then reads nothing more: the client's close frame is never answered (a stalled
    proxy), so its close handshake ends only with its own timer."""

    def on_announce(self, protocol: _PeerProtocol, message: dict[str, Any]) -> None:
        self.size = message["size"]
        protocol.send({"type": "accepted", "ref": message["ref"], "entry": 1, "offset": 0, "window": self.size,
                       "chunk_size": self.chunk_size})

    def on_chunk(self, protocol: _PeerProtocol, entry: int, offset: int, data: bytes) -> None:
        super().on_chunk(protocol, entry, offset, data)
        if offset + len(data) == self.size:
            protocol.transport.pauseProducing()


class BusyPeer(ScriptedPeer):
    """A server busy for reasons of its own: every announce is answered ``server_busy``."""

    def on_announce(self, protocol: _PeerProtocol, message: dict[str, Any]) -> None:
        protocol.send({"type": "rejected", "ref": message["ref"], "code": "server_busy", "message": "busy"})


class DroppingPeer(ScriptedPeer):
    """A server that accepts every file, then drops the connection at its first chunk, storing nothing."""

    def __init__(self, chunk_size: int = 1024) -> None:
        super().__init__(chunk_size)
        self.connections = 0
        self.refs: dict[int, str] = {}

    def accept(self, protocol: _PeerProtocol, entry: int) -> None:
        protocol.send({"type": "accepted", "ref": self.refs[entry], "entry": entry, "offset": 0,
                       "window": 4 * self.chunk_size, "chunk_size": self.chunk_size})

    def on_announce(self, protocol: _PeerProtocol, message: dict[str, Any]) -> None:
        entry = 200 + len(self.refs)
        self.refs[entry] = message["ref"]
        self.accept(protocol, entry)

    def on_resume(self, protocol: _PeerProtocol, message: dict[str, Any]) -> None:
        self.accept(protocol, message["entry"])

    def on_chunk(self, protocol: _PeerProtocol, entry: int, offset: int, data: bytes) -> None:
        self.connections += 1
        protocol.dropConnection(abort=True)


class StallingPeer(DroppingPeer):
    """A server that accepts every file and then says nothing more, with the socket left open."""

    def __init__(self, chunk_size: int = 1024) -> None:
        super().__init__(chunk_size)
        self.first_chunk: Deferred[int] = Deferred()

    def on_chunk(self, protocol: _PeerProtocol, entry: int, offset: int, data: bytes) -> None:
        if not self.first_chunk.called:
            self.first_chunk.callback(entry)


class AbruptRefusalPeer(ScriptedPeer):
    """Refuses the token as the protocol says (``error`` invalid_token), then drops TCP without the close frame,
    as a proxy or a crashing server may: the client must still take the error for final."""

    def __init__(self) -> None:
        super().__init__()
        self.auths = 0

    def on_auth(self, protocol: _PeerProtocol, message: dict[str, Any]) -> None:
        self.auths += 1
        protocol.send({"type": "error", "code": "invalid_token", "message": "the upload token has expired"})
        protocol.transport.loseConnection()  # after the error is written; no close frame

    def on_announce(self, protocol: _PeerProtocol, message: dict[str, Any]) -> None:
        pass  # pipelined behind the refused auth: ignored, as the server would
