"""The disk fills up during an upload: that entry fails with ``storage_failed``, nothing else is touched.

The upload directory is a 2 MiB tmpfs, which needs root (CI runs as root); elsewhere the tests skip and say why.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from twisted_uploads.slots import SlotConfig

from .support import (EntryFailed, ProtocolClient, ServerTestCase, files_with_digest, record_figures,
                      sha256_bytes, token)

SLOTS = {"files": SlotConfig(max_file_size=10**8, max_entries=4)}
DISK_BYTES = 2 * 1024 * 1024


def mount_small_tmpfs(directory: Path) -> str | None:
    """Mount a 2 MiB tmpfs on ``directory``; the reason it cannot be done, or None."""
    if os.geteuid() != 0:
        return "mounting a small tmpfs needs root (CI runs as root)"
    try:
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES},mode=0700", "tmpfs",
                                 str(directory)], capture_output=True, text=True, timeout=20)
    except OSError as error:
        return f"cannot run mount: {error}"
    if result.returncode != 0:
        return f"cannot mount a tmpfs here: {result.stderr.strip() or result.returncode}"
    return None


class DiskFullTests(ServerTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.upload_dir.mkdir()
        reason = mount_small_tmpfs(self.upload_dir)
        if reason is not None:
            raise unittest.SkipTest(reason)
        # Registered before any server starts, so it runs after every server has been stopped.
        self.addCleanup(subprocess.run, ["umount", "--lazy", str(self.upload_dir)], timeout=20, check=True)

    @inlineCallbacks
    def upload(self, server, data: bytes, session: str | None = None, until: int | None = None):
        client = yield ProtocolClient.connect(self.ws_url(server))
        self.addCleanup(client.abort)
        yield client.authenticate(token(session, **SLOTS))
        accepted = yield client.announce(f"{secrets.token_hex(3)}.bin", len(data))
        self.assertEqual(accepted["type"], "accepted", accepted)
        reply = yield client.stream(accepted, data, until=until)
        return client, accepted, reply

    @inlineCallbacks
    def test_a_full_disk_fails_only_that_entry_and_the_server_keeps_taking_uploads(self):
        server = yield self.start_server(options=["--window", "4"])
        kept = secrets.token_bytes(256 * 1024)
        _, _, kept_complete = yield self.upload(server, kept)
        paused_session = secrets.token_hex(8)
        paused = secrets.token_bytes(512 * 1024)
        paused_client, paused_accepted, _ = yield self.upload(server, paused, paused_session, until=64 * 1024)
        yield paused_client.abort()

        too_big = secrets.token_bytes(3 * DISK_BYTES // 2)
        with self.assertRaises(EntryFailed) as failed:
            yield self.upload(server, too_big)
        self.assertEqual(failed.exception.code, "storage_failed")

        # The server is up and stores new uploads, on a new session and on the paused one.
        fresh = secrets.token_bytes(512 * 1024)
        _, _, fresh_complete = yield self.upload(server, fresh)
        self.assertEqual(fresh_complete["sha256"], sha256_bytes(fresh))
        resumer = yield ProtocolClient.connect(self.ws_url(server))
        self.addCleanup(resumer.abort)
        yield resumer.authenticate(token(paused_session, **SLOTS))
        resumer.send_json(type="resume", entry=paused_accepted["entry"])
        resumed = yield resumer.wait("accepted")
        paused_complete = yield resumer.stream(resumed, paused)
        self.assertEqual(paused_complete["sha256"], sha256_bytes(paused))

        for data in (kept, fresh, paused):
            self.assertTrue(files_with_digest(self.upload_dir, sha256_bytes(data)), "a stored file lost bytes")
        self.assertEqual(kept_complete["sha256"], sha256_bytes(kept))
        self.assertTrue(server.running)
        self.assertNoCrash(server)
        record_figures(self, faults={"disk full (ENOSPC)": 1}, inputs=4, files=3,
                       bytes_verified=len(kept) + len(fresh) + len(paused), bytes_lost=0)

    @inlineCallbacks
    def test_the_failed_entrys_bytes_are_deleted_so_the_space_comes_back(self):
        server = yield self.start_server(options=["--window", "4"])
        free_before = os.statvfs(self.upload_dir).f_bavail
        with self.assertRaises(EntryFailed) as failed:
            yield self.upload(server, secrets.token_bytes(3 * DISK_BYTES // 2))
        self.assertEqual(failed.exception.code, "storage_failed")
        stat = os.statvfs(self.upload_dir)
        # Records may take a few blocks; the failed file's megabytes must be free again.
        self.assertGreater(stat.f_bavail * stat.f_frsize, free_before * stat.f_frsize - 64 * 1024)
        self.assertNoCrash(server)
        record_figures(self, faults={"disk full (ENOSPC)": 1}, inputs=1, files=0, bytes_verified=0, bytes_lost=0)
