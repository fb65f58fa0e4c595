"""Tests for twisted_uploads.registry: sessions, entries, limits, TTLs and timeouts, on a Clock and a temp dir."""

from __future__ import annotations

import os
from pathlib import Path

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from twisted_uploads.entries import Entry, EntryInfo, EntryStatus
from twisted_uploads.errors import ErrorCode, UploadError
from twisted_uploads.registry import UploadRegistry
from twisted_uploads.slots import SlotConfig
from twisted_uploads.storage import TempFileStore, session_directory_name

from .support import SVG_BYTES, RecordingOwner, jpeg_bytes, png_bytes, sha256, text_bytes

SLOTS = {
    "files": SlotConfig(max_entries=3, chunk_size=1024, max_file_size=100_000),
    "avatar": SlotConfig(accept=".jpg,.png", max_file_size=50_000, chunk_size=1024),
    "slow": SlotConfig(max_entries=3, chunk_size=1024, chunk_timeout=3600),
}


class RegistryTestCase(TestCase):
    """A registry with one session ``s1`` on a temp-file store and a Clock."""

    resume_grace = 300.0
    complete_ttl = 3600.0
    max_session_bytes = 10 * 1024**3

    def setUp(self) -> None:
        self.clock = Clock()
        self.store = TempFileStore(self.mktemp())
        self.registry = UploadRegistry(self.store, self.clock, resume_grace=self.resume_grace,
                                       complete_ttl=self.complete_ttl, max_session_bytes=self.max_session_bytes)
        self.session = self.registry.open_session("s1", SLOTS)
        self.owner = RecordingOwner()
        self.session_dir = self.store.root / session_directory_name("s1")

    def announce(self, name: str = "data.txt", size: int = 3000, slot: str = "files", mime: str = "text/plain",
                 ref: str = "f1") -> Entry:
        return self.registry.announce(self.session, self.owner, ref, slot, name, mime, size)

    def feed(self, entry: Entry, data: bytes, start: int = 0, end: int | None = None) -> None:
        """Deliver ``data[start:end]`` in chunks, as the connection does (activity, then completion)."""
        end = len(data) if end is None else end
        for offset in range(start, end, entry.slot.chunk_size):
            try:
                completed = entry.receive(offset, data[offset:min(end, offset + entry.slot.chunk_size)])
                entry.last_activity = self.clock.seconds()
                if completed:
                    self.registry.complete(self.session, entry)
            except UploadError as error:
                self.registry.fail(self.session, entry, error)
                raise

    def upload(self, data: bytes, name: str = "data.txt", slot: str = "files", mime: str = "text/plain",
               ref: str = "f1") -> Entry:
        entry = self.announce(name, len(data), slot, mime, ref)
        self.feed(entry, data)
        return entry

    def info(self, entry_id: int) -> EntryInfo | None:
        return next((i for i in self.registry.list_entries("s1") if i.entry_id == entry_id), None)

    def assertAnnounceRefused(self, code: ErrorCode, **announce: object) -> UploadError:
        error = self.assertRaises(UploadError, self.announce, **announce)
        self.assertEqual(error.code, code)
        return error

    def source_file(self, data: bytes) -> str:
        path = self.mktemp()
        Path(path).write_bytes(data)
        return path


class AnnounceTests(RegistryTestCase):
    """Each limit refuses an announce with its code and creates nothing."""

    max_session_bytes = 10_000

    def test_unknown_slot_is_refused(self) -> None:
        self.assertAnnounceRefused(ErrorCode.UNKNOWN_SLOT, slot="nope")

    def test_oversized_file_is_too_large(self) -> None:
        self.assertAnnounceRefused(ErrorCode.TOO_LARGE, size=100_001)

    def test_negative_size_is_too_large(self) -> None:
        self.assertAnnounceRefused(ErrorCode.TOO_LARGE, size=-5)

    def test_unaccepted_type_is_not_accepted(self) -> None:
        self.assertAnnounceRefused(ErrorCode.NOT_ACCEPTED, name="me.gif", mime="image/gif", slot="avatar")

    def test_svg_is_active_content(self) -> None:
        self.assertAnnounceRefused(ErrorCode.ACTIVE_CONTENT, name="logo.svg", mime="image/svg+xml")

    def test_one_file_beyond_max_entries_is_too_many_files(self) -> None:
        for ref in ("a", "b", "c"):
            self.announce(ref=ref, size=10)
        self.assertAnnounceRefused(ErrorCode.TOO_MANY_FILES, ref="d", size=10)

    def test_complete_entries_count_against_max_entries(self) -> None:
        self.upload(png_bytes(), ref="a", slot="avatar", name="a.png", mime="image/png")
        self.assertAnnounceRefused(ErrorCode.TOO_MANY_FILES, ref="b", slot="avatar", name="b.png", mime="image/png")

    def test_failed_entries_do_not_count_against_max_entries(self) -> None:
        entry = self.announce(ref="a", slot="avatar", name="a.png", mime="image/png")
        self.registry.fail(self.session, entry, UploadError(ErrorCode.TIMEOUT))
        self.assertEqual(self.announce(ref="b", slot="avatar", name="b.png", mime="image/png").status,
                         EntryStatus.UPLOADING)

    def test_consumed_entries_do_not_count_against_max_entries(self) -> None:
        entry = self.upload(png_bytes(), ref="a", slot="avatar", name="a.png", mime="image/png")
        self.registry.consume("s1", entry.entry_id)
        self.assertEqual(self.announce(ref="b", slot="avatar", name="b.png", mime="image/png").status,
                         EntryStatus.UPLOADING)

    def test_max_entries_is_per_slot(self) -> None:
        self.announce(ref="a", slot="avatar", name="a.png", mime="image/png")
        self.assertEqual(self.announce(ref="b").status, EntryStatus.UPLOADING)

    def test_declared_bytes_beyond_session_quota_are_quota_exceeded(self) -> None:
        self.announce(ref="a", size=6000)
        self.assertAnnounceRefused(ErrorCode.QUOTA_EXCEEDED, ref="b", size=4001)

    def test_declared_bytes_up_to_session_quota_are_accepted(self) -> None:
        self.announce(ref="a", size=6000)
        self.assertEqual(self.announce(ref="b", size=4000).client_size, 4000)

    def test_failed_entries_do_not_count_against_quota(self) -> None:
        entry = self.announce(ref="a", size=6000)
        self.registry.fail(self.session, entry, UploadError(ErrorCode.TIMEOUT))
        self.assertEqual(self.announce(ref="b", size=6000).client_size, 6000)

    def test_refused_announce_creates_no_entry_and_no_file(self) -> None:
        self.assertAnnounceRefused(ErrorCode.TOO_LARGE, size=100_001)
        self.assertEqual((self.registry.list_entries("s1"), self.session_dir.exists()), ([], False))

    def test_storage_failure_at_open_is_storage_failed(self) -> None:
        def refuse(session_id: str, entry_id: int) -> None:
            raise OSError(28, "No space left on device")

        self.store.open = refuse  # type: ignore[method-assign]
        self.assertIn("No space left", self.assertAnnounceRefused(ErrorCode.STORAGE_FAILED).message)

    def test_announced_entry_is_uploading_from_zero(self) -> None:
        info = self.announce(size=3000).info()
        self.assertEqual((info.status, info.received, info.client_size, info.progress),
                         (EntryStatus.UPLOADING, 0, 3000, 0))

    def test_announced_entry_is_owned_by_the_announcer(self) -> None:
        self.assertIs(self.announce().owner, self.owner)

    def test_announced_entry_keeps_ref_slot_and_type(self) -> None:
        info = self.announce(ref="ref-1", slot="files", mime="text/plain").info()
        self.assertEqual((info.ref, info.slot, info.client_type), ("ref-1", "files", "text/plain"))

    def test_announced_name_is_sanitised(self) -> None:
        self.assertEqual(self.announce(name="../../etc/passwd").client_name, "passwd")

    def test_announced_entry_writes_a_part_file(self) -> None:
        entry = self.announce()
        self.assertEqual(sorted(os.listdir(self.session_dir)), [f"{entry.entry_id}.json", f"{entry.entry_id}.part"])

    def test_entry_ids_are_distinct_unsigned_32_bit_integers(self) -> None:
        ids = [self.announce(ref=ref, size=1).entry_id for ref in "abc"]
        self.assertEqual(len(set(ids)), 3)
        self.assertTrue(all(0 <= i < 2**32 for i in ids))


class CompletionTests(RegistryTestCase):
    """Every declared byte makes a complete entry: a closed file, its hash and the consume TTL."""

    def test_complete_entry_has_the_sha256_of_its_content(self) -> None:
        data = text_bytes(5000)
        self.assertEqual(self.upload(data).info().sha256, sha256(data))

    def test_complete_entry_file_holds_the_content(self) -> None:
        data = text_bytes(5000)
        self.assertEqual(Path(self.upload(data).info().path).read_bytes(), data)

    def test_complete_entry_file_is_in_the_session_directory(self) -> None:
        entry = self.upload(text_bytes(5000))
        self.assertEqual(Path(entry.path), self.session_dir / str(entry.entry_id))

    def test_complete_entry_reports_full_progress(self) -> None:
        info = self.upload(text_bytes(5000)).info()
        self.assertEqual((info.status, info.complete, info.received, info.progress),
                         (EntryStatus.COMPLETE, True, 5000, 100))

    def test_partial_entry_reports_progress_from_stored_bytes(self) -> None:
        entry = self.announce(size=4096)
        self.feed(entry, text_bytes(4096), end=2048)
        self.assertEqual((entry.info().progress, entry.info().complete), (50, False))

    def test_fewer_bytes_never_complete(self) -> None:
        entry = self.announce(size=3000)
        self.feed(entry, text_bytes(3000), end=2999)
        self.assertEqual(entry.status, EntryStatus.UPLOADING)

    def test_zero_byte_file_completes_at_once(self) -> None:
        info = self.announce(name="empty.txt", size=0).info()
        self.assertEqual((info.status, info.sha256, Path(info.path).read_bytes()),
                         (EntryStatus.COMPLETE, sha256(b""), b""))

    def test_zero_byte_file_of_magic_type_is_refused_without_leaving_an_entry(self) -> None:
        # protocol.md §4: "A rejected announce creates no entry".
        self.assertAnnounceRefused(ErrorCode.TYPE_MISMATCH, name="empty.png", mime="image/png", size=0)
        self.assertEqual(self.registry.list_entries("s1"), [])

    def test_content_mismatch_in_a_small_file_is_found_at_its_last_chunk(self) -> None:
        entry = self.announce(name="me.png", size=2000, slot="avatar", mime="image/png")
        self.assertRaises(UploadError, self.feed, entry, text_bytes(2000))
        self.assertEqual(entry.info().error, "type_mismatch")

    def test_complete_entry_does_not_time_out(self) -> None:
        entry = self.upload(text_bytes(100))
        self.clock.advance(60)
        self.assertEqual(entry.status, EntryStatus.COMPLETE)


class FailureTests(RegistryTestCase):
    """A failed entry loses its bytes at once but stays, with its error, until consumed."""

    def test_fail_deletes_the_partial_file(self) -> None:
        entry = self.announce(size=3000)
        self.feed(entry, text_bytes(3000), end=2048)
        self.registry.fail(self.session, entry, UploadError(ErrorCode.BAD_OFFSET, "expected 2048"))
        self.assertEqual(list(self.session_dir.glob("*.part")), [])

    def test_fail_keeps_the_entry_with_its_error(self) -> None:
        entry = self.announce(size=3000)
        self.registry.fail(self.session, entry, UploadError(ErrorCode.BAD_OFFSET, "expected 2048"))
        info = self.info(entry.entry_id)
        self.assertEqual((info.status, info.error, info.error_message, info.path),
                         (EntryStatus.ERROR, "bad_offset", "expected 2048", None))

    def test_fail_of_a_finished_entry_changes_nothing(self) -> None:
        entry = self.upload(text_bytes(100))
        self.registry.fail(self.session, entry, UploadError(ErrorCode.TIMEOUT))
        self.assertEqual((entry.status, os.path.exists(entry.path)), (EntryStatus.COMPLETE, True))

    def test_failed_entry_is_listed_in_welcome_form_with_its_code(self) -> None:
        entry = self.announce(size=3000)
        self.registry.fail(self.session, entry, UploadError(ErrorCode.TIMEOUT))
        self.assertEqual(entry.info().to_dict(), {"entry": entry.entry_id, "ref": "f1", "slot": "files",
                                                  "name": "data.txt", "size": 3000, "offset": 0,
                                                  "status": "error", "code": "timeout"})


class ListingTests(RegistryTestCase):
    """What the application sees through the bridge."""

    def test_unknown_session_lists_nothing(self) -> None:
        self.assertEqual(self.registry.list_entries("nobody"), [])

    def test_entries_are_listed_oldest_first(self) -> None:
        ids = [self.announce(ref=ref, size=5).entry_id for ref in "abc"]
        self.assertEqual([i.entry_id for i in self.registry.list_entries("s1")], ids)

    def test_listing_can_be_limited_to_a_slot(self) -> None:
        self.announce(ref="a")
        avatar = self.announce(ref="b", slot="avatar", name="b.png", mime="image/png")
        self.assertEqual([i.entry_id for i in self.registry.list_entries("s1", "avatar")], [avatar.entry_id])

    def test_listed_entries_are_frozen_copies(self) -> None:
        entry = self.announce(size=3000)
        [info] = self.registry.list_entries("s1")
        self.feed(entry, text_bytes(3000), end=1024)
        self.assertEqual(info.received, 0)

    def test_finished_entries_are_complete_and_failed_only(self) -> None:
        complete = self.upload(text_bytes(10), ref="a")
        failed = self.announce(ref="b")
        self.registry.fail(self.session, failed, UploadError(ErrorCode.TIMEOUT))
        self.announce(ref="c")
        self.assertEqual([(i.entry_id, i.status) for i in self.registry.finished_entries("s1", "files")],
                         [(complete.entry_id, EntryStatus.COMPLETE), (failed.entry_id, EntryStatus.ERROR)])

    def test_finished_entries_leave_out_cancelled_entries(self) -> None:
        self.announce(ref="a")
        self.registry.cancel("s1", "a")
        self.assertEqual(self.registry.finished_entries("s1", "files"), [])

    def test_finished_entries_of_unknown_session_are_empty(self) -> None:
        self.assertEqual(self.registry.finished_entries("nobody", "files"), [])


class ConsumeTests(RegistryTestCase):
    """The application takes an entry: its file goes and the registry forgets it."""

    def test_consume_deletes_the_file(self) -> None:
        entry = self.upload(text_bytes(100))
        self.registry.consume("s1", entry.entry_id)
        self.assertFalse(os.path.exists(entry.info().path or self.session_dir / str(entry.entry_id)))

    def test_consume_forgets_the_entry(self) -> None:
        entry = self.upload(text_bytes(100))
        self.registry.consume("s1", entry.entry_id)
        self.assertEqual(self.registry.list_entries("s1"), [])

    def test_consume_is_idempotent(self) -> None:
        entry = self.upload(text_bytes(100))
        self.registry.consume("s1", entry.entry_id)
        self.registry.consume("s1", entry.entry_id)
        self.assertEqual(self.registry.list_entries("s1"), [])

    def test_consume_in_unknown_session_does_nothing(self) -> None:
        self.registry.consume("nobody", 1)

    def test_consume_leaves_other_entries(self) -> None:
        first = self.upload(text_bytes(100), ref="a")
        second = self.upload(text_bytes(100), ref="b")
        self.registry.consume("s1", first.entry_id)
        self.assertEqual([i.entry_id for i in self.registry.list_entries("s1")], [second.entry_id])

    def test_consume_of_last_entry_removes_the_session_directory(self) -> None:
        entry = self.upload(text_bytes(100))
        self.registry.consume("s1", entry.entry_id)
        self.assertFalse(self.session_dir.exists())

    def test_consume_of_last_entry_forgets_an_unconnected_session(self) -> None:
        entry = self.upload(text_bytes(100))
        self.registry.consume("s1", entry.entry_id)
        self.assertNotIn("s1", self.registry.sessions)

    def test_consume_while_connected_leaves_an_empty_session_directory(self) -> None:
        self.registry.attach(self.session)
        entry = self.upload(text_bytes(100))
        self.registry.consume("s1", entry.entry_id)
        self.assertEqual(os.listdir(self.session_dir), [])

    def test_consume_stops_the_expiry_timer(self) -> None:
        entry = self.upload(text_bytes(100))
        self.registry.consume("s1", entry.entry_id)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class CancelTests(RegistryTestCase):
    """The application cancels by ref or id; the streaming connection is told."""

    def test_cancel_by_ref_cancels(self) -> None:
        self.announce(ref="photo-1")
        self.assertEqual(self.registry.cancel("s1", "photo-1").status, EntryStatus.CANCELLED)

    def test_cancel_by_entry_id_cancels(self) -> None:
        entry = self.announce()
        self.assertEqual(self.registry.cancel("s1", entry.entry_id).status, EntryStatus.CANCELLED)

    def test_cancel_by_entry_id_as_text_cancels(self) -> None:
        entry = self.announce()
        self.assertEqual(self.registry.cancel("s1", str(entry.entry_id)).status, EntryStatus.CANCELLED)

    def test_cancel_of_unknown_ref_is_unknown_entry(self) -> None:
        error = self.assertRaises(UploadError, self.registry.cancel, "s1", "nope")
        self.assertEqual(error.code, ErrorCode.UNKNOWN_ENTRY)

    def test_cancel_of_unknown_id_is_unknown_entry(self) -> None:
        error = self.assertRaises(UploadError, self.registry.cancel, "s1", 12345)
        self.assertEqual(error.code, ErrorCode.UNKNOWN_ENTRY)

    def test_cancel_in_unknown_session_is_unknown_entry(self) -> None:
        error = self.assertRaises(UploadError, self.registry.cancel, "nobody", "f1")
        self.assertEqual(error.code, ErrorCode.UNKNOWN_ENTRY)

    def test_cancel_of_another_sessions_entry_is_unknown_entry(self) -> None:
        entry = self.announce()
        self.registry.open_session("s2", SLOTS)
        error = self.assertRaises(UploadError, self.registry.cancel, "s2", entry.entry_id)
        self.assertEqual((error.code, entry.status), (ErrorCode.UNKNOWN_ENTRY, EntryStatus.UPLOADING))

    def test_cancel_deletes_the_partial_file(self) -> None:
        entry = self.announce(size=3000)
        self.feed(entry, text_bytes(3000), end=1024)
        self.registry.cancel("s1", "f1")
        self.assertEqual(list(self.session_dir.glob("*.part")), [])

    def test_cancel_tells_the_streaming_connection(self) -> None:
        entry = self.announce()
        self.registry.cancel("s1", "f1")
        self.assertEqual(self.owner.changes, [(entry.entry_id, "cancelled")])

    def test_cancelled_streaming_entry_is_kept_briefly_for_late_frames(self) -> None:
        entry = self.announce()
        self.registry.cancel("s1", "f1")
        self.clock.advance(59)
        self.assertEqual(self.info(entry.entry_id).status, EntryStatus.CANCELLED)

    def test_cancelled_streaming_entry_is_forgotten_after_a_minute(self) -> None:
        entry = self.announce()
        self.registry.cancel("s1", "f1")
        self.clock.advance(60)
        self.assertIsNone(self.info(entry.entry_id))

    def test_cancel_of_paused_entry_forgets_it_at_once(self) -> None:
        self.registry.attach(self.session)
        entry = self.announce()
        self.registry.detach(self.session, self.owner)
        self.registry.cancel("s1", entry.entry_id)
        self.assertIsNone(self.info(entry.entry_id))

    def test_cancel_of_complete_entry_deletes_file_and_forgets_it(self) -> None:
        entry = self.upload(text_bytes(100))
        path = entry.path
        info = self.registry.cancel("s1", "f1")
        self.assertEqual((info.status, os.path.exists(path), self.info(entry.entry_id)),
                         (EntryStatus.CANCELLED, False, None))

    def test_cancel_of_last_entry_removes_the_session_directory_after_the_grace_minute(self) -> None:
        self.announce()
        self.registry.cancel("s1", "f1")
        self.clock.advance(60)
        self.assertFalse(self.session_dir.exists())

    def test_cancelled_entry_does_not_time_out(self) -> None:
        entry = self.announce()
        self.registry.cancel("s1", "f1")
        self.clock.advance(30)
        self.assertEqual(entry.status, EntryStatus.CANCELLED)


class ResumeGraceTests(RegistryTestCase):
    """A closed connection's unfinished entries pause and wait ``resume_grace`` for a resume."""

    def setUp(self) -> None:
        super().setUp()
        self.registry.attach(self.session)

    def test_detach_pauses_unfinished_entries(self) -> None:
        entry = self.announce()
        self.registry.detach(self.session, self.owner)
        self.assertEqual((entry.status, entry.owner), (EntryStatus.PAUSED, None))

    def test_detach_keeps_the_received_offset(self) -> None:
        entry = self.announce(size=3000)
        self.feed(entry, text_bytes(3000), end=2048)
        self.registry.detach(self.session, self.owner)
        self.assertEqual(self.info(entry.entry_id).received, 2048)

    def test_detach_leaves_complete_entries_complete(self) -> None:
        entry = self.upload(text_bytes(10))
        self.registry.detach(self.session, self.owner)
        self.assertEqual(entry.status, EntryStatus.COMPLETE)

    def test_detach_leaves_other_connections_entries_alone(self) -> None:
        entry = self.announce()
        self.registry.attach(self.session)
        self.registry.detach(self.session, RecordingOwner())
        self.assertEqual(entry.status, EntryStatus.UPLOADING)

    def test_paused_entry_is_kept_until_resume_grace(self) -> None:
        entry = self.announce()
        self.registry.detach(self.session, self.owner)
        self.clock.advance(299)
        self.assertEqual(self.info(entry.entry_id).status, EntryStatus.PAUSED)

    def test_paused_entry_is_deleted_when_resume_grace_ends(self) -> None:
        entry = self.announce(size=3000)
        self.feed(entry, text_bytes(3000), end=1024)
        self.registry.detach(self.session, self.owner)
        self.clock.advance(300)
        self.assertEqual((self.info(entry.entry_id), self.session_dir.exists()), (None, False))

    def test_paused_entry_does_not_time_out(self) -> None:
        entry = self.announce()
        self.registry.detach(self.session, self.owner)
        self.clock.advance(11)
        self.assertEqual(entry.status, EntryStatus.PAUSED)

    def test_claim_within_grace_keeps_the_entry(self) -> None:
        entry = self.announce(slot="slow")
        self.registry.detach(self.session, self.owner)
        self.clock.advance(200)
        self.registry.claim(self.session, entry, RecordingOwner())
        self.clock.advance(200)
        self.assertEqual(self.info(entry.entry_id).status, EntryStatus.UPLOADING)

    def test_claim_by_another_owner_tells_the_previous_owner(self) -> None:
        entry = self.announce()
        self.registry.claim(self.session, entry, RecordingOwner())
        self.assertEqual(self.owner.changes, [(entry.entry_id, "uploading")])

    def test_claim_by_the_same_owner_tells_nobody(self) -> None:
        entry = self.announce()
        self.registry.claim(self.session, entry, self.owner)
        self.assertEqual(self.owner.changes, [])

    def test_detach_of_last_connection_without_entries_forgets_the_session(self) -> None:
        self.registry.detach(self.session, self.owner)
        self.assertNotIn("s1", self.registry.sessions)

    def test_detach_with_entries_keeps_the_session(self) -> None:
        self.announce()
        self.registry.detach(self.session, self.owner)
        self.assertIn("s1", self.registry.sessions)


class ZeroResumeGraceTests(RegistryTestCase):
    """``resume_grace = 0`` deletes unfinished entries on disconnect."""

    resume_grace = 0.0

    def test_detach_deletes_unfinished_entries_at_once(self) -> None:
        self.registry.attach(self.session)
        entry = self.announce()
        self.registry.detach(self.session, self.owner)
        self.assertEqual((self.info(entry.entry_id), self.session_dir.exists()), (None, False))

    def test_detach_keeps_complete_entries(self) -> None:
        self.registry.attach(self.session)
        entry = self.upload(text_bytes(10))
        self.registry.detach(self.session, self.owner)
        self.assertEqual(self.info(entry.entry_id).status, EntryStatus.COMPLETE)


class CompleteTTLTests(RegistryTestCase):
    """Finished entries wait ``complete_ttl`` to be consumed, connection or not."""

    def test_complete_entry_is_kept_until_complete_ttl(self) -> None:
        entry = self.upload(text_bytes(10))
        self.clock.advance(3599)
        self.assertTrue(os.path.exists(entry.path))

    def test_complete_entry_expires_after_complete_ttl(self) -> None:
        entry = self.upload(text_bytes(10))
        path = entry.path
        self.clock.advance(3600)
        self.assertEqual((self.info(entry.entry_id), os.path.exists(path)), (None, False))

    def test_expiry_of_last_entry_removes_the_session_directory(self) -> None:
        self.upload(text_bytes(10))
        self.clock.advance(3600)
        self.assertFalse(self.session_dir.exists())

    def test_failed_entry_expires_after_complete_ttl(self) -> None:
        entry = self.announce()
        self.registry.fail(self.session, entry, UploadError(ErrorCode.TIMEOUT))
        self.clock.advance(3600)
        self.assertIsNone(self.info(entry.entry_id))

    def test_complete_ttl_runs_while_a_connection_is_open(self) -> None:
        self.registry.attach(self.session)
        entry = self.upload(text_bytes(10))
        self.clock.advance(3600)
        self.assertEqual((self.info(entry.entry_id), os.listdir(self.session_dir)), (None, []))


class ChunkTimeoutTests(RegistryTestCase):
    """An uploading entry fails with ``timeout`` after ``chunk_timeout`` seconds without a chunk."""

    def test_idle_entry_times_out(self) -> None:
        entry = self.announce()
        self.clock.advance(10)
        self.assertEqual((entry.status, entry.info().error), (EntryStatus.ERROR, "timeout"))

    def test_entry_does_not_time_out_early(self) -> None:
        entry = self.announce()
        self.clock.advance(9.99)
        self.assertEqual(entry.status, EntryStatus.UPLOADING)

    def test_activity_rearms_the_timeout(self) -> None:
        entry = self.announce(size=3000)
        self.clock.advance(6)
        self.feed(entry, text_bytes(3000), end=1024)
        self.clock.advance(9.99)
        self.assertEqual(entry.status, EntryStatus.UPLOADING)

    def test_timeout_counts_from_the_last_activity(self) -> None:
        entry = self.announce(size=3000)
        self.clock.advance(6)
        self.feed(entry, text_bytes(3000), end=1024)
        self.clock.advance(10)
        self.assertEqual(entry.status, EntryStatus.ERROR)

    def test_timeout_tells_the_streaming_connection(self) -> None:
        entry = self.announce()
        self.clock.advance(10)
        self.assertEqual(self.owner.changes, [(entry.entry_id, "error")])

    def test_timeout_deletes_the_partial_file(self) -> None:
        entry = self.announce(size=3000)
        self.feed(entry, text_bytes(3000), end=1024)
        self.clock.advance(10)
        self.assertEqual(list(self.session_dir.glob("*.part")), [])

    def test_timeout_follows_the_slot_setting(self) -> None:
        entry = self.announce(slot="slow")
        self.clock.advance(3599)
        self.assertEqual(entry.status, EntryStatus.UPLOADING)


class IngestTests(RegistryTestCase):
    """The no-JavaScript fallback records files with the same rules, never raising for a bad file."""

    def ingest(self, data: bytes, name: str = "me.png", slot: str = "avatar", mime: str = "image/png",
               ref: str | None = None, session: str = "s1") -> tuple[EntryInfo, str]:
        source = self.source_file(data)
        return self.registry.ingest_file(session, SLOTS, slot, name, mime, source, ref), source

    def test_good_file_is_complete(self) -> None:
        info, _ = self.ingest(png_bytes())
        self.assertEqual((info.status, info.complete, info.error), (EntryStatus.COMPLETE, True, None))

    def test_good_file_has_its_sha256(self) -> None:
        info, _ = self.ingest(jpeg_bytes(), name="me.jpg", mime="image/jpeg")
        self.assertEqual(info.sha256, sha256(jpeg_bytes()))

    def test_good_file_is_moved_into_the_store(self) -> None:
        info, source = self.ingest(png_bytes())
        self.assertEqual((Path(info.path).read_bytes(), os.path.exists(source), Path(info.path).parent),
                         (png_bytes(), False, self.session_dir))

    def test_good_file_is_listed_as_finished(self) -> None:
        info, _ = self.ingest(png_bytes())
        self.assertEqual([i.entry_id for i in self.registry.finished_entries("s1", "avatar")], [info.entry_id])

    def test_good_file_records_size_type_and_sanitised_name(self) -> None:
        info, _ = self.ingest(png_bytes(), name="C:\\fakepath\\me.png")
        self.assertEqual((info.client_name, info.client_type, info.client_size, info.received, info.progress),
                         ("me.png", "image/png", len(png_bytes()), len(png_bytes()), 100))

    def test_given_ref_is_kept(self) -> None:
        self.assertEqual(self.ingest(png_bytes(), ref="form-1")[0].ref, "form-1")

    def test_missing_ref_is_generated(self) -> None:
        self.assertTrue(self.ingest(png_bytes())[0].ref)

    def test_spoofed_file_is_an_errored_entry(self) -> None:
        info, _ = self.ingest(text_bytes(100))
        self.assertEqual((info.status, info.error, info.path, info.sha256),
                         (EntryStatus.ERROR, "type_mismatch", None, None))

    def test_bad_file_source_is_deleted(self) -> None:
        _, source = self.ingest(text_bytes(100))
        self.assertFalse(os.path.exists(source))

    def test_bad_file_is_listed_as_finished(self) -> None:
        info, _ = self.ingest(text_bytes(100))
        self.assertEqual(self.registry.finished_entries("s1", "avatar")[0].error, "type_mismatch")

    def test_oversized_file_is_too_large(self) -> None:
        self.assertEqual(self.ingest(png_bytes(pad_to=50_001))[0].error, "too_large")

    def test_unaccepted_file_is_not_accepted(self) -> None:
        self.assertEqual(self.ingest(b"GIF89a", name="a.gif", mime="image/gif")[0].error, "not_accepted")

    def test_active_content_by_name_is_active_content(self) -> None:
        self.assertEqual(self.ingest(SVG_BYTES, name="a.svg", slot="files", mime="image/svg+xml")[0].error,
                         "active_content")

    def test_active_content_by_content_is_active_content(self) -> None:
        self.assertEqual(self.ingest(SVG_BYTES, name="a.txt", slot="files", mime="text/plain")[0].error,
                         "active_content")

    def test_unknown_slot_is_unknown_slot(self) -> None:
        self.assertEqual(self.ingest(png_bytes(), slot="nope")[0].error, "unknown_slot")

    def test_file_beyond_max_entries_is_too_many_files(self) -> None:
        self.ingest(png_bytes())
        self.assertEqual(self.ingest(png_bytes())[0].error, "too_many_files")

    def test_errored_file_does_not_count_against_max_entries(self) -> None:
        self.ingest(text_bytes(10))
        self.assertEqual(self.ingest(png_bytes())[0].status, EntryStatus.COMPLETE)

    def test_file_for_a_new_session_opens_it(self) -> None:
        info, _ = self.ingest(png_bytes(), session="fresh")
        self.assertEqual([i.entry_id for i in self.registry.list_entries("fresh")], [info.entry_id])

    def test_ingested_file_expires_after_complete_ttl(self) -> None:
        info, _ = self.ingest(png_bytes())
        self.clock.advance(3600)
        self.assertEqual((self.registry.list_entries("s1"), os.path.exists(info.path)), ([], False))

    def test_consumed_ingested_file_leaves_no_session_directory(self) -> None:
        info, _ = self.ingest(png_bytes())
        self.registry.consume("s1", info.entry_id)
        self.assertFalse(self.session_dir.exists())


class SessionTests(RegistryTestCase):
    """Sessions are created by tokens and the newest token's slots win."""

    def test_open_session_returns_the_existing_session(self) -> None:
        self.assertIs(self.registry.open_session("s1", SLOTS), self.session)

    def test_newest_slots_win(self) -> None:
        self.registry.open_session("s1", {"other": SlotConfig()})
        self.assertEqual(set(self.session.slots), {"other"})

    def test_existing_entries_keep_their_slot_config(self) -> None:
        entry = self.announce()
        self.registry.open_session("s1", {"files": SlotConfig(chunk_size=2048)})
        self.assertEqual(entry.slot.chunk_size, 1024)

    def test_registry_iterates_over_sessions(self) -> None:
        self.assertEqual(list(self.registry), [self.session])

    def test_shutdown_stops_every_timer(self) -> None:
        self.announce(ref="a")
        self.upload(text_bytes(10), ref="b")
        self.registry.shutdown()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_shutdown_keeps_every_entrys_bytes_and_record_for_the_next_start(self) -> None:
        partial = self.announce(ref="a", size=3000)
        self.feed(partial, text_bytes(3000), end=1024)
        complete = self.upload(text_bytes(10), ref="b")
        self.registry.shutdown()
        self.assertEqual(sorted(os.listdir(self.session_dir)), sorted([
            f"{partial.entry_id}.part", f"{partial.entry_id}.json", str(complete.entry_id),
            f"{complete.entry_id}.json"]))


class SweepAtStartTests(TestCase):
    """A new server sweeps only what no record owns and is older than the longest TTL."""

    def test_server_start_removes_old_unrecorded_files_and_leaves_unrelated_ones(self) -> None:
        from twisted_uploads.service import UploadServer

        root = Path(self.mktemp())
        old = TempFileStore(root)
        orphan = Path(old.open("old-session", 1).close())
        os.utime(orphan, (0, 0))
        os.utime(orphan.parent, (0, 0))
        (root / "unrelated").mkdir()
        UploadServer(str(root), verifier=lambda token: None, clock=Clock())  # type: ignore[arg-type, return-value]
        self.assertEqual(sorted(p.name for p in root.iterdir() if p.name != ".owners"), ["unrelated"])

    def test_server_start_keeps_recent_unrecorded_files(self) -> None:
        from twisted_uploads.service import UploadServer

        root = Path(self.mktemp())
        # Another server has just opened this file; its record follows in the same reactor turn.
        recent = Path(TempFileStore(root).open("new-session", 1).close())
        UploadServer(str(root), verifier=lambda token: None, clock=Clock())  # type: ignore[arg-type, return-value]
        self.assertTrue(recent.exists())


class ClaimTests(RegistryTestCase):
    """Consuming is a claim: one request gets each complete entry, and nothing deletes it from under that request."""

    def test_complete_entries_are_claimed_once(self) -> None:
        entry = self.upload(text_bytes(10))
        first = self.registry.claim_complete("s1", "files")
        second = self.registry.claim_complete("s1", "files")
        self.assertEqual(([i.entry_id for i in first], second), ([entry.entry_id], []))

    def test_failed_and_uploading_entries_are_never_claimed(self) -> None:
        failed = self.announce(ref="bad", size=10)
        self.registry.fail(self.session, failed, UploadError(ErrorCode.BAD_OFFSET, "expected 0"))
        self.announce(ref="busy", size=3000)
        self.assertEqual(self.registry.claim_complete("s1", "files"), [])

    def test_a_released_entry_can_be_claimed_again_untouched(self) -> None:
        data = text_bytes(10)
        entry = self.upload(data)
        self.registry.claim_complete("s1", "files")
        self.registry.release("s1", [entry.entry_id])
        [again] = self.registry.claim_complete("s1", "files")
        self.assertEqual(Path(again.path).read_bytes(), data)

    def test_a_cancel_while_claimed_waits_for_the_claim_to_end(self) -> None:
        entry = self.upload(text_bytes(10))
        [info] = self.registry.claim_complete("s1", "files")
        self.registry.cancel("s1", "f1")
        self.assertTrue(Path(info.path).exists(), "deleted while a request reads it")
        self.registry.release("s1", [entry.entry_id])
        self.assertEqual((Path(info.path).exists(), self.registry.list_entries("s1")), (False, []))

    def test_the_ttl_does_not_delete_a_claimed_entry(self) -> None:
        entry = self.upload(text_bytes(10))
        [info] = self.registry.claim_complete("s1", "files", ttl=2 * self.complete_ttl)
        self.clock.advance(self.complete_ttl + 1)
        self.assertTrue(Path(info.path).exists(), "deleted while a request reads it")
        self.registry.consume("s1", entry.entry_id)
        self.assertFalse(Path(info.path).exists())

    def test_an_entry_released_after_its_deadline_goes_then(self) -> None:
        entry = self.upload(text_bytes(10))
        [info] = self.registry.claim_complete("s1", "files", ttl=2 * self.complete_ttl)
        self.clock.advance(self.complete_ttl + 1)
        self.registry.release("s1", [entry.entry_id])
        self.assertEqual((Path(info.path).exists(), self.registry.list_entries("s1")), (False, []))

    def test_a_claim_nobody_ends_runs_out_and_the_entry_is_available_again(self) -> None:
        self.upload(text_bytes(10))
        self.registry.claim_complete("s1", "files", ttl=30)
        self.clock.advance(31)
        self.assertEqual(len(self.registry.claim_complete("s1", "files")), 1)


class SessionBoundTests(RegistryTestCase):
    """Failed and cancelled entries count towards the session's bound, so a flood of bad announces ends."""

    def test_announce_and_one_bad_byte_in_a_loop_ends_in_too_many_entries(self) -> None:
        self.registry.max_session_entries = 20
        refused = None
        for attempt in range(1000):
            try:
                entry = self.announce(ref=f"r{attempt}", size=10)
            except UploadError as error:
                refused = (attempt, error.code)
                break
            self.registry.fail(self.session, entry, UploadError(ErrorCode.BAD_OFFSET, "expected 0"))
        self.assertEqual(refused, (20, ErrorCode.TOO_MANY_ENTRIES))
        self.assertEqual(len(self.clock.getDelayedCalls()), 20)

    def test_the_bound_frees_up_as_failed_entries_expire(self) -> None:
        self.registry.max_session_entries = 1
        entry = self.announce(ref="a", size=10)
        self.registry.fail(self.session, entry, UploadError(ErrorCode.BAD_OFFSET, "expected 0"))
        self.assertAnnounceRefused(ErrorCode.TOO_MANY_ENTRIES, ref="b", size=10)
        self.clock.advance(self.complete_ttl + 1)
        self.assertEqual(self.announce(ref="b", size=10).status, EntryStatus.UPLOADING)


class OpenFileTests(RegistryTestCase):
    """A paused entry holds no file descriptor, and the server keeps at most max_open_files open."""

    def test_a_paused_entry_holds_no_open_file(self) -> None:
        entry = self.announce(size=3000)
        self.feed(entry, text_bytes(3000), end=1024)
        part = str(self.session_dir / f"{entry.entry_id}.part")
        self.assertIn(part, _open_paths())
        self.registry.detach(self.session, self.owner)
        self.assertEqual((part in _open_paths(), self.registry.open_files), (False, 0))

    def test_a_resumed_entry_reopens_its_file_and_continues(self) -> None:
        data = text_bytes(3000)
        entry = self.announce(size=3000)
        self.feed(entry, data, end=1024)
        self.registry.detach(self.session, self.owner)
        self.registry.claim(self.session, entry, RecordingOwner())
        self.feed(entry, data, start=1024)
        self.assertEqual((entry.status, entry.sha256, self.registry.open_files),
                         (EntryStatus.COMPLETE, sha256(data), 0))

    def test_beyond_max_open_files_announce_answers_server_busy(self) -> None:
        self.registry.max_open_files = 2
        self.announce(ref="a", size=10)
        self.announce(ref="b", size=10)
        self.assertAnnounceRefused(ErrorCode.SERVER_BUSY, ref="c", size=10)

    def test_a_resume_beyond_max_open_files_answers_server_busy_and_keeps_the_entry(self) -> None:
        self.registry.max_open_files = 1
        paused = self.announce(ref="a", size=3000)
        self.registry.detach(self.session, self.owner)
        self.registry.attach(self.session)
        self.announce(ref="b", size=10)
        error = self.assertRaises(UploadError, self.registry.claim, self.session, paused, RecordingOwner())
        self.assertEqual((error.code, paused.status), (ErrorCode.SERVER_BUSY, EntryStatus.PAUSED))

    def test_completing_an_entry_frees_its_file(self) -> None:
        self.registry.max_open_files = 1
        self.upload(text_bytes(10), ref="a")
        self.assertEqual(self.announce(ref="b", size=10).status, EntryStatus.UPLOADING)


def _open_paths() -> set[str]:
    """Paths this process holds open (Linux /proc)."""
    paths = set()
    for descriptor in os.listdir("/proc/self/fd"):
        try:
            paths.add(os.readlink(f"/proc/self/fd/{descriptor}"))
        except OSError:
            pass
    return paths


class AdoptionTests(RegistryTestCase):
    """A new page of the same Django session continues a paused entry of an earlier page (resume after reload)."""

    def setUp(self) -> None:
        super().setUp()
        self.data = text_bytes(3000)
        self.paused = self.registry.announce(self.session, self.owner, "f1", "files", "holiday.txt", "text/plain",
                                             3000, fingerprint="holiday.txt:3000:1700000000:abcd")
        self.feed(self.paused, self.data, end=1024)
        self.registry.detach(self.session, self.owner)
        self.new_page = self.registry.open_session("s2", SLOTS)

    def test_the_new_page_is_offered_the_earlier_pages_paused_entries_with_their_fingerprint(self) -> None:
        [offer] = self.registry.adoptable(["s1"], self.new_page)
        self.assertEqual((offer.entry_id, offer.received, offer.to_dict()["fingerprint"]),
                         (self.paused.entry_id, 1024, "holiday.txt:3000:1700000000:abcd"))

    def test_an_adopted_entry_continues_from_its_offset_with_the_exact_sha256(self) -> None:
        entry = self.registry.adopt("s1", self.paused.entry_id, self.new_page, RecordingOwner())
        for offset in range(1024, 3000, 1024):
            if entry.receive(offset, self.data[offset:offset + 1024]):
                self.registry.complete(self.new_page, entry)
        self.assertEqual((entry.sha256, Path(entry.path).read_bytes()), (sha256(self.data), self.data))
        self.assertEqual([i.entry_id for i in self.registry.list_entries("s2")], [entry.entry_id])
        self.assertEqual(self.registry.list_entries("s1"), [])

    def test_sessions_not_listed_by_the_token_offer_nothing(self) -> None:
        self.assertEqual(self.registry.adoptable(["another-users-session"], self.new_page), [])

    def test_only_paused_entries_can_be_adopted(self) -> None:
        self.upload(text_bytes(10), ref="done")
        [done] = [e for e in self.session.entries.values() if e.ref == "done"]
        error = self.assertRaises(UploadError, self.registry.adopt, "s1", done.entry_id, self.new_page,
                                  RecordingOwner())
        self.assertEqual(error.code, ErrorCode.UNKNOWN_ENTRY)

    def test_an_entry_of_a_slot_the_new_page_lacks_is_neither_offered_nor_adopted(self) -> None:
        other = self.registry.open_session("s3", {"avatar": SLOTS["avatar"]})
        self.assertEqual(self.registry.adoptable(["s1"], other), [])
        error = self.assertRaises(UploadError, self.registry.adopt, "s1", self.paused.entry_id, other,
                                  RecordingOwner())
        self.assertEqual(error.code, ErrorCode.UNKNOWN_ENTRY)
