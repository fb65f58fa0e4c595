"""The WebSocket edge over real loopback sockets: Origin refusals, response headers, oversized and malformed
control messages, session take-over (docs/protocol.md §1, §3, §7)."""

from __future__ import annotations

from pathlib import Path

import twisted.test
from twisted.internet import reactor, ssl
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import SSL4ClientEndpoint, TCP4ClientEndpoint, TCP6ClientEndpoint, connectProtocol
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Protocol
from twisted.trial.unittest import SkipTest

from twisted_uploads.codec import MAX_CONTROL_BYTES
from twisted_uploads.connection import ConnectionLimits
from twisted_uploads.slots import SlotConfig

from .support import ServerTestCase

UPGRADE = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13"),
           ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")]


class _RawHTTP(Protocol):
    """Sends one request and collects what comes back until the headers end (or the server closes)."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.received = b""
        self.done: Deferred = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        head, sep, body = self.received.partition(b"\r\n\r\n")
        # An upgrade has no body; anything else is read to its Content-Length (or until the server closes).
        complete = sep and (head.startswith(b"HTTP/1.1 101") or len(body) >= _content_length(head))
        if complete and not self.done.called:
            self.done.callback(self.received)
            self.transport.abortConnection()

    def connectionLost(self, reason: object = None) -> None:
        if not self.done.called:
            self.done.callback(self.received)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


class Response:
    """Status, headers (lower-cased names, every value) and body of a raw HTTP answer."""

    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        status, *lines = head.decode("latin-1").split("\r\n")
        self.code = int(status.split()[1])
        self.headers: dict[str, list[str]] = {}
        for line in lines:
            name, _, value = line.partition(":")
            self.headers.setdefault(name.strip().lower(), []).append(value.strip())


class HandshakeTestCase(ServerTestCase):

    @inlineCallbacks
    def handshake(self, headers: list[tuple[str, str]] = (), upgrade: bool = True,  # type: ignore[no-untyped-def]
                  port: int | None = None, tls: bool = False, ipv6: bool = False):
        """Send a GET to the socket's path with ``headers`` (and the upgrade headers); return the Response."""
        port = port or self.port.getHost().port
        host = f"[::1]:{port}" if ipv6 else f"127.0.0.1:{port}"
        lines = ["GET /uploads/ws HTTP/1.1", f"Host: {host}", *(f"{n}: {v}" for n, v in
                                                             [*(UPGRADE if upgrade else []), *headers])]
        protocol = _RawHTTP(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        if ipv6:
            endpoint = TCP6ClientEndpoint(reactor, "::1", port)
        elif tls:
            endpoint = SSL4ClientEndpoint(reactor, "127.0.0.1", port, ssl.CertificateOptions())
        else:
            endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
        yield connectProtocol(endpoint, protocol)
        raw = yield protocol.done
        return Response(raw)

    @property
    def page_origin(self) -> str:
        return f"http://127.0.0.1:{self.port.getHost().port}"


class OriginRefusalTests(HandshakeTestCase):
    """With no origins configured, only the same scheme, host and port may open the socket; every refusal is 403
    ``forbidden_origin``."""

    @inlineCallbacks
    def assertForbidden(self, *origins: str):  # type: ignore[no-untyped-def]
        response = yield self.handshake([("Origin", origin) for origin in origins])
        self.assertEqual(response.code, 403, origins)
        self.assertIn(b"forbidden_origin", response.body)

    def test_null_origin_is_403_forbidden_origin(self):
        return self.assertForbidden("null")

    def test_empty_origin_is_403_forbidden_origin(self):
        return self.assertForbidden("")

    def test_star_origin_is_403_forbidden_origin(self):
        return self.assertForbidden("*")

    def test_garbage_origin_is_403_forbidden_origin(self):
        return self.assertForbidden("not an origin at all")

    def test_two_origin_headers_are_403_forbidden_origin(self):
        return self.assertForbidden(self.page_origin, self.page_origin)

    def test_https_origin_is_refused_where_the_page_is_http(self):
        return self.assertForbidden(self.page_origin.replace("http://", "https://"))

    def test_ws_origin_is_refused_where_the_page_is_http(self):
        return self.assertForbidden(self.page_origin.replace("http://", "ws://"))

    def test_another_port_is_refused(self):
        return self.assertForbidden(f"http://127.0.0.1:{self.port.getHost().port + 1}")

    @inlineCallbacks
    def test_same_origin_upgrades(self):
        response = yield self.handshake([("Origin", self.page_origin)])
        self.assertEqual(response.code, 101)


class TLSOriginTests(HandshakeTestCase):
    """Over TLS (``wss://``) the page's scheme is ``https``: an ``http`` page of the same host and port is refused."""

    def setUp(self) -> None:
        super().setUp()
        pem = (Path(twisted.test.__file__).parent / "server.pem").read_bytes()
        certificate = ssl.PrivateCertificate.loadPEM(pem)
        self.tls_port = reactor.listenSSL(0, self.server.standalone_site(), certificate.options(),
                                          interface="127.0.0.1")
        self.addCleanup(self.tls_port.stopListening)

    @inlineCallbacks
    def test_the_https_page_of_the_same_host_and_port_upgrades(self):
        port = self.tls_port.getHost().port
        response = yield self.handshake([("Origin", f"https://127.0.0.1:{port}")], port=port, tls=True)
        self.assertEqual(response.code, 101)

    @inlineCallbacks
    def test_the_http_page_of_the_same_host_and_port_is_refused(self):
        port = self.tls_port.getHost().port
        response = yield self.handshake([("Origin", f"http://127.0.0.1:{port}")], port=port, tls=True)
        self.assertEqual(response.code, 403)


class IPv6OriginTests(HandshakeTestCase):
    """``[::1]`` from ``ALLOWED_HOSTS`` matches a page on the IPv6 loopback."""

    def setUp(self) -> None:
        super().setUp()
        self.server.allowed_origins = ("localhost", "[::1]")
        try:
            self.v6_port = reactor.listenTCP(0, self.server.standalone_site(), interface="::1")
        except CannotListenError as error:  # a machine without IPv6 loopback
            raise SkipTest(f"no IPv6 loopback: {error}") from None
        self.addCleanup(self.v6_port.stopListening)

    @inlineCallbacks
    def test_the_ipv6_loopback_page_upgrades(self):
        port = self.v6_port.getHost().port
        response = yield self.handshake([("Origin", f"http://[::1]:{port}")], port=port, ipv6=True)
        self.assertEqual(response.code, 101)

    @inlineCallbacks
    def test_the_ipv6_loopback_page_on_another_port_is_refused(self):
        port = self.v6_port.getHost().port
        response = yield self.handshake([("Origin", f"http://[::1]:{port + 1}")], port=port, ipv6=True)
        self.assertEqual(response.code, 403)


class ServerHeaderTests(HandshakeTestCase):
    """No Python repr (nor an object address) in the ``Server:`` header of any handshake answer."""

    def assertPlainServerHeader(self, response: Response) -> None:
        for value in response.headers.get("server", []):
            self.assertNotIn("<", value)
            self.assertNotIn("object at", value)

    @inlineCallbacks
    def test_upgrade_response_names_no_python_object(self):
        response = yield self.handshake()
        self.assertEqual(response.code, 101)
        self.assertEqual(response.headers["server"], ["twisted-uploads"])

    @inlineCallbacks
    def test_refusal_names_no_python_object(self):
        response = yield self.handshake([("Origin", "null")])
        self.assertEqual(response.code, 403)
        self.assertPlainServerHeader(response)

    @inlineCallbacks
    def test_plain_get_names_no_python_object(self):
        response = yield self.handshake(upgrade=False)
        self.assertTrue(response.headers.get("server"))
        self.assertPlainServerHeader(response)


class ControlMessageTests(ServerTestCase):
    """Malformed control messages over a real socket are answered with a code and a close, never a drop (1006)."""

    limits = ConnectionLimits(max_frame=256 * 1024 + 12)

    @inlineCallbacks
    def assertClosedWith(self, client, code: str, close_code: int):  # type: ignore[no-untyped-def]
        error = yield client.next("error")
        yield client.closed
        self.assertEqual((error["code"], client.close_code), (code, close_code))

    @inlineCallbacks
    def test_auth_over_16_kib_is_protocol_error_and_close_4002(self):
        client = yield self.raw_client()
        client.send_json(type="auth", token="x" * (MAX_CONTROL_BYTES + 1))
        yield self.assertClosedWith(client, "protocol_error", 4002)

    @inlineCallbacks
    def test_auth_without_token_is_invalid_token_and_close_4001(self):
        client = yield self.raw_client()
        client.send_json(type="auth")
        yield self.assertClosedWith(client, "invalid_token", 4001)

    @inlineCallbacks
    def test_announce_without_size_is_protocol_error_and_close_4002(self):
        client = yield self.raw_client(self.token())
        client.send_json(type="announce", ref="f1", slot="files", name="a.txt", mime="text/plain")
        yield self.assertClosedWith(client, "protocol_error", 4002)

    @inlineCallbacks
    def test_frame_of_welcome_max_frame_is_read_and_one_byte_more_closes_1009(self):
        client = yield self.raw_client(self.token(files=SlotConfig(chunk_size=65536, max_file_size=10**6)))
        max_frame = client.welcome["max_frame"]
        self.assertEqual(max_frame, 65536 + 12)
        accepted = yield client.announce("a.bin", 65536)
        client.send_chunk(accepted["entry"], 0, b"\0" * (max_frame - 12))
        complete = yield client.next("complete")
        self.assertEqual(complete["size"], 65536)
        client.send_chunk(accepted["entry"], 65536, b"\0" * (max_frame - 11))
        yield client.closed
        self.assertEqual(client.close_code, 1009)


class MovedTests(ServerTestCase):
    """A second connection of the session resuming an entry tells the first one ``moved``."""

    @inlineCallbacks
    def test_old_connection_is_told_moved_and_the_new_one_completes(self):
        token = self.token(session="shared", files=SlotConfig(max_file_size=10_000))
        first = yield self.raw_client(token)
        accepted = yield first.announce("a.txt", 2000, ref="r1")
        first.send_chunk(accepted["entry"], 0, b"a" * 1000)
        second = yield self.raw_client(token)
        second.send_json(type="resume", entry=accepted["entry"])
        moved = yield first.next("moved")
        self.assertEqual(moved, {"type": "moved", "entry": accepted["entry"], "ref": "r1"})
        resumed = yield second.next("accepted")
        second.send_chunk(accepted["entry"], resumed["offset"], b"a" * (2000 - resumed["offset"]))
        complete = yield second.next("complete")
        self.assertEqual(complete["size"], 2000)
