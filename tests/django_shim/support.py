"""A real upload server on loopback for the shim's tests, and a scripted browser built on Django's test client.

Django runs in the reactor's thread pool (``deferToThread``) — as under twistd — and reaches the server through
the bridge (crochet, ``no_setup`` mode); the Python upload client talks to the server over a real WebSocket.
"""

from __future__ import annotations

import functools
import html
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from django.test import Client
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.trial import unittest

from django_shim import bridge
from django_shim.conf import uploads_settings
from django_shim.tokens import DjangoTokenVerifier
from twisted_uploads.client import FileUpload, UploadClient
from twisted_uploads.service import UploadServer

_VIEW = re.compile(r'data-dj-view="([^"]+)"')
_UPLOADS = re.compile(r'data-dj-uploads="([^"]+)"')
_CSRF = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@dataclass
class Page:
    """What the browser client would read from a rendered LiveView."""

    path: str
    html: str

    @property
    def view_id(self) -> str:
        match = _VIEW.search(self.html)
        assert match, f"no data-dj-view in {self.html[:300]!r}"
        return match.group(1)

    @property
    def uploads(self) -> dict[str, Any]:
        match = _UPLOADS.search(self.html)
        assert match, "no data-dj-uploads"
        return json.loads(html.unescape(match.group(1)))

    @property
    def token(self) -> str:
        return self.uploads["token"]

    @property
    def csrf(self) -> str:
        match = _CSRF.search(self.html)
        assert match, "no CSRF field"
        return match.group(1)


class Browser:
    """One browser (one cookie jar, hence one Django session). Its methods block: call them in a thread."""

    def __init__(self) -> None:
        self.client = Client(enforce_csrf_checks=True)

    def twin(self) -> "Browser":
        """A second tab of the same browser: same cookies (same Django session), its own connection."""
        other = Browser()
        other.client.cookies = self.client.cookies
        return other

    def open(self, path: str) -> Page:
        response = self.client.get(path)
        assert response.status_code == 200, (response.status_code, response.content[:500])
        return Page(path, response.content.decode())

    def event(self, page: Page, event_name: str, /, **fields: Any) -> Page:
        """What the browser client does for dj-submit / dj-click: POST, get the root element back."""
        response = self.post(page, event_name, {"X-DJ-Request": "1"}, **fields)
        assert response.status_code == 200, (response.status_code, response.content[:2000])
        return Page(page.path, response.content.decode())

    def post(self, page: Page, event_name: str | None, headers: dict[str, str] | None = None, /,
             **fields: Any) -> Any:
        data = {"dj_view": page.view_id, "csrfmiddlewaretoken": page.csrf, **fields}
        if event_name is not None:
            data["dj_event"] = event_name
        return self.client.post(page.path, data, headers=headers or {})


def in_thread(function: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred:
    """Run Django code off the reactor thread, as twistd's WSGI container does."""
    return deferToThread(function, *args, **kwargs)


def django_thread(test: Callable[..., Any]) -> Callable[..., Deferred]:
    """Run a synchronous test method in a worker thread.

    Django refuses database access from a thread where an asyncio loop runs — which the main thread is once
    Playwright's sync API was used in the same trial run — and a WSGI thread is where views run anyway.
    """

    @functools.wraps(test)
    def run(self: Any) -> Deferred:
        return deferToThread(test, self)

    return run


class ShimServerTestCase(unittest.TestCase):
    """An UploadServer with the Django token verifier on 127.0.0.1:0, installed as the bridge's server."""

    def setUp(self) -> None:
        config = uploads_settings()
        self.upload_dir = Path(self.mktemp())
        # The server's timers (TTLs, chunk and close timeouts) run on a Clock the test advances, not on the reactor.
        self.clock = Clock()
        self.server = UploadServer(str(self.upload_dir), DjangoTokenVerifier(config.secret, config.fallback_secrets),
                                   clock=self.clock, resume_grace=60, complete_ttl=600)
        self.port = reactor.listenTCP(0, self.server.standalone_site(), interface="127.0.0.1")
        self.ws_url = f"ws://127.0.0.1:{self.port.getHost().port}/uploads/ws"
        bridge.install(self.server)
        self.addCleanup(bridge.uninstall)
        self.addCleanup(self.server.shutdown)
        self.addCleanup(self.port.stopListening)

    def make_file(self, name: str, content: bytes) -> Path:
        directory = Path(self.mktemp())
        directory.mkdir(parents=True)
        path = directory / name
        path.write_bytes(content)
        return path

    @inlineCallbacks
    def upload(self, page: Page, slot: str, *files: tuple[str, bytes], token: str | None = None) -> Any:
        """Upload ``(name, content)`` files with the page's token, like the browser client would."""
        client = UploadClient(self.ws_url, token or page.token)
        uploads = [FileUpload.from_path(self.make_file(name, content), slot) for name, content in files]
        results = yield client.upload(uploads)
        return results

    def entries(self, session_id: str | None = None) -> list[Any]:
        """Every entry the registry holds (reactor thread: call directly)."""
        registry = self.server.registry
        sessions = [registry.sessions[session_id]] if session_id in registry.sessions else [] \
            if session_id is not None else list(registry.sessions.values())
        return [entry.info() for session in sessions for entry in session.entries.values()]
