"""The bridge fails fast and clearly: timeouts, a stopped reactor, and calls from the reactor thread."""

from __future__ import annotations

import time

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial import unittest

from django_shim.bridge import BridgeTimeout, ReactorNotRunning, ReactorThreadCall, UploadBridge
from twisted_uploads.errors import UploadError

from .support import ShimServerTestCase, in_thread


class _StoppedReactor:
    running = False


class BridgeTests(ShimServerTestCase):

    def bridge(self, timeout: float = 5.0) -> UploadBridge:
        return UploadBridge(self.server, timeout)

    @inlineCallbacks
    def test_a_call_the_reactor_never_answers_raises_bridge_timeout_promptly(self):
        bridge = self.bridge(timeout=0.2)
        never: Deferred = Deferred()

        def wait_for_nothing():
            started = time.monotonic()
            try:
                bridge.call(lambda: never)
            except BridgeTimeout as error:
                return time.monotonic() - started, str(error)
            return None

        elapsed, message = yield in_thread(wait_for_nothing)
        self.assertLess(elapsed, 1.0)
        self.assertIn("UPLOADS_BRIDGE_TIMEOUT", message)

    @inlineCallbacks
    def test_a_stopped_reactor_raises_reactor_not_running_at_once(self):
        bridge = UploadBridge(self.server, 5.0, reactor=_StoppedReactor())
        started = time.monotonic()
        yield self.assertFailure(in_thread(bridge.list_entries, "s"), ReactorNotRunning)
        self.assertLess(time.monotonic() - started, 1.0)

    def test_calling_from_the_reactor_thread_raises_instead_of_deadlocking(self):
        with self.assertRaises(ReactorThreadCall):
            self.bridge().list_entries("s")

    @inlineCallbacks
    def test_errors_raised_in_the_reactor_thread_reach_the_caller(self):
        error = yield self.assertFailure(in_thread(self.bridge().cancel, "no-session", "ref"), UploadError)
        self.assertEqual(error.code.value, "unknown_entry")

    @inlineCallbacks
    def test_an_unknown_session_lists_nothing(self):
        self.assertEqual((yield in_thread(self.bridge().list_entries, "unknown")), [])


class InstallTests(unittest.TestCase):

    def test_without_an_installed_server_or_standalone_listener_views_get_a_clear_error(self):
        from django_shim import bridge

        self.assertIsNone(bridge.installed())
        with self.assertRaises(bridge.BridgeNotConfigured):
            bridge.get_bridge()
