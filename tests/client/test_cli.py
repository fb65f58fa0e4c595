"""``python -m twisted_uploads`` as a user runs it: a real subprocess against a real server (or a scripted peer) on
loopback. Every case that used to hang has a deadline, so a hang fails the test instead of stalling the suite.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import sys
from pathlib import Path

from twisted.internet.defer import inlineCallbacks
from twisted.trial import unittest

from twisted_uploads.client.cli import EXIT_CODES
from twisted_uploads.connection import ConnectionLimits
from twisted_uploads.slots import SlotConfig

from ..e2e.support import SECRET, ServerTestCase
from .support import MovingPeer, SilentServer, closed_port, deadline, listen, run_cli, start_cli

ROOT = Path(__file__).resolve().parents[2]


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class UploadCommandTests(ServerTestCase):
    """``upload`` ends with a status from the documented table and one readable line per problem."""

    def upload(self, *args: str, token: str | None = None):
        return run_cli(self, "upload", *args, "--token", token or self.token(), "--no-progress")

    @deadline()
    @inlineCallbacks
    def test_a_good_upload_prints_its_sha256_and_exits_0(self):
        source = self.make_file(300_000)
        run = yield self.upload(str(source), "--url", self.url)
        self.assertEqual((run.status, run.stderr), (0, ""))
        self.assertIn(f"{source.name}: complete, 300000 bytes, sha256 {sha256_file(source)}", run.stdout)

    @deadline()
    @inlineCallbacks
    def test_a_wrong_path_ends_at_once_with_3_naming_http_404_and_the_default_path(self):
        source = self.make_file(1000)
        run = yield self.upload(str(source), "--url", self.url.replace("/uploads/ws", "/upload/ws"))
        self.assertEqual(run.status, 3)
        [line] = run.stderr_lines
        self.assertRegex(line, r"^error: unreachable: no upload endpoint at .*/upload/ws \(HTTP 404\).*/uploads/ws")

    @deadline()
    @inlineCallbacks
    def test_a_url_without_a_path_uploads_to_the_default_path(self):
        source = self.make_file(1000)
        run = yield self.upload(str(source), "--url", self.url.replace("/uploads/ws", ""))
        self.assertEqual(run.status, 0, run.stderr)
        self.assertEqual([sha256_file(p) for p in self.stored_files(records=False)], [sha256_file(source)])

    @deadline()
    @inlineCallbacks
    def test_an_http_url_is_a_usage_error_that_suggests_the_ws_url(self):
        source = self.make_file(1000)
        run = yield self.upload(str(source), "--url", self.url.replace("ws://", "http://"))
        self.assertEqual(run.status, 2)
        self.assertEqual(run.stderr_lines, [f"error: --url: {self.url.replace('ws://', 'http://')!r} is not a "
                                            f"WebSocket URL; did you mean {self.url}?"])

    @deadline()
    @inlineCallbacks
    def test_a_directory_as_file_is_a_usage_error_and_nothing_is_sent(self):
        directory = self.make_file(10).parent
        run = yield self.upload(str(directory), "--url", self.url)
        self.assertEqual(run.status, 2)
        self.assertEqual(run.stderr_lines, [f"error: {directory}: is a directory, not a file"])
        self.assertEqual(self.server.registry.sessions, {})

    @deadline()
    @inlineCallbacks
    def test_a_missing_file_is_a_usage_error(self):
        missing = self.make_file(10).parent / "nope.bin"
        run = yield self.upload(str(missing), "--url", self.url)
        self.assertEqual((run.status, run.stderr_lines), (2, [f"error: {missing}: No such file or directory"]))

    @deadline()
    @inlineCallbacks
    def test_a_refused_origin_ends_at_once_with_3_forbidden_origin(self):
        source = self.make_file(1000)
        run = yield self.upload(str(source), "--url", self.url, "--origin", "http://evil.example")
        self.assertEqual(run.status, 3)
        [line] = run.stderr_lines
        self.assertRegex(line, r"^error: forbidden_origin: .* refused the Origin http://evil\.example \(HTTP 403")

    @deadline()
    @inlineCallbacks
    def test_a_garbage_token_ends_with_4_invalid_token(self):
        source = self.make_file(1000)
        run = yield self.upload(str(source), "--url", self.url, token="garbage")
        self.assertEqual(run.status, 4)
        [line] = run.stderr_lines
        self.assertTrue(line.startswith("error: invalid_token: "), line)

    @deadline()
    @inlineCallbacks
    def test_a_forged_token_ends_with_4_and_one_line_for_all_files(self):
        sources = [str(self.make_file(1000, f"f{i}.bin")) for i in range(3)]
        token = self.token(files=SlotConfig(max_entries=3))
        run = yield self.upload(*sources, "--url", self.url, "--slot", "files", token=token[:-4] + "AAAA")
        self.assertEqual(run.status, 4)
        [line] = run.stderr_lines
        self.assertRegex(line, r"^error: invalid_token: .*\(3 of 3 files not uploaded\)$")

    @deadline()
    @inlineCallbacks
    def test_nothing_listening_ends_with_3_unreachable_after_the_bounded_retries(self):
        source = self.make_file(1000)
        url = f"ws://127.0.0.1:{closed_port(self)}/uploads/ws"
        run = yield self.upload(str(source), "--url", url, "--retries", "2")
        self.assertEqual(run.status, 3)
        [line] = run.stderr_lines
        self.assertRegex(line, rf"^error: unreachable: cannot reach {re.escape(url)}: .*refused.*"
                               rf"\(3 attempts in a row\)$")

    @deadline()
    @inlineCallbacks
    def test_a_server_that_never_answers_ends_after_the_connect_timeout(self):
        silent = SilentServer()
        self.addCleanup(silent.close_all)
        url = f"ws://127.0.0.1:{listen(self, silent)}/uploads/ws"
        source = self.make_file(1000)
        run = yield self.upload(str(source), "--url", url, "--connect-timeout", "0.5", "--retries", "0")
        self.assertTrue(silent.accepted.called, "the client never connected")
        self.assertEqual(run.status, 3)
        self.assertEqual(run.stderr_lines, [f"error: unreachable: cannot reach {url}: no answer from {url} within "
                                            f"0.5 s (1 attempt)"])

    @deadline()
    @inlineCallbacks
    def test_ctrl_c_ends_the_run_with_130(self):
        silent = SilentServer()
        self.addCleanup(silent.close_all)
        url = f"ws://127.0.0.1:{listen(self, silent)}/uploads/ws"
        process, ended = start_cli(self, "upload", str(self.make_file(100)), "--url", url, "--token", "t",
                                   "--no-progress")
        yield silent.accepted
        process.signalProcess("INT")
        run = yield ended
        self.assertEqual((run.status, run.stderr_lines), (130, ["error: interrupted"]))

    @deadline()
    @inlineCallbacks
    def test_a_token_with_several_slots_and_no_slot_option_asks_for_one(self):
        source = self.make_file(1000)
        token = self.token(photos=SlotConfig(), docs=SlotConfig())
        run = yield self.upload(str(source), "--url", self.url, token=token)
        self.assertEqual(run.status, 1)
        self.assertEqual(run.stderr_lines, [f"{source.name}: unknown_slot: the token grants 2 upload slots "
                                            f"(docs, photos); choose one"])

    @deadline()
    @inlineCallbacks
    def test_json_output_has_one_object_per_file(self):
        source = self.make_file(5000)
        run = yield run_cli(self, "upload", str(source), "--url", self.url, "--token", self.token(), "--json")
        [line] = run.stdout.splitlines()
        result = json.loads(line)
        self.assertEqual((run.status, result["status"], result["sha256"], result["sha256_matches"]),
                         (0, "complete", sha256_file(source), True))


class ServerMaxParallelTests(ServerTestCase):
    """The server's ``max_parallel`` (announced in ``welcome``) caps ``--parallel``: the rest wait their turn."""

    limits = ConnectionLimits(max_parallel=2)

    @deadline()
    @inlineCallbacks
    def test_parallel_above_the_servers_max_parallel_queues_the_rest_and_all_complete(self):
        sources = [self.make_file(200_000 + i, f"f{i}.bin") for i in range(7)]
        token = self.token(files=SlotConfig(max_entries=7))
        run = yield run_cli(self, "upload", *map(str, sources), "--url", self.url, "--token", token,
                            "--parallel", "7", "--no-progress")
        self.assertEqual((run.status, run.stderr), (0, ""))
        self.assertEqual(run.stdout.count(": complete, "), 7)
        stored = self.stored_files(records=False)
        self.assertEqual(sorted(map(sha256_file, stored)), sorted(map(sha256_file, sources)))


class MovedTests(ServerTestCase):
    """An entry another connection took over is reported as moved, with its own exit status."""

    @deadline()
    @inlineCallbacks
    def test_a_moved_file_is_reported_on_stdout_with_exit_5(self):
        peer = MovingPeer()
        url = f"ws://127.0.0.1:{listen(self, peer)}/uploads/ws"
        source = self.make_file(64 * 1024)
        run = yield run_cli(self, "upload", str(source), "--url", url, "--token", "t", "--slot", "files",
                            "--no-progress")
        self.assertEqual((run.status, run.stderr), (5, ""))
        self.assertEqual(run.stdout.strip(), f"{source.name}: moved: another connection of this upload session "
                                             f"took it over")


class TokenCommandTests(ServerTestCase):
    """``token`` explains itself and reads sizes, durations and accept lists the way a shell user writes them."""

    def grant(self, token: str) -> dict:
        payload = token.split(".")[0]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))

    @deadline()
    @inlineCallbacks
    def test_help_documents_secret_its_variable_ttl_and_the_slot_syntax(self):
        run = yield run_cli(self, "token", "--help")
        help_text = " ".join(run.stdout.split())
        self.assertEqual(run.status, 0)
        for needed in ("--secret", "$TWISTED_UPLOADS_SECRET", "--ttl", "default 3600 = 1h", "NAME[:field=value,",
                       "max_file_size=SIZE", "10MB", "1.5GiB", "accept=.png,.jpg", "';'"):
            self.assertIn(needed, help_text)

    @deadline()
    @inlineCallbacks
    def test_upload_help_lists_every_exit_status_and_the_connect_timeout(self):
        run = yield run_cli(self, "upload", "--help")
        self.assertIn("--connect-timeout", run.stdout)
        for status in EXIT_CODES:
            self.assertRegex(run.stdout, rf"\n  {status}\s+\S")

    @deadline()
    @inlineCallbacks
    def test_the_secret_comes_from_the_environment_and_the_token_uploads(self):
        run = yield run_cli(self, "token", "--slot", "files:max_file_size=10MB,accept=.bin", "--ttl", "2h",
                            env={"TWISTED_UPLOADS_SECRET": SECRET})
        self.assertEqual(run.status, 0, run.stderr)
        token = run.stdout.strip()
        source = self.make_file(2000)
        upload = yield run_cli(self, "upload", str(source), "--url", self.url, "--token", token, "--no-progress")
        self.assertEqual(upload.status, 0, upload.stderr)

    @deadline()
    @inlineCallbacks
    def test_units_commas_and_quotes_in_a_slot_are_read_as_written(self):
        run = yield run_cli(self, "token", "--secret", SECRET, "--ttl", "15m",
                            "--slot", 'photos:accept=".png,.jpg",max_file_size=1.5GiB,chunk_size=256KiB',
                            "--slot", "docs:accept=.pdf,application/zip,max_entries=3")
        self.assertEqual(run.status, 0, run.stderr)
        slots = self.grant(run.stdout.strip())["slots"]
        self.assertEqual((slots["photos"]["accept"], slots["photos"]["max_file_size"], slots["photos"]["chunk_size"]),
                         (".png,.jpg", 1610612736, 262144))
        self.assertEqual((slots["docs"]["accept"], slots["docs"]["max_entries"]), (".pdf,application/zip", 3))

    @deadline()
    @inlineCallbacks
    def test_a_size_without_a_known_unit_is_a_readable_usage_error(self):
        run = yield run_cli(self, "token", "--secret", SECRET, "--slot", "files:max_file_size=10M")
        self.assertEqual(run.status, 2)
        self.assertIn("argument --slot: slot 'files': '10M' is not a size", run.stderr)
        self.assertNotIn("invalid", run.stderr.replace("is not a size", ""))

    @deadline()
    @inlineCallbacks
    def test_no_secret_anywhere_is_a_usage_error_naming_the_variable(self):
        run = yield run_cli(self, "token", "--slot", "files")
        self.assertEqual(run.status, 2)
        self.assertEqual(run.stderr_lines, ["error: token: pass --secret or set $TWISTED_UPLOADS_SECRET (the secret "
                                            "the server verifies with)"])


class ConsoleScriptTests(unittest.TestCase):
    """The installed ``twisted-uploads`` script is the same program, under its own name."""

    @deadline()
    @inlineCallbacks
    def test_the_console_script_runs_and_names_itself_in_usage(self):
        script = Path(sys.executable).parent / "twisted-uploads"
        self.assertTrue(script.exists(), f"{script} is not installed (setup.cfg console_scripts)")
        run = yield start_cli(self, "upload", "--help", command=[str(script)])[1]
        self.assertEqual(run.status, 0, run.stderr)
        self.assertTrue(run.stdout.startswith("usage: twisted-uploads upload "), run.stdout[:80])


class DocsTests(unittest.TestCase):
    """docs/cli.md states the same exit statuses as the code."""

    def test_docs_exit_table_matches_the_code(self):
        text = (ROOT / "docs" / "cli.md").read_text()
        rows = re.findall(r"^\| `(\d+)` \| (.+?) \|$", text, flags=re.M)
        self.assertEqual([int(code) for code, _ in rows], list(EXIT_CODES))
