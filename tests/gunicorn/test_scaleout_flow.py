"""The seed's avatar flow in scale-out: gunicorn -w 2 + one upload node (``twistd --node``) + a real Redis.

The upload goes to the node; the save is made by whichever worker the request lands on — here, deliberately, the
worker that did not render the page — and lands. Skipped until the cluster modules (helpers "redis", "s3") are in.
"""

from __future__ import annotations

import html
import json
import re
import sys
from importlib.util import find_spec
from pathlib import Path

from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.trial import unittest

from tests.django_shim.files import png_bytes
from tests.django_shim.support import CookieUploadClient, in_thread
from tests.django_shim.test_twistd import HttpBrowser
from twisted_uploads.client import FileUpload

from .support import Holder, RedisServer, ServerProcess, free_port, gunicorn

CLUSTER = all(find_spec(name) is not None for name in (
    "twisted_uploads.clusterindex", "twisted_uploads.redisstate", "twisted_uploads.stores", "twisted_uploads.cluster"))


class ScaleOutFlowTests(unittest.TestCase):

    timeout = 240

    @inlineCallbacks
    def test_an_upload_to_the_node_is_saved_by_the_other_worker(self):
        if not CLUSTER:
            raise unittest.SkipTest("the cluster modules (helpers 'redis', 's3', lead) are not merged yet")
        redis = RedisServer()
        self.addCleanup(redis.stop)
        django = gunicorn(2, redis_url=redis.url)
        self.addCleanup(django.stop)
        node_port = free_port()
        node = ServerProcess(
            [str(Path(sys.executable).parent / "twistd"), "-n", "--pidfile=", "uploads", "--settings",
             "tests.gunicorn.site", "--node", "--listen", f"tcp:{node_port}:interface=127.0.0.1"],
            port=node_port, redis_url=redis.url, scratch=django.scratch, page_origin=django.base)
        # The node shares the scratch directory (UPLOADS_STORAGE = <scratch>/shared) and allows the page's origin.
        self.addCleanup(node.stop)
        yield in_thread(django.wait_listening)
        yield in_thread(django.wait_workers, 2)
        yield in_thread(node.wait_listening)

        browser = HttpBrowser(django.base)
        # Both sync workers held; freeing one at a time decides which worker serves the next request.
        page_worker = yield in_thread(Holder, django.base)
        save_worker = yield in_thread(Holder, django.base)
        yield in_thread(page_worker.release)
        status, body = yield in_thread(browser.get, "/profile/")  # served by page_worker's process
        page_worker = yield in_thread(Holder, django.base)  # that process again: the other one is still held
        self.assertEqual(status, 200, body[:500])
        page = body.decode()
        config = json.loads(html.unescape(re.search(r'data-dj-uploads="([^"]+)"', page).group(1)))
        self.assertEqual(config["url"], "/uploads/ws")
        view_id = re.search(r'data-dj-view="([^"]+)"', page).group(1)
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)

        source = Path(self.mktemp())
        source.write_bytes(png_bytes(pad_to=9000))
        client = CookieUploadClient(f"ws://127.0.0.1:{node_port}/uploads/ws", config["token"], origin=django.base,
                                    cookies=browser.cookies())
        [result] = yield client.upload([FileUpload.from_path(source, "avatar", name="node.png")])
        self.assertTrue(result.ok, result)

        # The page's worker stays held; the save goes to the one that never saw the page (nor the upload).
        yield in_thread(save_worker.release)
        status, body = yield in_thread(browser.post, "/profile/", {
            "dj_view": view_id, "dj_event": "save_avatar", "csrfmiddlewaretoken": csrf},
            {"X-DJ-Request": "1", "X-CSRFToken": csrf})
        yield in_thread(page_worker.release)
        self.assertNotEqual(page_worker.pid, save_worker.pid)
        self.assertEqual(status, 200, body[:800])
        self.assertIn(b'src="/media/avatars/node', body)
        [saved] = list((django.scratch / "media" / "avatars").glob("node*.png"))
        self.assertEqual(saved.read_bytes(), source.read_bytes())

    @inlineCallbacks
    def test_concurrent_saves_of_one_page_on_four_workers_claim_the_avatar_once(self):
        if not CLUSTER:
            raise unittest.SkipTest("the cluster modules are not merged yet")
        redis = RedisServer()
        self.addCleanup(redis.stop)
        django = gunicorn(4, redis_url=redis.url)
        self.addCleanup(django.stop)
        node_port = free_port()
        node = ServerProcess(
            [str(Path(sys.executable).parent / "twistd"), "-n", "--pidfile=", "uploads", "--settings",
             "tests.gunicorn.site", "--node", "--listen", f"tcp:{node_port}:interface=127.0.0.1"],
            port=node_port, redis_url=redis.url, scratch=django.scratch, page_origin=django.base)
        self.addCleanup(node.stop)
        yield in_thread(django.wait_listening)
        yield in_thread(django.wait_workers, 4)
        yield in_thread(node.wait_listening)

        browser = HttpBrowser(django.base)
        status, body = yield in_thread(browser.get, "/profile/")
        self.assertEqual(status, 200, body[:500])
        page = body.decode()
        config = json.loads(html.unescape(re.search(r'data-dj-uploads="([^"]+)"', page).group(1)))
        view_id = re.search(r'data-dj-view="([^"]+)"', page).group(1)
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
        source = Path(self.mktemp())
        source.write_bytes(png_bytes(pad_to=9000))
        client = CookieUploadClient(f"ws://127.0.0.1:{node_port}/uploads/ws", config["token"], origin=django.base,
                                    cookies=browser.cookies())
        [result] = yield client.upload([FileUpload.from_path(source, "avatar", name="once.png")])
        self.assertTrue(result.ok, result)

        def save():
            return browser.post("/profile/", {"dj_view": view_id, "dj_event": "save_avatar",
                                              "csrfmiddlewaretoken": csrf},
                                {"X-DJ-Request": "1", "X-CSRFToken": csrf})

        answers = yield gatherResults([in_thread(save) for _ in range(6)])
        self.assertEqual([status for status, _ in answers], [200] * 6)
        saved = list((django.scratch / "media" / "avatars").glob("once*.png"))
        self.assertEqual(len(saved), 1, saved)  # one claim won; the other five found nothing to consume
        self.assertEqual(saved[0].read_bytes(), source.read_bytes())
