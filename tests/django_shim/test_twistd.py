"""Django mode of twistd: Django (WSGI), the upload WebSocket, static files and media on one port."""

from __future__ import annotations

import html
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar
from pathlib import Path

from django.test import override_settings
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial import unittest

from django_shim import bridge
from django_shim.twistd import make_django_site
from tests.e2e.support import RawClient
from twisted_uploads.client import FileUpload
from twisted_uploads.service import UploadServer
from twisted_uploads.tokens import HMACTokenVerifier

from .files import png_bytes
from .support import CookieUploadClient, in_thread


class HttpBrowser:
    """urllib with a cookie jar: a real HTTP client for the one-port Site. Blocking: use it in a thread."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def cookies(self) -> dict[str, str]:
        """The cookies a browser would send to this host (with the upload socket's handshake too)."""
        return {cookie.name: cookie.value or "" for cookie in self.jar}

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with self.opener.open(self.base + path, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def post(self, path: str, fields: dict[str, str], headers: dict[str, str]) -> tuple[int, bytes]:
        request = urllib.request.Request(self.base + path, data=urllib.parse.urlencode(fields).encode(),
                                         headers=headers, method="POST")
        try:
            with self.opener.open(request, timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()


class OnePortSiteTests(unittest.TestCase):

    def setUp(self) -> None:
        self.upload_dir = Path(self.mktemp())
        # Built as the plugin builds it (a placeholder verifier); make_django_site installs the Django one.
        self.server = UploadServer(str(self.upload_dir), HMACTokenVerifier("placeholder-secret-0123456789"),
                                   clock=Clock())
        options = {"settings": None, "ws-path": "/uploads/ws", "upload-dir": str(self.upload_dir),
                   "allowed-origins": []}
        with override_settings(UPLOADS_SERVE_MEDIA=True):
            site = make_django_site(options, self.server)
        self.port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.base = f"http://127.0.0.1:{self.port.getHost().port}"
        self.addCleanup(bridge.uninstall)
        self.addCleanup(self.server.shutdown)
        self.addCleanup(self.port.stopListening)

    @inlineCallbacks
    def test_the_seed_flow_runs_through_one_port(self):
        browser = HttpBrowser(self.base)
        status, body = yield in_thread(browser.get, "/profile/")
        self.assertEqual(status, 200)
        page = body.decode()
        view_id = re.search(r'data-dj-view="([^"]+)"', page).group(1)
        config = json.loads(html.unescape(re.search(r'data-dj-uploads="([^"]+)"', page).group(1)))
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        self.assertEqual(config["url"], "/uploads/ws")

        source = Path(self.mktemp())
        source.write_bytes(png_bytes(pad_to=30_000))
        client = CookieUploadClient(f"ws://127.0.0.1:{self.port.getHost().port}{config['url']}", config["token"],
                                    cookies=browser.cookies())
        [result] = yield client.upload([FileUpload.from_path(source, "avatar", name="face.png")])
        self.assertTrue(result.ok, result)

        status, body = yield in_thread(browser.post, "/profile/", {
            "dj_view": view_id, "dj_event": "save_avatar", "csrfmiddlewaretoken": csrf},
            {"X-DJ-Request": "1", "X-CSRFToken": csrf})
        self.assertEqual(status, 200, body[:500])
        avatar_url = re.search(r'src="(/media/avatars/[^"]+)"', body.decode()).group(1)
        status, media = yield in_thread(browser.get, avatar_url)
        self.assertEqual((status, media), (200, source.read_bytes()))

    @inlineCallbacks
    def test_static_files_and_the_browser_client_are_served(self):
        browser = HttpBrowser(self.base)
        status, script = yield in_thread(browser.get, "/static/twisted_uploads/uploads.js")
        self.assertEqual(status, 200)
        self.assertIn(b"dj-upload", script)
        status, css = yield in_thread(browser.get, "/static/demo/demo.css")
        self.assertEqual(status, 200)
        status, _ = yield in_thread(browser.get, "/static/../settings.py")
        self.assertEqual(status, 404)

    @inlineCallbacks
    def test_other_paths_reach_django(self):
        browser = HttpBrowser(self.base)
        status, body = yield in_thread(browser.get, "/")
        self.assertEqual(status, 200)
        self.assertIn(b"twisted-uploads demo", body)
        status, _ = yield in_thread(browser.get, "/uploads/elsewhere")
        self.assertEqual(status, 404)

    @inlineCallbacks
    def test_a_foreign_origin_cannot_open_the_websocket(self):
        url = f"ws://127.0.0.1:{self.port.getHost().port}/uploads/ws"
        port = self.port.getHost().port
        for foreign in ("http://evil.example", f"http://localhost:{port + 1}", f"https://127.0.0.1:{port}"):
            yield self.assertFailure(RawClient.connect(url, origin=foreign), ConnectionError)
        for same_site in (f"http://127.0.0.1:{port}", f"http://localhost:{port}"):
            client = yield RawClient.connect(url, origin=same_site)
            yield client.abort()
