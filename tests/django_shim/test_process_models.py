"""Which process model the shim picks, and what each one binds: the mode switch, seen through the bridge.

* single-process (no ``UPLOADS_REDIS_URL``): the first call starts a standalone listener in this process; a process
  that finds the port taken gets :class:`UploadServerUnavailable` from every upload call (and from the page), with
  the fix in the message — never a silent second registry, never a ``BridgeTimeout``;
* scale-out (``UPLOADS_REDIS_URL`` set, a real redis-server): no listener, whatever ``UPLOADS_STANDALONE_LISTEN``
  says; the calls go to the cluster index.

trial runs the reactor in this process's main thread (crochet in ``no_setup`` mode, as under twistd), so these
tests also prove the shim never starts a second reactor where one runs.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
from importlib.util import find_spec
from pathlib import Path
from types import ModuleType
from unittest import mock

from django.test import RequestFactory, override_settings
from twisted.internet.defer import inlineCallbacks
from twisted.python import usage
from twisted.trial import unittest

from django_shim import bridge, page
from django_shim.twistd import make_django_service
from tests.gunicorn.support import RedisServer, free_port
from twisted_uploads.errors import UploadError
from twisted_uploads.tap import Options

from .support import in_thread

REPO = Path(__file__).resolve().parents[2]


def is_free(port: int) -> bool:
    """Whether nothing listens on ``port`` (we can bind it ourselves)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def page_ws_url() -> str:
    return page.websocket_url(RequestFactory().get("/", HTTP_HOST="127.0.0.1:8000"))


class ModeTestCase(unittest.TestCase):

    def setUp(self) -> None:
        self.assertIsNone(bridge.installed())
        self.addCleanup(bridge.uninstall)
        self.port = free_port()
        self.listen = f"tcp:{self.port}:interface=127.0.0.1"

    def stop_own_server(self) -> None:
        own = bridge.get_bridge()
        listener = bridge.standalone_port()
        bridge.uninstall()
        if listener is not None:
            listener.stopListening()
        if getattr(own, "server", None) is not None:
            own.server.shutdown()


class SingleProcessModeTests(ModeTestCase):

    @inlineCallbacks
    def test_the_first_call_starts_one_listener_in_this_process_and_the_page_points_at_it(self):
        with override_settings(UPLOADS_STANDALONE_LISTEN=self.listen):
            self.assertTrue(is_free(self.port))
            self.assertEqual((yield in_thread(lambda: bridge.get_bridge().list_entries("s"))), [])
            self.addCleanup(self.stop_own_server)
            self.assertFalse(is_free(self.port))
            self.assertEqual((yield in_thread(page_ws_url)), f"ws://127.0.0.1:{self.port}/uploads/ws")
            # Asked again, the same bridge: the listener is started once per process.
            first = yield in_thread(bridge.get_bridge)
            self.assertIs((yield in_thread(bridge.get_bridge)), first)

    @inlineCallbacks
    def test_a_process_that_cannot_bind_raises_a_named_error_at_each_upload_call(self):
        with socket.socket() as other_worker:
            other_worker.bind(("127.0.0.1", self.port))
            other_worker.listen(1)
            with override_settings(UPLOADS_STANDALONE_LISTEN=self.listen):
                unavailable = yield in_thread(bridge.get_bridge)
                for call in (lambda: unavailable.list_entries("s"), lambda: unavailable.claim_complete("s", "a"),
                             lambda: unavailable.consume("s", 1), page_ws_url):
                    error = yield self.assertFailure(in_thread(call), bridge.UploadServerUnavailable)
                    self.assertIn("UPLOADS_REDIS_URL", str(error))
                    self.assertIn(self.listen, str(error))
                    self.assertIn("another worker", str(error))
                self.assertIsNone(bridge.standalone_port())

    def test_a_wsgi_module_under_gunicorn_starts_nothing_at_import(self):
        # A pre-forking master imports the WSGI module (demo/wsgi.py calls start_standalone()): nothing may start
        # there, or the forked workers would have a reactor "running" with no thread.
        with override_settings(UPLOADS_STANDALONE_LISTEN=self.listen), \
                mock.patch.dict(sys.modules, {"gunicorn": sys.modules.get("gunicorn") or ModuleType("gunicorn")}):
            self.assertIsNone(bridge.start_standalone())
        self.assertTrue(is_free(self.port))
        self.assertIsNone(bridge.standalone_port())


class ScaleOutModeTests(ModeTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.redis = RedisServer()
        self.addCleanup(self.redis.stop)
        self.shared = tempfile.mkdtemp(prefix="tu-shared-")

    @inlineCallbacks
    def test_no_listener_is_started_whatever_the_standalone_setting_says(self):
        with override_settings(UPLOADS_REDIS_URL=self.redis.url, UPLOADS_STORAGE=self.shared,
                               UPLOADS_STANDALONE_LISTEN=self.listen):
            self.assertIsNone(bridge.start_standalone())
            self.assertEqual((yield in_thread(page_ws_url)), "/uploads/ws")
            if find_spec("twisted_uploads.clusterindex") is not None:
                found = yield in_thread(lambda: bridge.get_bridge().list_entries("s"))
                self.assertEqual(found, [])
                own = bridge.get_bridge()
                self.assertIsInstance(own, bridge.IndexBridge)
                self.addCleanup(in_thread, own.close)
            else:  # the cluster index is not installed: the call says exactly that
                error = yield self.assertFailure(in_thread(bridge.get_bridge), bridge.BridgeNotConfigured)
                self.assertIn("cluster", str(error))
            self.assertTrue(is_free(self.port))
            self.assertIsNone(bridge.standalone_port())

    @inlineCallbacks
    def test_an_unreachable_redis_fails_the_call_and_is_retried_by_the_next(self):
        if find_spec("twisted_uploads.clusterindex") is None:
            raise unittest.SkipTest("twisted_uploads.clusterindex (helper 'redis') is not merged yet")
        with override_settings(UPLOADS_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", UPLOADS_STORAGE=self.shared,
                               UPLOADS_REDIS_TIMEOUT=1.0):
            error = yield self.assertFailure(in_thread(bridge.get_bridge), UploadError)
            self.assertEqual(error.code.value, "registry_unavailable")
        with override_settings(UPLOADS_REDIS_URL=self.redis.url, UPLOADS_STORAGE=self.shared):
            self.assertEqual((yield in_thread(lambda: bridge.get_bridge().list_entries("s"))), [])
            self.addCleanup(in_thread, bridge.get_bridge().close)


class NodeModeTests(unittest.TestCase):
    """``twistd uploads --settings ... --node``: the upload endpoint only, and only for a cluster."""

    def options(self, *extra: str) -> Options:
        options = Options()
        options.parseOptions(["--settings", "tests.django_shim.settings", "--node", "--listen",
                              "tcp:0:interface=127.0.0.1", *extra])
        return options

    def test_node_is_parsed_with_settings_and_refused_without(self):
        self.assertTrue(self.options()["node"])
        with self.assertRaises(usage.UsageError):
            Options().parseOptions(["--node", "--secret", "x" * 32])

    def test_a_node_without_redis_is_refused_with_the_setting_to_add(self):
        with self.assertRaises(usage.UsageError) as raised:
            make_django_service(self.options())
        self.assertIn("UPLOADS_REDIS_URL", str(raised.exception))
        self.assertIn("tests.django_shim.settings", str(raised.exception))

    def test_twistd_refuses_a_node_without_redis_in_one_line_without_a_traceback(self):
        result = subprocess.run(
            [str(Path(sys.executable).parent / "twistd"), "-n", "--pidfile=", "uploads", "--settings",
             "tests.django_shim.settings", "--node", "--listen", f"tcp:{free_port()}:interface=127.0.0.1"],
            cwd=str(REPO), capture_output=True, text=True, timeout=120,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
        self.assertEqual(result.returncode, 1, result.stderr[-2000:])
        self.assertIn("--node serves uploads for a cluster", result.stderr)
        self.assertIn("UPLOADS_REDIS_URL", result.stderr)
        self.assertNotIn("Traceback", result.stderr + result.stdout)

    def test_a_node_serves_only_the_websocket(self):
        if find_spec("twisted_uploads.stores") is None or find_spec("twisted_uploads.redisstate") is None:
            raise unittest.SkipTest("twisted_uploads.stores / redisstate (helpers 's3', 'redis') are not merged yet")
        shared = tempfile.mkdtemp(prefix="tu-shared-")
        with override_settings(UPLOADS_REDIS_URL="redis://127.0.0.1:1/0", UPLOADS_STORAGE=shared):
            service = make_django_service(self.options())
        from twisted.application.strports import service as _  # noqa: F401 - the listeners are strports services

        sites = [child.endpoint and child.factory for child in service if hasattr(child, "factory")]
        [site] = sites
        self.assertEqual(list(site.resource.children), [b"uploads"])
        self.assertEqual(list(site.resource.children[b"uploads"].children), [b"ws"])
        self.assertEqual(type(service.upload_server.verifier).__name__, "DjangoTokenVerifier")
