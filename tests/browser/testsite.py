"""A standalone test site for the browser client: the real upload server plus a tiny LiveView stand-in.

Run as a program (the browser tests start it as a subprocess and read ``PORT <n>`` from its first line)::

    python tests/browser/testsite.py --upload-dir D --saved-dir S [--resume-grace 300]

It serves ``/static/twisted_uploads/`` (the client), ``/uploads/ws`` (an :class:`UploadServer`), and
``/page?slots=<json>[&ws=<url>]``: a page root per request with a fresh upload session, one drop zone, input, preview and
progress container per slot, a ``dj-submit="save"`` form and a ``dj-click="save"`` button. Posting ``save``
(``X-DJ-Request: 1``) consumes the finished entries the way ``consume_uploaded_entries`` does, copies each complete
file to ``--saved-dir/<view>/<name>`` and answers with the re-rendered root. ``/state/<view>`` answers the
registry's view of the session as JSON, so tests can assert what reached the server.
"""

from __future__ import annotations

import argparse
import hashlib
import html
import json
import os
import secrets
import shutil
from typing import Any
from urllib.parse import parse_qs

from twisted.internet import reactor
from twisted.python import log as legacy_log
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from twisted.web.static import Data, File

from twisted_uploads.connection import ConnectionLimits
from twisted_uploads.service import STATIC_URL_PATH, UploadServer, put_child
from twisted_uploads.slots import slots_from_dict
from twisted_uploads.staticfiles import static_root
from twisted_uploads.tokens import HMACTokenVerifier, make_token

SECRET = "browser-test-secret-0123456789"


class ViewState:
    """What one rendered page root holds between events (the LiveView instance)."""

    def __init__(self, view_id: str, slots_json: dict[str, Any]) -> None:
        self.view_id = view_id
        self.session = f"session-{view_id}"
        self.slots_json = slots_json
        self.slots = slots_from_dict(slots_json)
        self.saved: list[dict[str, Any]] = []
        self.errors: list[dict[str, str]] = []
        self.fields: dict[str, str] = {}
        self.renders = 0
        self.ws_url = "/uploads/ws"


class Page(Resource):
    """GET renders a new view; POST runs an event on an existing one and answers its re-rendered root."""

    isLeaf = True

    def __init__(self, upload_server: UploadServer, saved_dir: str) -> None:
        super().__init__()
        self.upload_server = upload_server
        self.saved_dir = saved_dir
        self.views: dict[str, ViewState] = {}

    def render_GET(self, request: Request) -> bytes:
        args = parse_qs(request.uri.decode().partition("?")[2])
        slots_json = json.loads(args.get("slots", ['{"files": {}}'])[0])
        view = ViewState(secrets.token_hex(6), slots_json)
        view.ws_url = args.get("ws", ["/uploads/ws"])[0]
        self.views[view.view_id] = view
        request.setHeader("content-type", "text/html; charset=utf-8")
        return PAGE.format(root=self.render_root(view)).encode()

    def render_POST(self, request: Request) -> bytes:
        fields = {key.decode(): values[0].decode("utf-8", "replace") for key, values in request.args.items()}
        view = self.views.get(fields.get("dj_view", ""))
        if view is None or request.getHeader("x-dj-request") != "1":
            request.setResponseCode(400)
            return b"unknown view"
        view.fields = {k: v for k, v in fields.items() if k not in ("dj_view", "csrfmiddlewaretoken", "slots")}
        if fields.get("dj_event") == "redirect":
            request.redirect(b"/elsewhere")
            return b""
        if fields.get("dj_event") == "written_page":
            # Not a root: the client shows it with document.write, which re-includes the client script.
            request.setHeader("content-type", "text/html; charset=utf-8")
            return WRITTEN_PAGE.encode()
        if fields.get("dj_event") == "save":
            self.save(view)
        elif fields.get("dj_event") == "cancel_all":
            registry = self.upload_server.registry
            for info in registry.list_entries(view.session):
                registry.cancel(view.session, info.ref)
        request.setHeader("content-type", "text/html; charset=utf-8")
        return self.render_root(view).encode()

    def save(self, view: ViewState) -> None:
        """``for entry in consume_uploaded_entries(slot)``: keep complete files, report failed ones."""
        registry = self.upload_server.registry
        target = os.path.join(self.saved_dir, view.view_id)
        os.makedirs(target, exist_ok=True)
        for slot in view.slots:
            for info in registry.finished_entries(view.session, slot):
                if info.error:
                    view.errors.append({"name": info.client_name, "code": info.error,
                                        "message": info.error_message or ""})
                else:
                    destination = os.path.join(target, info.client_name)
                    shutil.copyfile(info.path, destination)
                    with open(destination, "rb") as saved:
                        digest = hashlib.file_digest(saved, "sha256").hexdigest()
                    view.saved.append({"slot": slot, "name": info.client_name, "size": info.client_size,
                                       "sha256": digest, "path": destination})
                registry.consume(view.session, info.entry_id)

    def render_root(self, view: ViewState) -> str:
        view.renders += 1
        token = make_token(SECRET, view.session, view.slots, ttl=3600)
        config = json.dumps({"url": view.ws_url, "token": token,
                             "slots": {name: slot.to_dict() for name, slot in view.slots.items()}})
        sections = "".join(SECTION.format(name=html.escape(name)) for name in view.slots)
        saved = "".join(
            f'<li data-name="{html.escape(s["name"])}" data-sha256="{s["sha256"]}" data-size="{s["size"]}" '
            f'data-slot="{html.escape(s["slot"])}">{html.escape(s["name"])}</li>' for s in view.saved)
        errors = "".join(
            f'<li data-name="{html.escape(e["name"])}" data-code="{e["code"]}">{html.escape(e["name"])}: '
            f'{html.escape(e["message"])}</li>' for e in view.errors)
        return ROOT.format(view=view.view_id, config=html.escape(config, quote=True), sections=sections,
                           saved=saved, errors=errors, renders=view.renders,
                           fields=html.escape(json.dumps(view.fields, sort_keys=True)))


class State(Resource):
    """``/state/<view>``: the registry's entries of a view's session, for assertions."""

    isLeaf = True

    def __init__(self, page: Page, upload_server: UploadServer) -> None:
        super().__init__()
        self.page = page
        self.upload_server = upload_server

    def render_GET(self, request: Request) -> bytes:
        view = self.page.views.get(request.postpath[0].decode() if request.postpath else "")
        request.setHeader("content-type", "application/json")
        if view is None:
            request.setResponseCode(404)
            return b"{}"
        entries = [{"entry": i.entry_id, "ref": i.ref, "slot": i.slot, "name": i.client_name, "size": i.client_size,
                    "received": i.received, "status": i.status.value, "error": i.error, "sha256": i.sha256,
                    "relative_path": i.relative_path, "fingerprint": i.fingerprint}
                   for i in self.upload_server.registry.list_entries(view.session)]
        return json.dumps({"entries": entries, "saved": view.saved, "errors": view.errors}).encode()


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>twisted-uploads browser test</title>
<link rel="stylesheet" href="/static/twisted_uploads/uploads.css">
<script src="/static/twisted_uploads/uploads.js" defer></script>
</head><body>
{root}
</body></html>
"""

WRITTEN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Written</title>
<script src="/static/twisted_uploads/uploads.js" defer></script>
</head><body><p id="written">A page the handler answered with</p></body></html>
"""

ROOT = """<div data-dj-view="{view}" data-dj-uploads="{config}">
<form dj-submit="save" id="form">
{sections}
<input name="title" id="title" value="">
<button type="submit" id="save">Save</button>
</form>
<button dj-click="save" data-item-id="7" id="click-save">Save by click</button>
<button dj-click="redirect" id="click-redirect">Go elsewhere</button>
<button dj-click="keep" id="click-keep">An event that consumes nothing</button>
<button dj-click="written_page" id="click-written">An event answered with another page</button>
<ul id="saved">{saved}</ul>
<ul id="errors">{errors}</ul>
<p id="renders">{renders}</p>
<pre id="fields">{fields}</pre>
</div>"""

SECTION = """<section data-slot="{name}">
<div dj-upload-drop="{name}" class="drop-zone" id="drop-{name}">
<p class="hint">Drop files here <span class="nested"><b class="deeper">(nested)</b></span></p>
<input type="file" dj-upload="{name}" id="input-{name}">
</div>
<div dj-upload-preview="{name}" id="preview-{name}"></div>
<div dj-upload-progress="{name}" id="progress-{name}"></div>
</section>
"""


def build_site(upload_dir: str, saved_dir: str, resume_grace: float, max_parallel: int,
               window_chunks: int = 16) -> tuple[Site, UploadServer]:
    """The Site the tests talk to (``window_chunks`` 0: the server's adaptive default)."""
    limits = ConnectionLimits(max_parallel=max_parallel, window_chunks=window_chunks or None)
    upload_server = UploadServer(upload_dir, HMACTokenVerifier(SECRET), resume_grace=resume_grace, limits=limits)
    root = Resource()
    upload_server.mount(root)
    put_child(root, STATIC_URL_PATH, File(str(static_root())))
    page = Page(upload_server, saved_dir)
    root.putChild(b"page", page)
    root.putChild(b"state", State(page, upload_server))
    root.putChild(b"elsewhere", Data(b'<!doctype html><p id="elsewhere">Elsewhere</p>', "text/html"))
    return Site(root), upload_server


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--upload-dir", required=True)
    parser.add_argument("--saved-dir", required=True)
    parser.add_argument("--resume-grace", type=float, default=300.0)
    parser.add_argument("--max-parallel", type=int, default=8)
    parser.add_argument("--window", type=int, default=16,
                        help="flow-control window in chunks (0: adaptive, the server's default)")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log", default=None, help="log file (default: no log)")
    options = parser.parse_args(argv)
    if options.log:
        legacy_log.startLogging(open(options.log, "a"), setStdout=False)
    site, upload_server = build_site(options.upload_dir, options.saved_dir, options.resume_grace,
                                       options.max_parallel, options.window)
    port = reactor.listenTCP(options.port, site, interface="127.0.0.1")
    print(f"PORT {port.getHost().port}", flush=True)
    reactor.addSystemEventTrigger("before", "shutdown", upload_server.shutdown)
    reactor.run()


if __name__ == "__main__":
    main()
