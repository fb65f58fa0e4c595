"""Real server processes for the gunicorn / uvicorn tests: started on free loopback ports, stopped by pid.

Readiness is a port that answers (polled with a bounded deadline), never a sleep. Which process listens on which
port is read from ``/proc`` (the sockets in LISTEN state, and which process holds each one's inode).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import urllib.request
from pathlib import Path
from typing import Any

from tests.engines.redis import RedisServer as EngineRedis
from tests.output import ProcessOutput

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
#: Seconds a process may take to answer on its port (2 shared cores, Django imports).
START_TIMEOUT = 60.0
#: What each server writes once it listens on ``port``: gunicorn, uvicorn, twistd, and runserver (which says
#: nothing after binding, so tests/gunicorn/site.py makes its server announce it).
LISTENING = (r"(Listening at: http://127\.0\.0\.1:{port}\b|Uvicorn running on http://127\.0\.0\.1:{port}\b"
             r"|Site starting on {port}\b|tests: runserver listening on {port}\b)")
#: What a gunicorn or uvicorn worker writes once it booted, with its pid.
WORKER_BOOTED = r"Booting worker with pid: (\d+)|Started server process \[(\d+)\]"


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _listening_inodes() -> dict[str, int]:
    """Inode of every TCP socket in LISTEN state → its port."""
    inodes: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A":  # TCP_LISTEN
                inodes[fields[9]] = int(fields[1].rsplit(":", 1)[1], 16)
    return inodes


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process ``pid`` holds a listening socket for (inherited ones included)."""
    inodes = _listening_inodes()
    ports = set()
    try:
        descriptors = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return set()
    for descriptor in descriptors:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{descriptor}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inode = target[len("socket:["):-1]
            if inode in inodes:
                ports.add(inodes[inode])
    return ports


def children(pid: int) -> set[int]:
    """The live child processes of ``pid``."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry))
    return found


def get_json(url: str, timeout: float = 30.0) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


class Holder:
    """Keeps one sync worker busy: it requests ``/hold/`` and the view waits for a byte on a socket of ours."""

    def __init__(self, base: str) -> None:
        self._server = socket.socket()
        self._server.bind(("127.0.0.1", 0))
        self._server.listen(1)
        self._server.settimeout(START_TIMEOUT)
        self.result: dict[str, Any] = {}
        port = self._server.getsockname()[1]
        self._thread = threading.Thread(target=self._request, args=(f"{base}/hold/?port={port}",), daemon=True)
        self._thread.start()
        self._held, _ = self._server.accept()
        self.pid = json.loads(self._held.makefile().readline())["pid"]

    def _request(self, url: str) -> None:
        self.result = get_json(url, timeout=START_TIMEOUT)

    def release(self) -> dict[str, Any]:
        self._held.sendall(b"x")
        self._thread.join(START_TIMEOUT)
        self._held.close()
        self._server.close()
        return self.result


class ServerProcess:
    """A server started in a scratch directory with the test site's settings; stopped by its pid."""

    def __init__(self, argv: list[str], *, port: int, ws_port: int | None = None, redis_url: str | None = None,
                 scratch: Path | None = None, keep_listen: bool = False, page_origin: str | None = None) -> None:
        self._own_scratch = scratch is None
        self.scratch = scratch or Path(tempfile.mkdtemp(prefix="tu-gunicorn-"))
        (self.scratch / "shared").mkdir(exist_ok=True)
        self.port = port
        env = {**os.environ, "PYTHONPATH": str(REPO), "DJANGO_SETTINGS_MODULE": "tests.gunicorn.site",
               "TU_SCRATCH": str(self.scratch), "TU_WS_PORT": str(ws_port or 0), "PYTHONUNBUFFERED": "1",
               "TU_PAGE_ORIGIN": page_origin or f"http://127.0.0.1:{port}"}
        env.pop("TU_REDIS_URL", None)
        if redis_url:
            env["TU_REDIS_URL"] = redis_url
        if keep_listen:
            env["TU_KEEP_LISTEN"] = "1"
        self.log_path = self.scratch / f"server-{port}.log"
        self.process = subprocess.Popen(argv, cwd=str(self.scratch), env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT)
        self.pid = self.process.pid
        #: The server's output, copied to its log and followed line by line (waits wake on lines, no polling).
        self.printed = ProcessOutput()
        self.printed.follow(self.process, self.log_path)

    def wait_for(self, pattern: str, count: int = 1, timeout: float = START_TIMEOUT) -> list[re.Match[str]]:
        """The first ``count`` output lines matching ``pattern``, once the server wrote them; raises if it exits
        or the deadline passes first."""
        return self.printed.wait_for(pattern, count, timeout, str(self.process.args[0]))

    def wait_listening(self, timeout: float = START_TIMEOUT) -> None:
        """Once the server says it listens on its port (each server's own line, written after it bound)."""
        self.wait_for(LISTENING.format(port=self.port), timeout=timeout)

    def wait_workers(self, count: int, timeout: float = START_TIMEOUT) -> set[int]:
        """Once ``count`` workers said they booted (gunicorn, uvicorn); their pids."""
        return {int(next(g for g in m.groups() if g)) for m in self.wait_for(WORKER_BOOTED, count, timeout)}

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        workers = children(self.pid)
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.process.wait(10)
        for worker in workers:  # a worker the master could not stop in time
            try:
                os.kill(worker, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.printed.join(10)  # EOF once the server and its workers are gone
        if self._own_scratch:
            shutil.rmtree(self.scratch, ignore_errors=True)


def gunicorn(workers: int, *, preload: bool = False, **kwargs: Any) -> ServerProcess:
    """``gunicorn -w N [--preload] demo.wsgi:application`` on a free loopback port (sync workers)."""
    port = free_port()
    argv = [str(VENV_BIN / "gunicorn"), "-w", str(workers), "-b", f"127.0.0.1:{port}", "--timeout", "120",
            "--no-control-socket",
            *(["--preload"] if preload else []), "demo.wsgi:application"]
    return ServerProcess(argv, port=port, **kwargs)


def uvicorn(workers: int = 1, **kwargs: Any) -> ServerProcess:
    """``uvicorn`` on the test site's ASGI application on a free loopback port."""
    port = free_port()
    argv = [str(VENV_BIN / "uvicorn"), "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "tests.gunicorn.asgi:application"]
    return ServerProcess(argv, port=port, **kwargs)


def runserver(**kwargs: Any) -> ServerProcess:
    """``manage.py runserver`` (with its autoreloader: a watcher parent and a serving child) on a free port."""
    port = free_port()
    argv = [sys.executable, str(REPO / "demo" / "manage.py"), "runserver", f"127.0.0.1:{port}"]
    return ServerProcess(argv, port=port, **kwargs)


def RedisServer() -> EngineRedis:  # noqa: N802 - reads like the class it starts
    """A real ``redis-server`` (tests/engines/redis.py) on a free loopback port in a temp dir, already started."""
    return EngineRedis(tempfile.mkdtemp(prefix="tu-redis-")).start()
