"""A real upload server on loopback for tests, and a raw protocol client that can misbehave on purpose."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol, connectWS
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial import unittest

from twisted_uploads import SUBPROTOCOL
from twisted_uploads.codec import encode_chunk
from twisted_uploads.connection import ConnectionLimits
from twisted_uploads.service import UploadServer
from twisted_uploads.slots import SlotConfig
from twisted_uploads.tokens import HMACTokenVerifier, make_token

from ..support import stored_files

SECRET = "test-secret-0123456789"


class ServerTestCase(unittest.TestCase):
    """Starts an UploadServer on 127.0.0.1:0 whose timers run on ``self.clock`` (advanced by the test)."""

    limits = ConnectionLimits()

    def setUp(self) -> None:
        self.clock = Clock()
        self.upload_dir = Path(self.mktemp())
        self.server = UploadServer(str(self.upload_dir), HMACTokenVerifier(SECRET), clock=self.clock,
                                   limits=self.limits, resume_grace=30, complete_ttl=120)
        self.port = reactor.listenTCP(0, self.server.standalone_site(), interface="127.0.0.1")
        self.url = f"ws://127.0.0.1:{self.port.getHost().port}/uploads/ws"
        self.addCleanup(self.server.shutdown)
        self.addCleanup(self.port.stopListening)

    def token(self, session: str | None = None, ttl: float = 3600, **slots: SlotConfig) -> str:
        return make_token(SECRET, session or secrets.token_hex(8), slots or {"files": SlotConfig()}, ttl)

    def make_file(self, size: int, name: str = "data.bin", content: bytes | None = None) -> Path:
        directory = Path(self.mktemp())
        directory.mkdir()
        path = directory / name
        path.write_bytes(content if content is not None else os.urandom(size))
        return path

    def stored_files(self, records: bool = True) -> list[Path]:
        """Every file the uploads left under the upload directory: bytes and (unless ``records=False``) records."""
        return stored_files(self.upload_dir, records=records)

    @inlineCallbacks
    def raw_client(self, token: str | None = None, origin: str | None = None) -> Any:
        client = yield RawClient.connect(self.url, origin)
        self.addCleanup(client.abort)
        if token is not None:
            client.send_json(type="auth", token=token)
            welcome = yield client.next("welcome")
            client.welcome = welcome
        return client


class _RawProtocol(WebSocketClientProtocol):
    factory: "_RawFactory"

    def onOpen(self) -> None:
        self.factory.client._opened(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.client._received(json.loads(payload))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.client._closed(code, reason)


class _RawFactory(WebSocketClientFactory):
    protocol = _RawProtocol

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.client._closed(None, reason.getErrorMessage())


class RawClient:
    """Speaks the protocol frame by frame and records every message the server sends."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.protocol: _RawProtocol | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.welcome: dict[str, Any] = {}
        self._waiters: list[tuple[str | None, Deferred]] = []
        self._cursor = 0
        self._opened_d: Deferred = Deferred()
        self.closed: Deferred = Deferred()

    @classmethod
    def connect(cls, url: str, origin: str | None = None, max_frame: int = 16 << 20) -> Deferred:
        client = cls()
        factory = _RawFactory(url=url, protocols=[SUBPROTOCOL], origin=origin)
        factory.setProtocolOptions(maxFramePayloadSize=max_frame, maxMessagePayloadSize=max_frame,
                                   autoFragmentSize=0, openHandshakeTimeout=0, closeHandshakeTimeout=0)
        factory.client = client
        connectWS(factory)
        return client._opened_d

    def _opened(self, protocol: _RawProtocol) -> None:
        self.protocol = protocol
        self._opened_d.callback(self)

    def _received(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self._deliver()

    def _closed(self, code: int | None, reason: str | None) -> None:
        self.close_code, self.close_reason = code, reason
        if not self._opened_d.called:
            self._opened_d.errback(ConnectionError(reason))
        for _, waiter in self._waiters:
            waiter.errback(ConnectionError(f"closed {code}: {reason}"))
        self._waiters = []
        if not self.closed.called:
            self.closed.callback((code, reason))

    def _deliver(self) -> None:
        while self._waiters and self._cursor < len(self.messages):
            wanted, waiter = self._waiters[0]
            message = self.messages[self._cursor]
            self._cursor += 1
            if wanted is None or message["type"] == wanted:
                self._waiters.pop(0)
                waiter.callback(message)

    def next(self, message_type: str | None = None) -> Deferred:
        """The next message (of ``message_type``), skipping others; fails if the socket closes first."""
        waiter: Deferred = Deferred()
        if self.close_code is not None or (self.protocol is None and self._opened_d.called):
            waiter.errback(ConnectionError("closed"))
            return waiter
        self._waiters.append((message_type, waiter))
        self._deliver()
        return waiter

    def send_json(self, **message: Any) -> None:
        assert self.protocol is not None
        self.protocol.sendMessage(json.dumps(message).encode(), isBinary=False)

    def send_chunk(self, entry: int, offset: int, payload: bytes) -> None:
        assert self.protocol is not None
        self.protocol.sendMessage(encode_chunk(entry, offset, payload), isBinary=True)

    @inlineCallbacks
    def announce(self, name: str, size: int, slot: str = "files", mime: str = "", ref: str | None = None) -> Any:
        """Announce a file; returns the ``accepted`` or ``rejected`` reply."""
        ref = ref or secrets.token_hex(4)
        self.send_json(type="announce", ref=ref, slot=slot, name=name, mime=mime, size=size)
        while True:
            reply = yield self.next()
            if reply.get("ref") == ref and reply["type"] in ("accepted", "rejected"):
                return reply

    def abort(self) -> Deferred:
        """Drop the TCP connection; the Deferred fires once it is closed."""
        if self.protocol is not None and self.protocol.transport is not None and not self.closed.called:
            self.protocol.transport.abortConnection()
        return self.closed
