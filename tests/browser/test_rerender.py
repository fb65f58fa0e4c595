"""What the client keeps across event round trips: entries the handler left on the server, and itself after the
page an event answered with was written over the document."""

from __future__ import annotations

import json
import re
from urllib.parse import quote
from urllib.request import urlopen

from .support import BrowserTestCase, png_bytes

PHOTOS = {"photos": {"accept": ".png", "max_entries": 2, "max_file_size": 10_000_000}}


class UnconsumedEntriesTests(BrowserTestCase):

    def upload_two_then(self, page, event_button: str) -> None:  # type: ignore[no-untyped-def]
        self.choose(page, "photos", [self.make_file(f"p{i}.png", png_bytes(3000 + i)) for i in range(2)])
        self.wait_all_complete(page, 2)
        page.click(event_button)
        page.wait_for_function("() => document.getElementById('renders').textContent === '2'")

    def test_entries_the_handler_left_come_back_and_still_take_their_places(self) -> None:
        page = self.open_page(PHOTOS)
        self.upload_two_then(page, "#click-keep")
        self.wait_for_entries(page, "(es) => es.length === 2 && es.every((e) => e.status === 'complete')")
        self.assertEqual(page.locator("#preview-photos .upload-preview-item").count(), 2)
        # The slot is full on the server, and the page knows it: a third file is refused before any upload.
        self.choose(page, "photos", [self.make_file("third.png", png_bytes(1000))])
        page.wait_for_function("() => window.__events.some((e) => e.type === 'djust:upload:error')")
        [error] = [e["detail"] for e in self.events(page, "djust:upload:error")]
        self.assertEqual((error["file"], error["code"], error["ref"]), ("third.png", "too_many_files", None))
        self.assertEqual(len(self.server_state(page)["entries"]), 2)

    def test_entries_the_handler_consumed_leave_the_page_and_free_their_places(self) -> None:
        page = self.open_page(PHOTOS)
        self.upload_two_then(page, "#click-save")
        self.wait_for_entries(page, "(es) => es.length === 0")
        self.choose(page, "photos", [self.make_file("third.png", png_bytes(1000))])
        self.assertEqual(self.wait_all_complete(page, 1)[0]["name"], "third.png")
        self.assertEqual(self.events(page, "djust:upload:error"), [])

    def test_a_kept_entry_is_known_again_after_a_reconnect(self) -> None:
        page = self.open_page(PHOTOS)
        self.upload_two_then(page, "#click-keep")
        self.wait_for_entries(page, "(es) => es.length === 2 && es.every((e) => e.status === 'complete')")
        sockets = page.evaluate("window.djUploads.connection().sockets")
        page.evaluate("window.djUploads.reconnect()")
        self.choose(page, "photos", [self.make_file("third.png", png_bytes(1000))])
        page.wait_for_function("() => window.__events.some((e) => e.type === 'djust:upload:error')")
        self.assertEqual(self.events(page, "djust:upload:error")[0]["detail"]["code"], "too_many_files")
        self.assertGreaterEqual(page.evaluate("window.djUploads.connection().sockets"), sockets)


class WrittenPageTests(BrowserTestCase):

    def test_the_client_works_on_a_page_written_by_its_document_write_fallback(self) -> None:
        page = self.open_page(PHOTOS)
        page.click("#click-written")
        page.locator("#written").wait_for()
        page.wait_for_function("() => window.djUploads !== undefined")
        # A root that appears later (inserted by the page's own script) is bound and uploads as usual: the
        # document's listeners and observer, dropped by document.open(), were bound again.
        with urlopen(f"{self.base_url}/page?slots={quote(json.dumps(PHOTOS))}") as response:
            html = response.read().decode()
        root = re.search(r'<div data-dj-view=.*</div>', html, re.DOTALL).group(0)
        page.evaluate("(html) => document.body.insertAdjacentHTML('beforeend', html)", root)
        page.wait_for_function("() => document.querySelector('[dj-upload=photos]').multiple")
        self.choose(page, "photos", [self.make_file("after.png", png_bytes(2000))])
        entries = self.wait_all_complete(page, 1)
        self.assertEqual(entries[0]["name"], "after.png")
        self.assertEqual(page.evaluate("document.querySelectorAll('script[src$=\"uploads.js\"]').length"), 1)


class SessionEntriesTests(BrowserTestCase):

    def test_entries_of_the_session_another_tab_uploaded_are_shown_and_counted(self) -> None:
        first = self.open_page(PHOTOS)
        self.choose(first, "photos", [self.make_file(f"p{i}.png", png_bytes(3000 + i)) for i in range(2)])
        self.wait_all_complete(first, 2)
        # A second tab of the same view: the same root element (view id, token, upload session).
        root = first.evaluate("document.querySelector('[data-dj-view]').outerHTML")
        second = self.open_page(PHOTOS)
        second.evaluate("(html) => { document.querySelector('[data-dj-view]').outerHTML = html; }", root)
        second.wait_for_function("() => document.querySelector('#preview-photos') !== null")
        self.choose(second, "photos", [self.make_file("mine.png", png_bytes(1000))])
        # The welcome listed the first tab's two finished entries: the page shows them, and the slot is full.
        self.wait_for_entries(second, "(es) => es.filter((e) => e.status === 'complete').length === 2")
        second.wait_for_function("() => window.__events.some((e) => e.type === 'djust:upload:error')")
        [error] = [e["detail"] for e in self.events(second, "djust:upload:error")]
        self.assertEqual((error["file"], error["code"]), ("mine.png", "too_many_files"))
        items = second.locator("#preview-photos .upload-preview-item")
        shown = {items.nth(i).locator(".upload-preview-name").text_content(): items.nth(i).get_attribute("data-upload-status")
                 for i in range(items.count())}
        self.assertEqual(shown, {"p0.png": "complete", "p1.png": "complete", "mine.png": "error"})
        self.choose(second, "photos", [self.make_file("more.png", png_bytes(1000))])
        second.wait_for_function("() => window.__events.filter((e) => e.type === 'djust:upload:error').length === 2")
        later = self.events(second, "djust:upload:error")[1]["detail"]
        self.assertEqual((later["file"], later["code"], later["ref"]), ("more.png", "too_many_files", None))
