"""After a reload mid-upload, the new page shows the interrupted upload before any file is chosen ("holiday.png —
31 %, choose it again to continue", with Discard), the way Uppy's Golden Retriever shows ghosts. On the demo, whose
view marks its upload config ``resumable`` when earlier pages of the same Django session exist, so the client
connects at once and reads ``welcome.adoptable``."""

from __future__ import annotations

import json
import re

from twisted.trial.unittest import SkipTest

from twisted_uploads.connection import UploadConnection

from .support import WAIT_MS, DemoTestCase, axe_violations, png_bytes, sha256_file
from .test_accessibility import readable
from .test_reload_resume import RELOAD_MID_UPLOAD, RELOADED

GHOST = '[dj-upload-progress="photos"] .upload-progress-item[data-upload-status="interrupted"]'
GHOST_TEXT = re.compile(r"^holiday\.png \u2014 (\d+) %, choose it again to continue$")


class GhostTests(DemoTestCase):

    def setUp(self) -> None:
        if not hasattr(UploadConnection, "_on_discard"):
            raise SkipTest("the server half of ghosts (discard, a resumable page config) is not in this tree")
        super().setUp()

    def watch_socket(self, page) -> tuple[list[dict], list[dict]]:  # type: ignore[no-untyped-def]
        """Every JSON frame the page sends and receives, on every socket from now on (also after a reload)."""
        sent: list[dict] = []
        received: list[dict] = []

        def on_socket(ws) -> None:  # type: ignore[no-untyped-def]
            ws.on("framesent", lambda p: sent.append(json.loads(p)) if isinstance(p, str) else None)
            ws.on("framereceived", lambda p: received.append(json.loads(p)) if isinstance(p, str) else None)

        page.on("websocket", on_socket)
        return sent, received

    def reloaded_with_a_ghost(self, page=None):  # type: ignore[no-untyped-def]
        """Upload holiday.png, reload at 5 %, and wait (choosing nothing) for its ghost on the new page."""
        source = self.make_file("holiday.png", png_bytes(9_500_000))
        page = page or self.open_demo("/gallery/")
        frames: list[tuple[str, str]] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda p: frames.append(
            (ws.url, p)) if isinstance(p, str) and '"welcome"' in p else None))
        page.evaluate(RELOAD_MID_UPLOAD)
        self.choose(page, "photos", [source])
        page.wait_for_function(RELOADED, timeout=WAIT_MS)
        ghost = page.locator(GHOST)
        try:
            ghost.wait_for(timeout=15_000)
        except Exception as error:  # noqa: BLE001 — reported with what the page saw
            raise AssertionError(f"no ghost: {error}\nwelcomes: {frames}\nconsole: {self.console}\n"
                                 f"sessionStorage: {page.evaluate('JSON.stringify(sessionStorage)')}\n"
                                 f"connection: {page.evaluate('window.djUploads.connection()')}\n"
                                 f"server log: {self.site.read_log()[-3000:]}") from None
        return page, source, ghost

    def partials(self) -> list[str]:
        """The partial files the upload server holds (one per paused or running entry)."""
        return sorted(path.name for path in (self.workdir / "uploads").glob("*/*.part"))

    def test_after_a_reload_the_interrupted_upload_shows_without_choosing_a_file(self) -> None:
        page, _, ghost = self.reloaded_with_a_ghost()
        self.assertEqual(ghost.locator(".upload-progress-name").text_content(), "holiday.png")
        text = ghost.locator(".upload-progress-text").text_content()
        match = GHOST_TEXT.match(text)
        self.assertIsNotNone(match, text)
        percent = int(match.group(1))
        self.assertGreater(percent, 0)
        bar = ghost.locator(".upload-progress-track > .upload-progress-bar[role=progressbar]")
        self.assertEqual(bar.get_attribute("aria-valuenow"), str(percent))
        self.assertEqual(bar.get_attribute("aria-valuetext"), text)
        discard = page.get_by_role("button", name="Discard holiday.png")
        self.assertEqual(discard.count(), 1)
        self.assertEqual(discard.get_attribute("type"), "button")
        self.assertEqual(discard.text_content(), "Discard")
        # Only the progress container shows it (there is no file to preview), and nothing is an error.
        self.assertEqual(page.locator('[dj-upload-preview="photos"] [data-upload-ref]').count(), 0)
        page.wait_for_function("() => document.getElementById('dj-upload-status').textContent.startsWith("
                               "'Interrupted upload: holiday.png')")
        self.assertEqual(self.events(page, "djust:upload:error"), [])
        self.assertEqual(self.events(page, "djust:upload:progress"), [])
        [snapshot] = page.evaluate("window.djUploads.entries()")
        self.assertEqual((snapshot["status"], snapshot["progress"]), ("interrupted", percent))

    def test_choosing_the_same_file_again_turns_the_ghost_into_the_upload(self) -> None:
        page = self.open_demo("/gallery/")
        sent, received = self.watch_socket(page)
        page, source, ghost = self.reloaded_with_a_ghost(page)
        ref = ghost.get_attribute("data-upload-ref")
        del sent[:], received[:]  # what the reloaded page says from here on (its welcome is in already)
        self.choose(page, "photos", [source])
        [entry] = self.wait_all_complete(page, 1)
        self.assertEqual(entry["sha256"], sha256_file(source))
        self.assertEqual(entry["ref"], ref)
        self.assertEqual([m for m in sent if m["type"] == "announce"], [])
        [adopt] = [m for m in sent if m["type"] == "adopt"]
        [accepted] = [m for m in received if m["type"] == "accepted"]
        self.assertEqual((accepted["ref"], accepted["entry"]), (adopt["ref"], adopt["entry"]))
        self.assertGreater(accepted["offset"], 0)
        # The same item is the upload now: complete, with the usual remove control instead of Discard.
        items = page.locator('[dj-upload-progress="photos"] .upload-progress-item')
        self.assertEqual(items.count(), 1)
        self.assertEqual(items.get_attribute("data-upload-ref"), ref)
        self.assertEqual(items.get_attribute("data-upload-status"), "complete")
        self.assertEqual(page.get_by_role("button", name="Discard holiday.png").count(), 0)
        page.click('button[dj-click="upload_photos"]')
        page.locator('.gallery img[alt="holiday.png"]').wait_for()

    def test_another_file_of_the_same_name_and_size_leaves_the_ghost_waiting(self) -> None:
        page, _, ghost = self.reloaded_with_a_ghost()
        impostor = self.files_dir / "elsewhere" / "holiday.png"
        impostor.parent.mkdir()
        impostor.write_bytes(png_bytes(9_500_000))
        self.choose(page, "photos", [impostor])
        self.wait_for_entries(page, "(es) => es.some((e) => e.status === 'complete')")
        statuses = sorted(e["status"] for e in page.evaluate("window.djUploads.entries()"))
        self.assertEqual(statuses, ["complete", "interrupted"])
        self.assertEqual(ghost.count(), 1)
        [done] = [e for e in page.evaluate("window.djUploads.entries()") if e["status"] == "complete"]
        self.assertEqual(done["sha256"], sha256_file(impostor))

    def test_discard_removes_the_ghost_and_the_server_forgets_the_entry(self) -> None:
        page = self.open_demo("/gallery/")
        sent, received = self.watch_socket(page)
        page, _, ghost = self.reloaded_with_a_ghost(page)
        self.assertEqual(len(self.partials()), 1)
        del sent[:], received[:]
        page.get_by_role("button", name="Discard holiday.png").click()
        ghost.wait_for(state="detached")
        [discard] = [m for m in sent if m["type"] == "discard"]
        [cancelled] = [m for m in received if m["type"] == "cancelled"]
        self.assertEqual(cancelled["entry"], discard["entry"])
        self.assertEqual(self.partials(), [])
        self.assertEqual(page.evaluate("window.djUploads.entries()"), [])
        self.assertEqual(self.events(page, "djust:upload:error"), [])
        # The next page of the session (resumable: it connects at once) is offered nothing and shows nothing.
        with page.expect_websocket() as opened:
            page.reload()
        payload = opened.value.wait_for_event(
            "framereceived", predicate=lambda p: isinstance(p, str) and '"welcome"' in p)
        self.assertEqual(json.loads(payload)["adoptable"], [])
        page.wait_for_function("() => window.djUploads.connection().state === 'open'")
        self.assertEqual(page.locator('[dj-upload-progress="photos"] .upload-progress-item').count(), 0)

    def test_a_page_with_a_ghost_has_no_accessibility_violations(self) -> None:
        page, _, _ = self.reloaded_with_a_ghost()
        violations = axe_violations(page)
        self.assertEqual(violations, [], f"/gallery/ with an interrupted upload:\n{readable(violations)}")
