"""``entry.file`` of an entry stored in S3 streams the object through the store, into storage and a FileField.

Against a real SeaweedFS S3 gateway (``tests.engines.weed``) and the real ``S3Store`` (``UPLOADS_STORAGE =
"s3://bucket/prefix/"``); skipped until both are installed (helper "s3"). System check E014 (an unknown bucket) is
checked here too, since it needs the gateway.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import tempfile
from importlib.util import find_spec
from pathlib import Path

from django.core.files.storage import default_storage
from django.core.checks import run_checks
from django.test import override_settings
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from django_shim.entries import StreamedUploadedFile, UploadEntry
from tests.gunicorn.support import RedisServer

from .support import django_thread, in_thread
from .test_entries import info
from .testapp.models import Attachment

HAVE_S3 = find_spec("twisted_uploads.s3store") is not None and find_spec("tests.engines.weed") is not None


class S3EntryTestCase(unittest.TestCase):

    def setUp(self) -> None:
        if not HAVE_S3:
            raise unittest.SkipTest("twisted_uploads.s3store / tests.engines.weed (helper 's3') are not merged yet")
        from tests.engines.weed import shared_engine

        self.engine = shared_engine()
        self.bucket = self.engine.create_bucket(f"django-{secrets.token_hex(4)}")
        settings = override_settings(UPLOADS_STORAGE=f"s3://{self.bucket}/uploads/",
                                     UPLOADS_S3_OPTIONS=self.engine.client_options())
        settings.enable()
        self.addCleanup(settings.disable)

    def stored(self, content: bytes) -> UploadEntry:
        """An entry whose complete bytes are an object in the bucket, as a node leaves them."""
        key = f"uploads/{secrets.token_hex(6)}"
        self.engine.client().put_object(Bucket=self.bucket, Key=key, Body=content)
        return UploadEntry(info(f"s3://{self.bucket}/{key}", len(content),
                                sha256=hashlib.sha256(content).hexdigest()))


class S3EntryTests(S3EntryTestCase):

    @django_thread
    def test_a_large_entry_streams_into_default_storage_without_a_local_copy(self):
        content = os.urandom(300_000)  # well over FILE_UPLOAD_MAX_MEMORY_SIZE (4096 in the test settings)
        entry = self.stored(content)
        upload = entry.file
        self.assertIsInstance(upload, StreamedUploadedFile)
        self.assertFalse(hasattr(upload, "temporary_file_path"))  # storage must read it, not move a path
        saved = default_storage.save("s3copies/big.bin", upload)
        entry.close()
        self.assertEqual(Path(default_storage.path(saved)).read_bytes(), content)

    @django_thread
    def test_a_small_entry_is_read_into_memory(self):
        entry = self.stored(b"small content")
        self.assertEqual(entry.file.read(), b"small content")
        self.assertEqual(entry.data, b"small content")

    @django_thread
    def test_a_file_field_takes_the_streamed_file_unchanged(self):
        content = os.urandom(50_000)
        entry = self.stored(content)
        attachment = Attachment(title="from s3")
        attachment.document = entry.file
        attachment.save()
        entry.close()
        with Attachment.objects.get(pk=attachment.pk).document.open("rb") as stored:
            self.assertEqual(stored.read(), content)

    def test_the_location_names_the_object_for_a_server_side_copy(self):
        entry = self.stored(b"x" * 10)
        bucket, key = entry.s3_object
        self.assertEqual(bucket, self.bucket)
        self.assertEqual(entry.location, f"s3://{bucket}/{key}")
        copy = f"copies/{secrets.token_hex(4)}"
        client = self.engine.client()
        client.copy_object(Bucket=bucket, Key=copy, CopySource={"Bucket": bucket, "Key": key})
        self.assertEqual(client.get_object(Bucket=bucket, Key=copy)["Body"].read(), b"x" * 10)

    def test_a_local_entry_has_no_s3_object(self):
        path = Path(tempfile.mkdtemp()) / "7"
        path.write_bytes(b"abc")
        entry = UploadEntry(info(str(path), 3))
        self.assertEqual(entry.location, str(path))
        self.assertIsNone(entry.s3_object)


class UnknownBucketCheckTests(S3EntryTestCase):

    @inlineCallbacks
    def test_an_unknown_bucket_is_an_error_naming_it(self):
        redis = RedisServer()
        self.addCleanup(redis.stop)
        with override_settings(UPLOADS_REDIS_URL=redis.url, UPLOADS_STORAGE="s3://no-such-bucket-here/p/"):
            found = yield in_thread(lambda: [m for m in run_checks(tags=["twisted_uploads"]) if m.id])
        self.assertEqual([m.id for m in found], ["twisted_uploads.E014"])
        self.assertIn("no-such-bucket-here", found[0].msg)
