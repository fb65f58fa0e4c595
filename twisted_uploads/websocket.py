"""The Autobahn adapter: translates between a WebSocket and :class:`~twisted_uploads.connection.UploadConnection`.

It checks ``Origin`` at the handshake, sets Autobahn's frame and message limits, and does nothing else: every
protocol rule lives in the sans-IO state machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable
from urllib.parse import urlsplit

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.logger import Logger

from . import SUBPROTOCOL
from .codec import MAX_CONTROL_BYTES
from .connection import UploadConnection
from .errors import ErrorCode

if TYPE_CHECKING:
    from .service import UploadServer

log = Logger()


def origin_allowed(origin: str, host: str, allowed: Iterable[str]) -> bool:
    """Whether a browser page at ``origin`` may connect.

    ``allowed`` holds origins (``https://example.com``, ``http://localhost:8000``), host names matched on any
    scheme and port (``example.com``), ``*.example.com`` wildcards or ``*``. With nothing configured, only
    same-origin pages (origin host:port equals the request's ``Host``) may connect.
    """
    parts = urlsplit(origin)
    if not parts.scheme or not parts.hostname:
        return False
    allowed = [a.strip().lower() for a in allowed if a.strip()]
    if not allowed:
        return parts.netloc.lower() == host.lower()
    hostname = parts.hostname.lower()
    for pattern in allowed:
        if pattern == "*" or pattern == origin.lower().rstrip("/"):
            return True
        if "://" in pattern:
            continue
        if pattern.startswith("*.") and (hostname.endswith(pattern[1:]) or hostname == pattern[2:]):
            return True
        if pattern.startswith(".") and (hostname.endswith(pattern) or hostname == pattern[1:]):
            return True
        if hostname == pattern:
            return True
    return False


#: Seconds a peer gets to answer our close frame before the TCP connection is dropped.
CLOSE_GRACE = 5.0


class _SocketTransport:
    """The two things the state machine may do to a socket."""

    def __init__(self, protocol: WebSocketServerProtocol, clock: Any) -> None:
        self._protocol = protocol
        self._clock = clock

    def send_text(self, text: str) -> None:
        self._protocol.sendMessage(text.encode("utf-8"), isBinary=False)

    def close(self, code: int, reason: str) -> None:
        self._protocol.sendClose(code, reason[:120])
        # Our own timer on the injected clock rather than Autobahn's close-handshake timer, so tests control it.
        self._clock.callLater(CLOSE_GRACE, self._drop)

    def limit_frames(self, max_frame: int) -> None:
        self._protocol.maxFramePayloadSize = max_frame
        self._protocol.maxMessagePayloadSize = max_frame

    def _drop(self) -> None:
        transport = self._protocol.transport
        if transport is not None and self._protocol.state != self._protocol.STATE_CLOSED:
            transport.abortConnection()


class UploadServerProtocol(WebSocketServerProtocol):
    """One upload WebSocket."""

    factory: "UploadWebSocketFactory"
    upload: UploadConnection | None = None

    def onConnect(self, request: ConnectionRequest) -> str | None:
        origin = request.headers.get("origin")
        allowed = self.factory.server.allowed_origins
        if origin is not None and not origin_allowed(origin, request.headers.get("host", ""), allowed):
            log.info("Refused upload WebSocket from origin {origin}", origin=origin)
            raise ConnectionDeny(403, f"{ErrorCode.FORBIDDEN_ORIGIN.value}: origin {origin} is not allowed")
        return SUBPROTOCOL if SUBPROTOCOL in request.protocols else None

    def onOpen(self) -> None:
        server = self.factory.server
        # Until the token names the slots, only control messages (at most 16 KiB) may arrive.
        self.maxFramePayloadSize = self.maxMessagePayloadSize = MAX_CONTROL_BYTES
        transport = _SocketTransport(self, server.clock)
        self.upload = UploadConnection(server.registry, server.verifier, server.clock, transport, server.limits)
        self.upload.connection_made()

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        upload = self.upload
        if upload is None:
            return
        if isBinary:
            upload.binary_received(payload)
        else:
            upload.text_received(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        if self.upload is not None:
            self.upload.connection_lost()
            self.upload = None


class UploadWebSocketFactory(WebSocketServerFactory):
    """Builds :class:`UploadServerProtocol` for one :class:`~twisted_uploads.service.UploadServer`."""

    protocol = UploadServerProtocol

    def __init__(self, server: "UploadServer", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.server = server
        self.setProtocolOptions(
            maxFramePayloadSize=server.limits.max_frame,
            maxMessagePayloadSize=server.limits.max_frame,
            autoFragmentSize=0,
            # twisted.web times out idle HTTP requests; after the upgrade the auth timeout (on the injected clock)
            # takes over. Autobahn's own timers would run on the global reactor instead.
            openHandshakeTimeout=0,
            closeHandshakeTimeout=0,
            failByDrop=False,
            perMessageCompressionAccept=lambda offers: None,
            tcpNoDelay=True,
        )


def make_resource(server: "UploadServer") -> WebSocketResource:
    """A ``twisted.web`` resource serving the upload WebSocket, to mount anywhere in a ``Site``."""
    return WebSocketResource(UploadWebSocketFactory(server))
