"""Two servers on one upload directory: starting the second deletes nothing of the first's."""

from __future__ import annotations

import secrets

from twisted.internet.defer import inlineCallbacks

from twisted_uploads.slots import SlotConfig

from .support import ProtocolClient, ServerTestCase, files_with_digest, record_figures, sha256_bytes, token

SLOTS = {"files": SlotConfig(max_file_size=10**8, max_entries=4)}


class SharedDirectoryTests(ServerTestCase):

    @inlineCallbacks
    def upload_to_first_server(self):
        """On the first server: one complete entry, one paused half-way (its socket dropped)."""
        self.done_data = secrets.token_bytes(700_000)
        self.paused_data = secrets.token_bytes(2 * 1024 * 1024 + 7)
        self.done_session, self.paused_session = secrets.token_hex(8), secrets.token_hex(8)
        self.first = yield self.start_server("first", options=["--window", "8"])
        client = yield ProtocolClient.connect(self.ws_url(self.first))
        self.addCleanup(client.abort)
        yield client.authenticate(token(self.done_session, **SLOTS))
        accepted = yield client.announce("done.bin", len(self.done_data))
        self.done_entry = accepted["entry"]
        complete = yield client.stream(accepted, self.done_data)
        self.assertEqual(complete["sha256"], sha256_bytes(self.done_data))
        yield client.abort()

        paused = yield ProtocolClient.connect(self.ws_url(self.first))
        yield paused.authenticate(token(self.paused_session, **SLOTS))
        accepted = yield paused.announce("half.bin", len(self.paused_data))
        self.paused_entry = accepted["entry"]
        self.paused_ack = yield paused.stream(accepted, self.paused_data, until=1024 * 1024)
        yield paused.abort()
        # The server has handled the drop (and recorded the pause) once a new connection sees the entry paused;
        # the drop and that connection may reach it in either order, so ask again until it does.
        for _ in range(50):
            witness = yield ProtocolClient.connect(self.ws_url(self.first))
            welcome = yield witness.authenticate(token(self.paused_session, **SLOTS))
            yield witness.abort()
            statuses = [e["status"] for e in welcome["entries"] if e["entry"] == self.paused_entry]
            if statuses == ["paused"]:
                break
        self.assertEqual(statuses, ["paused"])
        self.before = sorted(p for p in self.upload_dir.rglob("*") if p.is_file())

    @inlineCallbacks
    def test_starting_a_second_server_on_the_directory_removes_none_of_the_first_servers_files(self):
        yield self.upload_to_first_server()
        second = yield self.start_server("second")
        after = {p for p in self.upload_dir.rglob("*") if p.is_file()}
        self.assertEqual([p for p in self.before if p not in after], [])
        self.assertTrue(files_with_digest(self.upload_dir, sha256_bytes(self.done_data)))
        self.assertNoCrash(second)
        record_figures(self, faults={"second server on the directory": 1}, inputs=2, files=2,
                       bytes_verified=len(self.done_data), bytes_lost=0, files_kept=len(self.before))

    @inlineCallbacks
    def test_the_first_servers_complete_entry_is_still_listed_after_a_second_server_starts(self):
        yield self.upload_to_first_server()
        second = yield self.start_server("second")
        client = yield ProtocolClient.connect(self.ws_url(self.first))
        self.addCleanup(client.abort)
        welcome = yield client.authenticate(token(self.done_session, **SLOTS))
        self.assertEqual([e["status"] for e in welcome["entries"] if e["entry"] == self.done_entry], ["complete"])
        self.assertTrue(files_with_digest(self.upload_dir, sha256_bytes(self.done_data)),
                        "the complete entry's bytes are gone")
        self.assertNoCrash(second)
        record_figures(self, faults={"second server on the directory": 1}, inputs=1, files=1,
                       bytes_verified=len(self.done_data), bytes_lost=0)

    @inlineCallbacks
    def test_the_first_servers_paused_entry_resumes_and_completes_after_a_second_server_starts(self):
        yield self.upload_to_first_server()
        second = yield self.start_server("second")
        client = yield ProtocolClient.connect(self.ws_url(self.first))
        self.addCleanup(client.abort)
        yield client.authenticate(token(self.paused_session, **SLOTS))
        client.send_json(type="resume", entry=self.paused_entry)
        accepted = yield client.wait("accepted")
        self.assertGreaterEqual(accepted["offset"], self.paused_ack["offset"])
        complete = yield client.stream(accepted, self.paused_data)
        self.assertEqual(complete["sha256"], sha256_bytes(self.paused_data))
        self.assertTrue(files_with_digest(self.upload_dir, complete["sha256"]),
                        "the resumed entry's stored file does not hold the source's bytes")
        self.assertNoCrash(self.first)
        self.assertNoCrash(second)
        record_figures(self, faults={"second server on the directory": 1, "dropped socket": 1}, inputs=1, files=1,
                       bytes_verified=len(self.paused_data), bytes_lost=0)
