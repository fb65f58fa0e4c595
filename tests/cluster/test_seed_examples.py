"""The seed's three examples in Chromium, through HAProxy, against ``gunicorn -w 4`` and two upload nodes.

``scripts/cluster.sh start`` brings the whole topology up on loopback with real engines (redis-server, SeaweedFS's
S3 gateway, two ``twistd uploads --node`` processes, the demo under ``gunicorn -w 4``, HAProxy in front); the
example tests of ``tests/browser/test_examples.py`` then run unchanged against its ``BASE``. Each page is served
by whichever worker HAProxy picks, each upload lands on whichever node, and every save must land.
"""

from __future__ import annotations

import atexit
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest

from ..browser.support import RECORDER, WAIT_MS, _Browser, chromium_path
from ..browser import test_examples as examples  # the module, so trial does not run its classes here again
from ..engines.haproxy import find_tool
from ..engines.redis import redis_server_binary
from ..engines.weed import weed_binary

REPO = Path(__file__).resolve().parents[2]
#: Seconds the whole topology gets to come up on a loaded CI machine (it takes about 20 s).
START_TIMEOUT = 240


class ClusterDemo:
    """One topology started by ``scripts/cluster.sh`` for a test class, stopped by the script after it."""

    def __init__(self) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="tu-cluster-"))
        started = subprocess.run(["bash", str(REPO / "scripts" / "cluster.sh"), "start", str(self.directory)],
                                 cwd=REPO, capture_output=True, text=True, timeout=START_TIMEOUT)
        lines = started.stdout.strip().splitlines()
        if started.returncode != 0 or not lines or not lines[-1].startswith("BASE="):
            self.stop()
            raise RuntimeError(f"cluster.sh start failed ({started.returncode}):\n{started.stdout}\n{started.stderr}")
        self.base_url = lines[-1].removeprefix("BASE=")
        self.media_dir = self.directory / "media"

    def stop(self) -> None:
        subprocess.run(["bash", str(REPO / "scripts" / "cluster.sh"), "stop", str(self.directory)], cwd=REPO,
                       capture_output=True, timeout=60)
        shutil.rmtree(self.directory, ignore_errors=True)


class ClusterDemoMixin:
    """Runs a DemoTestCase's tests against the cluster instead of one twistd.

    trial has no class fixtures, so the first test starts one topology for the whole run (about 20 s) and the
    run's end stops it, through the script, by the pids it recorded.
    """

    shared: ClusterDemo | None = None

    @classmethod
    def cluster(cls) -> ClusterDemo:
        missing = [name for name, found in (("redis-server", redis_server_binary()), ("haproxy", find_tool("haproxy")),
                                            ("weed", weed_binary())) if found is None]
        if missing:
            raise SkipTest(f"needs {', '.join(missing)} (scripts/setup-venv.sh and .ci/run install them)")
        chromium_path()  # raises SkipTest (or fails in CI) without a browser
        if ClusterDemoMixin.shared is None:
            ClusterDemoMixin.shared = ClusterDemo()
            atexit.register(ClusterDemoMixin.shared.stop)
        return ClusterDemoMixin.shared

    def setUp(self) -> None:  # noqa: D102 — the cluster replaces the demo's twistd
        cluster = self.cluster()
        self.browser = _Browser.get()
        self.workdir = Path(tempfile.mkdtemp(prefix="twisted-uploads-cluster-demo-"))
        self.addCleanup(shutil.rmtree, self.workdir, True)  # type: ignore[attr-defined]
        self.files_dir = self.workdir / "files"
        self.files_dir.mkdir()
        self.media_dir = cluster.media_dir
        # Tests assert what their saves put in MEDIA_ROOT: each starts from an empty one, as with its own twistd.
        shutil.rmtree(self.media_dir, ignore_errors=True)
        self.media_dir.mkdir()
        self.base_url = cluster.base_url
        self.context = self.browser.browser.new_context(viewport={"width": 1000, "height": 800})
        self.context.set_default_timeout(WAIT_MS)
        self.context.add_init_script(RECORDER)
        self.addCleanup(self.context.close)  # type: ignore[attr-defined]
        self.console: list[str] = []


class ClusterProfileExampleTests(ClusterDemoMixin, examples.ProfileExampleTests):
    """Quick Start's ProfileView: the avatar saved by whichever worker gets the POST."""


class ClusterGalleryExampleTests(ClusterDemoMixin, examples.GalleryExampleTests):
    """The gallery: five photos, uploaded to whichever nodes, all saved."""


class ClusterDocumentsExampleTests(ClusterDemoMixin, examples.DocumentsExampleTests):
    """DocumentUploadView: good documents listed, a renamed file reported, across the cluster."""
