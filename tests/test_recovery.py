"""Tests for durable records and recovery: a restarted server gives back what the last one held, and nothing else.

A "crash" here is the old registry's ownership lock being released without a shutdown — what the kernel does when
a process is killed (``kill -9``). The real-process variant lives in ``tests/reliability/``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from twisted_uploads.entries import EntryStatus
from twisted_uploads.errors import ErrorCode, UploadError
from twisted_uploads.records import DirectoryRecords, EntryRecord
from twisted_uploads.registry import UploadRegistry
from twisted_uploads.slots import SlotConfig
from twisted_uploads.storage import TempFileStore, session_directory_name

from .support import RecordingOwner, png_bytes, sha256, stored_files, text_bytes

SLOTS = {"files": SlotConfig(max_entries=5, chunk_size=1024, max_file_size=1_000_000)}
GRACE, TTL = 300.0, 3600.0


class RecoveryTestCase(TestCase):
    """One directory, a clock shared by the registries that run on it one after another."""

    def setUp(self) -> None:
        self.root = Path(self.mktemp())
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.registry = self.start()

    def start(self) -> UploadRegistry:
        registry = UploadRegistry(TempFileStore(self.root), self.clock, resume_grace=GRACE, complete_ttl=TTL)
        registry.recover()
        self.addCleanup(registry.records.close)
        return registry

    def crash(self, registry: UploadRegistry) -> None:
        """The process dies: no shutdown, its lock is simply gone."""
        registry.records.close()

    def upload(self, registry: UploadRegistry, data: bytes, session_id: str = "s1", ref: str = "f1",
               end: int | None = None, name: str = "data.txt") -> int:
        session = registry.open_session(session_id, SLOTS)
        entry = registry.announce(session, RecordingOwner(), ref, "files", name, "text/plain", len(data))
        end = len(data) if end is None else end
        for offset in range(0, end, 1024):
            if entry.receive(offset, data[offset:min(end, offset + 1024)]):
                registry.complete(session, entry)
        return entry.entry_id

    def listed(self, registry: UploadRegistry, session_id: str = "s1") -> dict[int, tuple[str, int]]:
        return {i.entry_id: (i.status.value, i.received) for i in registry.list_entries(session_id)}


class RecordTests(RecoveryTestCase):
    """Every entry has a record from announce on, replaced on each status change and gone with the entry."""

    def record(self, entry_id: int, session_id: str = "s1") -> dict:
        path = self.root / session_directory_name(session_id) / f"{entry_id}.json"
        return json.loads(path.read_text())

    def test_announce_writes_the_record_before_any_byte_is_accepted(self) -> None:
        entry_id = self.upload(self.registry, text_bytes(3000), end=0)
        record = self.record(entry_id)
        self.assertEqual((record["status"], record["size"], record["name"], record["session"]),
                         ("uploading", 3000, "data.txt", "s1"))

    def test_completion_records_the_sha256_and_an_absolute_deadline(self) -> None:
        data = text_bytes(2500)
        record = self.record(self.upload(self.registry, data))
        self.assertEqual((record["status"], record["sha256"], record["deadline"]),
                         ("complete", sha256(data), self.clock.seconds() + TTL))

    def test_consuming_deletes_the_record_with_the_bytes(self) -> None:
        entry_id = self.upload(self.registry, text_bytes(10))
        self.registry.consume("s1", entry_id)
        self.assertEqual(stored_files(self.root), [])

    def test_a_record_that_cannot_be_written_refuses_the_announce_with_storage_failed(self) -> None:
        class FullDisk(DirectoryRecords):
            def save(self, record: EntryRecord, durable: bool) -> None:
                raise OSError(28, "No space left on device")

        registry = UploadRegistry(TempFileStore(self.root), self.clock, records=FullDisk(self.root))
        self.addCleanup(registry.records.close)
        session = registry.open_session("s9", SLOTS)
        error = self.assertRaises(UploadError, registry.announce, session, RecordingOwner(), "r", "files", "a.txt",
                                  "text/plain", 10)
        self.assertEqual((error.code, registry.open_files, stored_files(self.root)),
                         (ErrorCode.STORAGE_FAILED, 0, []))


class RestartTests(RecoveryTestCase):
    """After a crash, the next server on the same directory recovers complete and paused entries."""

    def test_a_complete_entry_survives_a_crash_and_stays_consumable(self) -> None:
        data = png_bytes(5000)
        entry_id = self.upload(self.registry, data, name="me.png")
        self.crash(self.registry)
        registry = self.start()
        [info] = registry.claim_complete("s1", "files")
        self.assertEqual((info.entry_id, info.sha256, Path(info.path).read_bytes()), (entry_id, sha256(data), data))

    def test_a_recovered_complete_entry_keeps_the_rest_of_its_ttl_not_a_new_one(self) -> None:
        self.upload(self.registry, text_bytes(10))
        self.crash(self.registry)
        self.clock.advance(TTL - 100)
        registry = self.start()
        self.clock.advance(99)
        self.assertEqual(len(registry.list_entries("s1")), 1)
        self.clock.advance(2)
        self.assertEqual((registry.list_entries("s1"), stored_files(self.root)), ([], []))

    def test_an_entry_whose_deadline_passed_while_down_is_deleted_at_start(self) -> None:
        self.upload(self.registry, text_bytes(10))
        self.crash(self.registry)
        self.clock.advance(TTL + 1)
        registry = self.start()
        self.assertEqual((registry.list_entries("s1"), stored_files(self.root)), ([], []))

    def test_an_entry_streaming_at_the_crash_is_paused_with_its_stored_offset(self) -> None:
        entry_id = self.upload(self.registry, text_bytes(5000), end=3072)
        self.crash(self.registry)
        registry = self.start()
        self.assertEqual(self.listed(registry), {entry_id: ("paused", 3072)})

    def test_a_paused_entry_resumes_after_the_crash_with_the_exact_sha256(self) -> None:
        data = text_bytes(5000)
        entry_id = self.upload(self.registry, data, end=3072)
        self.crash(self.registry)
        registry = self.start()
        session = registry.open_session("s1", SLOTS)
        entry = session.entries[entry_id]
        registry.claim(session, entry, RecordingOwner())  # the hash is rebuilt from the stored 3072 bytes
        for offset in range(3072, len(data), 1024):
            if entry.receive(offset, data[offset:offset + 1024]):
                registry.complete(session, entry)
        self.assertEqual((entry.status, entry.sha256, Path(entry.path).read_bytes()),
                         (EntryStatus.COMPLETE, sha256(data), data))

    def test_the_paused_entry_gets_a_grace_from_the_restart(self) -> None:
        self.upload(self.registry, text_bytes(5000), end=1024)
        self.crash(self.registry)
        registry = self.start()
        self.clock.advance(GRACE - 1)
        self.assertEqual(len(registry.list_entries("s1")), 1)
        self.clock.advance(2)
        self.assertEqual((registry.list_entries("s1"), stored_files(self.root)), ([], []))

    def test_a_failed_entry_is_still_reported_after_the_crash(self) -> None:
        session = self.registry.open_session("s1", SLOTS)
        entry = self.registry.announce(session, RecordingOwner(), "f1", "files", "a.txt", "text/plain", 10)
        self.registry.fail(session, entry, UploadError(ErrorCode.BAD_OFFSET, "expected 0"))
        self.crash(self.registry)
        [info] = self.start().list_entries("s1")
        self.assertEqual((info.status, info.error), (EntryStatus.ERROR, "bad_offset"))

    def test_a_record_whose_bytes_are_gone_is_dropped(self) -> None:
        entry_id = self.upload(self.registry, text_bytes(10))
        (self.root / session_directory_name("s1") / str(entry_id)).unlink()
        self.crash(self.registry)
        self.assertEqual((self.start().list_entries("s1"), stored_files(self.root)), ([], []))

    def test_an_unreadable_record_is_ignored_and_the_rest_recovered(self) -> None:
        entry_id = self.upload(self.registry, text_bytes(10), ref="good")
        (self.root / session_directory_name("s1") / "77.json").write_text("{not json")
        self.crash(self.registry)
        self.assertEqual(list(self.listed(self.start())), [entry_id])

    def test_recovered_entry_ids_are_never_handed_out_again(self) -> None:
        entry_id = self.upload(self.registry, text_bytes(10))
        self.crash(self.registry)
        registry = self.start()
        self.assertIn(entry_id, registry._used_ids)

    def test_a_clean_shutdown_pauses_streaming_entries_for_the_next_start(self) -> None:
        entry_id = self.upload(self.registry, text_bytes(5000), end=2048)
        self.registry.shutdown()
        self.assertEqual(self.listed(self.start()), {entry_id: ("paused", 2048)})


class SharedDirectoryTests(RecoveryTestCase):
    """Two live servers on one directory: neither takes, deletes or lists the other's entries."""

    def test_a_second_server_on_the_directory_deletes_nothing_of_the_first(self) -> None:
        data = text_bytes(2000)
        complete = self.upload(self.registry, data, ref="done")
        partial = self.upload(self.registry, text_bytes(5000), ref="half", end=1024)
        before = {p: p.read_bytes() for p in stored_files(self.root)}
        second = self.start()
        self.assertEqual(({p: p.read_bytes() for p in stored_files(self.root)}, second.list_entries("s1")),
                         (before, []))
        [info] = self.registry.claim_complete("s1", "files")
        self.assertEqual((info.entry_id, Path(info.path).read_bytes()), (complete, data))
        self.assertEqual(self.listed(self.registry)[partial], ("uploading", 1024))

    def test_the_second_server_takes_over_once_the_first_dies(self) -> None:
        entry_id = self.upload(self.registry, text_bytes(10))
        second = self.start()
        self.crash(self.registry)
        third = self.start()
        self.assertEqual((second.list_entries("s1"), list(self.listed(third))), ([], [entry_id]))

    def test_a_record_taken_over_is_stamped_with_its_new_owner(self) -> None:
        entry_id = self.upload(self.registry, text_bytes(10))
        self.crash(self.registry)
        registry = self.start()
        path = self.root / session_directory_name("s1") / f"{entry_id}.json"
        self.assertEqual(json.loads(path.read_text())["server"], registry.records.server_id)

    def test_old_unrecorded_files_go_but_a_live_servers_fresh_file_stays(self) -> None:
        directory = self.root / session_directory_name("elsewhere")
        directory.mkdir()
        stale = directory / "5.part"
        stale.write_bytes(b"left by a crash before its record was written")
        os.utime(stale, (0, 0))
        fresh = directory / "6.part"
        fresh.write_bytes(b"just opened")
        self.start()
        self.assertEqual((stale.exists(), fresh.exists()), (False, True))
