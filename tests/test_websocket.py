"""Tests for twisted_uploads.websocket.origin_allowed: scheme, host and port of ``Origin`` (docs/protocol.md §1)."""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from twisted_uploads.codec import encode_chunk
from twisted_uploads.slots import SlotConfig
from twisted_uploads.websocket import origin_allowed, parse_origin

from .e2e.support import ServerTestCase
from .support import fuzz, stored_files


def allowed(origin: str | None, *patterns: str, host: str = "example.com:8000", secure: bool = False) -> bool:
    return origin_allowed(origin, patterns, host=host, secure=secure)


class SameOriginTests(TestCase):
    """With nothing configured, only the page the socket shares scheme, host and port with may connect."""

    def test_same_scheme_host_and_port_may_connect(self) -> None:
        self.assertTrue(allowed("http://example.com:8000"))

    def test_https_page_may_not_use_a_plain_socket(self) -> None:
        self.assertFalse(allowed("https://example.com:8000"))

    def test_http_page_may_not_use_a_tls_socket(self) -> None:
        self.assertFalse(allowed("http://example.com:8000", secure=True))

    def test_https_page_may_use_a_tls_socket(self) -> None:
        self.assertTrue(allowed("https://example.com:8000", secure=True))

    def test_ws_origin_is_refused(self) -> None:
        self.assertFalse(allowed("ws://example.com:8000"))

    def test_another_port_is_refused(self) -> None:
        self.assertFalse(allowed("http://example.com:8001"))

    def test_default_ports_are_equal_to_no_port(self) -> None:
        self.assertTrue(allowed("https://example.com", host="example.com:443", secure=True))
        self.assertTrue(allowed("http://example.com:80", host="example.com"))

    def test_host_is_case_insensitive(self) -> None:
        self.assertTrue(allowed("http://EXAMPLE.com:8000", host="example.COM:8000"))

    def test_ipv6_loopback_page_may_connect(self) -> None:
        self.assertTrue(allowed("http://[::1]:8000", host="[::1]:8000"))

    def test_missing_host_header_refuses_every_origin(self) -> None:
        self.assertFalse(allowed("http://example.com:8000", host=""))


class FullOriginTests(TestCase):
    """A configured ``scheme://host[:port]`` allows exactly that origin."""

    def test_listed_origin_may_connect(self) -> None:
        self.assertTrue(allowed("https://app.example.org", "https://app.example.org"))

    def test_listed_origin_with_trailing_slash_still_matches(self) -> None:
        self.assertTrue(allowed("https://app.example.org", "https://app.example.org/"))

    def test_other_scheme_is_refused(self) -> None:
        self.assertFalse(allowed("http://app.example.org", "https://app.example.org"))

    def test_ws_origin_is_refused_where_the_page_is_http(self) -> None:
        self.assertFalse(allowed("ws://localhost:8000", "http://localhost:8000", host="localhost:8000"))

    def test_https_origin_is_refused_where_the_page_is_http(self) -> None:
        self.assertFalse(allowed("https://localhost:8000", "http://localhost:8000", host="localhost:8000"))

    def test_other_port_is_refused(self) -> None:
        self.assertFalse(allowed("https://app.example.org:8443", "https://app.example.org"))

    def test_wildcard_host_keeps_scheme_and_port(self) -> None:
        self.assertTrue(allowed("https://a.example.org", "https://*.example.org"))
        self.assertFalse(allowed("http://a.example.org", "https://*.example.org"))
        self.assertFalse(allowed("https://a.example.org:444", "https://*.example.org"))

    def test_ipv6_origin_matches(self) -> None:
        self.assertTrue(allowed("http://[::1]:8000", "http://[::1]:8000"))


class BareHostTests(TestCase):
    """``ALLOWED_HOSTS``-style patterns: the host matches, the scheme is the page's, the port the socket's or the
    one written after the pattern."""

    def test_bare_host_on_the_sockets_port_may_connect(self) -> None:
        self.assertTrue(allowed("http://example.com:8000", "example.com"))

    def test_bare_host_on_another_port_is_refused(self) -> None:
        self.assertFalse(allowed("http://example.com:9999", "example.com"))

    def test_bare_host_with_another_scheme_is_refused(self) -> None:
        self.assertFalse(allowed("https://example.com:8000", "example.com"))

    def test_bare_host_with_a_port_allows_that_port(self) -> None:
        # runserver: the page is on :8000, the socket on :8001.
        self.assertTrue(allowed("http://localhost:8000", "localhost:8000", host="localhost:8001"))
        self.assertFalse(allowed("http://localhost:8002", "localhost:8000", host="localhost:8001"))

    def test_subdomain_pattern_matches_the_domain_and_its_subdomains(self) -> None:
        for origin in ("http://example.com:8000", "http://a.example.com:8000", "http://a.b.example.com:8000"):
            self.assertTrue(allowed(origin, ".example.com"), origin)
        self.assertFalse(allowed("http://badexample.com:8000", ".example.com"))

    def test_bracketed_ipv6_pattern_matches(self) -> None:
        self.assertTrue(allowed("http://[::1]:8000", "[::1]", host="[::1]:8000"))
        self.assertTrue(allowed("http://[::1]:8000", "[::1]:8000", host="[::1]:8001"))

    def test_star_allows_any_well_formed_origin(self) -> None:
        self.assertTrue(allowed("https://anything.example:1234", "*"))

    def test_unlisted_host_is_refused(self) -> None:
        self.assertFalse(allowed("http://evil.example:8000", "example.com", ".example.org", "localhost:8000"))


class MalformedOriginTests(TestCase):
    """Values that are not origins never pass, not even ``*``."""

    def test_malformed_origins_are_refused_even_by_star(self) -> None:
        for origin in ("null", "", " ", "*", "garbage", "http://", "http://:80", "http://a.example:99999",
                       "http://a.example:port", "http://a.example/path", "http://user@a.example",
                       " http://a.example", "file:///etc/passwd", None):
            self.assertFalse(allowed(origin, "*"), origin)

    def test_parse_origin_gives_scheme_host_and_default_port(self) -> None:
        self.assertEqual(parse_origin("HTTPS://Example.COM"), ("https", "example.com", 443))
        self.assertEqual(parse_origin("http://[::1]:8000"), ("http", "::1", 8000))

    @fuzz
    @given(st.text(max_size=40), st.lists(st.text(max_size=20), max_size=3), st.text(max_size=30), st.booleans())
    def test_any_input_gives_an_answer_never_an_exception(self, origin: str, patterns: list[str], host: str,
                                                           secure: bool) -> None:
        self.assertIn(origin_allowed(origin, patterns, host=host, secure=secure), (True, False))


class StreamingFrameTests(ServerTestCase):
    """The adapter reads messages through Autobahn's streaming API (onMessageFrameData): a message arrives whole
    however it is fragmented or split across reads, and Autobahn's frame and message limits still hold."""

    def fragments(self, client: Any, is_binary: bool, pieces: list[bytes]) -> None:
        """Send one message as one frame per piece (a fragmented message, RFC 6455 §5.4)."""
        protocol = client.protocol
        protocol.beginMessage(isBinary=is_binary)
        for piece in pieces:
            protocol.beginMessageFrame(len(piece))
            protocol.sendMessageFrameData(piece)
        protocol.endMessage()

    @inlineCallbacks
    def test_a_chunk_in_several_frames_is_stored_whole(self) -> None:
        client = yield self.raw_client(self.token(files=SlotConfig(max_file_size=1 << 20, chunk_size=256 << 10)))
        data = os.urandom(200_000)
        accepted = yield client.announce("a.bin", len(data))
        frame = encode_chunk(accepted["entry"], 0, data)
        # The header itself split over two frames, then the payload in uneven pieces.
        self.fragments(client, True, [frame[:5], frame[5:70_000], frame[70_000:]])
        complete = yield client.next("complete")
        self.assertEqual(complete["sha256"], hashlib.sha256(data).hexdigest())
        [stored] = stored_files(self.upload_dir, records=False)
        self.assertEqual(stored.read_bytes(), data)

    @inlineCallbacks
    def test_chunks_larger_than_a_read_arrive_in_order(self) -> None:
        client = yield self.raw_client(self.token(files=SlotConfig(max_file_size=8 << 20, chunk_size=1 << 20)))
        data = os.urandom(3 * (1 << 20) + 5)
        accepted = yield client.announce("b.bin", len(data))
        for offset in range(0, len(data), 1 << 20):
            client.send_chunk(accepted["entry"], offset, data[offset:offset + (1 << 20)])
        complete = yield client.next("complete")
        self.assertEqual(complete["sha256"], hashlib.sha256(data).hexdigest())

    @inlineCallbacks
    def test_a_fragmented_control_message_is_understood(self) -> None:
        client = yield self.raw_client(self.token())
        text = json.dumps({"type": "announce", "ref": "r1", "slot": "files", "name": "c.txt", "mime": "",
                           "size": 3}).encode()
        self.fragments(client, False, [text[:10], text[10:]])
        accepted = yield client.next("accepted")
        self.assertEqual(accepted["ref"], "r1")

    @inlineCallbacks
    def test_a_frame_over_the_limit_closes_with_1009(self) -> None:
        client = yield self.raw_client(self.token())  # 64 KiB chunks: the frame limit is 64 KiB + the header
        client.protocol.sendMessage(b"\0" * (2 * 65536), isBinary=True)
        code, _reason = yield client.closed
        self.assertEqual(code, 1009)

    @inlineCallbacks
    def test_a_message_over_the_limit_in_small_frames_closes_with_1009(self) -> None:
        client = yield self.raw_client(self.token())
        self.fragments(client, True, [b"\0" * 40_000] * 4)  # every frame fits; the message does not
        code, _reason = yield client.closed
        self.assertEqual(code, 1009)

    @inlineCallbacks
    def test_invalid_utf8_in_a_text_message_closes_with_1007(self) -> None:
        client = yield self.raw_client(self.token())
        self.fragments(client, False, [b'{"type": "', b"\xff\xfe"])
        code, _reason = yield client.closed
        self.assertEqual(code, 1007)
