"""Shared machinery of the browser tests: Chromium via Playwright, the test site as a subprocess, a TCP proxy that
can cut a WebSocket mid-upload, and helpers that act like a user (choose files, drop files).

Tests are synchronous (``SynchronousTestCase``): the servers run in subprocesses with their own reactors, so the
Playwright sync API runs in the test thread and trial's reactor is not involved. Every wait is a condition
(``wait_for_function`` / ``expect``), never a sleep.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import json
import os
import queue
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import quote
from urllib.request import urlopen

from twisted.trial.unittest import SkipTest, SynchronousTestCase

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
                 "--enable-precise-memory-info"]
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
#: Set to a Chromium/Chrome binary to use instead of the Debian one.
CHROMIUM_ENV = "TWISTED_UPLOADS_CHROMIUM"
#: Set (to anything) in CI: a missing browser then fails the browser tests instead of skipping them.
REQUIRE_ENV = "TWISTED_UPLOADS_REQUIRE_BROWSER"
#: Playwright's default for every wait, in milliseconds.
WAIT_MS = 30_000

# Records every djust event the page sees, before any page script runs.
RECORDER = """
window.__events = [];
for (const type of ["djust:upload:progress", "djust:upload:error", "djust:view:updated", "djust:event:error"]) {
  window.addEventListener(type, (event) => {
    const detail = Object.assign({}, event.detail);
    window.__events.push({type, detail, target: event.target === window ? "window" : (event.target.id || event.target.tagName)});
  });
}
"""


def _missing(reason: str) -> Exception:
    if os.environ.get(REQUIRE_ENV):
        return AssertionError(f"{reason} — and ${REQUIRE_ENV} is set, so browser tests may not be skipped")
    return SkipTest(reason)


def chromium_path() -> str:
    """The Chromium binary, or raise SkipTest saying exactly what is missing."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        raise _missing("browser tests need the python package 'playwright' (pip install -e .[test])") from None
    configured = os.environ.get(CHROMIUM_ENV)
    candidates = (configured,) if configured else CHROMIUM_CANDIDATES
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise _missing(f"browser tests need Chromium: none of {', '.join(c for c in candidates if c)} is executable "
                   f"(apt-get install chromium chromium-driver, or set ${CHROMIUM_ENV})")


class _BrowserThread:
    """The one thread that talks to Playwright.

    Playwright's sync API keeps an asyncio loop *running* in the thread that started it, for as long as it lives;
    in the test thread that would make Django (and anything else that checks for a running loop) refuse to work in
    every later test of the run. So Playwright lives here, and tests reach it through :class:`Remote` proxies.
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue[Any] = queue.Queue()
        self.thread = threading.Thread(target=self._work, name="playwright", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            function, outcome, done = job
            try:
                outcome.append((True, function()))
            except BaseException as error:  # noqa: BLE001 — handed back to the calling thread as is
                outcome.append((False, error))
            done.set()

    def call(self, function: Callable[[], Any]) -> Any:
        if threading.current_thread() is self.thread:
            return function()
        outcome: list[tuple[bool, Any]] = []
        done = threading.Event()
        self._jobs.put((function, outcome, done))
        done.wait()
        ok, value = outcome[0]
        if ok:
            return value
        raise value

    def stop(self) -> None:
        self._jobs.put(None)
        self.thread.join(10)


def _unwrap(value: Any) -> Any:
    if isinstance(value, Remote):
        return object.__getattribute__(value, "_target")
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def _wrap(value: Any, worker: _BrowserThread) -> Any:
    if type(value).__module__.startswith("playwright."):
        return Remote(value, worker)
    if isinstance(value, list):
        return [_wrap(v, worker) for v in value]
    return value


class Remote:
    """A Playwright object (page, locator, ...) used from the test thread: every call runs in the Playwright thread."""

    __slots__ = ("_target", "_worker")

    def __init__(self, target: Any, worker: _BrowserThread) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_worker", worker)

    def __getattr__(self, name: str) -> Any:
        target, worker = self._target, self._worker
        value = worker.call(lambda: getattr(target, name))
        if callable(value) and not isinstance(value, type):
            def method(*args: Any, **kwargs: Any) -> Any:
                return _wrap(worker.call(lambda: value(*_unwrap(args), **_unwrap(kwargs))), worker)
            return method
        return _wrap(value, worker)

    def __enter__(self) -> Any:
        return _wrap(self._worker.call(self._target.__enter__), self._worker)

    def __exit__(self, *exc_info: Any) -> Any:
        return self._worker.call(lambda: self._target.__exit__(*exc_info))

    def __repr__(self) -> str:
        return f"Remote({self._target!r})"


class _Browser:
    """One Playwright and one Chromium for the whole test run (each test gets its own context)."""

    instance: "_Browser | None" = None

    def __init__(self, executable: str) -> None:
        self.worker = _BrowserThread()

        def launch() -> tuple[Any, Any]:
            from playwright.sync_api import sync_playwright

            playwright = sync_playwright().start()
            return playwright, playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS,
                                                          headless=True)

        self._playwright, self._browser = self.worker.call(launch)
        self.browser = Remote(self._browser, self.worker)
        atexit.register(self.close)

    @classmethod
    def get(cls) -> "_Browser":
        if cls.instance is None:
            cls.instance = cls(chromium_path())
        return cls.instance

    def close(self) -> None:
        def shut_down() -> None:
            try:
                self._browser.close()
            finally:
                self._playwright.stop()

        try:
            self.worker.call(shut_down)
        finally:
            self.worker.stop()
            _Browser.instance = None


def sha256_file(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as source:
        return hashlib.file_digest(source, "sha256").hexdigest()


# A 2x2 PNG (magic bytes check out) and a small JPEG-ish header that filetype recognises.
PNG_BYTES = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAIAAAACCAIAAAD91JpzAAAAFklEQVR4nGP8z8DAwMDAxMDAwMDAAAANHQEDasKb6QAAAABJRU5ErkJggg==")


def png_bytes(size: int = 0) -> bytes:
    """A valid PNG, padded after IEND to ``size`` bytes (PNG readers ignore trailing data)."""
    data = PNG_BYTES
    if size > len(data):
        data += os.urandom(size - len(data))
    return data


def picture_png(width: int, height: int, hue: int = 0) -> bytes:
    """A real RGB picture (a soft gradient with a disc), so previews and screenshots show something."""
    import struct
    import zlib

    def wave(value: int) -> int:  # 0..255..0: shifting by ``hue`` never makes a seam in the gradient
        value %= 510
        return value if value < 256 else 510 - value

    rows = bytearray()
    cx, cy, radius = width / 2, height / 2, min(width, height) / 3
    for y in range(height):
        rows.append(0)  # filter: none
        for x in range(width):
            inside = (x - cx) ** 2 + (y - cy) ** 2 <= radius**2
            r = wave(x * 255 // max(1, width - 1) + hue)
            g = wave(y * 255 // max(1, height - 1) + hue * 2)
            b = wave(200 + hue * 3)
            rows += bytes((255 - r // 3, 240, 200)) if inside else bytes((r, g, b))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(rows), 9))
            + chunk(b"IEND", b""))


class SiteProcess:
    """A server subprocess that prints its port on stdout once it listens; stopped (and waited for) at cleanup."""

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None,
                 port_marker: Callable[[str], int | None] | None = None) -> None:
        self.log_path = tempfile.mktemp(prefix="twisted-uploads-site-", suffix=".log")
        self.log = open(self.log_path, "w+")
        self.process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=self.log, text=True, env=env, cwd=cwd)
        self._lines: queue.Queue[str | None] = queue.Queue()
        # One thread reads stdout line by line for the whole life of the process (select() on a buffered pipe
        # would miss lines already read into the buffer), so the child never blocks on a full pipe either.
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        marker = port_marker or (lambda line: int(line.split()[1]) if line.startswith("PORT ") else None)
        self.port = self._wait_for_port(marker)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
            self.log.write(line)
            self.log.flush()
        self._lines.put(None)

    def _wait_for_port(self, marker: Callable[[str], int | None]) -> int:
        deadline = time.monotonic() + 60
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                line = ""
            if not line:
                output = self.read_log()
                self.stop()
                raise AssertionError(f"server {'exited' if line is None else 'did not start in 60 s'}:\n{output}")
            port = marker(line)
            if port:
                return port

    def read_log(self) -> str:
        self.log.flush()
        return Path(self.log_path).read_text()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(10)
        self.log.close()
        os.unlink(self.log_path)


class CuttingProxy:
    """A loopback TCP proxy in front of a server that can cut the first WebSocket once N bytes went upstream.

    Cutting closes both sockets without a WebSocket close frame: to the browser the server vanished mid-upload,
    to the server the client did. Later connections pass untouched.
    """

    def __init__(self, upstream_port: int, cut_websocket_after: int | None = None) -> None:
        self.upstream_port = upstream_port
        self.cut_after = cut_websocket_after
        self.cuts = 0
        self.websockets = 0
        self.websocket_bytes_up = 0
        self._lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._serve, args=(client, upstream), daemon=True).start()

    def _serve(self, client: socket.socket, upstream: socket.socket) -> None:
        state = {"websocket": None, "up": 0, "cut": False}

        def cut() -> None:
            state["cut"] = True
            for sock in (client, upstream):
                try:
                    # Abortive close (RST). shutdown() first: close() alone would not wake the other pump thread
                    # blocked in recv() on the same socket, and the server would never hear of the cut.
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                sock.close()

        def pump(source: socket.socket, target: socket.socket, upwards: bool) -> None:
            try:
                while True:
                    data = source.recv(65536)
                    if not data:
                        break
                    if upwards:
                        if state["websocket"] is None:
                            state["websocket"] = b"upgrade: websocket" in data[:4096].lower()
                            if state["websocket"]:
                                with self._lock:
                                    self.websockets += 1
                        if state["websocket"]:
                            with self._lock:
                                self.websocket_bytes_up += len(data)
                                state["up"] += len(data)
                                should_cut = (self.cut_after is not None and self.cuts == 0
                                              and state["up"] >= self.cut_after)
                                if should_cut:
                                    self.cuts += 1
                            if should_cut:
                                cut()
                                return
                    target.sendall(data)
            except OSError:
                pass
            finally:
                if not state["cut"]:
                    try:
                        target.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass

        worker = threading.Thread(target=pump, args=(upstream, client, False), daemon=True)
        worker.start()
        pump(client, upstream, True)
        worker.join()
        for sock in (client, upstream):
            try:
                sock.close()
            except OSError:
                pass

    def close(self) -> None:
        self._closed = True
        self.listener.close()


class Gate:
    """A loopback port in front of a server that is either open (forwarding) or shut (nothing listens: refused).

    Shutting it also cuts every connection it carries (RST): to the browser the server went down. Opening it again
    listens on the same port, so a page configured with this port sees the server come back.
    """

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.connections = 0
        self._carried: list[socket.socket] = []
        self._lock = threading.Lock()
        self.listener: socket.socket | None = None
        self.port = 0
        self.open()

    def open(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(16)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def shut(self) -> None:
        listener, self.listener = self.listener, None
        if listener is not None:
            # shutdown() first: close() alone does not wake the thread blocked in accept(), which would go on
            # accepting on the closed descriptor's socket.
            try:
                listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            listener.close()
        with self._lock:
            carried, self._carried = self._carried, []
        for sock in carried:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self.connections += 1
                self._carried += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, target), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def renderer_processes() -> list[int]:
    """PIDs of the Chromium renderer processes started (indirectly) by this test process."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, stack = [], [os.getpid()]
    while stack:
        pid = stack.pop()
        for child in children.get(pid, []):
            stack.append(child)
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"--type=renderer" in cmdline:
                found.append(child)
    return found


def memory_kib(pid: int, field: str) -> int:
    """A /proc/<pid>/status memory field (VmRSS, VmHWM) in KiB; 0 if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class BrowserTestCase(SynchronousTestCase):
    """A test with a fresh browser context and a running test site (tests/browser/testsite.py)."""

    #: Extra arguments for the test site.
    site_args: tuple[str, ...] = ()

    def setUp(self) -> None:
        self.browser = _Browser.get()
        self.workdir = Path(tempfile.mkdtemp(prefix="twisted-uploads-browser-"))
        self.addCleanup(shutil.rmtree, self.workdir, True)
        self.upload_dir = self.workdir / "uploads"
        self.saved_dir = self.workdir / "saved"
        self.files_dir = self.workdir / "files"
        for path in (self.upload_dir, self.saved_dir, self.files_dir):
            path.mkdir()
        self.site = SiteProcess([sys.executable, str(HERE / "testsite.py"), "--upload-dir", str(self.upload_dir),
                                 "--saved-dir", str(self.saved_dir), *self.site_args],
                                env={**os.environ, "PYTHONPATH": str(REPO)})
        self.addCleanup(self.site.stop)
        self.base_url = f"http://127.0.0.1:{self.site.port}"
        self.context = self.browser.browser.new_context(viewport={"width": 1000, "height": 800})
        self.context.set_default_timeout(WAIT_MS)
        self.context.add_init_script(RECORDER)
        self.addCleanup(self.context.close)
        self.console: list[str] = []

    # -- pages ---------------------------------------------------------------------------------------------

    def open_page(self, slots: dict[str, dict[str, Any]], base_url: str | None = None):  # type: ignore[no-untyped-def]
        """Open a test page with these slot configs; returns the Playwright page, client started."""
        page = self.context.new_page()
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))
        page.goto(f"{base_url or self.base_url}/page?slots={quote(json.dumps(slots))}")
        page.wait_for_function("() => window.djUploads !== undefined")
        return page

    def view_id(self, page) -> str:  # type: ignore[no-untyped-def]
        return page.get_attribute("[data-dj-view]", "data-dj-view")

    def server_state(self, page) -> dict[str, Any]:  # type: ignore[no-untyped-def]
        """What the upload server holds for the page's session (entries), and what the view saved."""
        with urlopen(f"{self.base_url}/state/{self.view_id(page)}") as response:
            return json.loads(response.read())

    def events(self, page, type_: str | None = None) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
        events = page.evaluate("window.__events")
        return [e for e in events if type_ is None or e["type"] == type_]

    def make_file(self, name: str, data: bytes) -> Path:
        path = self.files_dir / name
        path.write_bytes(data)
        return path

    def make_big_file(self, name: str, size: int) -> Path:
        """A file of random bytes written in 1 MiB blocks (never held in memory whole)."""
        path = self.files_dir / name
        block = os.urandom(1 << 20)
        with open(path, "wb") as out:
            remaining = size
            counter = 0
            while remaining:
                piece = block[: min(remaining, len(block))]
                # Vary each block so no two chunks are equal (a resume bug that repeats data would show).
                out.write(counter.to_bytes(8, "big") + piece[8:] if len(piece) >= 8 else piece)
                remaining -= len(piece)
                counter += 1
        return path

    # -- user actions ----------------------------------------------------------------------------------------

    def choose(self, page, slot: str, paths: Iterable[Path]) -> None:  # type: ignore[no-untyped-def]
        """Choose files in the slot's file input, as the file dialog would."""
        page.set_input_files(f'input[dj-upload="{slot}"]', [str(p) for p in paths])

    def drop(self, page, selector: str, files: list[tuple[str, str, bytes]]) -> bool:  # type: ignore[no-untyped-def]
        """Drag files over ``selector`` and drop them: dragenter, dragover, drop with a real DataTransfer.

        Returns whether the drop zone had the upload-dragover class while the files were over it; asserts that
        the class is gone once they were dropped.
        """
        payload = [{"name": n, "type": t, "data": base64.b64encode(d).decode()} for n, t, d in files]
        highlight = page.evaluate(DROP_SCRIPT, {"selector": selector, "files": payload})
        self.assertFalse(highlight["afterDrop"], "the drop zone kept its upload-dragover class after the drop")
        return highlight["duringDragover"]

    def wait_for_entries(self, page, predicate_js: str) -> None:  # type: ignore[no-untyped-def]
        """Wait until ``predicate_js`` (a function of the entries array) is true."""
        page.wait_for_function(f"() => ({predicate_js})(window.djUploads.entries())")

    def wait_all_complete(self, page, count: int) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
        self.wait_for_entries(page, f"(es) => es.length === {count} && es.every((e) => e.status === 'complete')")
        return page.evaluate("window.djUploads.entries()")


DROP_SCRIPT = """({selector, files}) => {
  const target = document.querySelector(selector);
  const transfer = new DataTransfer();
  for (const f of files) {
    const bytes = Uint8Array.from(atob(f.data), (c) => c.charCodeAt(0));
    transfer.items.add(new File([bytes], f.name, {type: f.type}));
  }
  const fire = (type) => target.dispatchEvent(new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: transfer}));
  const zone = target.closest("[dj-upload-drop]");
  const highlighted = () => zone.classList.contains("upload-dragover");
  fire("dragenter");
  fire("dragover");
  const duringDragover = highlighted();
  fire("drop");
  return {duringDragover, afterDrop: highlighted()};
}
"""


#: axe-core, installed from the npm registry by ``npm ci --prefix tests/browser`` (.ci/run, scripts/setup-venv.sh).
AXE_SCRIPT = HERE / "node_modules" / "axe-core" / "axe.min.js"

AUDIT = """async () => {
  const results = await axe.run(document, {resultTypes: ["violations"]});
  return results.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
                                         nodes: v.nodes.map((n) => n.target.join(" "))}));
}"""


def axe_violations(page) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Inject axe-core into the page and return what its audit (all default rules) finds wrong."""
    if not AXE_SCRIPT.is_file():
        raise _missing(f"the accessibility audit needs axe-core at {AXE_SCRIPT} "
                       "(npm ci --prefix tests/browser, which scripts/setup-venv.sh runs when npm is installed)")
    page.add_script_tag(content=AXE_SCRIPT.read_text())
    return page.evaluate(AUDIT)


class DemoTestCase(BrowserTestCase):
    """A test against the demo project (demo/), served by ``twistd uploads --settings`` in a subprocess.

    The demo runs with its own settings except for where it writes: media, uploads and sessions go to a temporary
    directory (file sessions, so no database migration is needed).
    """

    def setUp(self) -> None:  # noqa: D102 — replaces the test site with the demo
        self.browser = _Browser.get()
        self.workdir = Path(tempfile.mkdtemp(prefix="twisted-uploads-demo-"))
        self.addCleanup(shutil.rmtree, self.workdir, True)
        self.media_dir = self.workdir / "media"
        self.files_dir = self.workdir / "files"
        for path in (self.media_dir, self.files_dir, self.workdir / "uploads", self.workdir / "sessions"):
            path.mkdir()
        (self.workdir / "browser_demo_settings.py").write_text(
            "from demo.settings import *  # noqa: F401,F403\n"
            f"MEDIA_ROOT = {str(self.media_dir)!r}\n"
            f"UPLOADS_DIR = {str(self.workdir / 'uploads')!r}\n"
            "SESSION_ENGINE = 'django.contrib.sessions.backends.file'\n"
            f"SESSION_FILE_PATH = {str(self.workdir / 'sessions')!r}\n")
        twistd = str(Path(sys.executable).with_name("twistd"))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(self.workdir), str(REPO)])}

        def site_port(line: str) -> int | None:
            marker = "Site starting on "
            return int(line.split(marker, 1)[1].split()[0]) if marker in line else None

        self.site = SiteProcess([twistd, "-n", "--pidfile=", "uploads", "--settings", "browser_demo_settings",
                                 "--listen", "tcp:0:interface=127.0.0.1"], env=env, cwd=str(REPO),
                                port_marker=site_port)
        self.addCleanup(self.site.stop)
        self.base_url = f"http://127.0.0.1:{self.site.port}"
        self.context = self.browser.browser.new_context(viewport={"width": 1000, "height": 800})
        self.context.set_default_timeout(WAIT_MS)
        self.context.add_init_script(RECORDER)
        self.addCleanup(self.context.close)
        self.console = []

    def open_demo(self, path: str):  # type: ignore[no-untyped-def]
        page = self.context.new_page()
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        page.on("pageerror", lambda error: self.console.append(f"pageerror: {error}"))
        page.goto(self.base_url + path)
        page.wait_for_function("() => window.djUploads !== undefined")
        return page

    def fetch_bytes(self, page, url: str) -> bytes:  # type: ignore[no-untyped-def]
        """GET a URL with the page's cookies (e.g. a saved file under MEDIA_URL)."""
        response = page.request.get(url if "://" in url else self.base_url + url)
        self.assertEqual(response.status, 200, url)
        return response.body()

    def screenshot(self, page, name: str) -> None:  # type: ignore[no-untyped-def]
        """Save docs/screenshots/<name>.png when $TWISTED_UPLOADS_SCREENSHOTS names a directory."""
        setting = os.environ.get(SCREENSHOTS_ENV)
        if setting:
            directory = REPO / setting  # relative to the repository: trial runs tests inside _trial_temp/
            directory.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(directory / f"{name}.png"), full_page=True, animations="disabled")


#: Set to a directory (docs/screenshots; relative paths start at the repository) to have the demo tests save one
#: screenshot per example page.
SCREENSHOTS_ENV = "TWISTED_UPLOADS_SCREENSHOTS"
