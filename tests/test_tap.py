"""Tests for twisted_uploads.tap: ``twistd uploads`` options and the service they build (nothing listens)."""

from __future__ import annotations

import os

from twisted.python import usage
from twisted.trial.unittest import TestCase

from twisted_uploads import tap
from twisted_uploads.connection import ConnectionLimits
from twisted_uploads.service import UploadService, server_endpoint_description
from twisted_uploads.tokens import HMACTokenVerifier

SECRET = "a-secret-of-more-than-16-bytes"


class OptionsTests(TestCase):
    """Command-line parsing, with the secret from ``--secret`` or ``$TWISTED_UPLOADS_SECRET``."""

    def setUp(self) -> None:
        self.environ = {k: v for k, v in os.environ.items() if k != tap.SECRET_ENV}
        self.patch(os, "environ", self.environ)

    def parse(self, *argv: str) -> tap.Options:
        options = tap.Options()
        options.parseOptions(list(argv))
        return options

    def assertUsageError(self, *argv: str) -> usage.UsageError:
        return self.assertRaises(usage.UsageError, self.parse, *argv)

    def test_listen_defaults_to_tcp_8000(self) -> None:
        self.assertEqual(self.parse("--secret", SECRET)["listen"], ["tcp:8000"])

    def test_listen_is_repeatable(self) -> None:
        self.assertEqual(self.parse("--secret", SECRET, "--listen", "tcp:8080", "--listen", "unix:/tmp/u.sock")
                         ["listen"], ["tcp:8080", "unix:/tmp/u.sock"])

    def test_given_listen_replaces_the_default(self) -> None:
        self.assertNotIn("tcp:8000", self.parse("--secret", SECRET, "--listen", "tcp:9000")["listen"])

    def test_allowed_origin_is_repeatable(self) -> None:
        options = self.parse("--secret", SECRET, "--allowed-origin", "https://a.example",
                             "--allowed-origin", "*.b.example")
        self.assertEqual(options["allowed-origins"], ["https://a.example", "*.b.example"])

    def test_allowed_origins_default_to_none(self) -> None:
        self.assertEqual(self.parse("--secret", SECRET)["allowed-origins"], [])

    def test_ws_path_defaults_to_uploads_ws(self) -> None:
        self.assertEqual(self.parse("--secret", SECRET)["ws-path"], "/uploads/ws")

    def test_secret_comes_from_the_option(self) -> None:
        self.assertEqual(self.parse("--secret", SECRET)["secret"], SECRET)

    def test_secret_comes_from_the_environment(self) -> None:
        self.environ[tap.SECRET_ENV] = SECRET
        self.assertEqual(self.parse()["secret"], SECRET)

    def test_secret_option_wins_over_the_environment(self) -> None:
        self.environ[tap.SECRET_ENV] = "environment-secret-long-enough"
        self.assertEqual(self.parse("--secret", SECRET)["secret"], SECRET)

    def test_missing_secret_is_a_usage_error(self) -> None:
        self.assertIn(tap.SECRET_ENV, str(self.assertUsageError()))

    def test_short_secret_is_a_usage_error(self) -> None:
        self.assertUsageError("--secret", "fifteen-bytes!!")

    def test_short_secret_from_the_environment_is_a_usage_error(self) -> None:
        self.environ[tap.SECRET_ENV] = "short"
        self.assertUsageError()

    def test_django_mode_needs_no_secret(self) -> None:
        self.assertEqual(self.parse("--settings", "mysite.settings")["settings"], "mysite.settings")

    def test_default_limits_are_the_documented_ones(self) -> None:
        limits = self.parse("--secret", SECRET)["limits"]
        self.assertEqual((limits.auth_timeout, limits.max_parallel, limits.window_chunks, limits.max_frame),
                         (10.0, 8, None, 8 * 1024 * 1024 + 12))

    def test_default_lifetimes_are_the_documented_ones(self) -> None:
        options = self.parse("--secret", SECRET)
        self.assertEqual((options["resume-grace"], options["complete-ttl"], options["max-session-bytes"]),
                         (300.0, 3600.0, 10 * 1024**3))

    def test_limits_are_parsed_as_numbers(self) -> None:
        limits = self.parse("--secret", SECRET, "--auth-timeout", "2.5", "--max-parallel", "3", "--window", "4",
                            "--max-frame", "70000")["limits"]
        self.assertEqual((limits.auth_timeout, limits.max_parallel, limits.window_chunks, limits.max_frame),
                         (2.5, 3, 4, 70000))

    def test_zero_resume_grace_is_allowed(self) -> None:
        self.assertEqual(self.parse("--secret", SECRET, "--resume-grace", "0")["resume-grace"], 0.0)

    def test_non_numeric_limit_is_a_usage_error(self) -> None:
        self.assertUsageError("--secret", SECRET, "--max-parallel", "many")

    def test_zero_max_parallel_is_a_usage_error(self) -> None:
        self.assertUsageError("--secret", SECRET, "--max-parallel", "0")

    def test_zero_window_is_a_usage_error(self) -> None:
        self.assertUsageError("--secret", SECRET, "--window", "0")

    def test_zero_auth_timeout_is_a_usage_error(self) -> None:
        self.assertUsageError("--secret", SECRET, "--auth-timeout", "0")

    def test_tiny_max_frame_is_a_usage_error(self) -> None:
        self.assertUsageError("--secret", SECRET, "--max-frame", "100")

    def test_negative_resume_grace_is_a_usage_error(self) -> None:
        self.assertUsageError("--secret", SECRET, "--resume-grace", "-1")

    def test_zero_complete_ttl_is_a_usage_error(self) -> None:
        # With 0, a finished upload is deleted the moment it completes, before the application can consume it.
        self.assertUsageError("--secret", SECRET, "--complete-ttl", "0")

    def test_zero_max_session_bytes_is_a_usage_error(self) -> None:
        self.assertUsageError("--secret", SECRET, "--max-session-bytes", "0")



class EndpointTests(TestCase):
    """``tls:`` is accepted as a friendlier name for Twisted's ``ssl:`` server endpoints."""

    def test_tls_becomes_ssl(self) -> None:
        self.assertEqual(server_endpoint_description("tls:8443:privateKey=k.pem:certKey=c.pem"),
                         "ssl:8443:privateKey=k.pem:certKey=c.pem")

    def test_tcp_is_unchanged(self) -> None:
        self.assertEqual(server_endpoint_description("tcp:8000:interface=127.0.0.1"), "tcp:8000:interface=127.0.0.1")

    def test_ssl_is_unchanged(self) -> None:
        self.assertEqual(server_endpoint_description("ssl:8443"), "ssl:8443")


class MakeServiceTests(TestCase):
    """The standalone service: one listening child per ``--listen``, HMAC tokens, the given limits."""

    def setUp(self) -> None:
        self.upload_dir = self.mktemp()
        options = tap.Options()
        options.parseOptions(["--secret", SECRET, "--upload-dir", self.upload_dir, "--listen", "tcp:0",
                              "--listen", "tcp:0:interface=127.0.0.1", "--max-parallel", "3"])
        self.service = tap.makeService(options)
        self.addCleanup(self.service.upload_server.shutdown)

    def test_service_is_an_upload_service(self) -> None:
        self.assertIsInstance(self.service, UploadService)

    def test_one_child_service_per_listen_option(self) -> None:
        self.assertEqual(len(list(self.service)), 2)

    def test_standalone_service_verifies_hmac_tokens(self) -> None:
        self.assertIsInstance(self.service.upload_server.verifier, HMACTokenVerifier)

    def test_service_uses_the_parsed_limits(self) -> None:
        limits = self.service.upload_server.limits
        self.assertEqual((type(limits), limits.max_parallel), (ConnectionLimits, 3))

    def test_service_stores_uploads_in_the_upload_dir(self) -> None:
        self.assertEqual(str(self.service.upload_server.store.root), os.path.realpath(self.upload_dir))

    def test_plugin_registers_the_uploads_command(self) -> None:
        from twisted.application.service import IServiceMaker
        from twisted.plugin import getPlugins

        [uploads] = [p for p in getPlugins(IServiceMaker) if p.tapname == "uploads"]
        self.assertIs(uploads.options, tap.Options)

    def test_reactor_half_leaves_django_mode_to_the_plugin(self) -> None:
        options = tap.Options()
        options.parseOptions(["--settings", "mysite.settings"])
        self.assertRaises(usage.UsageError, tap.makeService, options)


class PlaceholderVerifierTests(TestCase):
    """The verifier a Django-mode server starts with, until the shim installs its own."""

    def test_it_refuses_every_token_presented_on_a_handshake(self) -> None:
        from twisted_uploads.errors import ErrorCode, UploadError
        from twisted_uploads.tokens import Handshake

        error = self.assertRaises(UploadError, tap.no_verifier, "any.token", Handshake())
        self.assertEqual(error.code, ErrorCode.INVALID_TOKEN)
