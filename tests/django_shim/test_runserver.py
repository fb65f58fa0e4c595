"""Under ``manage.py runserver`` the AppConfig starts crochet and one WebSocket listener, in the serving child only."""

from __future__ import annotations

import html
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from twisted_uploads.client import FileUpload

from .files import png_bytes
from .support import CookieUploadClient, in_thread
from .test_twistd import HttpBrowser

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"runserver exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port}")


class RunserverTests(unittest.TestCase):

    def setUp(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="shim-runserver-"))
        self.page_port, self.ws_port = free_port(), free_port()
        (self.workdir / "runserver_settings.py").write_text(
            "from demo.settings import *  # noqa: F401,F403\n"
            f"MEDIA_ROOT = {str(self.workdir / 'media')!r}\n"
            f"UPLOADS_DIR = {str(self.workdir / 'uploads')!r}\n"
            # A server-side engine the token can be bound to (signed_cookies cannot: check E008), without a database.
            "SESSION_ENGINE = 'django.contrib.sessions.backends.file'\n"
            f"SESSION_FILE_PATH = {str(self.workdir)!r}\n"
            f"UPLOADS_STANDALONE_LISTEN = 'tcp:{self.ws_port}:interface=127.0.0.1'\n")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(self.workdir), str(REPO)]),
               "DJANGO_SETTINGS_MODULE": "runserver_settings"}
        # With the autoreloader: a parent that only watches files and a child that serves. Were both to start
        # the listener on the same fixed port, the second would fail and the page would never come up.
        self.process = subprocess.Popen(
            [sys.executable, str(REPO / "demo" / "manage.py"), "runserver", f"127.0.0.1:{self.page_port}"],
            env=env, cwd=str(self.workdir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True)
        self.addCleanup(self._stop)

    def _stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        self.process.wait(10)
        self.output = self.process.stdout.read().decode(errors="replace") if self.process.stdout else ""
        self.process.stdout and self.process.stdout.close()
        import shutil

        shutil.rmtree(self.workdir, ignore_errors=True)

    @inlineCallbacks
    def test_the_seed_flow_runs_under_runserver_with_a_standalone_listener(self):
        yield in_thread(wait_for_port, self.page_port, self.process)
        yield in_thread(wait_for_port, self.ws_port, self.process)
        browser = HttpBrowser(f"http://127.0.0.1:{self.page_port}")
        status, body = yield in_thread(browser.get, "/profile/")
        self.assertEqual(status, 200)
        page = body.decode()
        config = json.loads(html.unescape(re.search(r'data-dj-uploads="([^"]+)"', page).group(1)))
        self.assertEqual(config["url"], f"ws://127.0.0.1:{self.ws_port}/uploads/ws")
        view_id = re.search(r'data-dj-view="([^"]+)"', page).group(1)
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

        source = Path(self.mktemp())
        source.write_bytes(png_bytes(pad_to=5000))
        # The browser sends its session cookie to the listener's port too: cookies are not port-scoped.
        client = CookieUploadClient(config["url"], config["token"], origin=f"http://127.0.0.1:{self.page_port}",
                                    cookies=browser.cookies())
        [result] = yield client.upload([FileUpload.from_path(source, "avatar", name="rs.png")])
        self.assertTrue(result.ok, result)

        status, body = yield in_thread(browser.post, "/profile/", {
            "dj_view": view_id, "dj_event": "save_avatar", "csrfmiddlewaretoken": csrf},
            {"X-DJ-Request": "1", "X-CSRFToken": csrf})
        self.assertEqual(status, 200, body[:300])
        self.assertIn(b'src="/media/avatars/rs', body)
        self.assertTrue(list((self.workdir / "media" / "avatars").glob("rs*.png")))

    @inlineCallbacks
    def test_media_served_by_runserver_is_never_rendered_as_html(self):
        import gzip

        from .test_twistd import fetch

        media = self.workdir / "media"
        media.mkdir(parents=True, exist_ok=True)
        (media / "avatar").write_bytes(b"<img src=x onerror=alert(document.cookie)>")
        (media / "page.html.gz").write_bytes(gzip.compress(b"<script>alert(1)</script>"))
        yield in_thread(wait_for_port, self.page_port, self.process)
        base = f"http://127.0.0.1:{self.page_port}/media"
        status, headers, _ = yield in_thread(fetch, f"{base}/avatar")
        self.assertEqual(status, 200)
        self.assertEqual(headers["content-type"], "application/octet-stream")
        self.assertEqual(headers["x-content-type-options"], "nosniff")
        self.assertTrue(headers["content-disposition"].startswith("attachment;"), headers)
        status, headers, _ = yield in_thread(fetch, f"{base}/page.html.gz")
        self.assertNotIn("content-encoding", headers)
        self.assertTrue(headers["content-disposition"].startswith("attachment;"), headers)
