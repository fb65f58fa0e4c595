"""The client half of resume-after-reload: what identifies a chosen file across page loads, and the warning before
leaving a page mid-upload. (The server half, adopting a paused entry into a new view, is not built yet.)"""

from __future__ import annotations

import hashlib
import json

from .support import BrowserTestCase, png_bytes

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
        fingerprint = announce["fingerprint"]
        self.assertEqual((fingerprint["name"], fingerprint["size"]), ("holiday.png", len(data)))
        self.assertEqual(fingerprint["head_sha256"], hashlib.sha256(data[:65536]).hexdigest())
        self.assertEqual(fingerprint["lastModified"] // 1000, int(source.stat().st_mtime))
        self.assertNotIn("path", announce)  # a file that did not come from a folder

    def test_a_small_file_is_fingerprinted_whole(self) -> None:
        page = self.open_page(FILES)
        announces = self.sent_announces(page)
        data = b"short\n"
        self.choose(page, "files", [self.make_file("s.txt", data)])
        self.wait_all_complete(page, 1)
        self.assertEqual(announces[0]["fingerprint"]["head_sha256"], hashlib.sha256(data).hexdigest())


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
