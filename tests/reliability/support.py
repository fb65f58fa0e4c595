"""Real ``twistd uploads`` processes, a raw protocol client and an HTTP client for the fault tests.

Everything waits on events with a deadline — a line in the server's log, a message on the socket, a process
ending — never on the wall clock. Every process is started in its own session and killed by pid in cleanup, also
when the test fails. Figures (faults injected, inputs tried, bytes verified and lost) are appended as JSON lines to
``$TWISTED_UPLOADS_RELIABILITY_FIGURES`` when it is set (``scripts/reliability.sh`` sets it).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import signal
import sys
from http.cookiejar import CookieJar
from io import BytesIO
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import urlencode

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol, connectWS
from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web.client import Agent, CookieAgent, FileBodyProducer, readBody
from twisted.web.http_headers import Headers

from twisted_uploads import SUBPROTOCOL
from twisted_uploads.codec import encode_chunk
from twisted_uploads.errors import ErrorCode
from twisted_uploads.slots import SlotConfig
from twisted_uploads.tokens import make_token

REPO = Path(__file__).resolve().parents[2]
SECRET = "reliability-secret-0123456789abcdef"
FIGURES_ENV = "TWISTED_UPLOADS_RELIABILITY_FIGURES"
#: Seconds a server process gets to start (imports, Django set-up) or to stop.
START_DEADLINE = 30.0
#: Seconds any single protocol step (a reply, a close) may take on loopback.
STEP_DEADLINE = 20.0
#: Every code the server may name, and every close code the protocol (or RFC 6455 framing) may end a socket with.
NAMED_CODES = frozenset(code.value for code in ErrorCode)
DOCUMENTED_CLOSE_CODES = frozenset({1000, 1002, 1007, 1009, 4001, 4002, 4003})
#: What a server's log must never contain.
CRASH_MARKERS = ("Traceback", "Unhandled")


def within(seconds: float, waiting: Deferred, what: str) -> Deferred:
    """A Deferred with ``waiting``'s result, or a readable ``TimeoutError`` if none came after ``seconds``.

    On time-out ``waiting`` is cancelled, so a waiter it stands for stops waiting (its late result is dropped).
    """
    result: Deferred = Deferred()

    def timed_out() -> None:
        if not result.called:
            result.errback(TimeoutError(f"{what}: nothing within {seconds:g} s"))
        waiting.cancel()

    timer = reactor.callLater(seconds, timed_out)

    def settle(outcome: Any) -> None:
        if timer.active():
            timer.cancel()
        if not result.called:
            result.callback(outcome)  # a Failure goes down the errback chain

    waiting.addBoth(settle)
    return result


def sha256_file(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as source:
        return hashlib.file_digest(source, "sha256").hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def files_with_digest(root: Path, digest: str) -> list[Path]:
    """Files under ``root`` whose bytes hash to ``digest`` (the stored copy of an upload, wherever the store put it)."""
    return [p for p in root.rglob("*") if p.is_file() and sha256_file(p) == digest]


def record_figures(test: unittest.TestCase, **figures: Any) -> None:
    """Append this test's figures to the figures file, when the reliability script asked for one."""
    target = os.environ.get(FIGURES_ENV)
    if not target:
        return
    with open(target, "a", encoding="utf-8") as out:
        out.write(json.dumps({"test": test.id(), **figures}, sort_keys=True) + "\n")


def token(session: str | None = None, ttl: float = 3600, **slots: SlotConfig) -> str:
    """A standalone token for ``session`` (a fresh one by default) granting ``slots`` (default: one ``files``)."""
    return make_token(SECRET, session or secrets.token_hex(8), slots or {"files": SlotConfig()}, ttl)


# -- server processes ---------------------------------------------------------------------------------------------

def twistd_command() -> list[str]:
    """How to run this environment's twistd."""
    script = Path(sys.executable).with_name("twistd")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"]


class ServerProcess(ProcessProtocol):
    """One ``twistd -n uploads`` process: its log lines, its port, its end."""

    def __init__(self, name: str, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir
        self.lines: list[str] = []
        self.port: int | None = None
        self.pid: int | None = None
        self.exit: Failure | None = None
        self.ended: Deferred = Deferred()
        self._partial = b""
        self._waiters: list[tuple[re.Pattern[str], int, Deferred]] = []
        self._log = open(workdir / f"{name}.log", "ab")

    # ProcessProtocol
    def connectionMade(self) -> None:
        self.pid = self.transport.pid

    def outReceived(self, data: bytes) -> None:
        self._log.write(data)
        self._log.flush()
        self._partial += data
        *complete, self._partial = self._partial.split(b"\n")
        for raw in complete:
            self.lines.append(raw.decode("utf-8", "replace"))
        self._wake()

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        self.exit = reason
        self.pid = None
        if self._partial:
            self.lines.append(self._partial.decode("utf-8", "replace"))
            self._partial = b""
        self._log.close()
        waiters, self._waiters = self._waiters, []
        for _, _, waiter in waiters:
            waiter.errback(RuntimeError(f"{self.name} exited ({reason.value}) before the awaited line:\n"
                                        + self.tail()))
        self.ended.callback(None)

    # what tests use
    @property
    def running(self) -> bool:
        return self.pid is not None

    def log_text(self) -> str:
        return "\n".join(self.lines)

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.lines[-lines:])

    def crash_lines(self) -> list[str]:
        """Log lines that show an exception escaped the protocol code (with their neighbours)."""
        hits = [i for i, line in enumerate(self.lines) if any(m in line for m in CRASH_MARKERS)]
        return ["\n".join(self.lines[max(0, i - 2): i + 12]) for i in hits[:3]]

    def wait_for(self, pattern: str, since: int = 0, timeout: float = STEP_DEADLINE) -> Deferred:
        """The first log line from index ``since`` on matching ``pattern`` (a ``re.Match``)."""
        compiled = re.compile(pattern)
        for line in self.lines[since:]:
            match = compiled.search(line)
            if match:
                return defer.succeed(match)
        if not self.running:
            return defer.fail(RuntimeError(f"{self.name} is not running:\n{self.tail()}"))
        waiter: Deferred = Deferred()
        self._waiters.append((compiled, len(self.lines), waiter))
        return within(timeout, waiter, f"{self.name}: a log line matching {pattern!r}")

    def _wake(self) -> None:
        still = []
        for compiled, start, waiter in self._waiters:
            if waiter.called:
                continue
            match = next((m for m in map(compiled.search, self.lines[start:]) if m), None)
            if match is None:
                still.append((compiled, start, waiter))
            else:
                waiter.callback(match)
        self._waiters = still

    def kill(self, sig: int = signal.SIGKILL) -> Deferred:
        """Send ``sig`` to this process (by pid); fires once it has exited."""
        if self.pid is not None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
        return observe(self.ended)

    @inlineCallbacks
    def stop(self) -> Any:
        """Cleanup: SIGTERM, then SIGKILL if it has not exited within the deadline. Never leaves it running."""
        if self.ended.called:
            return
        self.kill(signal.SIGTERM)
        try:
            yield within(START_DEADLINE / 3, observe(self.ended), f"{self.name} stopping on SIGTERM")
        except TimeoutError:
            yield within(START_DEADLINE, observe(self.kill()), f"{self.name} dying on SIGKILL")


def observe(source: Deferred) -> Deferred:
    """A Deferred that fires when ``source`` does, without taking its result (so both can be waited on)."""
    copy: Deferred = Deferred()

    def relay(result: Any) -> Any:
        if not copy.called:
            copy.callback(None)
        return result

    source.addBoth(relay)
    return copy


class ServerTestCase(unittest.TestCase):
    """Starts ``twistd uploads`` processes in the test's own directory; all of them die in cleanup."""

    timeout = 60

    def setUp(self) -> None:
        self.workdir = Path(self.mktemp()).resolve()
        self.workdir.mkdir(parents=True)
        self.upload_dir = self.workdir / "uploads"
        self.processes: list[ServerProcess] = []

    @inlineCallbacks
    def start_server(self, name: str = "server", *, upload_dir: Path | None = None, port: int = 0,
                     options: Iterable[str] = (), settings: str | None = None, nofile: int | None = None,
                     env: dict[str, str] | None = None) -> Any:
        """Start ``twistd -n uploads`` on 127.0.0.1:``port`` (0: any free port); fires once it listens."""
        process = ServerProcess(name, self.workdir)
        self.processes.append(process)
        self.addCleanup(process.stop)
        pidfile = self.workdir / f"{name}.pid"
        args = [*twistd_command(), "-n", f"--pidfile={pidfile}", "--logfile=-", "uploads",
                "--listen", f"tcp:{port}:interface=127.0.0.1",
                "--upload-dir", str(upload_dir or self.upload_dir), *options]
        if settings is not None:
            args += ["--settings", settings]
        if nofile is not None:
            # The limit is set in the child just before it becomes twistd, so it holds for the server alone.
            args = [sys.executable, "-c",
                    "import os, resource, sys; resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]),) * 2);"
                    " os.execv(sys.argv[2], sys.argv[2:])", str(nofile), *args]
        environment = {**os.environ, "TWISTED_UPLOADS_SECRET": SECRET, "PYTHONUNBUFFERED": "1",
                       "PYTHONPATH": os.pathsep.join([str(self.workdir), str(REPO)]), **(env or {})}
        environment.pop("DJANGO_SETTINGS_MODULE", None)
        reactor.spawnProcess(process, args[0], args, env=environment, path=str(self.workdir), usePTY=False)
        match = yield process.wait_for(r"Site starting on (\d+)", timeout=START_DEADLINE)
        process.port = int(match.group(1))
        return process

    def ws_url(self, process: ServerProcess) -> str:
        return f"ws://127.0.0.1:{process.port}/uploads/ws"

    def assertNoCrash(self, process: ServerProcess) -> None:
        """The server's log holds no traceback and no unhandled error."""
        crashes = process.crash_lines()
        self.assertEqual(crashes, [], f"{process.name} logged an exception:\n" + "\n---\n".join(crashes))

    def make_file(self, size: int, name: str = "data.bin", content: bytes | None = None) -> Path:
        directory = self.workdir / "sources"
        directory.mkdir(exist_ok=True)
        path = directory / name
        path.write_bytes(content if content is not None else os.urandom(size))
        return path


# -- a raw protocol client --------------------------------------------------------------------------------------

class _RawProtocol(WebSocketClientProtocol):
    factory: "_RawFactory"

    def onOpen(self) -> None:
        self.factory.client._opened(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.client._received(payload, isBinary)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.client._closed(code, reason)


class _RawFactory(WebSocketClientFactory):
    protocol = _RawProtocol
    client: "ProtocolClient"

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.client._closed(None, reason.getErrorMessage())


class ProtocolClient:
    """Speaks the wire protocol frame by frame (and may break it on purpose); keeps every message it receives.

    Waiting takes the oldest unclaimed message that matches, so messages a test did not wait for are never lost.
    """

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.protocol: _RawProtocol | None = None
        self.close_code: int | None = None
        self.close_reason: str | None = None
        self.welcome: dict[str, Any] = {}
        self.closed: Deferred = Deferred()
        self._claimed: set[int] = set()
        self._waiters: list[tuple[Callable[[dict[str, Any]], bool], Deferred]] = []
        self._opened_d: Deferred = Deferred()
        self._ended = False

    @classmethod
    def connect(cls, url: str, headers: dict[str, str] | None = None, max_frame: int = 16 << 20) -> Deferred:
        client = cls()
        factory = _RawFactory(url=url, protocols=[SUBPROTOCOL], headers=headers or {})
        factory.setProtocolOptions(maxFramePayloadSize=max_frame, maxMessagePayloadSize=max_frame,
                                   autoFragmentSize=0, openHandshakeTimeout=0, closeHandshakeTimeout=0,
                                   utf8validateIncoming=False, tcpNoDelay=True)
        factory.client = client
        connectWS(factory)
        return within(STEP_DEADLINE, client._opened_d, f"opening {url}")

    @property
    def is_closed(self) -> bool:
        return self._ended

    def _opened(self, protocol: _RawProtocol) -> None:
        self.protocol = protocol
        self._opened_d.callback(self)

    def _received(self, payload: bytes, is_binary: bool) -> None:
        try:
            message = json.loads(payload) if not is_binary else {"type": "<binary>"}
        except ValueError:
            message = {"type": "<not json>", "raw": payload[:200]}
        if not isinstance(message, dict):
            message = {"type": "<not an object>", "raw": message}
        self.messages.append(message)
        self._deliver()

    def _closed(self, code: int | None, reason: str | None) -> None:
        if self._ended:
            return
        # Marked first: the errbacks below resume tests synchronously, and they must already see a closed socket.
        self._ended = True
        self.close_code, self.close_reason = code, reason
        if not self._opened_d.called:
            self._opened_d.errback(ConnectionError(reason))
        while self._waiters:
            _, waiter = self._waiters.pop(0)
            if not waiter.called:
                waiter.errback(ConnectionError(f"closed {code}: {reason}"))
        self.closed.callback((code, reason))

    def _deliver(self) -> None:
        for index, message in enumerate(self.messages):
            if index in self._claimed:
                continue
            for pair in self._waiters:
                matches, waiter = pair
                if not waiter.called and matches(message):
                    self._claimed.add(index)
                    self._waiters.remove(pair)
                    waiter.callback(message)
                    break
        self._waiters = [(m, w) for m, w in self._waiters if not w.called]

    def wait(self, matches: str | Callable[[dict[str, Any]], bool], timeout: float = STEP_DEADLINE) -> Deferred:
        """The oldest unclaimed message of that type (or satisfying the predicate); fails if the socket closes."""
        predicate = (lambda m: m.get("type") == matches) if isinstance(matches, str) else matches
        waiter: Deferred = Deferred()
        if self._ended:
            # What arrived before the close still counts.
            for index, message in enumerate(self.messages):
                if index not in self._claimed and predicate(message):
                    self._claimed.add(index)
                    return defer.succeed(message)
            return defer.fail(ConnectionError(f"closed {self.close_code}: {self.close_reason}"))
        self._waiters.append((predicate, waiter))
        self._deliver()
        return within(timeout, waiter, f"a {matches if isinstance(matches, str) else 'matching'} message")

    def send_json(self, **message: Any) -> None:
        self.send_text(json.dumps(message).encode("utf-8"))

    def send_text(self, payload: bytes) -> None:
        if self._can_send():
            self.protocol.sendMessage(payload, isBinary=False)

    def send_binary(self, payload: bytes) -> None:
        if self._can_send():
            self.protocol.sendMessage(payload, isBinary=True)

    def _can_send(self) -> bool:
        # Once the server has sent its close frame there is nothing to say any more (a hostile client keeps trying).
        protocol = self.protocol
        return protocol is not None and not self._ended and protocol.state == protocol.STATE_OPEN

    def send_chunk(self, entry: int, offset: int, payload: bytes) -> None:
        self.send_binary(encode_chunk(entry, offset, payload))

    @inlineCallbacks
    def authenticate(self, token_value: str) -> Any:
        self.send_json(type="auth", token=token_value)
        self.welcome = yield self.wait("welcome")
        return self.welcome

    @inlineCallbacks
    def announce(self, name: str, size: int, slot: str = "files", mime: str = "application/octet-stream",
                 ref: str | None = None) -> Any:
        """Announce a file; the ``accepted`` or ``rejected`` reply."""
        ref = ref or secrets.token_hex(4)
        self.send_json(type="announce", ref=ref, slot=slot, name=name, mime=mime, size=size)
        reply = yield self.wait(lambda m: m.get("ref") == ref and m.get("type") in ("accepted", "rejected"))
        return reply

    @inlineCallbacks
    def stream(self, accepted: dict[str, Any], data: bytes, until: int | None = None) -> Any:
        """Send ``data`` from the accepted offset within the window; the ``complete`` message, or the last ``ack``
        once ``until`` bytes are acknowledged. Fails with the entry's error if it gets one."""
        entry, chunk, window = accepted["entry"], accepted["chunk_size"], accepted["window"]
        sent = acked = accepted["offset"]
        stop = len(data) if until is None else until

        def about_entry(message: dict[str, Any]) -> bool:
            return message.get("entry") == entry and message.get("type") in ("ack", "complete", "error")

        while True:
            while sent < stop and sent - acked < window:
                payload = data[sent: min(sent + chunk, stop)]
                self.send_chunk(entry, sent, payload)
                sent += len(payload)
            reply = yield self.wait(about_entry)
            if reply["type"] == "error":
                raise EntryFailed(reply)
            if reply["type"] == "complete":
                return reply
            acked = reply["offset"]
            if until is not None and acked >= until:
                return reply

    def abort(self) -> Deferred:
        """Drop the TCP connection (no close handshake); fires once it is closed."""
        if self.protocol is not None and self.protocol.transport is not None and not self._ended:
            self.protocol.transport.abortConnection()
        return observe(self.closed)


class EntryFailed(Exception):
    """The server failed an entry; ``message`` is its ``error`` message."""

    def __init__(self, message: dict[str, Any]) -> None:
        super().__init__(f"{message.get('code')}: {message.get('message')}")
        self.message = message
        self.code = message.get("code")


# -- HTTP, for the Django-mode tests ---------------------------------------------------------------------------

class HttpClient:
    """A cookie-keeping, non-blocking HTTP client (twisted.web's Agent): one browser profile."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies = CookieJar()
        self.agent = CookieAgent(Agent(reactor), self.cookies)

    @inlineCallbacks
    def request(self, method: str, path: str, fields: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> Any:
        """(status, body) of one request; ``fields`` are sent form-encoded."""
        all_headers = {"Host": self.base.split("//", 1)[1], **(headers or {})}
        body = None
        if fields is not None:
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
            body = FileBodyProducer(BytesIO(urlencode(fields).encode("utf-8")))
        response = yield within(STEP_DEADLINE, self.agent.request(
            method.encode(), (self.base + path).encode(),
            Headers({k: [v] for k, v in all_headers.items()}), body), f"{method} {path}")
        content = yield within(STEP_DEADLINE, readBody(response), f"the body of {method} {path}")
        return response.code, content

    def cookie_header(self) -> str:
        """The cookies a browser would send with the upload WebSocket's handshake."""
        return "; ".join(f"{c.name}={c.value}" for c in self.cookies)
