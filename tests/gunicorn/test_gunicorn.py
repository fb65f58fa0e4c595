"""Django under real gunicorn: what each worker binds, and what an upload call does in it.

Single-process mode (no ``UPLOADS_REDIS_URL``) with ``-w 2``: both workers boot; the first to need the upload
server binds ``UPLOADS_STANDALONE_LISTEN``, the other cannot and says so (``UploadServerUnavailable``, logged and
raised at each upload call) instead of dying at boot or losing saves silently. With ``--preload`` the reactor is
started in the worker that uses it, never in the master, so calls are answered (they all timed out before).
Scale-out mode (a real redis-server): no worker binds anything but gunicorn's own socket.

Each request is steered to a chosen worker without timing: a ``/hold/`` request keeps one sync worker busy until
the test releases it, so the next request is necessarily served by the other.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from tests.django_shim.files import png_bytes
from tests.django_shim.support import CookieUploadClient, in_thread
from tests.django_shim.test_twistd import HttpBrowser
from twisted_uploads.client import FileUpload

from .support import Holder, RedisServer, ServerProcess, children, free_port, get_json, gunicorn, \
    listening_ports


def probe_both(server: ServerProcess) -> tuple[dict, dict, set[int]]:
    """Ask the upload server from one worker, then from the other; return both answers and the worker pids.

    Two holders occupy both sync workers; releasing one leaves exactly one worker free for the next request.
    """
    server.wait_listening()
    workers = server.wait_workers(2)
    first_holder = Holder(server.base)
    second_holder = Holder(server.base)  # necessarily the other worker: the first one is busy
    first_holder.release()
    first = get_json(server.base + "/probe/")  # the only free worker: the first holder's
    again = Holder(server.base)  # that worker again, the other one still being held
    second_holder.release()
    second = get_json(server.base + "/probe/")  # the second holder's worker
    again.release()
    assert first["pid"] == first_holder.pid and second["pid"] == second_holder.pid, (first, second)
    return first, second, workers


class SingleProcessModeTests(unittest.TestCase):
    """``gunicorn -w 2`` without Redis: one worker serves uploads, the other refuses loudly."""

    timeout = 240

    def start(self, **kwargs) -> ServerProcess:
        self.ws_port = free_port()
        server = gunicorn(2, ws_port=self.ws_port, **kwargs)
        self.addCleanup(server.stop)
        return server

    def assert_one_listener_and_a_named_refusal(self, server: ServerProcess) -> None:
        first, second, workers = probe_both(server)
        self.assertNotEqual(first["pid"], second["pid"])
        self.assertEqual({first["pid"], second["pid"]}, workers)
        # The worker that asked first owns the listener and the registry; its reactor runs in itself.
        self.assertTrue(first["ok"], first)
        self.assertEqual(first["reactor_pid"], first["pid"])
        # The other booted and keeps serving, but every upload call names the problem and the fix.
        self.assertFalse(second["ok"], second)
        self.assertEqual(second["error"], "UploadServerUnavailable")
        self.assertIn("UPLOADS_REDIS_URL", second["message"])
        self.assertIn(f"tcp:{self.ws_port}", second["message"])
        # Nothing binds twice: the WebSocket port is held by exactly one process, gunicorn's by all of them.
        holders = {pid for pid in [server.pid, *workers] if self.ws_port in listening_ports(pid)}
        self.assertEqual(holders, {first["pid"]})
        self.assertEqual(listening_ports(second["pid"]), {server.port})
        self.assertEqual(listening_ports(server.pid), {server.port})
        # Both workers are still the ones that booted (none died and was replaced).
        self.assertEqual(children(server.pid), workers)
        output = server.output()
        self.assertIn("has no upload server", output)  # logged by the refusing worker, not only raised
        self.assertIn("twisted_uploads.W004", output)  # and the startup warning says why

    def test_two_workers_boot_one_listens_and_the_other_refuses_by_name(self):
        self.assert_one_listener_and_a_named_refusal(self.start())

    def test_with_preload_the_reactor_starts_in_the_worker_and_calls_are_answered(self):
        self.assert_one_listener_and_a_named_refusal(self.start(preload=True))


class PreloadSaveTests(unittest.TestCase):
    """``gunicorn -w 1 --preload`` and the seed's avatar flow: the save lands (it ended in BridgeTimeout before)."""

    timeout = 240

    @inlineCallbacks
    def test_an_upload_and_its_save_work_with_preload(self):
        ws_port = free_port()
        server = gunicorn(1, preload=True, ws_port=ws_port)
        self.addCleanup(server.stop)
        yield in_thread(server.wait_listening)
        browser = HttpBrowser(server.base)
        status, body = yield in_thread(browser.get, "/profile/")
        self.assertEqual(status, 200, body[:500])
        page = body.decode()
        config = json.loads(html.unescape(re.search(r'data-dj-uploads="([^"]+)"', page).group(1)))
        self.assertEqual(config["url"], f"ws://127.0.0.1:{ws_port}/uploads/ws")
        view_id = re.search(r'data-dj-view="([^"]+)"', page).group(1)
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        source = Path(self.mktemp())
        source.write_bytes(png_bytes(pad_to=5000))
        client = CookieUploadClient(config["url"], config["token"], origin=server.base, cookies=browser.cookies())
        [result] = yield client.upload([FileUpload.from_path(source, "avatar", name="pre.png")])
        self.assertTrue(result.ok, result)
        status, body = yield in_thread(browser.post, "/profile/", {
            "dj_view": view_id, "dj_event": "save_avatar", "csrfmiddlewaretoken": csrf},
            {"X-DJ-Request": "1", "X-CSRFToken": csrf})
        self.assertEqual(status, 200, body[:500])
        self.assertIn(b'src="/media/avatars/pre', body)
        self.assertTrue(list((server.scratch / "media" / "avatars").glob("pre*.png")))


class ScaleOutModeTests(unittest.TestCase):
    """``UPLOADS_REDIS_URL`` set (a real redis-server): Django binds no port in any worker."""

    timeout = 240

    def setUp(self) -> None:
        self.redis = RedisServer()
        self.addCleanup(self.redis.stop)

    def assert_no_listener(self, server: ServerProcess) -> None:
        first, second, workers = probe_both(server)
        self.assertEqual({first["pid"], second["pid"]}, workers)
        for answer in (first, second):
            # crochet was set up lazily in the worker that called, not in the master before the fork.
            self.assertEqual(answer["reactor_pid"], answer["pid"])
            if answer["ok"]:
                self.assertEqual(answer["entries"], 0)
            else:  # until the cluster index is installed, the call says exactly that
                self.assertEqual(answer["error"], "BridgeNotConfigured", answer)
                self.assertIn("clusterindex", answer["message"])
        for pid in [server.pid, *workers]:
            self.assertEqual(listening_ports(pid), {server.port}, f"process {pid} listens on more")
        # The page points the browser at the configured path (the proxy routes it to the upload nodes).
        status, body = HttpBrowser(server.base).get("/profile/")
        self.assertEqual(status, 200, body[:500])
        config = json.loads(html.unescape(re.search(r'data-dj-uploads="([^"]+)"', body.decode()).group(1)))
        self.assertEqual(config["url"], "/uploads/ws")
        self.assertNotIn("twisted_uploads.W004", server.output())

    def test_two_workers_listen_on_nothing_but_gunicorns_socket(self):
        server = gunicorn(2, redis_url=self.redis.url)
        self.addCleanup(server.stop)
        self.assert_no_listener(server)

    def test_with_preload_too(self):
        server = gunicorn(2, preload=True, redis_url=self.redis.url)
        self.addCleanup(server.stop)
        self.assert_no_listener(server)
