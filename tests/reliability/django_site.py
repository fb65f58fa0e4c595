"""The demo project under ``twistd uploads --settings``, with every path in the test's directory.

Sessions live in files (they survive a server restart, as database sessions do), media and uploads in the test's
directory, so nothing is shared with another test or with the user's own demo.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from twisted.internet.defer import inlineCallbacks

from .support import HttpClient, ProtocolClient, ServerProcess, ServerTestCase

SETTINGS_MODULE = "reliability_settings"


def write_settings(workdir: Path) -> None:
    """A settings module on the server's ``PYTHONPATH`` (its working directory)."""
    (workdir / "sessions").mkdir(exist_ok=True)
    (workdir / f"{SETTINGS_MODULE}.py").write_text(
        "from demo.settings import *  # noqa: F401,F403\n"
        "DEBUG = False\n"
        "ALLOWED_HOSTS = ['127.0.0.1']\n"
        f"DATABASES = {{'default': {{'ENGINE': 'django.db.backends.sqlite3', "
        f"'NAME': {str(workdir / 'db.sqlite3')!r}}}}}\n"
        f"MEDIA_ROOT = {str(workdir / 'media')!r}\n"
        f"UPLOADS_DIR = {str(workdir / 'uploads')!r}\n"
        "UPLOADS_SERVE_MEDIA = True\n"
        "UPLOADS_STANDALONE_LISTEN = None\n"
        "SESSION_ENGINE = 'django.contrib.sessions.backends.file'\n"
        f"SESSION_FILE_PATH = {str(workdir / 'sessions')!r}\n")


class Page:
    """One rendered LiveView page: its view id, CSRF token and upload configuration."""

    def __init__(self, body: bytes) -> None:
        text = body.decode("utf-8")
        self.view_id = re.search(r'data-dj-view="([^"]+)"', text).group(1)
        self.csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', text).group(1)
        self.config: dict[str, Any] = json.loads(html.unescape(re.search(r'data-dj-uploads="([^"]+)"',
                                                                         text).group(1)))

    @property
    def token(self) -> str:
        return self.config["token"]


class DjangoServerTestCase(ServerTestCase):
    """Starts the demo project in Django mode; a test plays one browser (``self.browser``)."""

    def setUp(self) -> None:
        super().setUp()
        write_settings(self.workdir)

    def start_django(self, name: str = "django", port: int = 0) -> Any:
        return self.start_server(name, port=port, settings=SETTINGS_MODULE)

    def browser_for(self, process: ServerProcess) -> HttpClient:
        return HttpClient(f"http://127.0.0.1:{process.port}")

    @inlineCallbacks
    def open_page(self, browser: HttpClient, path: str) -> Any:
        status, body = yield browser.request("GET", path)
        self.assertEqual(status, 200, body[:300])
        return Page(body)

    @inlineCallbacks
    def socket_for(self, browser: HttpClient, process: ServerProcess, page: Page) -> Any:
        """The page's upload WebSocket, opened as its browser would (same cookies), authenticated."""
        url = page.config["url"]
        if url.startswith("/"):
            url = f"ws://127.0.0.1:{process.port}{url}"
        client = yield ProtocolClient.connect(url, headers={"Cookie": browser.cookie_header()})
        self.addCleanup(client.abort)
        yield client.authenticate(page.token)
        return client

    def send_event(self, browser: HttpClient, path: str, page: Page, event: str) -> Any:
        """POST an event as the browser client does (``X-DJ-Request``); fires with (status, body)."""
        return browser.request("POST", path, {"dj_view": page.view_id, "dj_event": event,
                                              "csrfmiddlewaretoken": page.csrf},
                               {"X-DJ-Request": "1", "X-CSRFToken": page.csrf,
                                "Origin": browser.base, "Referer": browser.base + path})
