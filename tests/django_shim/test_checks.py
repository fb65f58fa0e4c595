"""``manage.py check`` explains each misconfiguration."""

from __future__ import annotations

import sys
from unittest import mock

from django.core.checks import run_checks
from django.test import override_settings
from twisted.trial import unittest


def ids() -> list[str]:
    return sorted(message.id for message in run_checks(tags=["twisted_uploads"]) if message.id)


class CheckTests(unittest.TestCase):

    def test_the_test_settings_pass(self):
        self.assertEqual(ids(), [])

    @override_settings(SECRET_KEY="", UPLOADS_SECRET=None)
    def test_no_secret_is_an_error(self):
        self.assertEqual(ids(), ["twisted_uploads.E001"])

    @override_settings(UPLOADS_SECRET="short")
    def test_a_short_secret_is_an_error(self):
        self.assertEqual(ids(), ["twisted_uploads.E001"])

    @override_settings(UPLOADS_TOKEN_TTL=0, UPLOADS_BRIDGE_TIMEOUT="5", UPLOADS_RESUME_GRACE=-1,
                       UPLOADS_COMPLETE_TTL=0, UPLOADS_MAX_VIEWS=0)
    def test_impossible_limits_are_errors_one_per_setting(self):
        messages = [m for m in run_checks(tags=["twisted_uploads"]) if m.id == "twisted_uploads.E002"]
        self.assertEqual(len(messages), 5)
        self.assertIn("UPLOADS_BRIDGE_TIMEOUT", " ".join(m.msg for m in messages))

    @override_settings(UPLOADS_BRIDGE_TIMEOUT=600)
    def test_a_bridge_timeout_that_would_hold_threads_for_minutes_is_an_error(self):
        self.assertEqual(ids(), ["twisted_uploads.E002"])

    @override_settings(UPLOADS_WS_URL="http://example.com/ws")
    def test_a_websocket_url_that_is_not_one_is_an_error(self):
        self.assertEqual(ids(), ["twisted_uploads.E003"])

    @override_settings(UPLOADS_WS_URL="wss://uploads.example.com/ws")
    def test_a_full_wss_url_is_fine(self):
        self.assertEqual(ids(), [])

    @override_settings(UPLOADS_STANDALONE_LISTEN=None)
    def test_runserver_without_a_websocket_listener_is_an_error(self):
        with mock.patch.object(sys, "argv", ["manage.py", "runserver"]):
            self.assertEqual(ids(), ["twisted_uploads.E004"])

    @override_settings(UPLOADS_STANDALONE_LISTEN="bogus:1:2")
    def test_an_invalid_listen_description_is_an_error(self):
        self.assertEqual(ids(), ["twisted_uploads.E005"])

    def test_missing_sessions_is_an_error(self):
        from django.conf import settings

        middleware = [m for m in settings.MIDDLEWARE if "Session" not in m]
        with override_settings(MIDDLEWARE=middleware):
            self.assertEqual(ids(), ["twisted_uploads.E006"])

    def test_an_unwritable_upload_dir_is_an_error(self):
        blocker = self.mktemp()
        with open(blocker, "w") as handle:
            handle.write("a file, not a directory")
        with override_settings(UPLOADS_DIR=f"{blocker}/uploads"):
            self.assertEqual(ids(), ["twisted_uploads.E007"])

    @override_settings(STATICFILES_FINDERS=["django.contrib.staticfiles.finders.AppDirectoriesFinder"])
    def test_a_missing_client_finder_is_a_warning(self):
        from django.contrib.staticfiles import finders

        finders.get_finder.cache_clear()
        self.addCleanup(finders.get_finder.cache_clear)
        self.assertEqual(ids(), ["twisted_uploads.W001"])

    @override_settings(SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies")
    def test_the_signed_cookies_session_engine_is_an_error(self):
        self.assertEqual(ids(), ["twisted_uploads.E008"])

    @override_settings(SESSION_ENGINE="django.contrib.sessions.backends.cache")
    def test_a_server_side_session_engine_is_fine(self):
        self.assertEqual(ids(), [])

    @override_settings(SESSION_COOKIE_PATH="/app/")
    def test_a_session_cookie_path_that_misses_the_socket_is_an_error(self):
        self.assertEqual(ids(), ["twisted_uploads.E009"])

    @override_settings(SESSION_COOKIE_PATH="/app/", UPLOADS_WS_URL="/app/uploads/ws")
    def test_a_session_cookie_path_that_covers_the_socket_is_fine(self):
        self.assertEqual(ids(), [])

    @override_settings(ALLOWED_HOSTS=["*"])
    def test_allowed_hosts_star_is_a_warning_that_the_origin_check_is_off(self):
        self.assertEqual(ids(), ["twisted_uploads.W002"])

    @override_settings(UPLOADS_ALLOWED_ORIGINS=["*"])
    def test_explicit_star_origin_is_a_warning(self):
        self.assertEqual(ids(), ["twisted_uploads.W002"])
