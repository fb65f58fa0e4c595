"""Django under real uvicorn (ASGI) and runserver: the same process-model rules as under gunicorn.

Single-process mode: the one worker starts the upload listener on first use, in itself, and answers. Scale-out
(a real redis-server): no process of uvicorn's — one worker or several — binds anything but uvicorn's socket.
"""

from __future__ import annotations

import html
import json
import re

from twisted.trial import unittest

from tests.django_shim.test_twistd import HttpBrowser

from .support import RedisServer, children, free_port, get_json, listening_ports, runserver, uvicorn


class UvicornTests(unittest.TestCase):

    timeout = 240

    def test_single_process_mode_starts_one_listener_in_the_worker_and_answers(self):
        ws_port = free_port()
        server = uvicorn(1, ws_port=ws_port)
        self.addCleanup(server.stop)
        server.wait_listening()
        answer = get_json(server.base + "/probe/")
        self.assertTrue(answer["ok"], answer)
        self.assertEqual(answer["reactor_pid"], answer["pid"])
        self.assertEqual(listening_ports(answer["pid"]), {server.port, ws_port})
        status, body = HttpBrowser(server.base).get("/profile/")
        self.assertEqual(status, 200, body[:500])
        config = json.loads(html.unescape(re.search(r'data-dj-uploads="([^"]+)"', body.decode()).group(1)))
        self.assertEqual(config["url"], f"ws://127.0.0.1:{ws_port}/uploads/ws")

    def test_scale_out_with_two_workers_binds_nothing_but_uvicorns_socket(self):
        redis = RedisServer()
        self.addCleanup(redis.stop)
        server = uvicorn(2, redis_url=redis.url)
        self.addCleanup(server.stop)
        server.wait_listening()
        workers = server.wait_workers(2)
        answers = [get_json(server.base + "/probe/") for _ in range(6)]
        for answer in answers:
            self.assertEqual(answer["reactor_pid"], answer["pid"])
            if answer["ok"]:
                self.assertEqual(answer["entries"], 0)
            else:  # until the cluster index is installed, the call says exactly that
                self.assertEqual(answer["error"], "BridgeNotConfigured", answer)
            self.assertIn(answer["pid"], children(server.pid) | {server.pid})
        for pid in [server.pid, *workers]:
            self.assertLessEqual(listening_ports(pid), {server.port}, f"process {pid} listens on more")
        status, body = HttpBrowser(server.base).get("/profile/")
        self.assertEqual(status, 200, body[:500])
        config = json.loads(html.unescape(re.search(r'data-dj-uploads="([^"]+)"', body.decode()).group(1)))
        self.assertEqual(config["url"], "/uploads/ws")


class RunserverScaleOutTests(unittest.TestCase):

    timeout = 240

    def test_runserver_in_scale_out_mode_starts_no_listener_even_with_one_configured(self):
        redis = RedisServer()
        self.addCleanup(redis.stop)
        ws_port = free_port()
        server = runserver(redis_url=redis.url, ws_port=ws_port, keep_listen=True)
        self.addCleanup(server.stop)
        server.wait_listening()  # written by the autoreloader's serving child, once it listens
        [child] = children(server.pid)
        answer = get_json(server.base + "/probe/")
        self.assertEqual(answer["pid"], child)
        status, body = HttpBrowser(server.base).get("/profile/")
        self.assertEqual(status, 200, body[:500])
        config = json.loads(html.unescape(re.search(r'data-dj-uploads="([^"]+)"', body.decode()).group(1)))
        self.assertEqual(config["url"], "/uploads/ws")
        self.assertEqual(listening_ports(child), {server.port})
        self.assertEqual(listening_ports(server.pid), set())
        self.assertIn("twisted_uploads.W003", server.output())  # runserver runs the checks: the setting is ignored
