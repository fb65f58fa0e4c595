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


class OnePortSiteTestCase(unittest.TestCase):
    """The one-port Site as twistd builds it, on 127.0.0.1:0, with media served."""

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


class OnePortSiteTests(OnePortSiteTestCase):

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


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``url``: status, headers (lower-case names) and body. Blocking: call it in a thread."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


class MediaServingTests(OnePortSiteTestCase):
    """Users' files under MEDIA_URL go out with their real type, nosniff, and as attachments if a browser could run
    them — over a real socket, from the one-port site twistd serves."""

    def setUp(self) -> None:
        from django.conf import settings

        super().setUp()
        self.media = Path(settings.MEDIA_ROOT) / "served" / self.id().rsplit(".", 1)[-1]
        self.media.mkdir(parents=True, exist_ok=True)
        self.prefix = f"/media/served/{self.media.name}"

    def put(self, name: str, content: bytes) -> str:
        path = self.media / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
        return f"{self.base}{self.prefix}/{urllib.parse.quote(name)}"

    @inlineCallbacks
    def test_an_extensionless_html_file_is_an_octet_stream_attachment(self):
        url = self.put("avatar", b"<img src=x onerror=alert(document.cookie)>")
        status, headers, body = yield in_thread(fetch, url)
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "application/octet-stream")
        self.assertEqual(headers["x-content-type-options"], "nosniff")
        self.assertTrue(headers["content-disposition"].startswith("attachment;"), headers)

    @inlineCallbacks
    def test_an_unknown_extension_is_an_octet_stream_attachment(self):
        status, headers, _ = yield in_thread(fetch, self.put("notes.zzq", b"<script>alert(1)</script>"))
        self.assertEqual(headers["content-type"], "application/octet-stream")
        self.assertTrue(headers["content-disposition"].startswith("attachment;"))

    @inlineCallbacks
    def test_an_html_file_is_an_attachment(self):
        status, headers, _ = yield in_thread(fetch, self.put("page.html", b"<script>alert(1)</script>"))
        self.assertEqual(headers["content-type"], "text/html")
        self.assertEqual(headers["x-content-type-options"], "nosniff")
        self.assertTrue(headers["content-disposition"].startswith("attachment;"))

    @inlineCallbacks
    def test_svg_xml_and_javascript_files_are_attachments(self):
        for name in ("logo.svg", "feed.xml", "app.js", "page.xhtml"):
            status, headers, _ = yield in_thread(fetch, self.put(name, b"<x/>"))
            self.assertEqual(status, 200)
            self.assertTrue(headers["content-disposition"].startswith("attachment;"), (name, headers))

    @inlineCallbacks
    def test_a_gzipped_html_file_is_not_unpacked_into_html(self):
        import gzip

        status, headers, body = yield in_thread(fetch, self.put("page.html.gz", gzip.compress(b"<script>1</script>")))
        self.assertNotIn("content-encoding", headers)
        self.assertEqual(headers["content-type"], "application/gzip")
        self.assertTrue(headers["content-disposition"].startswith("attachment;"))

    @inlineCallbacks
    def test_an_image_is_served_inline_with_its_type(self):
        status, headers, body = yield in_thread(fetch, self.put("face.png", png_bytes()))
        self.assertEqual((status, body), (200, png_bytes()))
        self.assertEqual(headers["content-type"], "image/png")
        self.assertEqual(headers["x-content-type-options"], "nosniff")
        self.assertTrue(headers["content-disposition"].startswith("inline;"))

    @inlineCallbacks
    def test_a_non_ascii_name_is_kept_in_the_disposition(self):
        status, headers, _ = yield in_thread(fetch, self.put("caf\u00e9.txt", b"hi"))
        self.assertIn("filename*=UTF-8''caf%C3%A9.txt", headers["content-disposition"])

    @inlineCallbacks
    def test_a_directory_index_page_is_never_served(self):
        self.put("site/index.html", b"<script>alert(1)</script>")
        status, headers, body = yield in_thread(fetch, f"{self.base}{self.prefix}/site/")
        self.assertEqual(status, 404)
        self.assertNotIn(b"<script>", body)

    @inlineCallbacks
    def test_the_browser_client_is_served_as_javascript_with_nosniff(self):
        status, headers, _ = yield in_thread(fetch, f"{self.base}/static/twisted_uploads/uploads.js")
        self.assertEqual(status, 200)
        self.assertIn(headers["content-type"], {"text/javascript", "application/javascript"})
        self.assertEqual(headers["x-content-type-options"], "nosniff")
        status, headers, _ = yield in_thread(fetch, f"{self.base}/static/twisted_uploads/uploads.css")
        self.assertEqual(headers["content-type"], "text/css")
        self.assertEqual(headers["x-content-type-options"], "nosniff")


class NoJavaScriptOverASocketTests(OnePortSiteTestCase):
    """A plain browser form post, over a real socket to the one-port site: a file too large for its slot is refused
    while Django reads it, and the page the post redirects to says so."""

    @inlineCallbacks
    def test_a_too_large_file_posted_without_javascript_is_listed_on_the_next_page(self):
        from django_shim.uploadhandler import part_directory

        browser = HttpBrowser(self.base)
        status, body = yield in_thread(browser.get, "/docs/")
        page = body.decode()
        action = html.unescape(re.search(r'<form dj-submit="process_uploads"[^>]* action="([^"]+)"', page).group(1))
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page))
        boundary = "----no-js-over-a-socket"
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
                 for name, value in fields.items()]
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="docs"; filename="big.pdf"\r\n'
                     f"Content-Type: application/pdf\r\n\r\n".encode() + b"%PDF-1.4\n" + b"0" * 20_500_000 + b"\r\n")
        request = urllib.request.Request(self.base + action, data=b"".join(parts) + f"--{boundary}--\r\n".encode(),
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
                                         method="POST")

        def post():
            with browser.opener.open(request, timeout=30) as response:  # follows the 303 with a GET
                return response.status, response.url, response.read().decode()

        status, url, after = yield in_thread(post)
        self.assertEqual(status, 200)
        self.assertIn("dj_view=", url)
        self.assertIn('<span class="upload-error">big.pdf: The file is larger than allowed.</span>', after)
        self.assertEqual([p for p in part_directory().iterdir() if p.name.startswith("nojs-")], [])
