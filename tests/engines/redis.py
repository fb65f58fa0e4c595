"""A real redis-server for the tests (on a free loopback port, in a temp dir, stopped by its pid) and fixtures.

``start()`` returns once the server logged that it accepts connections and answered ``PING`` (bounded by a
deadline, no sleeps). ``stop()``/``restart()`` act on exactly the process started here; ``pause()``/``resume()``
send it SIGSTOP/SIGCONT (a Redis that stops answering while its port stays open).
"""

from __future__ import annotations

import os
import select
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.trial.unittest import SkipTest, TestCase

from twisted_uploads.records import EntryRecord
from twisted_uploads.redisstate import RedisState

#: Seconds a start or a stop may take before the test fails (not a sleep: the deadline of a wait on an event).
DEADLINE = 20.0
READY_LINE = b"Ready to accept connections"


def redis_server_binary() -> str | None:
    """The redis-server on PATH, or None (the tests that need it skip)."""
    return shutil.which("redis-server")


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class RedisServer:
    """One redis-server process of a test; ``persistent`` keeps its data across ``restart()`` (append-only file)."""

    def __init__(self, directory: str | os.PathLike[str], *, persistent: bool = False,
                 password: str | None = None) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError("redis-server is not installed")
        self.binary = binary
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.persistent = persistent
        self.password = password
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.log: list[bytes] = []

    @property
    def url(self) -> str:
        """The URL clients use (with the password, when there is one)."""
        return f"redis://:{self.password}@127.0.0.1:{self.port}" if self.password else \
            f"redis://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> "RedisServer":
        """Start on a free port (the same port again after a stop); return once it answers PING."""
        for _attempt in range(5):
            self.port = free_port()
            if self._spawn():
                return self
            if not any(b"Address already in use" in line for line in self.log[-5:]):
                raise RuntimeError("redis-server did not start:\n" +
                                   b"\n".join(self.log[-20:]).decode(errors="replace"))
        raise RuntimeError("redis-server found no free port")

    def _spawn(self) -> bool:
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else \
            ["--appendonly", "no"]
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
             "--save", "", *persistence, "--daemonize", "no", "--logfile", "", "--enable-debug-command", "local",
             "--protected-mode", "yes", *(["--requirepass", self.password] if self.password else [])],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            ready = self._wait_ready()
        except BaseException:
            self._reap()  # never leave a server behind that the test cannot stop
            raise
        if not ready:
            self._reap()
            return False
        # Keep reading its log so the pipe never fills and blocks the server.
        threading.Thread(target=self._drain, args=(self.process,), daemon=True).start()
        self._ping()
        return True

    def _wait_ready(self) -> bool:
        assert self.process is not None and self.process.stdout is not None
        stream = self.process.stdout
        deadline = time.monotonic() + DEADLINE
        buffered = b""
        while time.monotonic() < deadline:
            readable, _, _ = select.select([stream], [], [], deadline - time.monotonic())
            if not readable:
                break
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                return False  # exited
            buffered += chunk
            *lines, buffered = buffered.split(b"\n")
            self.log += lines
            if any(READY_LINE in line for line in lines):
                return True
        raise RuntimeError(f"redis-server did not get ready within {DEADLINE:g} s")

    def _drain(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.log.append(line.rstrip(b"\n"))

    def _ping(self) -> None:
        reply = self.command("PING")
        if not reply.startswith(b"+PONG"):
            raise RuntimeError(f"redis-server did not answer PING: {reply!r}")

    def stop(self) -> None:
        """Stop the server started here (SIGTERM, then SIGKILL past the deadline); idempotent."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)  # a paused server cannot handle SIGTERM
            self.process.terminate()
            try:
                self.process.wait(DEADLINE)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(DEADLINE)
        self._reap()

    def _reap(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(DEADLINE)
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None

    def restart(self) -> None:
        """Stop and start again on the same port (data kept only when ``persistent``)."""
        self.stop()
        if not self._spawn():
            raise RuntimeError("redis-server did not start again:\n" +
                               b"\n".join(self.log[-20:]).decode(errors="replace"))

    def pause(self) -> None:
        """SIGSTOP: the port stays open, nothing answers."""
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        os.kill(self.pid, signal.SIGCONT)

    def command(self, *words: str) -> bytes:
        """Send one command and return its reply line (blocking; for set-up steps only)."""
        payload = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w.encode()), w.encode())
                                                      for w in words)
        if self.password:
            payload = b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(self.password), self.password.encode()) + payload
        with socket.create_connection(("127.0.0.1", self.port), timeout=DEADLINE) as connection:
            connection.sendall(payload)
            reply = _read_reply(connection) if self.password else b""
            if reply and not reply.startswith(b"+OK"):
                raise RuntimeError(f"redis-server refused the test's password: {reply!r}")
            return _read_reply(connection)


def _read_reply(connection: socket.socket) -> bytes:
    """One reply line (enough for the simple replies the set-up steps read)."""
    line = b""
    while not line.endswith(b"\r\n"):
        chunk = connection.recv(1)
        if not chunk:
            break
        line += chunk
    return line


# -- trial fixtures ---------------------------------------------------------------------------------------

def entry_record(session: str = "s1", *, slot: str = "files", size: int = 10, status: str = "uploading",
                 ref: str = "r1", deadline: float | None = None, location: str | None = None) -> EntryRecord:
    """A record as a node would admit it (entry 0: the registry picks the id)."""
    return EntryRecord(session=session, entry=0, ref=ref, slot=slot, config={"max_entries": 5}, name="a.txt",
                       type="text/plain", size=size, status=status, deadline=deadline, location=location)


class RedisTestCase(TestCase):
    """Starts a redis-server (stopped by pid after the test) and connects nodes to it on the real reactor."""

    persistent = False
    password: str | None = None
    timeout_seconds = 1.0

    def setUp(self) -> None:
        if redis_server_binary() is None:
            raise SkipTest("redis-server is not installed")
        self.server = RedisServer(self.mktemp(), persistent=self.persistent, password=self.password).start()
        self.addCleanup(self.server.stop)

    @defer.inlineCallbacks
    def node(self, name: str, **options: Any) -> Any:
        """A RedisState for node ``name``, closed after the test."""
        options.setdefault("timeout", self.timeout_seconds)
        state = yield RedisState.connect(self.server.url, node_id=name, reactor=reactor, **options)
        self.addCleanup(state.close)
        return state

    @defer.inlineCallbacks
    def admitted(self, state: RedisState, record: EntryRecord | None = None, **bounds: Any) -> Any:
        """Admit ``record`` (a fresh one by default) with generous bounds unless given."""
        bounds.setdefault("max_session_entries", 100)
        bounds.setdefault("max_entries", 100)
        bounds.setdefault("max_session_bytes", 10**9)
        result = yield state.admit(record or entry_record(), **bounds)
        return result


def event_waiter() -> tuple[list[dict[str, Any]], defer.Deferred[dict[str, Any]], Any]:
    """A subscriber callback that records events and fires a Deferred on the first one."""
    events: list[dict[str, Any]] = []
    first: defer.Deferred[dict[str, Any]] = defer.Deferred()

    def callback(event: dict[str, Any]) -> None:
        events.append(event)
        if not first.called:
            first.callback(event)

    return events, first, callback
