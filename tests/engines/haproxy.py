"""Real front proxies for tests: HAProxy (and nginx) started from the deploy/ templates on free loopback ports.

The configuration is the one operators get (``deploy/haproxy.cfg``, ``deploy/nginx.conf``), with the addresses
filled in and one ``server`` line per upload node, so a test through it proves the shipped routing: ``/uploads/ws``
(a WebSocket, long tunnel timeouts) to the nodes, round robin, everything else to Django. Each proxy runs in the
foreground as a child of the test's reactor, is waited for by connecting to its port (bounded deadline) and is
stopped by its pid (TERM, then KILL): never by name.

    proxy = yield HAProxy.start(workdir, nodes=["127.0.0.1:8101", "127.0.0.1:8102"], web="127.0.0.1:8100")
    proxy.url("/uploads/ws", scheme="ws")   # ws://127.0.0.1:<port>/uploads/ws
    yield proxy.stop()
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.internet import defer, error, protocol, task
from twisted.internet.endpoints import TCP4ClientEndpoint

REPO = Path(__file__).resolve().parents[2]
HAPROXY_TEMPLATE = REPO / "deploy" / "haproxy.cfg"
NGINX_TEMPLATE = REPO / "deploy" / "nginx.conf"
#: Seconds a proxy gets to listen, and to exit after TERM before it is killed.
START_DEADLINE = 20.0
STOP_DEADLINE = 10.0
#: The test's health checks run faster than the template's 2 s, so a node marked down comes back quickly.
TEST_CHECK_INTERVAL = "200ms"


def find_tool(name: str) -> str | None:
    """The path of a system tool (Debian keeps haproxy and nginx in /usr/sbin, outside a user's PATH)."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _node_lines(template: str, pattern: str, nodes: Sequence[str], render: Any) -> str:
    """Replace the template's two node lines (matched by ``pattern``) with one line per node."""
    lines = template.splitlines(keepends=True)
    found = [i for i, line in enumerate(lines) if re.search(pattern, line)]
    if len(found) != 2 or found[1] != found[0] + 1:
        raise ValueError(f"the template's node lines moved: {pattern!r} matched lines {found}")
    indent = lines[found[0]][: len(lines[found[0]]) - len(lines[found[0]].lstrip())]
    expanded = [indent + render(n, address) + "\n" for n, address in enumerate(nodes, 1)]
    return "".join(lines[: found[0]] + expanded + lines[found[1] + 1:])


def _check_filled(text: str, what: str) -> None:
    """Every ``${NAME}`` outside comments was filled in (a new placeholder in a template must reach the engine)."""
    left = [line for line in text.splitlines() if "${" in line and not line.lstrip().startswith("#")]
    if left:
        raise ValueError(f"the {what} template has placeholders the engine does not fill: {left}")


def haproxy_config(front: str, nodes: Sequence[str], web: str | None, *,
                   check_interval: str = TEST_CHECK_INTERVAL) -> str:
    """``deploy/haproxy.cfg`` with the addresses filled in; ``web=None`` leaves the Django backend empty (503)."""
    text = HAPROXY_TEMPLATE.read_text()
    text = _node_lines(text, r'server node\d "\$\{NODE\d_ADDR\}"', nodes, lambda n, a: f"server node{n} {a}")
    text = text.replace('"${FRONT_BIND}"', front)
    if web is None:
        text = re.sub(r'\n\s*server web1 "\$\{WEB_ADDR\}"', "", text)
    else:
        text = text.replace('"${WEB_ADDR}"', web)
    text = text.replace("check inter 2s", f"check inter {check_interval}")
    _check_filled(text, "haproxy")
    return text


def nginx_config(front: str, nodes: Sequence[str], web: str | None) -> str:
    """``deploy/nginx.conf`` with the addresses filled in (``web=None``: a closed port, so Django paths get 502)."""
    text = NGINX_TEMPLATE.read_text()
    text = _node_lines(text, r"server \$\{NODE\d_ADDR\}", nodes,
                       lambda n, a: f"server {a} max_fails=1 fail_timeout=5s;")
    text = text.replace("${FRONT_BIND}", front).replace("${WEB_ADDR}", web or f"127.0.0.1:{free_port()}")
    _check_filled(text, "nginx")
    return text


class _Process(protocol.ProcessProtocol):
    """Collects a child's output and tells when it ended."""

    def __init__(self) -> None:
        self.output = bytearray()
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.exited = False

    def outReceived(self, data: bytes) -> None:
        self.output += data

    errReceived = outReceived

    def processEnded(self, reason: Any) -> None:
        self.exited = True
        self.ended.callback(None)


class ProxyProcess:
    """A front proxy running in the foreground: its port, its pid, its output; :meth:`stop` ends it by pid."""

    name = "proxy"

    def __init__(self, workdir: Path, port: int, process: _Process, transport: Any, reactor: Any) -> None:
        self.workdir, self.port, self._process, self._transport, self._reactor = (workdir, port, process,
                                                                                   transport, reactor)

    @property
    def pid(self) -> int | None:
        return self._transport.pid

    @property
    def output(self) -> str:
        return self._process.output.decode("utf-8", "replace")

    def url(self, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    @classmethod
    @defer.inlineCallbacks
    def _spawn(cls, workdir: Path, argv: list[str], port: int, reactor: Any) -> Any:
        process = _Process()
        transport = reactor.spawnProcess(process, argv[0], argv, env=dict(os.environ), path=str(workdir))
        proxy = cls(workdir, port, process, transport, reactor)
        try:
            yield proxy._wait_listening()
        except BaseException:
            yield proxy.stop()
            raise
        return proxy

    @defer.inlineCallbacks
    def _wait_listening(self) -> Any:
        """Connect until the port answers, the process exits, or the deadline passes."""
        deadline = self._reactor.seconds() + START_DEADLINE
        endpoint = TCP4ClientEndpoint(self._reactor, "127.0.0.1", self.port, timeout=2)
        while True:
            if self._process.exited:
                raise RuntimeError(f"{self.name} exited before listening:\n{self.output}")
            try:
                connected = yield endpoint.connect(protocol.Factory.forProtocol(protocol.Protocol))
            except (error.ConnectError, OSError):
                connected = None
            if connected is not None:
                connected.transport.loseConnection()
                return
            if self._reactor.seconds() > deadline:
                raise TimeoutError(f"{self.name} did not listen on {self.port} within {START_DEADLINE} s:\n"
                                   f"{self.output}")
            yield task.deferLater(self._reactor, 0.05, lambda: None)

    @defer.inlineCallbacks
    def stop(self) -> Any:
        """TERM by pid, KILL if it is still there after :data:`STOP_DEADLINE`; fires once it has exited."""
        if self._process.exited:
            return
        self._transport.signalProcess("TERM")
        timer = self._reactor.callLater(STOP_DEADLINE, self._kill)
        yield self._process.ended
        if timer.active():
            timer.cancel()

    def _kill(self) -> None:
        if not self._process.exited and self.pid:
            os.kill(self.pid, signal.SIGKILL)


class HAProxy(ProxyProcess):
    """``haproxy -db -f <generated config>`` (``-db``: foreground, no daemon, so the pid is the one we spawned)."""

    name = "haproxy"

    @classmethod
    def start(cls, workdir: str | os.PathLike[str], *, nodes: Sequence[str], web: str | None = None,
              reactor: Any = None) -> defer.Deferred["HAProxy"]:
        """Start in front of ``nodes`` (``host:port`` each) and ``web`` (Django) on a free port."""
        if reactor is None:
            from twisted.internet import reactor
        binary = find_tool("haproxy")
        if binary is None:
            raise RuntimeError("haproxy not installed (Debian: apt-get install haproxy)")
        workdir = Path(workdir).resolve()
        workdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        config = workdir / "haproxy.cfg"
        config.write_text(haproxy_config(f"127.0.0.1:{port}", nodes, web))
        return cls._spawn(workdir, [binary, "-db", "-f", str(config)], port, reactor)


class Nginx(ProxyProcess):
    """nginx in the foreground (``daemon off``) with a generated config and its own prefix under ``workdir``."""

    name = "nginx"

    @classmethod
    def start(cls, workdir: str | os.PathLike[str], *, nodes: Sequence[str], web: str | None = None,
              reactor: Any = None) -> defer.Deferred["Nginx"]:
        if reactor is None:
            from twisted.internet import reactor
        binary = find_tool("nginx")
        if binary is None:
            raise RuntimeError("nginx not installed (Debian: apt-get install nginx)")
        workdir = Path(workdir).resolve()
        (workdir / "temp").mkdir(parents=True, exist_ok=True)
        port = free_port()
        config = workdir / "nginx.conf"
        config.write_text(nginx_config(f"127.0.0.1:{port}", nodes, web))
        argv = [binary, "-p", f"{workdir}/", "-c", str(config), "-e", str(workdir / "error.log"),
                "-g", f"pid {workdir}/nginx.pid; daemon off;"]
        return cls._spawn(workdir, argv, port, reactor)
