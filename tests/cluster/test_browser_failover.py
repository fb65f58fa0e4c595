"""Chromium uploads through HAProxy; the node receiving the file is killed; the page finishes on the other node.

The topology is ``scripts/cluster.sh``'s (S3, Redis, two nodes, gunicorn -w 4, HAProxy), started for this test
alone since it kills one of its nodes.
"""

from __future__ import annotations

import os
import signal
import subprocess

from ..browser.support import png_bytes, sha256_file
from .test_seed_examples import ClusterDemo, ClusterDemoMixin, examples

MIB = 1024 * 1024
# The page stops sending data after 6 MiB (so the node holds one stored 5 MiB part and cannot finish the file
# before it is killed) until the test lets it go on; frames "sent" meanwhile are dropped, as a dying link would.
HOLD_DATA = """() => {
  const send = WebSocket.prototype.send;
  window.holdAfter = 6 * 1024 * 1024;
  let sent = 0;
  WebSocket.prototype.send = function (data) {
    if (typeof data !== 'string') {
      if (window.holdAfter !== null && sent >= window.holdAfter) return;
      sent += data.byteLength ?? data.size ?? 0;
    }
    return send.call(this, data);
  };
}"""


def redis_field(cluster: ClusterDemo, key: str, field: str) -> str:
    """One hash field, read with the redis-cli that comes with redis-server (Debian's redis-tools)."""
    env = dict(line.split("=", 1) for line in (cluster.directory / "env").read_text().split() if "=" in line)
    answer = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", env["CLUSTER_REDIS_PORT"], "HGET", key, field],
                            capture_output=True, text=True, timeout=10, check=True)
    return answer.stdout.strip()


class BrowserFailoverTests(ClusterDemoMixin, examples.DemoTestCase):
    """The browser reconnects through the proxy to the surviving node and resumes from the stored parts."""

    own: ClusterDemo | None = None

    @classmethod
    def cluster(cls) -> ClusterDemo:
        ClusterDemoMixin.cluster()  # the checks for engines and a browser
        if cls.own is None:
            cls.own = ClusterDemo()
            import atexit

            atexit.register(cls.own.stop)
        return cls.own

    def test_killing_the_node_receiving_a_photo_does_not_stop_the_page(self) -> None:
        page = self.open_demo("/gallery/")
        page.evaluate(HOLD_DATA)
        source = self.make_file("big.png", png_bytes(9_500_000))
        self.choose(page, "photos", [source])
        # Acks come a stored 5 MiB part at a time: past half, the first part is in S3 (and the rest held back).
        self.wait_for_entries(page, "(es) => es.length === 1 && es[0].progress >= 50")
        [entry] = page.evaluate("window.djUploads.entries()")
        assert self.own is not None
        key = f"tu:e:{entry['entry']}"
        pid = int(redis_field(self.own, key, "server").split("-")[-2])  # node ids are host-pid-random
        started = dict(line.split()[:2] for line in (self.own.directory / "pids").read_text().splitlines() if line)
        self.assertIn(str(pid), {started.get("node1"), started.get("node2")}, started)
        os.kill(pid, signal.SIGKILL)
        page.evaluate("() => { window.holdAfter = null; }")
        [entry] = self.wait_all_complete(page, 1)
        self.assertEqual(entry["sha256"], sha256_file(source))
        self.assertGreaterEqual(entry["resumeCount"], 1)
        self.assertNotIn(f"-{pid}-", redis_field(self.own, key, "server"))
