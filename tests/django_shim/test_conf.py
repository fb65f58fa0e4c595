"""UPLOADS_* defaults, read in one place."""

from __future__ import annotations

from django.test import override_settings
from twisted.trial import unittest

from django_shim.conf import DEFAULT_WS_URL, derive_secret, uploads_settings


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
