"""System checks of the scale-out settings: each misconfiguration is named, with the fix in its hint.

Reachability (E011) is checked against a real redis-server on a free loopback port, and against a port nothing
listens on. The checks that talk to the network block, so they run in a thread (the reactor is trial's).
"""

from __future__ import annotations

import os
import sys
import tempfile
from unittest import mock

from django.core.checks import run_checks
from django.test import override_settings
from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from django_shim.checks import worker_processes
from tests.gunicorn.support import RedisServer, free_port

from .support import in_thread


def messages() -> list:
    return list(run_checks(tags=["twisted_uploads"]))


def ids() -> list[str]:
    return sorted(message.id for message in messages() if message.id)


#: boto3's credential chain finds nothing in this environment (no keys, no files, no instance metadata).
NO_AWS = {"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/credentials", "AWS_CONFIG_FILE": "/nonexistent/config",
          "AWS_EC2_METADATA_DISABLED": "true"}


def without_aws_credentials() -> mock._patch_dict:
    environ = {name: value for name, value in os.environ.items()
               if not name.startswith("AWS_")}
    return mock.patch.dict(os.environ, {**environ, **NO_AWS}, clear=True)


class RedisCheckTests(unittest.TestCase):
    """E010 / E011 / W003 / W005 with a real Redis."""

    def setUp(self) -> None:
        self.redis = RedisServer()
        self.addCleanup(self.redis.stop)
        self.shared = tempfile.mkdtemp(prefix="tu-shared-")

    @inlineCallbacks
    def test_a_reachable_redis_and_a_shared_directory_pass(self):
        with override_settings(UPLOADS_REDIS_URL=self.redis.url, UPLOADS_STORAGE=self.shared):
            self.assertEqual((yield in_thread(ids)), [])

    @inlineCallbacks
    def test_an_unreachable_redis_is_an_error_naming_the_url_within_the_timeout(self):
        url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"
        with override_settings(UPLOADS_REDIS_URL=url, UPLOADS_STORAGE=self.shared, UPLOADS_REDIS_TIMEOUT=1.0):
            found = yield in_thread(messages)
        [error] = [m for m in found if m.id == "twisted_uploads.E011"]
        self.assertIn(url.replace("hunter2-secret", "***"), error.msg)
        self.assertNotIn("hunter2-secret", error.msg)  # the password never lands in a log
        self.assertIn("Start Redis", error.hint)

    @inlineCallbacks
    def test_a_wrong_redis_password_is_an_error(self):
        with override_settings(UPLOADS_REDIS_URL=f"redis://:wrong@127.0.0.1:{self.redis.port}/0",
                               UPLOADS_STORAGE=self.shared):
            self.assertEqual((yield in_thread(ids)), ["twisted_uploads.E011"])

    def test_a_url_that_is_not_redis_is_an_error_and_nothing_is_dialled(self):
        for url in ("http://127.0.0.1:6379", "127.0.0.1:6379", "redis://"):
            with override_settings(UPLOADS_REDIS_URL=url, UPLOADS_STORAGE=self.shared):
                # Run in the reactor thread: a check that tried to connect would raise ReactorThreadCall here.
                self.assertEqual(ids(), ["twisted_uploads.E010"], url)

    def test_an_impossible_redis_timeout_is_an_error(self):
        with override_settings(UPLOADS_REDIS_URL=self.redis.url, UPLOADS_STORAGE=self.shared,
                               UPLOADS_REDIS_TIMEOUT=0):
            self.assertEqual(ids(), ["twisted_uploads.E010"])

    @inlineCallbacks
    def test_an_explicit_standalone_listener_is_ignored_in_scale_out_and_the_check_says_so(self):
        with override_settings(UPLOADS_REDIS_URL=self.redis.url, UPLOADS_STORAGE=self.shared,
                               UPLOADS_STANDALONE_LISTEN="tcp:8001"):
            self.assertEqual((yield in_thread(ids)), ["twisted_uploads.W003"])

    @inlineCallbacks
    def test_scale_out_on_the_local_upload_dir_warns_that_everything_must_share_it(self):
        with override_settings(UPLOADS_REDIS_URL=self.redis.url):
            self.assertEqual((yield in_thread(ids)), ["twisted_uploads.W005"])

    def test_a_shared_directory_that_does_not_exist_is_an_error(self):
        with override_settings(UPLOADS_REDIS_URL="redis://127.0.0.1:1/0",
                               UPLOADS_STORAGE=os.path.join(self.shared, "missing")):
            self.assertEqual(ids(), ["twisted_uploads.E012"])


class S3SettingsCheckTests(unittest.TestCase):
    """E012 / E013: S3 settings that cannot work, found without the network."""

    def test_s3_storage_without_redis_is_an_error(self):
        with override_settings(UPLOADS_STORAGE="s3://bucket/prefix/",
                               UPLOADS_S3_OPTIONS={"aws_access_key_id": "a", "aws_secret_access_key": "b"}):
            [error] = [m for m in messages() if m.id == "twisted_uploads.E012"]
        self.assertIn("UPLOADS_REDIS_URL", error.msg)

    def test_an_s3_url_without_a_bucket_is_an_error(self):
        with override_settings(UPLOADS_STORAGE="s3:///prefix/", UPLOADS_REDIS_URL="redis://127.0.0.1:1/0"):
            self.assertIn("twisted_uploads.E012", ids())

    def test_options_that_are_not_a_dict_are_an_error(self):
        with override_settings(UPLOADS_S3_OPTIONS=["endpoint_url"]):
            self.assertEqual(ids(), ["twisted_uploads.E012"])

    def test_s3_without_any_credentials_is_an_error(self):
        with without_aws_credentials(), override_settings(
                UPLOADS_STORAGE="s3://bucket/", UPLOADS_REDIS_URL="not-a-url",
                UPLOADS_S3_OPTIONS={"endpoint_url": "http://127.0.0.1:1"}):
            found = messages()
        [error] = [m for m in found if m.id == "twisted_uploads.E013"]
        self.assertIn("no credentials", error.msg)
        self.assertIn("aws_access_key_id", error.hint)

    def test_credentials_in_the_options_are_enough(self):
        with without_aws_credentials(), override_settings(
                UPLOADS_STORAGE="s3://bucket/", UPLOADS_REDIS_URL="not-a-url",
                UPLOADS_S3_OPTIONS={"aws_access_key_id": "a", "aws_secret_access_key": "b"}):
            self.assertNotIn("twisted_uploads.E013", ids())


class ProcessModelCheckTests(unittest.TestCase):
    """W004: several worker processes in single-process mode, read from the server's own command line."""

    def test_gunicorn_worker_counts_are_read_from_its_arguments_and_environment(self):
        self.assertEqual(worker_processes(["gunicorn", "-w", "4", "app:application"], {}), 4)
        self.assertEqual(worker_processes(["/venv/bin/gunicorn", "--workers=3", "app:application"], {}), 3)
        self.assertEqual(worker_processes(["gunicorn", "app:application"], {"GUNICORN_CMD_ARGS": "-w 2"}), 2)
        self.assertEqual(worker_processes(["gunicorn", "app:application"], {"WEB_CONCURRENCY": "5"}), 5)
        self.assertEqual(worker_processes(["gunicorn", "app:application"], {}), 1)
        self.assertEqual(worker_processes(["uvicorn", "--workers", "2", "app:application"], {}), 2)
        self.assertIsNone(worker_processes(["manage.py", "runserver"], {}))

    def test_several_gunicorn_workers_without_redis_are_a_warning(self):
        with mock.patch.object(sys, "argv", ["gunicorn", "-w", "2", "demo.wsgi"]):
            [warning] = [m for m in messages() if m.id == "twisted_uploads.W004"]
        self.assertIn("UPLOADS_REDIS_URL", warning.hint)

    def test_several_workers_in_scale_out_mode_are_fine(self):
        with mock.patch.object(sys, "argv", ["gunicorn", "-w", "2", "demo.wsgi"]), override_settings(
                UPLOADS_REDIS_URL="not-a-url"):
            self.assertNotIn("twisted_uploads.W004", ids())
