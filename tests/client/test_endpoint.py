"""Which URLs the client will open, and which handshake refusals are final."""

from __future__ import annotations

from twisted.trial import unittest

from twisted_uploads.client.endpoint import check_url, handshake_refusal

URL = "ws://127.0.0.1:8000/uploads/ws"


class CheckUrlTests(unittest.TestCase):
    def test_ws_and_wss_urls_pass_unchanged(self):
        self.assertEqual(check_url(URL), URL)
        self.assertEqual(check_url("wss://up.example/x/ws?v=1"), "wss://up.example/x/ws?v=1")

    def test_a_missing_path_gets_the_default_path_when_asked(self):
        self.assertEqual(check_url("ws://127.0.0.1:8000", default_path="/uploads/ws"), URL)
        self.assertEqual(check_url("ws://127.0.0.1:8000/", default_path="/uploads/ws"), URL)
        self.assertEqual(check_url("ws://127.0.0.1:8000"), "ws://127.0.0.1:8000/")

    def test_a_page_url_suggests_the_websocket_url(self):
        with self.assertRaisesRegex(ValueError, "did you mean wss://up.example/uploads/ws"):
            check_url("https://up.example/uploads/ws")

    def test_no_scheme_no_host_or_a_bad_port_is_refused(self):
        for url, reason in (("localhost:8000/uploads/ws", "not a WebSocket URL"), ("ws:///uploads/ws", "no host"),
                            ("ws://host:port/uploads/ws", "invalid port")):
            with self.assertRaisesRegex(ValueError, reason):
                check_url(url)


class HandshakeRefusalTests(unittest.TestCase):
    def test_403_is_a_final_forbidden_origin(self):
        refusal = handshake_refusal(URL, "HTTP/1.1 403 forbidden_origin: no", "upgrade failed", "http://evil")
        self.assertEqual((refusal.error.code.value, refusal.final), ("forbidden_origin", True))
        self.assertIn("refused the Origin http://evil (HTTP 403", refusal.error.message)

    def test_404_is_final_and_points_at_the_default_path(self):
        refusal = handshake_refusal(URL.replace("uploads", "upload"), "HTTP/1.1 404 Not Found", "x", None)
        self.assertEqual((refusal.error.code.value, refusal.final), ("unreachable", True))
        self.assertIn("(HTTP 404); the default path is /uploads/ws", refusal.error.message)

    def test_5xx_and_429_may_pass_other_answers_are_final(self):
        finals = {status: handshake_refusal(URL, f"HTTP/1.1 {status} X", "x", None).final
                  for status in (400, 401, 302, 200, 429, 500, 502, 503)}
        self.assertEqual(finals, {400: True, 401: True, 302: True, 200: True, 429: False, 500: False, 502: False,
                                  503: False})

    def test_a_server_that_does_not_answer_http_is_final(self):
        refusal = handshake_refusal(URL, None, "Bad HTTP response status line 'SSH-2.0'", None)
        self.assertEqual((refusal.error.code.value, refusal.final), ("unreachable", True))
