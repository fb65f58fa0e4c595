"""Never silent: an upload server that cannot be reached ends in an error the page shows, and uploads go on once
it can be reached again (refused, down mid-upload, 404, 403 Origin)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from .support import BrowserTestCase, Gate, png_bytes, sha256_file

FILES = {"files": {"max_entries": 3, "max_file_size": 50_000_000}}
#: Fast retries for tests: the error after 3 failed attempts (tens of milliseconds), the ceiling at 200 ms.
FAST_RETRY = {"baseMs": 40, "maxMs": 200, "failAfter": 3}
#: With FAST_RETRY the error must come well within this (the default settings need about 4 s).
ERROR_WITHIN_MS = 5_000


class OutageTestCase(BrowserTestCase):
    """The page is loaded through a :class:`Gate`, so the gate's port is the page's own origin."""

    def setUp(self) -> None:
        super().setUp()
        self.gate = Gate(self.site.port)
        self.addCleanup(self.gate.shut)
        self.context.add_init_script(f"window.djUploadsOptions = {{retry: {json.dumps(FAST_RETRY)}}};")
        self.context.add_init_script("window.__errorAt = null; window.addEventListener('djust:upload:error', "
                                     "(e) => { if (window.__errorAt === null) window.__errorAt = performance.now(); });")

    def open_through_gate(self):  # type: ignore[no-untyped-def]
        return self.open_page(FILES, base_url=f"http://127.0.0.1:{self.gate.port}")

    def open_with_ws(self, ws: str):  # type: ignore[no-untyped-def]
        """A page (through the gate) whose root is configured with this WebSocket URL."""
        from urllib.parse import quote

        page = self.context.new_page()
        page.on("console", lambda msg: self.console.append(f"{msg.type}: {msg.text}"))
        page.goto(f"http://127.0.0.1:{self.gate.port}/page?slots={quote(json.dumps(FILES))}&ws={quote(ws)}")
        page.wait_for_function("() => window.djUploads !== undefined")
        return page

    def choose_and_time(self, page, name: str, data: bytes):  # type: ignore[no-untyped-def]
        source = self.make_file(name, data)
        page.evaluate("window.__chosenAt = performance.now()")
        self.choose(page, "files", [source])
        return source

    def assert_unreachable_error(self, page, name: str) -> None:  # type: ignore[no-untyped-def]
        """The file's error event (code unreachable) came within the bound; its row shows the error state."""
        page.wait_for_function("() => window.__errorAt !== null")
        errors = self.events(page, "djust:upload:error")
        self.assertEqual([(e["detail"]["file"], e["detail"]["code"]) for e in errors], [(name, "unreachable")])
        self.assertIsNotNone(errors[0]["detail"]["ref"])
        elapsed = page.evaluate("window.__errorAt - window.__chosenAt")
        self.assertLess(elapsed, ERROR_WITHIN_MS)
        item = page.locator("#progress-files .upload-progress-item")
        self.assertEqual(item.get_attribute("data-upload-status"), "error")
        self.assertEqual(item.get_attribute("data-upload-code"), "unreachable")
        self.assertEqual(item.locator(".upload-progress-text").text_content(),
                         "The upload server cannot be reached; retrying.")
        self.assertEqual(item.locator('[role="progressbar"]').get_attribute("aria-valuetext"),
                         "The upload server cannot be reached; retrying.")
        page.wait_for_function("() => document.getElementById('dj-upload-alerts').textContent.includes("
                               "'cannot be reached')")

    def assert_retrying(self, page) -> None:  # type: ignore[no-untyped-def]
        """Reconnecting goes on after the error was reported."""
        failures = page.evaluate("window.djUploads.connection().failures")
        page.wait_for_function(f"() => window.djUploads.connection().failures > {failures}")

    def assert_completes(self, page, source) -> None:  # type: ignore[no-untyped-def]
        entries = self.wait_all_complete(page, 1)
        self.assertEqual(entries[0]["sha256"], sha256_file(source))
        self.assertFalse(entries[0]["unreachable"])
        item = page.locator("#progress-files .upload-progress-item")
        self.assertEqual(item.get_attribute("data-upload-status"), "complete")
        self.assertIsNone(item.get_attribute("data-upload-code"))
        self.assertEqual(self.server_state(page)["entries"][0]["sha256"], sha256_file(source))


class RefusedAndDownTests(OutageTestCase):

    def test_a_refused_socket_ends_in_an_unreachable_error_and_the_upload_starts_when_the_server_is_up(self) -> None:
        page = self.open_through_gate()
        self.gate.shut()  # the page is loaded; now nothing listens on its port
        source = self.choose_and_time(page, "a.png", png_bytes(150_000))
        self.assert_unreachable_error(page, "a.png")
        self.assert_retrying(page)
        self.gate.open()
        self.assert_completes(page, source)

    def test_a_server_that_goes_down_mid_upload_is_reported_and_the_upload_resumes_when_it_is_back(self) -> None:
        page = self.open_through_gate()
        source = self.make_big_file("big.bin", 24 << 20)
        page.evaluate("window.__chosenAt = performance.now()")
        self.choose(page, "files", [source])
        self.wait_for_entries(page, "(es) => es.length === 1 && es[0].ackedOffset > 0")
        self.gate.shut()
        page.evaluate("window.__chosenAt = performance.now()")
        self.wait_for_entries(page, "(es) => es[0].status === 'paused' || es[0].unreachable")
        self.assert_unreachable_error(page, "big.bin")
        self.assert_retrying(page)
        self.gate.open()
        self.assert_completes(page, source)
        self.assertEqual(self.wait_all_complete(page, 1)[0]["resumeCount"], 1)

    def test_a_file_chosen_while_the_server_is_unreachable_shows_the_error_at_once(self) -> None:
        page = self.open_through_gate()
        self.gate.shut()
        self.choose_and_time(page, "a.png", png_bytes(1000))
        self.assert_unreachable_error(page, "a.png")
        second = self.make_file("b.png", png_bytes(2000))
        self.choose(page, "files", [second])
        page.wait_for_function("() => window.__events.filter((e) => e.type === 'djust:upload:error').length === 2")
        codes = [(e["detail"]["file"], e["detail"]["code"]) for e in self.events(page, "djust:upload:error")]
        self.assertEqual(codes[1], ("b.png", "unreachable"))
        self.gate.open()
        self.assertEqual(len(self.wait_all_complete(page, 2)), 2)


class MisroutedTests(OutageTestCase):
    """The socket reaches an HTTP server that will not upgrade it: 404 (wrong path) or 403 (Origin refused)."""

    def setUp(self) -> None:
        self.site_log = Path(tempfile.mktemp(prefix="twisted-uploads-misrouted-", suffix=".log"))
        self.site_args = ("--log", str(self.site_log))
        super().setUp()
        self.addCleanup(lambda: self.site_log.unlink(missing_ok=True))

    def fix_url(self, page) -> None:  # type: ignore[no-untyped-def]
        """What a re-rendered root with the right URL does: the next attempt uses it."""
        page.evaluate("""() => {
          const root = document.querySelector('[data-dj-view]');
          const config = JSON.parse(root.getAttribute('data-dj-uploads'));
          config.url = '/uploads/ws';
          root.setAttribute('data-dj-uploads', JSON.stringify(config));
        }""")

    def test_a_socket_routed_to_a_404_ends_in_an_unreachable_error_and_retrying_goes_on(self) -> None:
        page = self.open_with_ws("/no/such/ws")
        source = self.choose_and_time(page, "a.png", png_bytes(80_000))
        self.assert_unreachable_error(page, "a.png")
        self.assert_retrying(page)
        self.fix_url(page)
        self.assert_completes(page, source)

    def test_a_socket_refused_for_its_origin_ends_in_an_unreachable_error_and_retrying_goes_on(self) -> None:
        # The page's origin is the gate's port; the server's own port is another origin, which it refuses (403).
        page = self.open_with_ws(f"ws://127.0.0.1:{self.site.port}/uploads/ws")
        source = self.choose_and_time(page, "a.png", png_bytes(80_000))
        self.assert_unreachable_error(page, "a.png")
        self.assertIn("Refused upload WebSocket from origin", self.site_log.read_text())  # the server's own 403
        self.assert_retrying(page)
        self.fix_url(page)
        self.assert_completes(page, source)
