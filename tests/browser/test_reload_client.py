"""The client half of resume-after-reload: what identifies a chosen file across page loads, and the warning before
leaving a page mid-upload. (The server half, adopting a paused entry into a new view, is not built yet.)"""

from __future__ import annotations

import hashlib
import json

from .support import BrowserTestCase, png_bytes, sha256_file

FILES = {"files": {"max_entries": 3, "max_file_size": 200_000_000}}


class FingerprintTests(BrowserTestCase):

    def sent_announces(self, page) -> list[dict]:  # type: ignore[no-untyped-def]
        announces: list[dict] = []

        def on_socket(ws) -> None:  # type: ignore[no-untyped-def]
            def on_frame(payload) -> None:  # type: ignore[no-untyped-def]
                if isinstance(payload, str) and '"announce"' in payload:
                    announces.append(json.loads(payload))
            ws.on("framesent", on_frame)

        page.on("websocket", on_socket)
        return announces

    def test_announce_carries_name_size_mtime_and_the_sha256_of_the_first_64_kib(self) -> None:
        page = self.open_page(FILES)
        announces = self.sent_announces(page)
        data = png_bytes(200_000)
        source = self.make_file("holiday.png", data)
        self.choose(page, "files", [source])
        self.wait_all_complete(page, 1)
        [announce] = announces
        mtime_ms = announce["fingerprint"].split(":")[2]
        self.assertEqual(int(mtime_ms) // 1000, int(source.stat().st_mtime))
        self.assertEqual(announce["fingerprint"],
                         f"v1:{len(data)}:{mtime_ms}:{hashlib.sha256(data[:65536]).hexdigest()}")
        # The server keeps it with the entry and lists it (welcome, get_uploads).
        [entry] = self.server_state(page)["entries"]
        self.assertEqual(entry["fingerprint"], announce["fingerprint"])
        self.assertNotIn("relative_path", announce)  # a file that did not come from a folder

    def test_a_small_file_is_fingerprinted_whole(self) -> None:
        page = self.open_page(FILES)
        announces = self.sent_announces(page)
        data = b"short\n"
        self.choose(page, "files", [self.make_file("s.txt", data)])
        self.wait_all_complete(page, 1)
        self.assertTrue(announces[0]["fingerprint"].endswith(":" + hashlib.sha256(data).hexdigest()))


class LeavingTests(BrowserTestCase):

    def test_leaving_mid_upload_asks_first_and_a_finished_page_does_not(self) -> None:
        page = self.open_page(FILES)
        page.click("#title")  # browsers only ask pages the user has interacted with
        self.choose(page, "files", [self.make_big_file("big.bin", 48 << 20)])
        self.wait_for_entries(page, "(es) => es.length === 1 && es[0].status === 'uploading'")
        with page.expect_event("dialog") as asked:
            page.close(run_before_unload=True)
        self.assertEqual(asked.value.type, "beforeunload")
        asked.value.dismiss()  # stay on the page
        self.wait_all_complete(page, 1)
        with page.expect_event("close"):
            page.close(run_before_unload=True)  # nothing in flight: no question


class InterruptedUploadTests(BrowserTestCase):
    """A paused entry of the page's upload session that this page has no file for (the tab that sent it is gone)."""

    site_args = ("--resume-grace", "300")

    def interrupted_in_second_tab(self):  # type: ignore[no-untyped-def]
        """Tab one uploads part of a file and dies; tab two (same root: same view, same session) connects."""
        first = self.open_page(FILES)
        source = self.make_big_file("holiday.bin", 24 << 20)
        root = first.evaluate("document.querySelector('[data-dj-view]').outerHTML")
        self.choose(first, "files", [source])
        self.wait_for_entries(first, "(es) => es.length === 1 && es[0].ackedOffset > 0")
        first.close()
        second = self.context.new_page()
        second.goto(f"{self.base_url}/page?slots=%7B%7D")
        second.wait_for_function("() => window.djUploads !== undefined")
        second.evaluate("(html) => { document.querySelector('[data-dj-view]').outerHTML = html; }", root)
        second.locator("#input-files").wait_for()
        # Something to send opens the socket; its welcome lists the paused entry.
        self.choose(second, "files", [self.make_file("other.txt", b"other\n")])
        item = second.locator('#progress-files [data-upload-status="interrupted"]')
        item.wait_for()
        return second, source, item

    def test_an_interrupted_upload_is_shown_and_continues_when_its_file_is_chosen_again(self) -> None:
        page, source, item = self.interrupted_in_second_tab()
        text = item.locator(".upload-progress-text").text_content()
        self.assertRegex(text, r"^holiday\.bin \u2014 \d+ %, choose it again to continue$")
        offset = self.server_state(page)["entries"][0]["received"]
        self.assertGreater(offset, 0)
        self.choose(page, "files", [source])
        entries = {e["name"]: e for e in self.wait_all_complete(page, 2)}
        self.assertEqual(entries["holiday.bin"]["sha256"], sha256_file(source))
        self.assertEqual(entries["holiday.bin"]["resumeCount"], 1)
        self.assertEqual(len(self.server_state(page)["entries"]), 2)

    def test_another_file_of_the_same_name_and_size_is_not_taken_for_it(self) -> None:
        page, source, item = self.interrupted_in_second_tab()
        impostor = self.files_dir / "elsewhere" / "holiday.bin"
        impostor.parent.mkdir()
        impostor.write_bytes(b"\0" * source.stat().st_size)
        self.choose(page, "files", [impostor])
        page.wait_for_function("() => window.djUploads.entries().some((e) => e.name === 'holiday.bin' && "
                               "e.status === 'complete')")
        statuses = sorted(e["status"] for e in page.evaluate("window.djUploads.entries()")
                          if e["name"] == "holiday.bin")
        self.assertEqual(statuses, ["complete", "interrupted"])
        server = [e for e in self.server_state(page)["entries"] if e["name"] == "holiday.bin"]
        self.assertEqual(sorted(e["status"] for e in server), ["complete", "paused"])
        self.assertEqual(sorted(e["sha256"] for e in server if e["sha256"]), [sha256_file(impostor)])
