"""The Autobahn adapter: translates between a WebSocket and :class:`~twisted_uploads.connection.UploadConnection`.

It checks ``Origin`` before the upgrade, hands the handshake (Origin, Host, cookies, peer, TLS) to the connection
for the token verifier, sets Autobahn's frame and message limits, and does nothing else: every protocol rule lives
in the sans-IO state machine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable
from urllib.parse import urlsplit

from autobahn.twisted.resource import WebSocketResource
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny, ConnectionRequest
from twisted.internet.interfaces import ISSLTransport
from twisted.logger import Logger
from twisted.web.server import Request

from . import SUBPROTOCOL
from .codec import PRE_AUTH_FRAME_LIMIT
from .connection import UploadConnection
from .errors import ErrorCode
from .tokens import Handshake, parse_cookie_header

if TYPE_CHECKING:
    from .service import UploadServer

log = Logger()

#: What the ``Server:`` header of the handshake response says (Autobahn's default names its version).
SERVER_HEADER = "twisted-uploads"
_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def parse_origin(origin: str | None) -> tuple[str, str, int | None] | None:
    """``(scheme, host, port)`` of a serialised origin, or None when it is not one.

    An ``Origin`` header is ``scheme://host[:port]`` and nothing else: ``null`` (sandboxed frames, ``file:``
    pages), ``*``, an empty value, one with a path, credentials or a bad port are not origins. The host is lowered
    and an IPv6 literal loses its brackets; a missing port becomes the scheme's default.
    """
    if not origin or origin != origin.strip() or "://" not in origin:
        return None
    try:
        parts = urlsplit(origin)
        port = parts.port
    except ValueError:
        return None
    scheme, host = parts.scheme.lower(), parts.hostname
    if not scheme or not host or parts.path or parts.query or parts.fragment or "@" in parts.netloc \
            or "#" in origin or "?" in origin:
        return None
    return scheme, host.lower(), port if port is not None else _DEFAULT_PORTS.get(scheme)


def _host_and_port(authority: str) -> tuple[str, int | None] | None:
    """``host[:port]`` (a ``Host`` header or a bare pattern) split, brackets of an IPv6 literal removed."""
    authority = authority.strip().lower()
    if not authority or any(c in authority for c in "/?#@ "):
        return None
    if authority.count(":") > 1 and not authority.startswith("["):
        return authority, None  # an IPv6 literal written without brackets: no port possible
    try:
        parts = urlsplit("//" + authority)
        port = parts.port
    except ValueError:
        return None
    host = parts.hostname
    if not host:
        return None
    return host, port


def _host_matches(host: str, pattern: str) -> bool:
    """``example.com`` exactly, ``.example.com`` / ``*.example.com`` that domain and its subdomains."""
    if pattern.startswith("*."):
        pattern = pattern[1:]
    if pattern.startswith("."):
        return host == pattern[1:] or host.endswith(pattern)
    return host == pattern


def origin_allowed(origin: str | None, allowed: Iterable[str], *, host: str, secure: bool) -> bool:
    """Whether a browser page at ``origin`` may open the upload socket reached at ``host`` (over TLS if ``secure``).

    The page's scheme is the socket's: ``http`` for ``ws://``, ``https`` for ``wss://``. ``allowed`` holds

    * full origins ``scheme://host[:port]``: scheme, host and port must all be equal (``https://example.com`` is
      port 443); the host may be a ``*.example.com`` / ``.example.com`` pattern;
    * bare host patterns (``example.com``, ``.example.com``, ``[::1]``, Django's ``ALLOWED_HOSTS`` syntax),
      optionally with a port (``localhost:8000``): the host must match, the scheme must be the page's, and the
      port the one given — or, without one, the port the socket itself was reached on (the page and the socket
      share a port, as under ``twistd``);
    * ``*``: any well-formed origin (the check is off).

    With nothing configured only the same origin may connect: the socket's own scheme, host and port. A value that
    is not an origin (``null``, empty, ``*``, garbage) never passes.
    """
    parsed = parse_origin(origin)
    own = _host_and_port(host)
    if parsed is None:
        return False
    scheme, origin_host, origin_port = parsed
    page_scheme = "https" if secure else "http"
    own_port = None if own is None else (own[1] if own[1] is not None else _DEFAULT_PORTS[page_scheme])
    patterns = [p.strip().lower() for p in allowed if p and p.strip()]
    if not patterns:
        return own is not None and (scheme, origin_host, origin_port) == (page_scheme, own[0], own_port)
    for pattern in patterns:
        if pattern == "*":
            return True
        if "://" in pattern:
            # A configured full origin; its host may be a ``*.example.com`` pattern (urlsplit keeps it as it is).
            wanted = parse_origin(pattern.rstrip("/"))
            if wanted is not None and wanted[0] == scheme and wanted[2] == origin_port \
                    and _host_matches(origin_host, wanted[1]):
                return True
            continue
        bare = _host_and_port(pattern)
        if bare is None or scheme != page_scheme or not _host_matches(origin_host, bare[0]):
            continue
        if origin_port == (bare[1] if bare[1] is not None else own_port):
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


def _is_tls(transport: Any) -> bool:
    return ISSLTransport(transport, None) is not None


class UploadServerProtocol(WebSocketServerProtocol):
    """One upload WebSocket."""

    factory: "UploadWebSocketFactory"
    upload: UploadConnection | None = None
    handshake: Handshake | None = None

    def onConnect(self, request: ConnectionRequest) -> str | None:
        headers = request.headers
        secure = _is_tls(self.transport)
        origin = headers.get("origin")
        allowed = self.factory.upload_server.allowed_origins
        # The resource refused bad origins before the upgrade already; this covers a factory listened on directly.
        if origin is not None and not origin_allowed(origin, allowed, host=headers.get("host", ""), secure=secure):
            log.info("Refused upload WebSocket from origin {origin}", origin=origin)
            raise ConnectionDeny(403, f"{ErrorCode.FORBIDDEN_ORIGIN.value}: origin not allowed")
        self.handshake = Handshake(origin=origin, host=headers.get("host", ""),
                                   cookies=parse_cookie_header(headers.get("cookie")), peer=str(request.peer),
                                   secure=secure)
        return SUBPROTOCOL if SUBPROTOCOL in request.protocols else None

    def onOpen(self) -> None:
        server = self.factory.upload_server
        # Until the token names the slots, only control messages may arrive: a text frame over 16 KiB but within
        # this limit is answered protocol_error by the state machine; anything larger Autobahn refuses (1009).
        self.maxFramePayloadSize = self.maxMessagePayloadSize = min(PRE_AUTH_FRAME_LIMIT, server.limits.max_frame)
        transport = _SocketTransport(self, server.clock)
        self.upload = UploadConnection(server.registry, server.verifier, server.clock, transport, server.limits,
                                       handshake=self.handshake)
        self.upload.connection_made()

    # Autobahn's streaming API, used for every message (docs/benchmarks.md, "the hot path"). Autobahn still parses
    # the frames, enforces the frame and message limits (``onMessageFrameBegin``), validates text as UTF-8 and
    # unmasks each piece once as it is read; what these overrides drop is its whole-message bookkeeping per frame
    # (a list per frame, ``extend`` into a list per message, the ``message`` event fired through txaio for
    # every message) and the reassembly join when a message is one read. A data frame usually spans two or more
    # reads (64 KiB each): its pieces are joined once, into the one ``bytes`` the state machine and the writer see.

    _pieces: list[bytes]

    def onMessageBegin(self, isBinary: bool) -> None:
        self.message_is_binary = isBinary
        self.message_data_total_length = 0
        self._pieces = []

    def onMessageFrameBegin(self, length: int) -> None:
        self.message_data_total_length += length
        if not self.failedByMe:
            if 0 < self.maxMessagePayloadSize < self.message_data_total_length:
                self.wasMaxMessagePayloadSizeExceeded = True
                self._max_message_size_exceeded(
                    self.message_data_total_length, self.maxMessagePayloadSize,
                    f"received WebSocket message size {self.message_data_total_length} exceeds payload limit of "
                    f"{self.maxMessagePayloadSize} octets")
            elif 0 < self.maxFramePayloadSize < length:
                self.wasMaxFramePayloadSizeExceeded = True
                self._max_message_size_exceeded(
                    length, self.maxFramePayloadSize,
                    f"received WebSocket frame size {length} exceeds payload limit of "
                    f"{self.maxFramePayloadSize} octets")

    def onMessageFrameData(self, payload: bytes) -> None:
        if payload:
            self._pieces.append(payload)

    def onMessageFrameEnd(self) -> None:
        pass

    def onMessageEnd(self) -> None:
        pieces, self._pieces = self._pieces, []
        if self.failedByMe:
            return
        # One piece is passed as it is (no copy); several are joined once.
        payload = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        self.onMessage(payload, self.message_is_binary)

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
        # Autobahn's factory keeps the Server header string in ``self.server``; ours is ``upload_server``.
        kwargs.setdefault("server", SERVER_HEADER)
        super().__init__(**kwargs)
        self.upload_server = server
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


class UploadWebSocketResource(WebSocketResource):
    """The upgrade, after an ``Origin`` check answered by ``twisted.web``: a page that may not upload gets HTTP 403
    ``forbidden_origin`` whatever its ``Origin`` looks like (Autobahn itself would answer a malformed one 400)."""

    def __init__(self, factory: UploadWebSocketFactory) -> None:
        super().__init__(factory)
        self._upload_server = factory.upload_server

    def render(self, request: Request) -> Any:
        origins = request.requestHeaders.getRawHeaders(b"origin")
        if origins is not None:
            host = (request.getHeader(b"host") or b"").decode("latin-1")
            origin = origins[0].decode("latin-1") if len(origins) == 1 else None
            if not origin_allowed(origin, self._upload_server.allowed_origins, host=host,
                                  secure=request.isSecure()):
                log.info("Refused upload WebSocket from origin {origin}",
                         origin=", ".join(value.decode("latin-1") for value in origins))
                request.setResponseCode(403, b"Forbidden")
                request.setHeader(b"content-type", b"text/plain; charset=utf-8")
                return f"{ErrorCode.FORBIDDEN_ORIGIN.value}: this page's origin may not upload here\n".encode()
        return super().render(request)


def make_resource(server: "UploadServer") -> WebSocketResource:
    """A ``twisted.web`` resource serving the upload WebSocket, to mount anywhere in a ``Site``."""
    return UploadWebSocketResource(UploadWebSocketFactory(server))
