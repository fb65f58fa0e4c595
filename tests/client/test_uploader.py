"""UploadClient in process, over real loopback sockets: how each kind of connection failure ends the run, and how
the client keeps to the server's limits. Timers run on a ``Clock`` where the test needs to move time.
"""

from __future__ import annotations

import hashlib

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import Clock

from twisted_uploads.client import FileUpload, UploadClient
from twisted_uploads.codec import SERVER_MESSAGES
from twisted_uploads.connection import ConnectionLimits
from twisted_uploads.slots import SlotConfig

from ..e2e.support import ServerTestCase
from .support import (AbruptRefusalPeer, BusyPeer, DeafAfterCompletePeer, DroppingPeer, MovingPeer, SilentServer,
                      StallingPeer, StoppedReaderPeer, deadline, listen)


def sha256_file(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class RefusalTests(ServerTestCase):
    """A refusal retrying cannot change ends the run at once; the client says which one it was."""

    @deadline()
    @inlineCallbacks
    def test_http_404_is_final_and_not_retried(self):
        client = UploadClient(self.url.replace("/uploads/ws", "/nowhere"), self.token(), max_retries=5)
        [result] = yield client.upload([FileUpload.from_path(self.make_file(100), "files")])
        self.assertEqual((result.status, result.code, client.failure.code.value, client.reconnects),
                         ("error", "unreachable", "unreachable", 0))
        self.assertIn("(HTTP 404)", client.failure.message)

    @deadline()
    @inlineCallbacks
    def test_http_403_for_the_origin_is_forbidden_origin_and_not_retried(self):
        client = UploadClient(self.url, self.token(), origin="http://evil.example", max_retries=5)
        [result] = yield client.upload([FileUpload.from_path(self.make_file(100), "files")])
        self.assertEqual((result.code, client.failure.code.value, client.reconnects),
                         ("forbidden_origin", "forbidden_origin", 0))

    @deadline()
    @inlineCallbacks
    def test_an_invalid_token_carries_the_servers_reason(self):
        client = UploadClient(self.url, "garbage", max_retries=5)
        [result] = yield client.upload([FileUpload.from_path(self.make_file(100), "")])
        self.assertEqual((result.code, client.failure.code.value, client.reconnects),
                         ("invalid_token", "invalid_token", 0))
        self.assertEqual(client.failure.message, result.message)

    @deadline()
    @inlineCallbacks
    def test_an_invalid_token_error_is_final_even_without_its_close_frame(self):
        peer = AbruptRefusalPeer()
        url = f"ws://127.0.0.1:{listen(self, peer)}/uploads/ws"
        client = UploadClient(url, "token", max_retries=5)
        [result] = yield client.upload([FileUpload.from_path(self.make_file(100), "files")])
        self.assertEqual((result.code, result.message), ("invalid_token", "the upload token has expired"))
        self.assertEqual((client.reconnects, peer.auths), (0, 1))

    def test_no_files_fire_at_once_with_no_results(self):
        done = UploadClient(self.url, self.token()).upload([])
        self.assertEqual(self.successResultOf(done), [])

    @deadline()
    @inlineCallbacks
    def test_a_wss_url_to_a_plain_server_ends_the_run_instead_of_raising(self):
        # Without pyOpenSSL the TLS connection cannot even be tried; with it, the TLS handshake fails. Either way the
        # run ends with one code instead of an exception from a timer (which used to hang it).
        client = UploadClient(self.url.replace("ws://", "wss://"), self.token(), max_retries=0,
                              connect_timeout=2)
        [result] = yield client.upload([FileUpload.from_path(self.make_file(100), "files")])
        self.assertEqual(result.code, "unreachable")

    def test_a_url_that_is_not_a_websocket_url_is_refused_before_any_socket(self):
        with self.assertRaisesRegex(ValueError, "did you mean ws://"):
            UploadClient(self.url.replace("ws://", "http://"), self.token())

    def test_a_directory_is_refused_before_any_socket(self):
        with self.assertRaises(IsADirectoryError):
            FileUpload.from_path(self.make_file(1).parent, "files")


class RetryTests(ServerTestCase):
    """Only progress (bytes the server newly holds) resets the count of failed attempts."""

    @deadline()
    @inlineCallbacks
    def test_a_server_that_accepts_then_drops_every_time_is_given_up_on(self):
        peer = DroppingPeer()
        url = f"ws://127.0.0.1:{listen(self, peer)}/uploads/ws"
        client = UploadClient(url, "token", max_retries=2)
        [result] = yield client.upload([FileUpload.from_path(self.make_file(10_000), "files")])
        self.assertEqual((result.code, client.reconnects), ("unreachable", 2))
        self.assertIn("(3 attempts in a row)", result.message)
        self.assertEqual([m["type"] for m in peer.received], ["auth", "announce", "auth", "resume", "auth", "resume"])


class StallTests(ServerTestCase):
    """An open connection on which the server falls silent while we wait is dropped after ``stall_timeout``."""

    @deadline()
    @inlineCallbacks
    def test_a_server_silent_after_accepting_is_dropped_when_the_clock_passes_the_stall_timeout(self):
        peer = StallingPeer()
        url = f"ws://127.0.0.1:{listen(self, peer)}/uploads/ws"
        clock = Clock()
        client = UploadClient(url, "token", clock=clock, stall_timeout=30, max_retries=0)
        done = client.upload([FileUpload.from_path(self.make_file(100_000), "files")])
        yield peer.first_chunk
        clock.advance(29.9)
        self.assertFalse(done.called)
        clock.advance(0.1)
        [result] = yield done
        self.assertEqual(result.code, "unreachable")
        self.assertIn("the server sent nothing for 30 s", result.message)


class ConnectTimeoutTests(ServerTestCase):
    """An attempt that connects but is never welcomed ends after ``connect_timeout`` on the client's clock."""

    @deadline()
    @inlineCallbacks
    def test_a_silent_server_is_given_up_on_when_the_clock_passes_the_timeout(self):
        silent = SilentServer()
        self.addCleanup(silent.close_all)
        url = f"ws://127.0.0.1:{listen(self, silent)}/uploads/ws"
        clock = Clock()
        client = UploadClient(url, self.token(), clock=clock, connect_timeout=7, max_retries=0)
        done = client.upload([FileUpload.from_path(self.make_file(100), "files")])
        yield silent.accepted  # the socket is open: only the timeout can end this attempt now
        clock.advance(6.9)
        self.assertFalse(done.called)
        clock.advance(0.1)
        [result] = yield done
        self.assertEqual(result.code, "unreachable")
        self.assertIn("no answer from", result.message)

    @deadline()
    @inlineCallbacks
    def test_after_a_timeout_the_next_attempt_waits_out_the_backoff_then_connects_again(self):
        silent = SilentServer()
        self.addCleanup(silent.close_all)
        url = f"ws://127.0.0.1:{listen(self, silent)}/uploads/ws"
        clock = Clock()
        client = UploadClient(url, self.token(), clock=clock, connect_timeout=1, max_retries=1)
        done = client.upload([FileUpload.from_path(self.make_file(100), "files")])
        yield silent.accepted
        clock.advance(1)
        self.assertEqual(client.reconnects, 1)
        second = Deferred()
        silent.accepted = second
        clock.advance(0.25)  # the longest first backoff
        yield second
        clock.advance(1)
        [result] = yield done
        self.assertEqual((result.code, len(silent.connections)), ("unreachable", 2))
        self.assertIn("2 attempts in a row", result.message)


class MaxParallelTests(ServerTestCase):
    """More files than the server's ``max_parallel``, and a larger ``parallel``: nobody fails with server_busy."""

    limits = ConnectionLimits(max_parallel=2)

    @deadline()
    @inlineCallbacks
    def test_announces_beyond_max_parallel_wait_for_a_free_place(self):
        sources = [self.make_file(150_000 + i, f"f{i}.bin") for i in range(9)]
        client = UploadClient(self.url, self.token(files=SlotConfig(max_entries=9)), parallel=9)
        results = yield client.upload([FileUpload.from_path(s, "files") for s in sources])
        self.assertEqual([(r.status, r.code) for r in results], [("complete", None)] * 9)
        self.assertEqual([r.sha256 for r in results], [sha256_file(s) for s in sources])
        self.assertIsNone(client.failure)

    @deadline()
    @inlineCallbacks
    def test_a_server_busy_with_nothing_of_ours_running_is_retried_a_bounded_number_of_times(self):
        peer = BusyPeer()
        url = f"ws://127.0.0.1:{listen(self, peer)}/uploads/ws"
        client = UploadClient(url, "token", max_retries=2)
        [result] = yield client.upload([FileUpload.from_path(self.make_file(100), "files")])
        self.assertEqual((result.status, result.code), ("error", "server_busy"))
        self.assertEqual([m["type"] for m in peer.received], ["auth", "announce", "announce", "announce"])


class PacingTests(ServerTestCase):
    """A large window is what the client may leave unacknowledged, not what it buffers: it writes while its socket
    takes the data (uploader.SEND_BUFFER), so on a slow link the backlog sits in the kernel, not in the process."""

    @deadline()
    @inlineCallbacks
    def test_a_window_as_large_as_the_file_is_not_buffered_in_the_client(self):
        peer = StoppedReaderPeer()
        url = f"ws://127.0.0.1:{listen(self, peer)}/uploads/ws"
        source = self.make_file(64 * 1024 * 1024)
        sent_at_first_ack: list[int] = []

        def progress(upload: FileUpload) -> None:
            if not sent_at_first_ack:
                sent_at_first_ack.append(upload.sent)
                peer.resume()

        client = UploadClient(url, "token", on_progress=progress)
        [result] = yield client.upload([FileUpload.from_path(source, "files")])
        self.assertEqual((result.status, result.sha256), ("complete", hashlib.sha256(source.read_bytes()).hexdigest()))
        # Without pacing the client would have queued the whole 64 MiB window in its process by then; with it,
        # at most its own buffer plus what the kernel's socket buffers (a few MiB on loopback) took.
        self.assertLess(sent_at_first_ack[0], 16 * 1024 * 1024)


class FinishedAtTests(ServerTestCase):
    """A result says when its file ended (the server's ``complete``), not when the connection closed after it."""

    @deadline()
    @inlineCallbacks
    def test_finished_at_is_the_complete_not_the_close_handshake_after_it(self):
        from twisted.internet import reactor

        from twisted_uploads.client.uploader import CLOSE_GRACE

        peer = DeafAfterCompletePeer()
        url = f"ws://127.0.0.1:{listen(self, peer)}/uploads/ws"
        clock = Clock()
        clock.advance(100)

        def progress(upload: FileUpload) -> None:
            if upload.status == "complete":
                # The close frame goes unanswered: only the client's timer (on the Clock) ends the handshake.
                reactor.callLater(0, clock.advance, CLOSE_GRACE)

        client = UploadClient(url, "token", clock=clock, on_progress=progress)
        [result] = yield client.upload([FileUpload.from_path(self.make_file(300_000), "files")])
        self.assertEqual(result.status, "complete")
        self.assertEqual(result.finished_at, 100)
        self.assertEqual(clock.seconds(), 100 + CLOSE_GRACE)


class MovedTests(ServerTestCase):
    """``moved``: another connection took the entry over; the client stops sending it and reports it."""

    @deadline()
    @inlineCallbacks
    def test_a_moved_entry_stops_sending_and_ends_as_moved(self):
        peer = MovingPeer(chunk_size=1024)
        url = f"ws://127.0.0.1:{listen(self, peer)}/uploads/ws"
        client = UploadClient(url, "token")
        [result] = yield client.upload([FileUpload.from_path(self.make_file(64 * 1024), "files")])
        close_code = yield peer.closed
        self.assertEqual((result.status, result.moved, result.ok, result.code), ("moved", True, False, None))
        # The four chunks of the window were in flight before the move; the ack after it brought nothing more.
        self.assertEqual(len(peer.frames), 4)
        self.assertEqual((client.failure, close_code), (None, 1000))

    @deadline(20)
    @inlineCallbacks
    def test_a_second_connection_resuming_the_entry_moves_it_away_from_the_first(self):
        if "moved" not in SERVER_MESSAGES:
            self.skipTest("the server does not send moved yet (the edge branch adds it)")
        source = self.make_file(24 * 1024 * 1024)  # more than the first client's window of 4 MiB (a quarter of 16)
        token = self.token(files=SlotConfig(max_file_size=10**8))
        taken_over: Deferred = Deferred()

        def pause_first(upload: FileUpload) -> None:
            # Stop reading the first socket once it made progress: it can neither finish nor hear acks.
            if upload.acked and not taken_over.called:
                first._protocol.transport.pauseProducing()
                taken_over.callback(upload.entry_id)

        first = UploadClient(self.url, token, window_chunks=2, on_progress=pause_first)
        first_done = first.upload([FileUpload.from_path(source, "files")])
        entry_id = yield taken_over
        second_upload = FileUpload.from_path(source, "files")
        second_upload.entry_id = entry_id
        [second_result] = yield UploadClient(self.url, token).upload([second_upload])
        first._protocol.transport.resumeProducing()
        [first_result] = yield first_done
        self.assertEqual((first_result.status, second_result.status), ("moved", "complete"))
        self.assertEqual(second_result.sha256, sha256_file(source))


class WindowTests(ServerTestCase):
    """A window of our own, smaller than the server's, still reaches the server's next ack."""

    @deadline()
    @inlineCallbacks
    def test_a_window_below_a_quarter_of_the_servers_still_completes(self):
        source = self.make_file(3 * 1024 * 1024)
        client = UploadClient(self.url, self.token(files=SlotConfig(max_file_size=10**8)), window_chunks=1)
        [result] = yield client.upload([FileUpload.from_path(source, "files")])
        self.assertTrue(result.ok)
        self.assertEqual(result.sha256, sha256_file(source))
