"""Session-bound upload tokens in Chromium, on the demo under ``manage.py runserver``: the page is on runserver's
port and the upload socket on the standalone listener's, and the browser's session cookie reaches the socket
anyway (cookies are scoped to a host, not a port) — while a token copied into another browser is refused.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

from .support import REPO, RECORDER, WAIT_MS, BrowserTestCase, SiteProcess, _Browser, picture_png

#: Opens the upload socket from the page with a token; reports the server's first answer and the close code (a
#: welcomed socket is closed by the page with 1000).
AUTH_SCRIPT = """async ({url, token}) => new Promise((resolve) => {
  const socket = new WebSocket(url, "twisted-uploads.v1");
  let first = null;
  socket.onopen = () => socket.send(JSON.stringify({type: "auth", token}));
  socket.onmessage = (event) => {
    if (first !== null) return;
    first = JSON.parse(event.data);
    if (first.type === "welcome") socket.close(1000);
  };
  socket.onclose = (event) => resolve({first, code: event.code});
})
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RunserverSessionTests(BrowserTestCase):
    """The demo under runserver with its standalone listener, file sessions in a temporary directory."""

    def setUp(self) -> None:  # noqa: D102 — replaces the test site with the demo under runserver
        self.browser = _Browser.get()
        self.workdir = Path(tempfile.mkdtemp(prefix="twisted-uploads-runserver-"))
        self.addCleanup(shutil.rmtree, self.workdir, True)
        self.files_dir = self.workdir / "files"
        for path in (self.files_dir, self.workdir / "uploads", self.workdir / "sessions", self.workdir / "media"):
            path.mkdir()
        self.ws_port = free_port()
        (self.workdir / "runserver_demo_settings.py").write_text(
            "from demo.settings import *  # noqa: F401,F403\n"
            f"MEDIA_ROOT = {str(self.workdir / 'media')!r}\n"
            f"UPLOADS_DIR = {str(self.workdir / 'uploads')!r}\n"
            "SESSION_ENGINE = 'django.contrib.sessions.backends.file'\n"
            f"SESSION_FILE_PATH = {str(self.workdir / 'sessions')!r}\n"
            f"UPLOADS_STANDALONE_LISTEN = 'tcp:{self.ws_port}:interface=127.0.0.1'\n")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(self.workdir), str(REPO)]),
               "DJANGO_SETTINGS_MODULE": "runserver_demo_settings", "PYTHONUNBUFFERED": "1"}

        def page_port(line: str) -> int | None:
            marker = "Starting development server at http://127.0.0.1:"
            return int(line.split(marker, 1)[1].split("/")[0]) if marker in line else None

        # runserver binds its port only after the AppConfig started the listener, so its banner means both listen.
        self.site = SiteProcess([sys.executable, str(REPO / "demo" / "manage.py"), "runserver", "--noreload",
                                 f"127.0.0.1:{free_port()}"], env=env, cwd=str(self.workdir),
                                port_marker=page_port)
        self.addCleanup(self.site.stop)
        self.base_url = f"http://127.0.0.1:{self.site.port}"
        self.context = self.new_context()
        self.console: list[str] = []

    def new_context(self):  # type: ignore[no-untyped-def]
        """A browser of its own: a separate cookie jar, hence a separate Django session."""
        context = self.browser.browser.new_context(viewport={"width": 1000, "height": 800})
        context.set_default_timeout(WAIT_MS)
        context.add_init_script(RECORDER)
        self.addCleanup(context.close)
        return context

    def open_profile(self, context):  # type: ignore[no-untyped-def]
        page = context.new_page()
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))
        page.goto(self.base_url + "/profile/")
        page.wait_for_function("() => window.djUploads !== undefined")
        return page

    def uploads_config(self, page) -> dict:  # type: ignore[no-untyped-def]
        return page.evaluate("JSON.parse(document.querySelector('[data-dj-uploads]').dataset.djUploads)")

    def test_the_page_on_runservers_port_uploads_to_the_listener_with_its_session_cookie(self) -> None:
        page = self.open_profile(self.context)
        config = self.uploads_config(page)
        self.assertEqual(config["url"], f"ws://127.0.0.1:{self.ws_port}/uploads/ws")
        self.assertIn("sessionid", [cookie["name"] for cookie in self.context.cookies()])
        self.choose(page, "avatar", [self.make_file("me.png", picture_png(64, 64, 30))])
        [entry] = self.wait_all_complete(page, 1)
        self.assertEqual(entry["name"], "me.png")
        self.assertEqual(self.events(page, "djust:upload:error"), [])
        self.assertEqual(self.console, [])

    def test_a_token_copied_into_another_browser_is_refused(self) -> None:
        owner = self.open_profile(self.context)
        config = self.uploads_config(owner)
        thief = self.open_profile(self.new_context())
        answer = thief.evaluate(AUTH_SCRIPT, {"url": config["url"], "token": config["token"]})
        self.assertEqual((answer["first"]["type"], answer["first"]["code"], answer["code"]),
                         ("error", "invalid_token", 4001))

    def test_the_owners_own_token_opens_the_socket(self) -> None:
        owner = self.open_profile(self.context)
        config = self.uploads_config(owner)
        answer = owner.evaluate(AUTH_SCRIPT, {"url": config["url"], "token": config["token"]})
        self.assertEqual((answer["first"]["type"], answer["code"]), ("welcome", 1000))
