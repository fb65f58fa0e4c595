"""UPLOADS_* defaults, read in one place."""

from __future__ import annotations

import sys
from unittest import mock

from django.test import override_settings
from twisted.trial import unittest

from django_shim.conf import DEFAULT_WS_URL, derive_secret, origins_from_hosts, runserver_port, uploads_settings
from twisted_uploads.websocket import origin_allowed


class SettingsTests(unittest.TestCase):

    @override_settings(UPLOADS_DIR=None, UPLOADS_STANDALONE_LISTEN="tcp:8001")
    def test_defaults(self):
        config = uploads_settings()
        self.assertEqual(config.ws_url, DEFAULT_WS_URL)
        self.assertTrue(config.ws_url_is_default)
        self.assertEqual((config.token_ttl, config.bridge_timeout, config.resume_grace, config.complete_ttl),
                         (3600, 5.0, 300, 3600))
        self.assertIn("twisted-uploads-", config.upload_dir.parent.name)
        self.assertEqual(config.page_template, "demo/page.html")  # set by the test settings

    @override_settings(UPLOADS_DIR=None)
    def test_default_directory_is_the_projects_own(self):
        # Two sites of one user used to share <tmp>/twisted-uploads-<uid>; each now has a folder of its own.
        first = uploads_settings().upload_dir
        with override_settings(BASE_DIR="/srv/another-site"):
            second = uploads_settings().upload_dir
        self.assertEqual(first.parent, second.parent)
        self.assertNotEqual(first, second)
        self.assertIn("tests.django_shim.settings", first.name)

    def test_the_secret_is_derived_from_secret_key_and_differs_from_it(self):
        from django.conf import settings

        config = uploads_settings()
        self.assertEqual(config.secret, derive_secret(settings.SECRET_KEY))
        self.assertNotEqual(config.secret, settings.SECRET_KEY)

    @override_settings(UPLOADS_SECRET="explicit-secret-0123456789")
    def test_an_explicit_secret_wins(self):
        self.assertEqual(uploads_settings().secret, "explicit-secret-0123456789")

    @override_settings(SECRET_KEY_FALLBACKS=["old-key"])
    def test_rotated_secret_keys_become_fallback_secrets(self):
        self.assertEqual(uploads_settings().fallback_secrets, (derive_secret("old-key"),))

    @override_settings(ALLOWED_HOSTS=[".example.com"], CSRF_TRUSTED_ORIGINS=["https://app.example.org"])
    def test_allowed_origins_follow_allowed_hosts_and_csrf_trusted_origins(self):
        self.assertEqual(uploads_settings().allowed_origins, (".example.com", "https://app.example.org"))

    @override_settings(ALLOWED_HOSTS=[], DEBUG=True)
    def test_debug_with_no_allowed_hosts_allows_localhost_like_django(self):
        self.assertIn("localhost", uploads_settings().allowed_origins)

    @override_settings(UPLOADS_ALLOWED_ORIGINS=["https://only.example"])
    def test_explicit_origins_win(self):
        self.assertEqual(uploads_settings().allowed_origins, ("https://only.example",))

    @override_settings(SESSION_COOKIE_NAME="app_session")
    def test_the_session_cookie_name_is_given_to_the_verifier(self):
        self.assertEqual(uploads_settings().session_cookie, "app_session")

    @override_settings(ALLOWED_HOSTS=["localhost", "[::1]"], UPLOADS_ALLOWED_ORIGINS=None)
    def test_under_runserver_its_port_is_a_page_port(self):
        with mock.patch.object(sys, "argv", ["manage.py", "runserver", "127.0.0.1:8123"]):
            from django_shim import conf

            conf._cached = None  # noqa: SLF001 - argv is read when the settings are resolved
            self.addCleanup(setattr, conf, "_cached", None)
            origins = uploads_settings().allowed_origins
        self.assertEqual(origins, ("localhost", "localhost:8123", "[::1]", "[::1]:8123"))


class RunserverPortTests(unittest.TestCase):
    """runserver's page port, read as runserver reads its arguments."""

    def test_bare_runserver_is_its_default_port(self):
        self.assertEqual(runserver_port(["manage.py", "runserver"]), 8000)

    def test_address_and_port(self):
        for addrport, port in (("8123", 8123), ("0.0.0.0:8124", 8124), ("[::1]:8125", 8125),
                               ("localhost:8126", 8126)):
            self.assertEqual(runserver_port(["manage.py", "runserver", addrport]), port, addrport)

    def test_options_before_the_address_are_skipped(self):
        argv = ["manage.py", "runserver", "--noreload", "--settings", "demo.settings", "8127"]
        self.assertEqual(runserver_port(argv), 8127)

    def test_other_commands_serve_no_page_port(self):
        self.assertIsNone(runserver_port(["manage.py", "check"]))
        self.assertIsNone(runserver_port(["twistd", "-n", "uploads"]))

    def test_an_address_runserver_refuses_gives_none(self):
        self.assertIsNone(runserver_port(["manage.py", "runserver", "not:a:port"]))


class OriginsFromHostsTests(unittest.TestCase):
    """ALLOWED_HOSTS becomes origins with the page's scheme and the ports pages are served from."""

    def allows(self, origin: str, hosts: list[str], host: str, page_ports: tuple[int, ...] = (),
               secure: bool = False) -> bool:
        return origin_allowed(origin, origins_from_hosts(hosts, False, page_ports=page_ports), host=host,
                              secure=secure)

    def test_one_port_twistd_page_may_connect(self):
        self.assertTrue(self.allows("http://localhost:8080", ["localhost"], "localhost:8080"))

    def test_runserver_page_may_connect_to_the_standalone_listener(self):
        self.assertTrue(self.allows("http://127.0.0.1:8000", ["127.0.0.1"], "127.0.0.1:8001", (8000,)))

    def test_a_page_on_another_port_of_an_allowed_host_is_refused(self):
        self.assertFalse(self.allows("http://127.0.0.1:3000", ["127.0.0.1"], "127.0.0.1:8001", (8000,)))

    def test_an_https_page_is_refused_by_a_plain_listener(self):
        self.assertFalse(self.allows("https://127.0.0.1:8000", ["127.0.0.1"], "127.0.0.1:8001", (8000,)))

    def test_ipv6_loopback_from_allowed_hosts_matches(self):
        self.assertTrue(self.allows("http://[::1]:8000", ["[::1]"], "[::1]:8001", (8000,)))

    def test_subdomain_patterns_keep_the_page_port(self):
        self.assertTrue(self.allows("https://a.example.com", [".example.com"], "up.example.com", secure=True))
        self.assertFalse(self.allows("https://a.example.com:8443", [".example.com"], "up.example.com",
                                     secure=True))

    def test_star_stays_star(self):
        self.assertEqual(origins_from_hosts(["*"], False, page_ports=(8000,)), ("*",))

    def test_trusted_origins_are_kept_exactly(self):
        self.assertEqual(origins_from_hosts(["a.example"], False, ["https://b.example"]), ("a.example",
                                                                                           "https://b.example"))
