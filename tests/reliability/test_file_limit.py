"""A server with ``ulimit -n 64``: sessions that announce files and walk away never take it down.

Every anonymous page load may mint a new session that announces and leaves; with a paused entry holding no open
file and a bound on open files, the server answers each announce (accepted, or refused with a named code) and
afterwards still stores new uploads and resumes the abandoned ones.
"""

from __future__ import annotations

import secrets
from collections import Counter
from typing import Any

from twisted.internet.defer import DeferredList, inlineCallbacks

from twisted_uploads.client import FileUpload, UploadClient
from twisted_uploads.slots import SlotConfig

from .support import (NAMED_CODES, ProtocolClient, ServerTestCase, files_with_digest, record_figures,
                      sha256_bytes, sha256_file, token, within)

NOFILE = 64
BURST = 16
WAVES = 12
AT_ONCE = 8
FILES_PER_SESSION = 2
FILE_SIZE = 100_000
SLOTS = {"files": SlotConfig(max_entries=FILES_PER_SESSION, max_file_size=10**8, chunk_size=8192)}


class FileLimitTests(ServerTestCase):

    @inlineCallbacks
    def walk_away(self, server, answers: Counter, abandoned: list) -> None:
        """One page: authenticate a new session, announce files, send a chunk of each, drop the socket."""
        session = secrets.token_hex(8)
        client = yield ProtocolClient.connect(self.ws_url(server))
        self.addCleanup(client.abort)
        yield client.authenticate(token(session, **SLOTS))
        for number in range(FILES_PER_SESSION):
            data = secrets.token_bytes(FILE_SIZE)
            reply = yield client.announce(f"walk{number}.bin", FILE_SIZE)
            if reply["type"] == "accepted":
                client.send_chunk(reply["entry"], 0, data[:8192])
                answers["accepted"] += 1
                abandoned.append((session, reply["entry"], data))
            else:
                answers[reply["code"]] += 1
        # What the server said about the chunks (an error is fine if it is named) arrives before our close.
        client.send_json(type="cancel", entry=2**32 - 1)
        yield client.wait(lambda m: m.get("entry") == 2**32 - 1)
        answers.update(f"entry {m['code']}" for m in client.messages if m.get("type") == "error"
                       and m.get("entry") != 2**32 - 1)
        unnamed = [m for m in client.messages if "code" in m and m["code"] not in NAMED_CODES]
        self.assertEqual(unnamed, [])
        yield client.abort()

    @inlineCallbacks
    def upload_in_new_session(self, server) -> Any:
        source = self.make_file(FILE_SIZE * 3, f"new-{secrets.token_hex(4)}.bin")
        client = UploadClient(self.ws_url(server), token(**SLOTS))
        [result] = yield client.upload([FileUpload.from_path(source, "files")])
        return result, source

    @inlineCallbacks
    def test_sessions_that_announce_and_walk_away_never_exhaust_the_servers_file_descriptors(self):
        server = yield self.start_server(nofile=NOFILE)
        answers: Counter[str] = Counter()
        abandoned: list = []
        # A burst that asks for more open files than the limit leaves room for: refusals must be named.
        yield within(40, DeferredList([self.walk_away(server, answers, abandoned) for _ in range(BURST)],
                                      fireOnOneErrback=True, consumeErrors=True), "a burst of walk-aways")
        # Then many more pages, a few at a time, each well within the limit while it is open.
        for _ in range(WAVES):
            yield within(40, DeferredList([self.walk_away(server, answers, abandoned) for _ in range(AT_ONCE)],
                                          fireOnOneErrback=True, consumeErrors=True), "a wave of walk-aways")
        self.assertTrue(server.running)
        self.assertNoCrash(server)

        # Recovered: new pages upload as if nothing had happened, and an abandoned entry still resumes.
        outcomes = yield within(40, DeferredList([self.upload_in_new_session(server) for _ in range(AT_ONCE)],
                                                 fireOnOneErrback=True, consumeErrors=True), "new uploads")
        results = [outcome for _, outcome in outcomes]
        self.assertEqual([(r.status, r.code) for r, _ in results], [("complete", None)] * AT_ONCE,
                         f"walk-aways: {dict(answers)}")
        self.assertEqual([r.sha256 for r, _ in results], [sha256_file(source) for _, source in results])
        self.assertTrue(abandoned, f"no announce was accepted: {dict(answers)}")
        session, entry, data = abandoned[-1]
        resumer = yield ProtocolClient.connect(self.ws_url(server))
        self.addCleanup(resumer.abort)
        yield resumer.authenticate(token(session, **SLOTS))
        resumer.send_json(type="resume", entry=entry)
        accepted = yield resumer.wait("accepted")
        complete = yield resumer.stream(accepted, data)
        self.assertEqual(complete["sha256"], sha256_bytes(data))
        self.assertTrue(files_with_digest(self.upload_dir, complete["sha256"]))
        self.assertNoCrash(server)
        sessions = BURST + WAVES * AT_ONCE
        record_figures(self, faults={f"walk-away sessions at ulimit -n {NOFILE}": sessions},
                       inputs=sessions * FILES_PER_SESSION + AT_ONCE + 1, files=AT_ONCE + 1,
                       bytes_verified=AT_ONCE * FILE_SIZE * 3 + len(data), bytes_lost=0, answers=dict(answers))
