"""The upload engine end to end: the Python client and a raw client against a real server on loopback."""

from __future__ import annotations

import hashlib

from twisted.internet import reactor
from twisted.internet.defer import DeferredList, inlineCallbacks
from twisted.web.client import Agent
from twisted.web.http_headers import Headers

from twisted_uploads.client import FileUpload, UploadClient
from twisted_uploads.codec import PRE_AUTH_FRAME_LIMIT
from twisted_uploads.connection import ConnectionLimits
from twisted_uploads.slots import SlotConfig

from ..support import png_bytes
from .support import ServerTestCase


def sha256_file(path) -> str:
    with open(path, "rb") as source:
        return hashlib.file_digest(source, "sha256").hexdigest()


class ClientUploadTests(ServerTestCase):
    """The Python client against the server."""

    @inlineCallbacks
    def test_one_file_arrives_with_matching_sha256(self):
        source = self.make_file(3 * 1024 * 1024 + 17)
        client = UploadClient(self.url, self.token(files=SlotConfig(max_file_size=10**8)))
        [result] = yield client.upload([FileUpload.from_path(source, "files")])
        self.assertEqual(result.status, "complete")
        self.assertEqual(result.sha256, sha256_file(source))
        self.assertTrue(result.ok)
        [stored] = self.stored_files(records=False)
        self.assertEqual(sha256_file(stored), result.sha256)

    @inlineCallbacks
    def test_hundred_files_in_one_slot_all_complete(self):
        sources = [self.make_file(1000 + i * 37, f"f{i}.bin") for i in range(100)]
        client = UploadClient(self.url, self.token(files=SlotConfig(max_entries=100)), parallel=8)
        results = yield client.upload([FileUpload.from_path(s, "files") for s in sources])
        self.assertEqual([r.status for r in results], ["complete"] * 100)
        self.assertEqual([r.sha256 for r in results], [sha256_file(s) for s in sources])
        self.assertEqual(len(self.stored_files(records=False)), 100)

    @inlineCallbacks
    def test_fifty_concurrent_connections_all_complete(self):
        sources = [self.make_file(200_000 + i) for i in range(50)]
        clients = [UploadClient(self.url, self.token()) for _ in sources]
        outcomes = yield DeferredList([c.upload([FileUpload.from_path(s, "files")]) for c, s in
                                       zip(clients, sources)], fireOnOneErrback=True, consumeErrors=True)
        hashes = [results[0].sha256 for _, results in outcomes]
        self.assertEqual(hashes, [sha256_file(s) for s in sources])
        self.assertEqual(len(self.server.registry.sessions), 50)

    @inlineCallbacks
    def test_dropped_connection_resumes_and_stored_file_matches(self):
        source = self.make_file(6 * 1024 * 1024)
        dropped = []

        def drop_once(upload: FileUpload) -> None:
            if not dropped and upload.acked >= 1024 * 1024:
                dropped.append(upload.acked)
                client.drop_connection()

        client = UploadClient(self.url, self.token(files=SlotConfig(max_file_size=10**8)), on_progress=drop_once)
        [result] = yield client.upload([FileUpload.from_path(source, "files")])
        self.assertTrue(dropped, "the connection was never dropped")
        self.assertEqual(client.reconnects, 1)
        self.assertEqual(result.resumes, 1)
        self.assertTrue(result.ok)
        [stored] = self.stored_files(records=False)
        self.assertEqual(sha256_file(stored), sha256_file(source))

    @inlineCallbacks
    def test_client_cancel_stops_the_upload_and_deletes_its_bytes(self):
        source = self.make_file(40 * 1024 * 1024)  # well beyond the first window (16 MiB on an idle server)

        def cancel_early(upload: FileUpload) -> None:
            if upload.status == "uploading" and upload.acked > 0:
                client.cancel(upload.ref)

        client = UploadClient(self.url, self.token(files=SlotConfig(max_file_size=10**8)), on_progress=cancel_early)
        [result] = yield client.upload([FileUpload.from_path(source, "files")])
        self.assertEqual((result.status, result.code), ("cancelled", "cancelled"))
        self.assertEqual(self.stored_files(records=False), [])

    @inlineCallbacks
    def test_rejected_file_does_not_disturb_the_good_one(self):
        good, big = self.make_file(500_000), self.make_file(2_000_000, "big.bin")
        client = UploadClient(self.url, self.token(files=SlotConfig(max_entries=2, max_file_size=1_000_000)))
        results = yield client.upload([FileUpload.from_path(big, "files"), FileUpload.from_path(good, "files")])
        self.assertEqual([(r.status, r.code) for r in results], [("error", "too_large"), ("complete", None)])
        self.assertTrue(results[1].ok)

    @inlineCallbacks
    def test_forged_token_fails_every_file_with_invalid_token(self):
        source = self.make_file(1000)
        client = UploadClient(self.url, self.token()[:-4] + "AAAA")
        [result] = yield client.upload([FileUpload.from_path(source, "files")])
        self.assertEqual((result.status, result.code), ("error", "invalid_token"))


class BadInputTests(ServerTestCase):
    """Every bad input gets its named error, and leaves other uploads and sessions untouched."""

    limits = ConnectionLimits(max_frame=256 * 1024 + 12)

    @inlineCallbacks
    def assert_closed_with_invalid_token(self, token):
        client = yield self.raw_client()
        client.send_json(type="auth", token=token)
        error = yield client.next("error")
        yield client.closed
        self.assertEqual((error["code"], client.close_code), ("invalid_token", 4001))

    def test_forged_token(self):
        token = self.token()
        return self.assert_closed_with_invalid_token(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1])

    def test_expired_token(self):
        return self.assert_closed_with_invalid_token(self.token(ttl=-1))

    def test_missing_token(self):
        return self.assert_closed_with_invalid_token("")

    @inlineCallbacks
    def test_wrong_origin_is_refused_at_the_handshake(self):
        agent = Agent(reactor)
        headers = Headers({"Upgrade": ["websocket"], "Connection": ["Upgrade"], "Sec-WebSocket-Version": ["13"],
                           "Sec-WebSocket-Key": ["dGhlIHNhbXBsZSBub25jZQ=="], "Origin": ["https://evil.example"]})
        response = yield agent.request(b"GET", self.url.replace("ws://", "http://").encode(), headers)
        self.assertEqual(response.code, 403)

    @inlineCallbacks
    def test_same_origin_page_may_connect(self):
        origin = f"http://127.0.0.1:{self.port.getHost().port}"
        client = yield self.raw_client(self.token(), origin=origin)
        self.assertEqual(client.welcome["type"], "welcome")

    @inlineCallbacks
    def test_declared_too_large(self):
        client = yield self.raw_client(self.token(files=SlotConfig(max_file_size=1000)))
        reply = yield client.announce("a.bin", 1001)
        self.assertEqual((reply["type"], reply["code"]), ("rejected", "too_large"))

    @inlineCallbacks
    def test_client_lying_about_size_is_size_mismatch(self):
        client = yield self.raw_client(self.token())
        accepted = yield client.announce("a.bin", 100)
        client.send_chunk(accepted["entry"], 0, b"x" * 200)
        error = yield client.next("error")
        self.assertEqual(error["code"], "size_mismatch")
        self.assertEqual(self.stored_files(records=False), [])

    @inlineCallbacks
    def test_too_many_files(self):
        client = yield self.raw_client(self.token(files=SlotConfig(max_entries=1)))
        yield client.announce("a.bin", 10)
        reply = yield client.announce("b.bin", 10)
        self.assertEqual(reply["code"], "too_many_files")

    @inlineCallbacks
    def test_spoofed_type_png_renamed_pdf(self):
        client = yield self.raw_client(self.token(files=SlotConfig(accept=".pdf")))
        data = png_bytes(pad_to=200)
        accepted = yield client.announce("report.pdf", len(data), mime="application/pdf")
        client.send_chunk(accepted["entry"], 0, data)
        error = yield client.next("error")
        self.assertEqual(error["code"], "type_mismatch")

    @inlineCallbacks
    def test_real_png_is_accepted(self):
        client = yield self.raw_client(self.token(files=SlotConfig(accept="image/*")))
        data = png_bytes(pad_to=200)
        accepted = yield client.announce("pic.png", len(data), mime="image/png")
        client.send_chunk(accepted["entry"], 0, data)
        complete = yield client.next("complete")
        self.assertEqual(complete["sha256"], hashlib.sha256(data).hexdigest())

    @inlineCallbacks
    def test_active_content_by_name_and_by_content(self):
        client = yield self.raw_client(self.token(files=SlotConfig(max_entries=3)))
        svg = yield client.announce("logo.svg", 50, mime="image/svg+xml")
        self.assertEqual(svg["code"], "active_content")
        html = b"<!DOCTYPE html><script>alert(1)</script>"
        accepted = yield client.announce("notes.txt", len(html), mime="text/plain")
        client.send_chunk(accepted["entry"], 0, html)
        error = yield client.next("error")
        self.assertEqual(error["code"], "active_content")

    @inlineCallbacks
    def test_wrong_offset(self):
        client = yield self.raw_client(self.token())
        accepted = yield client.announce("a.bin", 100)
        client.send_chunk(accepted["entry"], 50, b"x" * 50)
        error = yield client.next("error")
        self.assertEqual(error["code"], "bad_offset")

    @inlineCallbacks
    def test_unknown_entry_id_keeps_the_connection_usable(self):
        client = yield self.raw_client(self.token())
        client.send_chunk(0xDEAD, 0, b"x")
        error = yield client.next("error")
        self.assertEqual((error["code"], error["entry"]), ("unknown_entry", 0xDEAD))
        accepted = yield client.announce("a.bin", 3)
        client.send_chunk(accepted["entry"], 0, b"abc")
        complete = yield client.next("complete")
        self.assertEqual(complete["size"], 3)

    @inlineCallbacks
    def test_another_sessions_entry_id_is_unknown_and_the_victim_completes(self):
        victim = yield self.raw_client(self.token(session="victim"))
        attacker = yield self.raw_client(self.token(session="attacker"))
        accepted = yield victim.announce("a.bin", 6)
        victim.send_chunk(accepted["entry"], 0, b"abc")
        attacker.send_chunk(accepted["entry"], 3, b"EVIL")
        attacker.send_json(type="cancel", entry=accepted["entry"])
        attacker.send_json(type="resume", entry=accepted["entry"])
        errors = []
        for _ in range(3):
            errors.append((yield attacker.next("error")))
        self.assertEqual({e["code"] for e in errors}, {"unknown_entry"})
        victim.send_chunk(accepted["entry"], 3, b"def")
        complete = yield victim.next("complete")
        self.assertEqual(complete["sha256"], hashlib.sha256(b"abcdef").hexdigest())

    @inlineCallbacks
    def test_chunk_timeout_fails_a_stalled_upload(self):
        client = yield self.raw_client(self.token(files=SlotConfig(chunk_timeout=5)))
        accepted = yield client.announce("a.bin", 100)
        client.send_chunk(accepted["entry"], 0, b"x" * 10)
        self.clock.advance(5.01)
        error = yield client.next("error")
        self.assertEqual((error["code"], error["entry"]), ("timeout", accepted["entry"]))
        self.assertEqual(self.stored_files(records=False), [])

    @inlineCallbacks
    def test_oversized_frame_closes_with_1009(self):
        client = yield self.raw_client(self.token())
        accepted = yield client.announce("a.bin", 10**6)
        client.send_chunk(accepted["entry"], 0, b"x" * (300 * 1024))
        yield client.closed
        self.assertEqual(client.close_code, 1009)

    @inlineCallbacks
    def test_frame_above_slot_chunk_size(self):
        client = yield self.raw_client(self.token(files=SlotConfig(chunk_size=1024)))
        accepted = yield client.announce("a.bin", 5000)
        client.send_chunk(accepted["entry"], 0, b"x" * 2048)
        error = yield client.next("error")
        self.assertEqual(error["code"], "frame_too_large")

    @inlineCallbacks
    def test_auth_timeout_closes_with_4003(self):
        client = yield self.raw_client()
        self.clock.advance(10.5)
        error = yield client.next("error")
        yield client.closed
        self.assertEqual((error["code"], client.close_code), ("timeout", 4003))

    @inlineCallbacks
    def test_malformed_json_closes_with_protocol_error(self):
        client = yield self.raw_client(self.token())
        client.protocol.sendMessage(b"{not json", isBinary=False)
        error = yield client.next("error")
        yield client.closed
        self.assertEqual((error["code"], client.close_code), ("protocol_error", 4002))


class CleanupTests(ServerTestCase):
    """After consume, cancel or TTL, nothing of the session is left on disk."""

    @inlineCallbacks
    def upload(self, session: str, data: bytes):
        client = yield self.raw_client(self.token(session=session))
        accepted = yield client.announce("a.bin", len(data))
        client.send_chunk(accepted["entry"], 0, data)
        yield client.next("complete")
        return client, accepted["entry"]

    @inlineCallbacks
    def test_consume_empties_the_session_directory(self):
        client, entry = yield self.upload("s1", b"hello")
        self.assertEqual(len(self.stored_files(records=False)), 1)
        self.server.registry.consume("s1", entry)
        self.assertEqual(self.stored_files(), [])

    @inlineCallbacks
    def test_application_cancel_tells_the_client_and_deletes(self):
        client = yield self.raw_client(self.token(session="s2"))
        accepted = yield client.announce("a.bin", 100, ref="mine")
        client.send_chunk(accepted["entry"], 0, b"x" * 10)
        self.server.registry.cancel("s2", "mine")
        cancelled = yield client.next("cancelled")
        self.assertEqual((cancelled["entry"], cancelled["ref"]), (accepted["entry"], "mine"))
        self.assertEqual(self.stored_files(records=False), [])

    @inlineCallbacks
    def test_unconsumed_entry_expires_after_complete_ttl(self):
        client, entry = yield self.upload("s3", b"hello")
        client.abort()
        yield client.closed
        self.clock.advance(119)
        self.assertEqual(len(self.stored_files(records=False)), 1, "deleted before its TTL")
        self.clock.advance(2)
        self.assertEqual(self.stored_files(), [])

    @inlineCallbacks
    def test_paused_entry_waits_resume_grace_then_goes(self):
        client = yield self.raw_client(self.token(session="s4"))
        accepted = yield client.announce("a.bin", 100)
        client.send_chunk(accepted["entry"], 0, b"x" * 10)
        client.abort()
        yield client.closed
        again = yield self.raw_client(self.token(session="s4"))
        self.assertEqual(again.welcome["entries"][0]["status"], "paused")
        again.abort()
        yield again.closed
        self.clock.advance(31)
        self.assertEqual(self.server.registry.list_entries("s4"), [])
        self.assertEqual(self.stored_files(), [])


class IsolationTests(ServerTestCase):
    """A stream of bad inputs on one connection leaves a concurrent good upload on another untouched."""

    @inlineCallbacks
    def test_good_upload_completes_while_another_client_misbehaves(self):
        source = self.make_file(4 * 1024 * 1024)
        good = UploadClient(self.url, self.token(files=SlotConfig(max_file_size=10**8)))
        good_done = good.upload([FileUpload.from_path(source, "files")])

        bad = yield self.raw_client(self.token(files=SlotConfig(max_entries=3, accept=".pdf,.txt",
                                                                 max_file_size=1000)))
        codes = []
        for name, size in (("a.exe", 10), ("b.pdf", 5000), ("c.svg", 10)):
            reply = yield bad.announce(name, size)
            codes.append(reply["code"])
        pdf = yield bad.announce("d.pdf", 200)
        bad.send_chunk(pdf["entry"], 0, png_bytes(pad_to=200))
        codes.append((yield bad.next("error"))["code"])
        txt = yield bad.announce("e.txt", 10)
        bad.send_chunk(txt["entry"], 5, b"x" * 5)
        codes.append((yield bad.next("error"))["code"])
        bad.send_chunk(0xBEEF, 0, b"x")
        codes.append((yield bad.next("error"))["code"])
        self.assertEqual(codes, ["not_accepted", "too_large", "not_accepted", "type_mismatch", "bad_offset",
                                 "unknown_entry"])
        [result] = yield good_done
        self.assertTrue(result.ok)
        self.assertEqual(result.sha256, sha256_file(source))

    @inlineCallbacks
    def test_large_frame_before_auth_closes_with_1009(self):
        client = yield self.raw_client()
        client.protocol.sendMessage(b"x" * (PRE_AUTH_FRAME_LIMIT + 1), isBinary=True)
        yield client.closed
        self.assertEqual(client.close_code, 1009)
