"""``kill -9`` of a real ``twistd uploads`` process, a restart on the same directory, and nothing lost."""

from __future__ import annotations

import re
import secrets
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks

from twisted_uploads.client import FileUpload, UploadClient
from twisted_uploads.slots import SlotConfig

from ..support import png_bytes
from .django_site import DjangoServerTestCase
from .support import (ProtocolClient, ServerTestCase, files_with_digest, record_figures, sha256_bytes,
                      sha256_file, token, within)

BIG = SlotConfig(max_file_size=10**8, max_entries=4)


class KillNineStandaloneTests(ServerTestCase):

    @inlineCallbacks
    def upload_through_kills(self, size: int, kill_points: list[int]) -> Any:
        """Upload ``size`` bytes with the Python client; each time the server has acknowledged the next of
        ``kill_points`` bytes, ``kill -9`` it and start a new one on the same port and directory."""
        source = self.make_file(size)
        servers = [(yield self.start_server("server0", options=["--window", "16"]))]
        port = servers[0].port
        pending = list(kill_points)
        acked_at_kill: list[int] = []
        restarts: list[Deferred] = []

        @inlineCallbacks
        def kill_and_restart():
            yield servers[-1].kill()
            servers.append((yield self.start_server(f"server{len(servers)}", port=port,
                                                    options=["--window", "16"])))

        def on_progress(upload: FileUpload) -> None:
            restarting = restarts and not restarts[-1].called
            if pending and upload.status == "uploading" and upload.acked >= pending[0] and not restarting:
                pending.pop(0)
                acked_at_kill.append(upload.acked)
                restarts.append(kill_and_restart())

        client = UploadClient(self.ws_url(servers[0]), token(files=BIG), on_progress=on_progress)
        [result] = yield within(50, client.upload([FileUpload.from_path(source, "files")]), "the upload")
        for restart in restarts:
            yield restart
        self.assertEqual(len(acked_at_kill), len(kill_points), "the server was not killed at every point")
        self.assertEqual((result.status, result.code), ("complete", None), result.message)
        self.assertEqual(result.sha256, sha256_file(source))
        self.assertGreaterEqual(result.resumes, len(kill_points))
        self.assertTrue(files_with_digest(self.upload_dir, result.sha256), "no stored file has the source's bytes")
        for server in servers:
            self.assertNoCrash(server)
        return source, acked_at_kill

    @inlineCallbacks
    def test_the_python_client_resumes_after_kill_9_and_a_restart_and_the_stored_file_matches(self):
        source, acked = yield self.upload_through_kills(6 * 1024 * 1024 + 11, [2 * 1024 * 1024])
        record_figures(self, faults={"kill -9": 1, "restart": 1}, inputs=1, files=1,
                       bytes_verified=source.stat().st_size, bytes_lost=0, acked_before_kill=acked)

    @inlineCallbacks
    def test_one_upload_survives_three_kill_9s_in_a_row(self):
        mib = 1024 * 1024
        source, acked = yield self.upload_through_kills(6 * mib + 11, [int(1.5 * mib), 3 * mib, int(4.5 * mib)])
        record_figures(self, faults={"kill -9": 3, "restart": 3}, inputs=1, files=1,
                       bytes_verified=source.stat().st_size, bytes_lost=0, acked_before_kill=acked)

    @inlineCallbacks
    def test_acknowledged_bytes_survive_kill_9_and_the_entry_completes_on_resume(self):
        data = secrets.token_bytes(3 * 1024 * 1024 + 5)
        session = secrets.token_hex(8)
        first = yield self.start_server("first", options=["--window", "16"])
        client = yield ProtocolClient.connect(self.ws_url(first))
        self.addCleanup(client.abort)
        yield client.authenticate(token(session, files=BIG))
        accepted = yield client.announce("half.bin", len(data))
        ack = yield client.stream(accepted, data, until=1024 * 1024)
        yield first.kill()

        second = yield self.start_server("second", options=["--window", "16"])
        again = yield ProtocolClient.connect(self.ws_url(second))
        self.addCleanup(again.abort)
        welcome = yield again.authenticate(token(session, files=BIG))
        [listed] = [e for e in welcome["entries"] if e["entry"] == accepted["entry"]]
        self.assertEqual(listed["status"], "paused")
        self.assertGreaterEqual(listed["offset"], ack["offset"], "acknowledged bytes were lost")
        self.assertLessEqual(listed["offset"], len(data))
        again.send_json(type="resume", entry=accepted["entry"])
        resumed = yield again.wait("accepted")
        self.assertEqual(resumed["offset"], listed["offset"])
        complete = yield again.stream(resumed, data)
        self.assertEqual(complete["sha256"], sha256_bytes(data))
        self.assertTrue(files_with_digest(self.upload_dir, complete["sha256"]))
        self.assertNoCrash(second)
        record_figures(self, faults={"kill -9": 1, "restart": 1}, inputs=1, files=1, bytes_verified=len(data),
                       bytes_lost=0, acked_before_kill=ack["offset"], offset_after_restart=listed["offset"])

    @inlineCallbacks
    def test_a_completed_entry_survives_kill_9_listed_in_welcome_with_its_sha256(self):
        data = secrets.token_bytes(1024 * 1024 + 3)
        session = secrets.token_hex(8)
        first = yield self.start_server("first")
        client = yield ProtocolClient.connect(self.ws_url(first))
        self.addCleanup(client.abort)
        yield client.authenticate(token(session, files=BIG))
        accepted = yield client.announce("done.bin", len(data))
        complete = yield client.stream(accepted, data)
        yield first.kill()

        second = yield self.start_server("second")
        again = yield ProtocolClient.connect(self.ws_url(second))
        self.addCleanup(again.abort)
        welcome = yield again.authenticate(token(session, files=BIG))
        listed = [e for e in welcome["entries"] if e["entry"] == accepted["entry"]]
        self.assertEqual([(e["status"], e["size"], e.get("sha256")) for e in listed],
                         [("complete", len(data), complete["sha256"])])
        self.assertEqual(complete["sha256"], sha256_bytes(data))
        self.assertTrue(files_with_digest(self.upload_dir, complete["sha256"]), "the stored bytes are gone")
        self.assertNoCrash(second)
        record_figures(self, faults={"kill -9": 1, "restart": 1}, inputs=1, files=1, bytes_verified=len(data),
                       bytes_lost=0)

    @inlineCallbacks
    def test_resuming_a_recovered_complete_entry_answers_its_sha256(self):
        data = secrets.token_bytes(200_000)
        session = secrets.token_hex(8)
        first = yield self.start_server("first")
        client = yield ProtocolClient.connect(self.ws_url(first))
        self.addCleanup(client.abort)
        yield client.authenticate(token(session, files=BIG))
        accepted = yield client.announce("done.bin", len(data))
        yield client.stream(accepted, data)
        yield first.kill()

        second = yield self.start_server("second")
        again = yield ProtocolClient.connect(self.ws_url(second))
        self.addCleanup(again.abort)
        yield again.authenticate(token(session, files=BIG))
        again.send_json(type="resume", entry=accepted["entry"])
        answer = yield again.wait(lambda m: m.get("entry") == accepted["entry"])
        self.assertEqual((answer["type"], answer.get("sha256")), ("complete", sha256_bytes(data)))
        self.assertNoCrash(second)
        record_figures(self, faults={"kill -9": 1, "restart": 1}, inputs=1, files=1, bytes_verified=len(data),
                       bytes_lost=0)


class KillNineDjangoTests(DjangoServerTestCase):

    @inlineCallbacks
    def test_a_completed_upload_survives_kill_9_and_the_view_consumes_it_after_the_restart(self):
        image = png_bytes(pad_to=300_000)
        first = yield self.start_django("first")
        browser = self.browser_for(first)
        page = yield self.open_page(browser, "/profile/")
        client = yield self.socket_for(browser, first, page)
        accepted = yield client.announce("face.png", len(image), slot="avatar", mime="image/png")
        self.assertEqual(accepted["type"], "accepted", accepted)
        complete = yield client.stream(accepted, image)
        self.assertEqual(complete["sha256"], sha256_bytes(image))
        yield first.kill()

        second = yield self.start_django("second", port=first.port)
        status, body = yield self.send_event(browser, "/profile/", page, "save_avatar")
        self.assertEqual(status, 200, body[:500])
        match = re.search(rb'src="/media/avatars/([^"]+)"', body)
        self.assertIsNotNone(match, "the view consumed nothing: " + body.decode(errors="replace")[:500])
        saved = self.workdir / "media" / "avatars" / match.group(1).decode()
        self.assertEqual(sha256_file(saved), sha256_bytes(image))
        self.assertNoCrash(second)
        record_figures(self, faults={"kill -9": 1, "restart": 1}, inputs=1, files=1, bytes_verified=len(image),
                       bytes_lost=0)
