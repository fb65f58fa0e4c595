"""Tests for twisted_uploads.connection: every transition and error of the per-connection state machine.

No sockets: a FakeTransport records what the connection sends, a Clock drives every timer, files go to a
temp-file store in the test's own directory.
"""

from __future__ import annotations

from pathlib import Path

from hypothesis import assume, given
from hypothesis import strategies as st
from twisted.trial.unittest import TestCase

from twisted_uploads.codec import PRE_AUTH_FRAME_LIMIT, encode_chunk_header
from twisted_uploads.connection import ConnectionLimits, ConnectionState
from twisted_uploads.entries import EntryStatus
from twisted_uploads.errors import CLOSE_AUTH_TIMEOUT, CLOSE_INVALID_TOKEN, CLOSE_PROTOCOL_ERROR
from twisted_uploads.slots import SlotConfig
from twisted_uploads.tokens import Handshake, make_token

from .support import (DEFAULT_SLOTS, HTML_BYTES, SVG_BYTES, Client, Server, fuzz, png_bytes, sha256, text_bytes)
from .test_codec import JSON_VALUES

MiB = 1024 * 1024
WINDOW = 16 * 1024  # 16 chunks of the default slots' 1024 bytes


class ConnectionTestCase(TestCase):
    """A server on a Clock and a temp dir; ``self.client`` is authenticated to session-1."""

    limits: ConnectionLimits | None = None
    max_session_bytes = 10 * 1024**3

    def setUp(self) -> None:
        self.server = Server(self.mktemp(), limits=self.limits, max_session_bytes=self.max_session_bytes)
        self.clock = self.server.clock
        self.registry = self.server.registry
        self.client = self.server.client()

    def entry(self, entry_id: int, session: str = "session-1"):  # type: ignore[no-untyped-def]
        return next((i for i in self.registry.list_entries(session) if i.entry_id == entry_id), None)

    def assertClosedWith(self, client: Client, code: str, close_code: int) -> None:
        self.assertEqual(client.transport.sent[-1]["type"], "error")
        self.assertEqual(client.transport.sent[-1]["code"], code)
        self.assertNotIn("entry", client.transport.sent[-1])
        self.assertEqual(client.transport.closed[0] if client.transport.closed else None, close_code)
        self.assertIs(client.connection.state, ConnectionState.CLOSED)

    def assertEntryError(self, message: dict, entry_id: int, code: str) -> None:
        self.assertEqual((message["type"], message["entry"], message["code"]), ("error", entry_id, code))

    def assertOpen(self, client: Client) -> None:
        self.assertIsNone(client.transport.closed)
        self.assertIs(client.connection.state, ConnectionState.OPEN)


class AuthenticationTests(ConnectionTestCase):
    """``auth`` must come first; a good token is answered with ``welcome``."""

    def test_valid_token_is_welcomed(self) -> None:
        self.assertEqual(self.client.welcome["type"], "welcome")
        self.assertOpen(self.client)

    def test_welcome_names_protocol_version_and_session(self) -> None:
        self.assertEqual((self.client.welcome["protocol"], self.client.welcome["session"]), (1, "session-1"))

    def test_welcome_gives_the_connection_limits(self) -> None:
        # The default slots' chunks are 1 KiB, so the frame limit is the control-message floor, not 8 MiB.
        self.assertEqual((self.client.welcome["max_parallel"], self.client.welcome["max_frame"]),
                         (8, PRE_AUTH_FRAME_LIMIT))

    def test_welcome_lists_each_slot_with_its_window(self) -> None:
        self.assertEqual(self.client.welcome["slots"],
                         {name: {**slot.to_dict(), "window": WINDOW} for name, slot in DEFAULT_SLOTS.items()})

    def test_welcome_window_is_window_chunks_times_chunk_size(self) -> None:
        client = self.server.client("s2", {"big": SlotConfig(chunk_size=65536)})
        self.assertEqual(client.welcome["slots"]["big"]["window"], 16 * 65536)

    def test_welcome_of_a_new_session_lists_no_entries(self) -> None:
        self.assertEqual(self.client.welcome["entries"], [])

    def test_auth_timer_stops_after_auth(self) -> None:
        self.clock.advance(100)
        self.assertOpen(self.client)

    def test_auth_attaches_the_connection_to_its_session(self) -> None:
        self.assertEqual(self.registry.sessions["session-1"].connections, 1)

    def test_message_before_auth_is_protocol_error_and_close_4002(self) -> None:
        client = self.server.connect()
        client.send("announce", ref="f1", slot="files", name="a.txt", mime="text/plain", size=1)
        self.assertClosedWith(client, "protocol_error", CLOSE_PROTOCOL_ERROR)

    def test_data_before_auth_is_protocol_error_and_close_4002(self) -> None:
        client = self.server.connect()
        client.frame(1, 0, b"data")
        self.assertClosedWith(client, "protocol_error", CLOSE_PROTOCOL_ERROR)

    def test_invalid_token_is_invalid_token_and_close_4001(self) -> None:
        client = self.server.connect()
        client.send("auth", token="not-a-token")
        self.assertClosedWith(client, "invalid_token", CLOSE_INVALID_TOKEN)

    def test_token_signed_with_another_secret_is_invalid_token(self) -> None:
        client = self.server.connect()
        client.send("auth", token=make_token("some-other-long-secret", "session-1", DEFAULT_SLOTS, now=0))
        self.assertClosedWith(client, "invalid_token", CLOSE_INVALID_TOKEN)

    def test_expired_token_is_invalid_token_and_close_4001(self) -> None:
        token = self.server.token(ttl=60)
        self.clock.advance(61)
        client = self.server.connect()
        client.send("auth", token=token)
        self.assertClosedWith(client, "invalid_token", CLOSE_INVALID_TOKEN)

    def test_non_ascii_token_is_invalid_token_and_close_4001(self) -> None:
        client = self.server.connect()
        client.send("auth", token="\u00e9t\u00e9.x")
        self.assertClosedWith(client, "invalid_token", CLOSE_INVALID_TOKEN)

    def test_rejected_token_opens_no_session(self) -> None:
        client = self.server.connect()
        client.send("auth", token=self.server.token("other-session")[:-2])
        self.assertNotIn("other-session", self.registry.sessions)

    def test_no_auth_in_time_is_timeout_and_close_4003(self) -> None:
        client = self.server.connect()
        self.clock.advance(10)
        self.assertClosedWith(client, "timeout", CLOSE_AUTH_TIMEOUT)

    def test_auth_timeout_does_not_fire_early(self) -> None:
        client = self.server.connect()
        self.clock.advance(9.99)
        self.assertIsNone(client.transport.closed)

    def test_auth_timeout_follows_the_limit(self) -> None:
        self.server.limits = ConnectionLimits(auth_timeout=2)
        client = self.server.connect()
        self.clock.advance(2)
        self.assertClosedWith(client, "timeout", CLOSE_AUTH_TIMEOUT)

    def test_second_auth_is_protocol_error(self) -> None:
        self.client.send("auth", token=self.server.token())
        self.assertClosedWith(self.client, "protocol_error", CLOSE_PROTOCOL_ERROR)

    def test_auth_as_bytes_is_accepted(self) -> None:
        client = self.server.connect()
        client.connection.text_received(b'{"type":"auth","token":"%s"}' % self.server.token().encode())
        self.assertEqual(client.transport.types(), ["welcome"])


class MalformedMessageTests(ConnectionTestCase):
    """Anything that breaks the control protocol closes the connection with 4002."""

    def test_malformed_json_is_protocol_error_and_close_4002(self) -> None:
        self.client.connection.text_received('{"type": "announce", ')
        self.assertClosedWith(self.client, "protocol_error", CLOSE_PROTOCOL_ERROR)

    def test_unknown_type_is_protocol_error_and_close_4002(self) -> None:
        self.client.send("upload", entry=1)
        self.assertClosedWith(self.client, "protocol_error", CLOSE_PROTOCOL_ERROR)

    def test_server_message_type_from_client_is_protocol_error(self) -> None:
        self.client.send("ack", entry=1, offset=0)
        self.assertClosedWith(self.client, "protocol_error", CLOSE_PROTOCOL_ERROR)

    def test_missing_field_is_protocol_error(self) -> None:
        self.client.send("cancel")
        self.assertClosedWith(self.client, "protocol_error", CLOSE_PROTOCOL_ERROR)

    def test_oversized_control_message_is_protocol_error(self) -> None:
        self.client.send("cancel", entry=1, padding="x" * 17000)
        self.assertClosedWith(self.client, "protocol_error", CLOSE_PROTOCOL_ERROR)

    def test_deeply_nested_json_is_protocol_error(self) -> None:
        self.client.connection.text_received("[" * 5000)
        self.assertClosedWith(self.client, "protocol_error", CLOSE_PROTOCOL_ERROR)

    def test_short_frame_is_protocol_error_and_close_4002(self) -> None:
        self.client.connection.binary_received(encode_chunk_header(1, 0))
        self.assertClosedWith(self.client, "protocol_error", CLOSE_PROTOCOL_ERROR)

    def test_empty_frame_is_protocol_error(self) -> None:
        self.client.connection.binary_received(b"")
        self.assertClosedWith(self.client, "protocol_error", CLOSE_PROTOCOL_ERROR)

    def test_protocol_error_pauses_the_connections_uploads(self) -> None:
        entry_id = self.client.announce(size=3000)["entry"]
        self.client.send("nonsense")
        self.assertEqual(self.entry(entry_id).status, EntryStatus.PAUSED)

    def test_closed_connection_ignores_messages_and_frames(self) -> None:
        self.client.send("nonsense")
        self.client.transport.take()
        self.client.send("cancel", entry=1)
        self.client.frame(1, 0, b"x")
        self.assertEqual(self.client.transport.sent, [])


class AnnounceTests(ConnectionTestCase):
    """``announce`` is answered with ``accepted`` or ``rejected`` and a code; the connection stays open."""

    max_session_bytes = 2_000_000

    def assertRejected(self, code: str, **announce: object) -> dict:
        answer = self.client.announce(**announce)  # type: ignore[arg-type]
        self.assertEqual((answer["type"], answer["code"], answer["ref"]),
                         ("rejected", code, announce.get("ref", "f1")))
        self.assertTrue(answer["message"])
        self.assertOpen(self.client)
        return answer

    def test_accepted_gives_entry_offset_window_and_chunk_size(self) -> None:
        answer = self.client.announce(size=5000, ref="r-1")
        self.assertEqual({k: v for k, v in answer.items() if k != "entry"},
                         {"type": "accepted", "ref": "r-1", "offset": 0, "window": WINDOW, "chunk_size": 1024})

    def test_accepted_entry_is_uploading(self) -> None:
        answer = self.client.announce(size=5000)
        self.assertEqual(self.entry(answer["entry"]).status, EntryStatus.UPLOADING)

    def test_unknown_slot_is_rejected(self) -> None:
        self.assertRejected("unknown_slot", slot="nope", size=10)

    def test_too_large_is_rejected(self) -> None:
        self.assertRejected("too_large", size=1_000_001)

    def test_negative_size_is_rejected_as_too_large(self) -> None:
        self.assertRejected("too_large", size=-1)

    def test_size_beyond_any_file_is_rejected_as_too_large(self) -> None:
        self.assertRejected("too_large", size=2**70)

    def test_non_integer_size_is_protocol_error_and_close_4002(self) -> None:
        self.client.send("announce", ref="f1", slot="files", name="a.txt", mime="text/plain", size="10")
        self.assertClosedWith(self.client, "protocol_error", CLOSE_PROTOCOL_ERROR)

    def test_not_accepted_is_rejected(self) -> None:
        self.assertRejected("not_accepted", slot="avatar", name="me.gif", mime="image/gif", size=10)

    def test_active_content_is_rejected(self) -> None:
        self.assertRejected("active_content", name="logo.svg", mime="image/svg+xml", size=10)

    def test_too_many_files_is_rejected(self) -> None:
        self.client.announce(slot="avatar", name="a.png", mime="image/png", size=10, ref="a")
        self.assertRejected("too_many_files", slot="avatar", name="b.png", mime="image/png", size=10, ref="b")

    def test_quota_exceeded_is_rejected(self) -> None:
        self.client.announce(size=1_000_000, ref="a")
        self.client.announce(size=1_000_000, ref="b")
        self.assertRejected("quota_exceeded", size=1, ref="c")

    def test_duplicate_ref_is_rejected(self) -> None:
        self.client.announce(size=10, ref="same")
        self.assertRejected("protocol_error", size=10, ref="same")

    def test_empty_ref_is_rejected(self) -> None:
        self.assertRejected("protocol_error", size=10, ref="")

    def test_ref_longer_than_64_characters_is_rejected(self) -> None:
        answer = self.client.announce(size=10, ref="r" * 65)
        self.assertEqual((answer["type"], answer["ref"]), ("rejected", "r" * 64))

    def test_rejected_announce_creates_no_entry(self) -> None:
        self.client.announce(size=1_000_001)
        self.assertEqual(self.registry.list_entries("session-1"), [])

    def test_zero_byte_file_is_accepted_then_complete(self) -> None:
        self.client.send("announce", ref="e", slot="files", name="empty.txt", mime="text/plain", size=0)
        accepted, complete = self.client.transport.take()
        self.assertEqual((accepted["type"], complete["type"], complete["entry"], complete["size"],
                          complete["sha256"]), ("accepted", "complete", accepted["entry"], 0, sha256(b"")))

    def test_rejected_zero_byte_file_leaves_no_entry(self) -> None:
        self.assertRejected("type_mismatch", name="empty.png", mime="image/png", size=0)
        self.assertEqual(self.registry.list_entries("session-1"), [])


class ServerBusyTests(ConnectionTestCase):
    """At most ``max_parallel`` entries upload at once on one connection."""

    limits = ConnectionLimits(max_parallel=1)

    def test_welcome_announces_max_parallel(self) -> None:
        self.assertEqual(self.client.welcome["max_parallel"], 1)

    def test_announce_beyond_max_parallel_is_server_busy(self) -> None:
        self.client.announce(size=10, ref="a")
        self.assertEqual(self.client.announce(size=10, ref="b")["code"], "server_busy")

    def test_finished_upload_frees_its_place(self) -> None:
        self.client.upload(text_bytes(10), ref="a")
        self.client.transport.take()
        self.assertEqual(self.client.announce(size=10, ref="b")["type"], "accepted")

    def test_cancelled_upload_frees_its_place(self) -> None:
        entry_id = self.client.announce(size=10, ref="a")["entry"]
        self.client.send("cancel", entry=entry_id)
        self.client.transport.take()
        self.assertEqual(self.client.announce(size=10, ref="b")["type"], "accepted")

    def test_max_parallel_is_per_connection(self) -> None:
        self.client.announce(size=10, ref="a")
        other = self.server.client()
        self.assertEqual(other.announce(size=10, ref="b")["type"], "accepted")

    def test_resume_beyond_max_parallel_is_server_busy(self) -> None:
        first = self.server.client()
        entry_id = first.announce(size=10, ref="a")["entry"]
        first.connection.connection_lost()
        self.client.announce(size=10, ref="b")
        self.client.send("resume", entry=entry_id)
        self.assertEntryError(self.client.transport.take()[0], entry_id, "server_busy")

    def test_server_busy_is_checked_before_the_slot(self) -> None:
        # protocol.md §4: server_busy comes first, then unknown_slot ... quota_exceeded.
        self.client.announce(size=10, ref="a")
        self.assertEqual(self.client.announce(slot="nope", size=10, ref="b")["code"], "server_busy")


class DataTests(ConnectionTestCase):
    """Binary frames: the happy path, acks, and each way a frame can be wrong."""

    def test_whole_file_ends_with_ack_and_complete(self) -> None:
        data = text_bytes(3000)
        entry_id = self.client.upload(data)
        self.assertEqual(self.client.transport.sent[-2:],
                         [{"type": "ack", "entry": entry_id, "offset": 3000},
                          {"type": "complete", "entry": entry_id, "size": 3000, "sha256": sha256(data)}])

    def test_complete_entry_holds_the_bytes_sent(self) -> None:
        data = text_bytes(5000)
        entry_id = self.client.upload(data)
        self.assertEqual(Path(self.entry(entry_id).path).read_bytes(), data)

    def test_acks_come_every_quarter_window(self) -> None:
        self.client.upload(text_bytes(10_000))
        self.assertEqual([m["offset"] for m in self.client.transport.sent if m["type"] == "ack"],
                         [4096, 8192, 10_000])

    def test_no_ack_before_a_quarter_window(self) -> None:
        entry_id = self.client.announce(size=10_000)["entry"]
        self.client.stream(entry_id, text_bytes(3072))
        self.assertEqual(self.client.transport.sent, [])

    def test_small_window_acks_every_chunk(self) -> None:
        self.server.limits = ConnectionLimits(window_chunks=2)
        client = self.server.client("s2")
        client.upload(text_bytes(3000))
        self.assertEqual([m["offset"] for m in client.transport.sent if m["type"] == "ack"], [1024, 2048, 3000])

    def test_frames_may_be_smaller_than_chunk_size(self) -> None:
        data = text_bytes(1000)
        entry_id = self.client.announce(size=1000)["entry"]
        self.client.stream(entry_id, data, chunk_size=100)
        self.assertEqual(self.client.transport.last()["sha256"], sha256(data))

    def test_wrong_offset_is_bad_offset(self) -> None:
        entry_id = self.client.announce(size=3000)["entry"]
        self.client.frame(entry_id, 5, b"x" * 10)
        self.assertEntryError(self.client.transport.take()[0], entry_id, "bad_offset")

    def test_bad_offset_fails_the_entry(self) -> None:
        entry_id = self.client.announce(size=3000)["entry"]
        self.client.stream(entry_id, text_bytes(2048))
        self.client.frame(entry_id, 1024, b"x" * 10)
        info = self.entry(entry_id)
        self.assertEqual((info.status, info.error, info.path), (EntryStatus.ERROR, "bad_offset", None))

    def test_entry_error_carries_ref_and_message(self) -> None:
        entry_id = self.client.announce(size=3000, ref="r9")["entry"]
        self.client.frame(entry_id, 5, b"x")
        message = self.client.transport.take()[0]
        self.assertEqual((message["ref"], bool(message["message"])), ("r9", True))

    def test_payload_above_chunk_size_is_frame_too_large(self) -> None:
        entry_id = self.client.announce(size=3000)["entry"]
        self.client.frame(entry_id, 0, b"x" * 1025)
        self.assertEntryError(self.client.transport.take()[0], entry_id, "frame_too_large")

    def test_bytes_beyond_declared_size_are_size_mismatch(self) -> None:
        entry_id = self.client.announce(size=100)["entry"]
        self.client.frame(entry_id, 0, text_bytes(150))
        self.assertEntryError(self.client.transport.take()[0], entry_id, "size_mismatch")

    def test_client_lying_about_size_never_completes(self) -> None:
        entry_id = self.client.announce(size=2000)["entry"]
        self.client.stream(entry_id, text_bytes(1500))
        self.client.frame(entry_id, 1500, b"x" * 1000)
        self.assertEqual(self.entry(entry_id).error, "size_mismatch")

    def test_frame_for_unknown_entry_is_unknown_entry(self) -> None:
        self.client.frame(424242, 0, b"x")
        self.assertEntryError(self.client.transport.take()[0], 424242, "unknown_entry")
        self.assertOpen(self.client)

    def test_frame_for_another_sessions_entry_is_unknown_entry(self) -> None:
        victim_entry = self.client.announce(size=3000)["entry"]
        intruder = self.server.client("session-2")
        intruder.frame(victim_entry, 0, b"x" * 100)
        self.assertEntryError(intruder.transport.take()[0], victim_entry, "unknown_entry")
        self.assertOpen(intruder)

    def test_another_sessions_frame_leaves_the_entry_alone(self) -> None:
        victim_entry = self.client.announce(size=3000)["entry"]
        self.server.client("session-2").frame(victim_entry, 0, b"x" * 100)
        info = self.entry(victim_entry)
        self.assertEqual((info.status, info.received), (EntryStatus.UPLOADING, 0))

    def test_other_entries_carry_on_after_an_entry_error(self) -> None:
        bad = self.client.announce(size=3000, ref="bad")["entry"]
        good_data = text_bytes(2000)
        good = self.client.announce(size=2000, ref="good")["entry"]
        self.client.frame(bad, 7, b"x")
        self.client.stream(good, good_data)
        self.assertEqual(self.client.transport.last(),
                         {"type": "complete", "entry": good, "size": 2000, "sha256": sha256(good_data)})

    def test_frames_after_an_entry_error_are_dropped_silently(self) -> None:
        entry_id = self.client.announce(size=3000)["entry"]
        self.client.frame(entry_id, 5, b"x")
        self.client.transport.take()
        self.client.frame(entry_id, 0, b"x")
        self.assertEqual(self.client.transport.sent, [])

    def test_frames_after_completion_are_dropped_silently(self) -> None:
        entry_id = self.client.upload(text_bytes(100))
        self.client.transport.take()
        self.client.frame(entry_id, 100, b"x")
        self.assertEqual(self.client.transport.sent, [])

    def test_spoofed_type_is_type_mismatch_after_the_first_chunk(self) -> None:
        client = self.server.client("s2", {"docs": SlotConfig(accept=".pdf", chunk_size=16384)})
        entry_id = client.announce(name="cv.pdf", mime="application/pdf", size=40_000, slot="docs")["entry"]
        client.frame(entry_id, 0, png_bytes(pad_to=40_000)[:16384])
        self.assertEntryError(client.transport.take()[0], entry_id, "type_mismatch")
        self.assertEqual(self.entry(entry_id, "s2").received, 0)

    def test_spoofed_small_file_is_type_mismatch_at_its_last_chunk(self) -> None:
        entry_id = self.client.announce(slot="avatar", name="me.png", mime="image/png", size=2000)["entry"]
        self.client.stream(entry_id, text_bytes(2000))
        self.assertEntryError(self.client.transport.last(), entry_id, "type_mismatch")

    def test_real_png_completes(self) -> None:
        data = png_bytes(pad_to=5000)
        self.client.upload(data, slot="avatar", name="me.png", mime="image/png")
        self.assertEqual(self.client.transport.last()["sha256"], sha256(data))

    def test_html_in_a_text_file_is_active_content(self) -> None:
        entry_id = self.client.announce(name="notes.txt", size=len(HTML_BYTES))["entry"]
        self.client.frame(entry_id, 0, HTML_BYTES)
        self.assertEntryError(self.client.transport.take()[0], entry_id, "active_content")

    def test_svg_in_an_image_slot_is_active_content(self) -> None:
        entry_id = self.client.announce(slot="avatar", name="me.png", mime="image/png", size=len(SVG_BYTES))["entry"]
        self.client.frame(entry_id, 0, SVG_BYTES)
        self.assertEntryError(self.client.transport.take()[0], entry_id, "active_content")

    def test_svg_content_completes_where_allowed(self) -> None:
        client = self.server.client("s2", {"art": SlotConfig(allow_active_content=True)})
        client.upload(SVG_BYTES, slot="art", name="logo.svg", mime="image/svg+xml")
        self.assertEqual(client.transport.last()["type"], "complete")

    def test_storage_failure_is_storage_failed(self) -> None:
        opened = self.server.store.open

        def failing_open(session_id: str, entry_id: int):  # type: ignore[no-untyped-def]
            writer = opened(session_id, entry_id)

            def write(data: bytes) -> None:
                raise OSError(28, "No space left on device")

            writer.write = write
            return writer

        self.server.store.open = failing_open  # type: ignore[method-assign]
        entry_id = self.client.announce(size=3000)["entry"]
        self.client.frame(entry_id, 0, b"x" * 1000)
        self.assertEntryError(self.client.transport.take()[0], entry_id, "storage_failed")

    def test_idle_entry_is_timeout(self) -> None:
        entry_id = self.client.announce(size=3000, ref="slow")["entry"]
        self.clock.advance(10)
        message = self.client.transport.take()[0]
        self.assertEntryError(message, entry_id, "timeout")
        self.assertEqual(message["ref"], "slow")
        self.assertOpen(self.client)

    def test_idle_entry_does_not_time_out_early(self) -> None:
        self.client.announce(size=3000)
        self.clock.advance(9.99)
        self.assertEqual(self.client.transport.sent, [])

    def test_steady_frames_keep_an_entry_alive(self) -> None:
        data = text_bytes(3000)
        entry_id = self.client.announce(size=3000)["entry"]
        for offset in (0, 1024, 2048):
            self.clock.advance(9)
            self.client.frame(entry_id, offset, data[offset:offset + 1024])
        self.assertEqual(self.client.transport.last()["type"], "complete")

    def test_timeout_counts_from_the_last_frame(self) -> None:
        entry_id = self.client.announce(size=3000)["entry"]
        self.clock.advance(9)
        self.client.frame(entry_id, 0, text_bytes(1024))
        self.clock.advance(9.99)
        self.assertEqual(self.entry(entry_id).status, EntryStatus.UPLOADING)


class CancelTests(ConnectionTestCase):
    """``cancel`` from the client and cancellation by the application."""

    def test_cancel_is_answered_with_cancelled_once(self) -> None:
        entry_id = self.client.announce(size=3000, ref="c1")["entry"]
        self.client.send("cancel", entry=entry_id)
        self.assertEqual(self.client.transport.take(), [{"type": "cancelled", "entry": entry_id, "ref": "c1"}])

    def test_cancel_deletes_the_bytes(self) -> None:
        entry_id = self.client.announce(size=3000)["entry"]
        self.client.stream(entry_id, text_bytes(2048))
        self.client.send("cancel", entry=entry_id)
        self.assertEqual(list(self.server.store.root.rglob("*.part")), [])

    def test_frames_for_a_cancelled_entry_are_dropped_silently(self) -> None:
        entry_id = self.client.announce(size=3000)["entry"]
        self.client.send("cancel", entry=entry_id)
        self.client.transport.take()
        self.client.stream(entry_id, text_bytes(3000))
        self.assertEqual(self.client.transport.sent, [])

    def test_cancel_of_unknown_entry_is_unknown_entry(self) -> None:
        self.client.send("cancel", entry=99)
        self.assertEntryError(self.client.transport.take()[0], 99, "unknown_entry")
        self.assertOpen(self.client)

    def test_cancel_of_another_sessions_entry_is_unknown_entry(self) -> None:
        entry_id = self.client.announce(size=3000)["entry"]
        intruder = self.server.client("session-2")
        intruder.send("cancel", entry=entry_id)
        self.assertEntryError(intruder.transport.take()[0], entry_id, "unknown_entry")
        self.assertEqual(self.entry(entry_id).status, EntryStatus.UPLOADING)

    def test_cancel_of_complete_entry_answers_cancelled(self) -> None:
        entry_id = self.client.upload(text_bytes(100))
        self.client.transport.take()
        self.client.send("cancel", entry=entry_id)
        self.assertEqual(self.client.transport.take(), [{"type": "cancelled", "entry": entry_id, "ref": "f1"}])

    def test_cancel_of_complete_entry_discards_it_and_its_file(self) -> None:
        entry_id = self.client.upload(text_bytes(100))
        path = self.entry(entry_id).path
        self.client.send("cancel", entry=entry_id)
        self.assertIsNone(self.entry(entry_id))
        self.assertFalse(Path(path).exists())

    def test_cancel_of_complete_entry_frees_its_place_in_the_slot(self) -> None:
        client = self.server.client("single", {"files": SlotConfig(max_entries=1, chunk_size=1024)})
        entry_id = client.upload(text_bytes(100), ref="first")
        self.assertEqual(client.announce(size=10, ref="refused")["code"], "too_many_files")
        client.send("cancel", entry=entry_id)
        client.transport.take()
        self.assertEqual(client.announce(size=10, ref="second")["type"], "accepted")

    def test_cancel_of_failed_entry_discards_it(self) -> None:
        entry_id = self.client.announce(size=3000)["entry"]
        self.client.frame(entry_id, 5, b"x")
        self.client.transport.take()
        self.client.send("cancel", entry=entry_id)
        self.assertEqual(self.client.transport.types(), ["cancelled"])
        self.assertIsNone(self.entry(entry_id))

    def test_second_cancel_answers_cancelled_again(self) -> None:
        entry_id = self.client.announce(size=3000)["entry"]
        self.client.send("cancel", entry=entry_id)
        self.client.transport.take()
        self.client.send("cancel", entry=entry_id)
        self.assertEqual(self.client.transport.types(), ["cancelled"])

    def test_cancel_of_paused_entry_answers_cancelled(self) -> None:
        first = self.server.client()
        entry_id = first.announce(size=3000, ref="p")["entry"]
        first.connection.connection_lost()
        self.client.send("cancel", entry=entry_id)
        self.assertEqual(self.client.transport.take(), [{"type": "cancelled", "entry": entry_id, "ref": "p"}])

    def test_cancel_of_paused_entry_forgets_it(self) -> None:
        first = self.server.client()
        entry_id = first.announce(size=3000)["entry"]
        first.connection.connection_lost()
        self.client.send("cancel", entry=entry_id)
        self.assertIsNone(self.entry(entry_id))

    def test_cancel_of_entry_streamed_elsewhere_tells_both_connections(self) -> None:
        other = self.server.client()
        entry_id = other.announce(size=3000, ref="x")["entry"]
        self.client.send("cancel", entry=entry_id)
        expected = [{"type": "cancelled", "entry": entry_id, "ref": "x"}]
        self.assertEqual((self.client.transport.take(), other.transport.take()), (expected, expected))

    def test_application_cancel_tells_the_connection(self) -> None:
        entry_id = self.client.announce(size=3000, ref="app")["entry"]
        self.registry.cancel("session-1", "app")
        self.assertEqual(self.client.transport.take(), [{"type": "cancelled", "entry": entry_id, "ref": "app"}])

    def test_application_cancel_of_paused_entry_tells_nobody(self) -> None:
        first = self.server.client()
        first.announce(size=3000, ref="p")
        first.connection.connection_lost()
        first.transport.take()
        self.registry.cancel("session-1", "p")
        self.assertEqual((first.transport.sent, self.client.transport.sent), ([], []))


class ResumeTests(ConnectionTestCase):
    """A new connection of the same session picks up where the last one stopped."""

    def start_then_drop(self, data: bytes, sent: int) -> int:
        first = self.server.client()
        entry_id = first.announce(size=len(data), ref="big")["entry"]
        first.stream(entry_id, data[:sent])
        first.connection.connection_lost()
        return entry_id

    def test_connection_lost_pauses_its_entries(self) -> None:
        entry_id = self.start_then_drop(text_bytes(5000), 2048)
        self.assertEqual(self.entry(entry_id).status, EntryStatus.PAUSED)

    def test_connection_lost_twice_detaches_once(self) -> None:
        self.client.announce(size=3000)
        other = self.server.client()
        self.client.connection.connection_lost()
        self.client.connection.connection_lost()
        self.assertEqual((self.registry.sessions["session-1"].connections, other.connection.state),
                         (1, ConnectionState.OPEN))

    def test_connection_lost_before_auth_stops_the_auth_timer(self) -> None:
        client = self.server.connect()
        client.connection.connection_lost()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_welcome_lists_paused_entry_with_its_offset(self) -> None:
        entry_id = self.start_then_drop(text_bytes(5000), 2048)
        welcome = self.server.client().welcome
        self.assertEqual(welcome["entries"], [{"entry": entry_id, "ref": "big", "slot": "files",
                                               "name": "data.txt", "size": 5000, "offset": 2048,
                                               "status": "paused"}])

    def test_welcome_lists_finished_entries_with_their_status(self) -> None:
        self.client.upload(text_bytes(10), ref="done")
        bad = self.client.announce(size=10, ref="bad")["entry"]
        self.client.frame(bad, 3, b"x")
        entries = self.server.client().welcome["entries"]
        self.assertEqual([(e["ref"], e["status"], e.get("code")) for e in entries],
                         [("done", "complete", None), ("bad", "error", "bad_offset")])

    def test_resume_is_accepted_at_the_stored_offset(self) -> None:
        entry_id = self.start_then_drop(text_bytes(5000), 2048)
        client = self.server.client()
        client.send("resume", entry=entry_id)
        self.assertEqual(client.transport.take(), [{"type": "accepted", "ref": "big", "entry": entry_id,
                                                    "offset": 2048, "window": WINDOW, "chunk_size": 1024}])

    def test_resumed_upload_completes_with_the_sources_sha256(self) -> None:
        data = text_bytes(5000)
        entry_id = self.start_then_drop(data, 2048)
        client = self.server.client()
        client.send("resume", entry=entry_id)
        offset = client.transport.take()[0]["offset"]
        client.stream(entry_id, data, start=offset)
        self.assertEqual(client.transport.last(),
                         {"type": "complete", "entry": entry_id, "size": 5000, "sha256": sha256(data)})
        self.assertEqual(Path(self.entry(entry_id).path).read_bytes(), data)

    def test_resume_of_unknown_entry_is_unknown_entry(self) -> None:
        self.client.send("resume", entry=31337)
        self.assertEntryError(self.client.transport.take()[0], 31337, "unknown_entry")

    def test_resume_of_another_sessions_entry_is_unknown_entry(self) -> None:
        entry_id = self.start_then_drop(text_bytes(5000), 1024)
        intruder = self.server.client("session-2")
        intruder.send("resume", entry=entry_id)
        self.assertEntryError(intruder.transport.take()[0], entry_id, "unknown_entry")

    def test_resume_after_resume_grace_is_unknown_entry(self) -> None:
        entry_id = self.start_then_drop(text_bytes(5000), 1024)
        self.clock.advance(300)
        self.client.send("resume", entry=entry_id)
        self.assertEntryError(self.client.transport.take()[0], entry_id, "unknown_entry")

    def test_resume_of_complete_entry_answers_complete(self) -> None:
        entry_id = self.client.upload(text_bytes(10))
        other = self.server.client()
        other.send("resume", entry=entry_id)
        self.assertEqual(other.transport.types(), ["complete"])

    def test_resume_of_complete_entry_gives_its_size_and_sha256(self) -> None:
        data = text_bytes(3000)
        entry_id = self.client.upload(data)
        other = self.server.client()
        other.send("resume", entry=entry_id)
        self.assertEqual(other.transport.take(),
                         [{"type": "complete", "entry": entry_id, "size": 3000, "sha256": sha256(data)}])

    def test_resume_of_failed_entry_answers_its_error(self) -> None:
        entry_id = self.client.announce(size=10)["entry"]
        self.client.frame(entry_id, 3, b"x")
        other = self.server.client()
        other.send("resume", entry=entry_id)
        self.assertEntryError(other.transport.take()[0], entry_id, "bad_offset")

    def test_resume_of_own_entry_repeats_the_offset(self) -> None:
        entry_id = self.client.announce(size=5000)["entry"]
        self.client.stream(entry_id, text_bytes(1024))
        self.client.send("resume", entry=entry_id)
        self.assertEqual(self.client.transport.take()[0]["offset"], 1024)

    def test_resume_moves_an_entry_from_a_live_connection(self) -> None:
        data = text_bytes(5000)
        entry_id = self.client.announce(size=5000)["entry"]
        self.client.stream(entry_id, data[:1024])
        other = self.server.client()
        other.send("resume", entry=entry_id)
        other.stream(entry_id, data, start=other.transport.take()[0]["offset"])
        self.assertEqual(other.transport.last()["sha256"], sha256(data))

    def test_frames_from_the_previous_connection_are_dropped_silently(self) -> None:
        data = text_bytes(5000)
        entry_id = self.client.announce(size=5000)["entry"]
        other = self.server.client()
        other.send("resume", entry=entry_id)
        self.client.transport.take()
        self.client.stream(entry_id, data)
        self.assertEqual((self.client.transport.sent, self.entry(entry_id).received), ([], 0))

    def test_previous_connection_closing_does_not_pause_a_moved_entry(self) -> None:
        entry_id = self.client.announce(size=5000)["entry"]
        other = self.server.client()
        other.send("resume", entry=entry_id)
        self.client.connection.connection_lost()
        self.assertEqual(self.entry(entry_id).status, EntryStatus.UPLOADING)

    def test_resumed_entry_times_out_on_the_new_connection(self) -> None:
        entry_id = self.start_then_drop(text_bytes(5000), 1024)
        self.client.send("resume", entry=entry_id)
        self.client.transport.take()
        self.clock.advance(10)
        self.assertEntryError(self.client.transport.take()[0], entry_id, "timeout")

    def test_welcome_shows_entry_streamed_by_another_connection_as_uploading(self) -> None:
        self.client.announce(size=5000)
        self.assertEqual(self.server.client().welcome["entries"][0]["status"], "uploading")

    def test_last_connection_lost_without_entries_forgets_the_session(self) -> None:
        self.client.connection.connection_lost()
        self.assertNotIn("session-1", self.registry.sessions)


class MovedTests(ConnectionTestCase):
    """A connection whose entry another connection of the session resumed is told ``moved`` and stops counting it."""

    def take_over(self, size: int = 5000, sent: int = 1024) -> tuple[int, Client]:
        entry_id = self.client.announce(size=size)["entry"]
        self.client.stream(entry_id, text_bytes(sent))
        self.client.transport.take()
        other = self.server.client()
        other.send("resume", entry=entry_id)
        return entry_id, other

    def test_old_connection_is_told_moved_with_entry_and_ref(self) -> None:
        entry_id, _ = self.take_over()
        self.assertEqual(self.client.transport.take(), [{"type": "moved", "entry": entry_id, "ref": "f1"}])

    def test_new_connection_is_accepted_at_the_stored_offset(self) -> None:
        _, other = self.take_over()
        self.assertEqual([(m["type"], m["offset"]) for m in other.transport.take()], [("accepted", 1024)])

    def test_old_connections_frames_are_dropped_after_the_move(self) -> None:
        entry_id, other = self.take_over()
        self.client.transport.take()
        self.client.frame(entry_id, 1024, b"x" * 1024)
        self.assertEqual((self.client.transport.sent, self.entry(entry_id).received), ([], 1024))

    def test_old_connection_stays_open_for_its_other_entries(self) -> None:
        self.take_over()
        self.assertOpen(self.client)
        self.assertEqual(self.client.announce(size=10, ref="f2")["type"], "accepted")

    def test_moved_entry_no_longer_counts_towards_the_old_connections_parallel_limit(self) -> None:
        self.server.limits = ConnectionLimits(max_parallel=1, window_chunks=16)
        client = self.server.client("s-busy")
        entry_id = client.announce(size=5000)["entry"]
        self.server.client("s-busy").send("resume", entry=entry_id)
        self.assertEqual(client.announce(size=10, ref="f2")["type"], "accepted")

    def test_resuming_own_entry_sends_no_moved(self) -> None:
        entry_id = self.client.announce(size=5000)["entry"]
        self.client.transport.take()
        self.client.send("resume", entry=entry_id)
        self.assertEqual(self.client.transport.types(), ["accepted"])

    def test_resume_of_a_paused_entry_tells_nobody_moved(self) -> None:
        entry_id = self.client.announce(size=5000)["entry"]
        self.client.connection.connection_lost()
        other = self.server.client()
        other.send("resume", entry=entry_id)
        self.assertEqual(other.transport.types(), ["accepted"])


#: A well-formed example of each client message after auth.
VALID_FIELDS: dict[str, dict[str, object]] = {
    "announce": {"ref": "f1", "slot": "files", "name": "a.txt", "mime": "text/plain", "size": 10},
    "cancel": {"entry": 1},
    "resume": {"entry": 1},
}


@st.composite
def _mutated(draw: st.DrawFn, message_type: str) -> tuple[str, dict[str, object]]:
    """A well-formed ``message_type`` (with ``relative_path`` on an announce) with at most one field dropped or
    replaced by any JSON value: nearly valid messages reach the handlers, where a lone bad field used to escape."""
    fields: dict[str, object] = dict(VALID_FIELDS.get(message_type, {"token": "t"}))
    if message_type == "announce" and draw(st.booleans()):
        fields["relative_path"] = "photos/a.txt"
    name = draw(st.sampled_from(sorted(fields)))
    action = draw(st.sampled_from(["keep", "drop", "replace"]))
    if action == "drop":
        del fields[name]
    elif action == "replace":
        fields[name] = draw(JSON_VALUES)
    return message_type, fields


class FieldTests(ConnectionTestCase):
    """Every missing or mistyped field of every client message closes with protocol_error (4002), never a
    traceback; a missing or non-string token closes with invalid_token (4001)."""

    VALID = VALID_FIELDS
    WRONG_VALUES = [None, True, 1.5, -3, "7", [], {}, [1, "x"], {"a": 1}]

    def test_announce_without_size_is_protocol_error_and_close_4002(self) -> None:
        self.client.send("announce", ref="f1", slot="files", name="a.txt", mime="text/plain")
        self.assertClosedWith(self.client, "protocol_error", CLOSE_PROTOCOL_ERROR)

    def test_announce_with_numeric_ref_is_protocol_error_and_close_4002(self) -> None:
        self.client.send("announce", ref=7, slot="files", name="a.txt", mime="text/plain", size=10)
        self.assertClosedWith(self.client, "protocol_error", CLOSE_PROTOCOL_ERROR)

    def test_announce_with_numeric_relative_path_is_protocol_error(self) -> None:
        self.client.send("announce", ref="f1", slot="files", name="a.txt", mime="text/plain", size=10,
                         relative_path=3)
        self.assertClosedWith(self.client, "protocol_error", CLOSE_PROTOCOL_ERROR)

    def test_announce_with_relative_path_keeps_it_on_the_entry(self) -> None:
        self.client.send("announce", ref="f1", slot="files", name="a.txt", mime="text/plain", size=10,
                         relative_path="photos/2024/a.txt")
        [accepted] = self.client.transport.take()
        self.assertEqual(self.entry(accepted["entry"]).relative_path, "photos/2024/a.txt")

    def test_every_missing_field_is_protocol_error_and_close_4002(self) -> None:
        for message_type, fields in self.VALID.items():
            for name in fields:
                client = self.server.client()
                client.send(message_type, **{k: v for k, v in fields.items() if k != name})
                self.assertClosedWith(client, "protocol_error", CLOSE_PROTOCOL_ERROR)

    @fuzz
    @given(st.sampled_from([(t, f) for t, fields in VALID_FIELDS.items() for f in fields]),
           st.sampled_from(WRONG_VALUES))
    def test_every_mistyped_field_is_protocol_error_and_close_4002(self, field: tuple[str, str],
                                                                    value: object) -> None:
        message_type, name = field
        expected = type(self.VALID[message_type][name])
        assume(type(value) is not expected)  # -3 is an integer: a wrong size or entry, not a wrong type
        client = self.server.client()
        client.send(message_type, **{**self.VALID[message_type], name: value})
        self.assertClosedWith(client, "protocol_error", CLOSE_PROTOCOL_ERROR)

    def test_auth_without_token_is_invalid_token_and_close_4001(self) -> None:
        client = self.server.connect()
        client.send("auth")
        self.assertClosedWith(client, "invalid_token", CLOSE_INVALID_TOKEN)

    @fuzz
    @given(st.sampled_from([None, 5, True, [], {"t": "x"}]))
    def test_non_string_token_is_invalid_token_and_close_4001(self, token: object) -> None:
        client = self.server.connect()
        client.send("auth", token=token)
        self.assertClosedWith(client, "invalid_token", CLOSE_INVALID_TOKEN)

    @fuzz
    @given(st.lists(st.sampled_from(["announce", "cancel", "resume", "auth", "ack", "x"]).flatmap(_mutated),
                    min_size=1, max_size=6))
    def test_any_message_sequence_is_answered_or_closed_never_raised(self, messages: list) -> None:
        # A session of its own per example: entries (and refs) left by earlier examples would answer first.
        self.examples = getattr(self, "examples", 0) + 1
        client = self.server.client(f"fuzz-{self.examples}")
        for message_type, fields in messages:
            client.send(message_type, **fields)  # raises if the connection lets an exception escape
        if client.transport.closed is not None:
            self.assertIn(client.transport.closed[0], (CLOSE_PROTOCOL_ERROR, CLOSE_INVALID_TOKEN))
            self.assertEqual(client.transport.sent[-1]["type"], "error")


class HandshakeTests(ConnectionTestCase):
    """The verifier is given the handshake the connection was opened with."""

    def test_verifier_sees_the_token_and_the_handshake(self) -> None:
        seen = []

        def verifier(token: str, handshake: Handshake) -> object:
            seen.append((token, handshake))
            return self.server.verifier(token, handshake)

        handshake = Handshake(origin="http://localhost:8000", host="localhost:8000", cookies={"sessionid": "k"})
        client = self.server.connect(verifier=verifier, handshake=handshake)  # type: ignore[arg-type]
        token = self.server.token()
        client.send("auth", token=token)
        self.assertEqual(seen, [(token, handshake)])
        self.assertEqual(client.transport.types(), ["welcome"])

    def test_connection_without_a_handshake_presents_an_empty_one(self) -> None:
        seen = []
        client = self.server.connect(verifier=lambda token, handshake: seen.append(handshake) or
                                     self.server.verifier(token))  # type: ignore[arg-type, func-returns-value]
        client.send("auth", token=self.server.token())
        self.assertEqual(seen, [Handshake()])


class FrameLimitTests(ConnectionTestCase):
    """After auth the framing layer is told the largest frame the granted slots allow."""

    def connect_limited(self, slots: dict[str, SlotConfig], session: str = "s2") -> Client:
        client = self.server.connect()
        limits: list[int] = []
        client.transport.limit_frames = limits.append  # type: ignore[attr-defined]
        client.frame_limits = limits  # type: ignore[attr-defined]
        client.send("auth", token=self.server.token(session, slots))
        return client

    def test_frame_limit_is_largest_chunk_plus_header(self) -> None:
        client = self.connect_limited({"a": SlotConfig(chunk_size=65536), "b": SlotConfig(chunk_size=32768)})
        self.assertEqual(client.frame_limits, [65536 + 12])  # type: ignore[attr-defined]

    def test_frame_limit_never_drops_below_a_control_message(self) -> None:
        # Room for a text frame over the 16 KiB control limit, so it is answered protocol_error, not cut at 1009.
        client = self.connect_limited({"a": SlotConfig(chunk_size=1024)})
        self.assertEqual(client.frame_limits, [PRE_AUTH_FRAME_LIMIT])  # type: ignore[attr-defined]

    def test_welcome_states_the_frame_limit_the_framing_layer_was_given(self) -> None:
        client = self.connect_limited({"a": SlotConfig(chunk_size=65536)})
        [welcome] = client.transport.take()
        self.assertEqual([welcome["max_frame"]], client.frame_limits)  # type: ignore[attr-defined]

    def test_welcome_states_max_frame_when_it_is_below_the_largest_chunk(self) -> None:
        self.server.limits = ConnectionLimits(max_frame=100_000)
        client = self.server.client("s3", {"a": SlotConfig(chunk_size=8 * 1024 * 1024)})
        self.assertEqual(client.welcome["max_frame"], 100_000)

    def test_frame_limit_never_exceeds_max_frame(self) -> None:
        self.server.limits = ConnectionLimits(max_frame=100_000)
        client = self.connect_limited({"a": SlotConfig(chunk_size=8 * 1024 * 1024)})
        self.assertEqual(client.frame_limits, [100_000])  # type: ignore[attr-defined]

    def test_failed_auth_sets_no_frame_limit(self) -> None:
        client = self.server.connect()
        client.transport.limit_frames = self.fail  # type: ignore[attr-defined]
        client.send("auth", token="forged.token")
        self.assertEqual(client.transport.closed[0], CLOSE_INVALID_TOKEN)

    def test_frame_limit_covers_a_resumable_entry_from_an_earlier_token(self) -> None:
        # The newest token's slots win, but a paused entry keeps its own chunk size; its frames must still fit.
        first = self.server.client("s2", {"files": SlotConfig(chunk_size=65536)})
        first.announce(size=200_000)
        first.connection.connection_lost()
        client = self.connect_limited({"files": SlotConfig(chunk_size=1024)})
        self.assertGreaterEqual(client.frame_limits[0], 65536 + 12)  # type: ignore[attr-defined]


class DefaultWindowTests(ConnectionTestCase):
    """Without --window, every slot gets about 4 MiB of window, whatever its chunk size."""

    def window_for(self, chunk_size: int) -> int:
        self.server.limits = ConnectionLimits()
        client = self.server.client("w", {"files": SlotConfig(chunk_size=chunk_size)})
        return client.welcome["slots"]["files"]["window"]

    def test_default_window_is_four_mib_of_64k_chunks(self) -> None:
        self.assertEqual(self.window_for(65536), 4 * 1024 * 1024)

    def test_default_window_is_at_least_four_chunks(self) -> None:
        self.assertEqual(self.window_for(4 * 1024 * 1024), 16 * 1024 * 1024)


class WindowBudgetTests(ConnectionTestCase):
    """Many simultaneous uploads share the server-wide window budget."""

    def test_window_shrinks_to_a_share_of_the_budget_when_many_upload(self) -> None:
        self.server.limits = ConnectionLimits(window_budget=1024 * 1024)
        client = self.server.client("budget", {"files": SlotConfig(chunk_size=16384, max_entries=8)})
        windows = [client.announce(size=10_000_000, ref=f"r{index}")["window"] for index in range(8)]
        self.assertEqual(windows[0], 1024 * 1024 // 2)  # two connections open (self.client's and this one)
        self.assertEqual(windows[7], 1024 * 1024 // 8)

    def test_window_never_drops_below_four_chunks(self) -> None:
        self.server.limits = ConnectionLimits(window_budget=1024)
        client = self.server.client("tiny", {"files": SlotConfig(chunk_size=16384)})
        self.assertEqual(client.announce(size=10_000_000)["window"], 4 * 16384)

    def test_a_shared_window_is_acknowledged_before_the_client_must_stop(self) -> None:
        self.server.limits = ConnectionLimits(window_budget=1024 * 1024)
        clients = [self.server.client(f"many-{i}", {"files": SlotConfig(chunk_size=16384)}) for i in range(8)]
        accepted = [client.announce(size=10_000_000, ref=f"r{i}") for i, client in enumerate(clients)]
        last, answer = clients[-1], accepted[-1]
        last.stream(answer["entry"], b"x" * answer["window"], chunk_size=16384)
        acks = [m["offset"] for m in last.transport.take() if m["type"] == "ack"]
        self.assertTrue(acks, "no ack within one window: the client would stall")
        self.assertLessEqual(acks[0], answer["window"] // 4 + 16384)


class FirstWindowTests(ConnectionTestCase):
    """An adaptive entry starts at 16 MiB when the budget allows (a long fat link is full from the first round),
    and at most at its share among the open connections (a burst of announces cannot overcommit the budget)."""

    SLOTS = {"files": SlotConfig(chunk_size=65536, max_file_size=200_000_000, max_entries=8)}

    def setUp(self) -> None:
        super().setUp()
        self.server.limits = ConnectionLimits()

    def test_an_idle_server_grants_sixteen_mib(self) -> None:
        self.assertEqual(self.server.client("first", self.SLOTS).announce(size=100_000_000)["window"], 16 * MiB)

    def test_a_burst_on_open_connections_starts_every_entry_at_its_share(self) -> None:
        clients = [self.server.client(f"c{index}", self.SLOTS) for index in range(31)]  # 32 open with self.client
        windows = [client.announce(size=100_000_000, ref=f"r{index}")["window"] for index, client in enumerate(clients)]
        self.assertEqual(set(windows), {2 * MiB})  # 64 MiB / 32, from the first announce on

    def test_the_first_window_is_at_most_the_entrys_share_of_the_uploading_ones(self) -> None:
        client = self.server.client("one", self.SLOTS)
        windows = [client.announce(size=10_000_000, ref=f"r{index}")["window"] for index in range(8)]
        self.assertEqual(windows[:4], [16 * MiB] * 4)  # two connections: 32 MiB each, and 64 / 4 = 16
        self.assertEqual(windows[7], 64 * MiB // 8)

    def test_a_closed_connection_no_longer_counts(self) -> None:
        others = [self.server.client(f"c{index}", self.SLOTS) for index in range(15)]
        for other in others:
            other.connection.connection_lost()
        self.assertEqual(self.server.client("last", self.SLOTS).announce(size=100_000_000)["window"], 16 * MiB)

    def test_a_fixed_window_is_not_enlarged(self) -> None:
        self.server.limits = ConnectionLimits(window_chunks=16)
        self.assertEqual(self.server.client("fixed", self.SLOTS).announce(size=100_000_000)["window"], 16 * 65536)


class AdoptTests(TestCase):
    """Resume after a reload: a new page continues a paused entry of an earlier page its token names."""

    def setUp(self) -> None:
        self.server = Server(self.mktemp())
        self.data = text_bytes(5000)
        old = self.server.client("old-page")
        old.send("announce", ref="f1", slot="files", name="holiday.txt", mime="text/plain", size=5000,
                 fingerprint={"name": "holiday.txt", "size": 5000, "lastModified": 1700000000, "head_sha256": "ab"})
        self.entry_id = old.transport.take()[0]["entry"]
        old.stream(self.entry_id, self.data[:2048])
        old.connection.connection_lost()

    def test_welcome_offers_the_earlier_pages_paused_entry_with_its_fingerprint_and_offset(self) -> None:
        new = self.server.client("new-page", adopt=("old-page",))
        [offer] = new.welcome["adoptable"]
        self.assertEqual((offer["entry"], offer["offset"], offer["status"], offer["fingerprint"]["head_sha256"]),
                         (self.entry_id, 2048, "paused", "ab"))

    def test_adopting_continues_from_the_offset_and_completes_with_the_exact_sha256(self) -> None:
        new = self.server.client("new-page", adopt=("old-page",))
        new.send("adopt", entry=self.entry_id, ref="again")
        [accepted] = new.transport.take()
        self.assertEqual((accepted["type"], accepted["ref"], accepted["offset"]), ("accepted", "again", 2048))
        new.stream(self.entry_id, self.data, start=2048)
        complete = [m for m in new.transport.take() if m["type"] == "complete"]
        self.assertEqual(complete[0]["sha256"], sha256(self.data))

    def test_a_token_that_does_not_name_the_earlier_session_can_neither_see_nor_adopt(self) -> None:
        stranger = self.server.client("someone-else")
        self.assertEqual(stranger.welcome["adoptable"], [])
        stranger.send("adopt", entry=self.entry_id, ref="steal")
        [answer] = stranger.transport.take()
        self.assertEqual((answer["type"], answer["code"]), ("rejected", "unknown_entry"))
        self.assertEqual(self.server.registry.list_entries("old-page")[0].status.value, "paused")

    def test_a_reload_that_outruns_the_old_pages_socket_still_continues_the_upload(self) -> None:
        # The old page is still streaming when the new one authenticates: the entry is offered and taken over.
        old = self.server.client("old-page-2")
        old.send("announce", ref="f1", slot="files", name="holiday.txt", mime="text/plain", size=5000)
        entry_id = old.transport.take()[0]["entry"]
        old.stream(entry_id, self.data[:3072])
        old.transport.take()
        new = self.server.client("new-page", adopt=("old-page-2",))
        self.assertEqual([o["entry"] for o in new.welcome["adoptable"]], [entry_id])
        new.send("adopt", entry=entry_id, ref="again")
        [accepted] = new.transport.take()
        self.assertEqual((accepted["type"], accepted["offset"]), ("accepted", 3072))
        self.assertEqual([m["type"] for m in old.transport.take()], ["moved"])
        old.stream(entry_id, self.data[3072:4096], start=0)  # in flight from the old page: dropped silently
        self.assertEqual(old.transport.take(), [])
        new.stream(entry_id, self.data, start=3072)
        complete = [m for m in new.transport.take() if m["type"] == "complete"]
        self.assertEqual(complete[0]["sha256"], sha256(self.data))

    def test_discarding_an_offered_entry_deletes_it_and_answers_cancelled(self) -> None:
        new = self.server.client("new-page", adopt=("old-page",))
        new.send("discard", entry=self.entry_id)
        [answer] = new.transport.take()
        self.assertEqual((answer["type"], answer["entry"], answer["ref"]), ("cancelled", self.entry_id, "f1"))
        self.assertEqual(self.server.registry.list_entries("old-page"), [])

    def test_an_entry_the_token_does_not_offer_cannot_be_discarded(self) -> None:
        stranger = self.server.client("someone-else")
        stranger.send("discard", entry=self.entry_id)
        [answer] = stranger.transport.take()
        self.assertEqual((answer["type"], answer["code"]), ("error", "unknown_entry"))
        self.assertEqual(len(self.server.registry.list_entries("old-page")), 1)


class AdaptiveWindowTests(TestCase):
    """With the default limits each entry's window adapts (flow.py) and every ack announces it."""

    SLOTS = {"files": SlotConfig(chunk_size=65536, max_file_size=100_000_000)}

    def setUp(self) -> None:
        self.server = Server(self.mktemp(), limits=ConnectionLimits())
        self.client = self.server.client(slots=self.SLOTS)

    def fill_and_wait(self, client: Client, data: bytes, rounds: int, rtt: float) -> tuple[dict, int]:
        """A client on a link of ``rtt`` that always fills its window; returns (accepted, last window)."""
        accepted = client.announce(size=len(data))
        entry_id, window, sent, acked = accepted["entry"], accepted["window"], 0, 0
        for _ in range(rounds):
            while sent < len(data) and sent - acked < window:
                client.frame(entry_id, sent, data[sent:sent + 65536])
                sent += 65536
            self.server.clock.advance(rtt)
            for message in client.transport.take():
                if message["type"] == "ack":
                    acked, window = message["offset"], message.get("window", window)
        return accepted, window

    def test_every_ack_carries_the_entrys_current_window(self) -> None:
        accepted = self.client.announce(size=20_000_000)
        self.client.stream(accepted["entry"], text_bytes(10_000_000), chunk_size=65536)
        acks = [m for m in self.client.transport.take() if m["type"] == "ack"]
        self.assertTrue(acks)
        self.assertTrue(all(m["window"] >= 4 * 65536 for m in acks), acks)

    def test_the_window_grows_while_acks_come_back_at_the_sending_rate(self) -> None:
        accepted, window = self.fill_and_wait(self.client, text_bytes(60_000_000), rounds=30, rtt=0.1)
        self.assertGreater(window, accepted["window"])

    def test_a_fixed_window_setting_turns_adaptation_off(self) -> None:
        server = Server(self.mktemp(), limits=ConnectionLimits(window_chunks=16))
        client = server.client(slots=self.SLOTS)
        accepted = client.announce(size=20_000_000)
        client.stream(accepted["entry"], text_bytes(10_000_000), chunk_size=65536)
        acks = [m for m in client.transport.take() if m["type"] == "ack"]
        self.assertTrue(acks)
        self.assertEqual({"window" in m for m in acks}, {False})
