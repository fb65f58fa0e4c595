"""The seed's flow end to end: page → WebSocket upload (Python client) → event → consume in a sync view."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from twisted.internet.defer import inlineCallbacks

from ..support import stored_files
from .files import jpeg_bytes, pdf_bytes, png_bytes
from .support import Browser, ShimServerTestCase, in_thread


class UploadThenConsumeTests(ShimServerTestCase):
    """ProfileView, GalleryView and DocumentUploadView exactly as the seed writes them."""

    @inlineCallbacks
    def test_profile_avatar_is_uploaded_then_saved_by_the_view(self):
        browser = Browser()
        page = yield in_thread(browser.open, "/profile/")
        self.assertEqual(set(page.uploads["slots"]), {"avatar"})
        self.assertEqual(page.uploads["slots"]["avatar"]["max_file_size"], 5_000_000)
        content = png_bytes(pad_to=20_000)
        [result] = yield self.upload(page, "avatar", ("me.png", content))
        self.assertTrue(result.ok, result)

        after = yield in_thread(browser.event, page, "save_avatar")
        self.assertIn('src="/media/avatars/me', after.html)
        saved = Path(settings.MEDIA_ROOT, "avatars")
        [stored] = [p for p in saved.iterdir() if p.read_bytes() == content]
        self.assertTrue(stored.name.startswith("me"))
        self.assertEqual(self.entries(), [], "consumed entries are forgotten")
        self.assertEqual(stored_files(self.upload_dir), [], "and their files deleted")

    @inlineCallbacks
    def test_gallery_consumes_every_photo_on_one_click(self):
        browser = Browser()
        page = yield in_thread(browser.open, "/gallery/")
        results = yield self.upload(page, "photos", ("a.png", png_bytes()), ("b.jpg", jpeg_bytes(pad_to=9000)))
        self.assertTrue(all(r.ok for r in results), results)
        after = yield in_thread(browser.event, page, "upload_photos")
        self.assertIn('alt="a.png"', after.html)
        self.assertIn('alt="b.jpg"', after.html)
        self.assertEqual(self.entries(), [])

    @inlineCallbacks
    def test_failed_documents_never_reach_consume_uploaded_entries_and_stay_listed_with_their_error(self):
        # The seed's ProfileView saves entry.file without looking at entry.error: a failed file must never reach
        # such a loop (it answered 500 on a PDF named .png). Failures stay listed until their TTL instead.
        browser = Browser()
        page = yield in_thread(browser.open, "/docs/")
        results = yield self.upload(page, "docs", ("report.pdf", pdf_bytes()), ("fake.pdf", png_bytes()))
        self.assertEqual([r.status for r in results], ["complete", "error"])
        self.assertEqual(results[1].code, "type_mismatch")
        after = yield in_thread(browser.event, page, "process_uploads")
        self.assertIn("report.pdf", after.html)
        self.assertNotIn("fake.pdf: ", after.html)
        [failed] = self.entries()
        self.assertEqual((failed.client_name, failed.error), ("fake.pdf", "type_mismatch"))

    @inlineCallbacks
    def test_profile_view_answers_200_after_the_server_refused_the_avatar(self):
        browser = Browser()
        page = yield in_thread(browser.open, "/profile/")
        [result] = yield self.upload(page, "avatar", ("me.png", pdf_bytes()))
        self.assertEqual(result.code, "type_mismatch")
        after = yield in_thread(browser.event, page, "save_avatar")  # asserts a 200 answer
        self.assertNotIn('src="/media/avatars/', after.html)

    @inlineCallbacks
    def test_the_event_re_renders_the_root_element_only(self):
        browser = Browser()
        page = yield in_thread(browser.open, "/profile/")
        after = yield in_thread(browser.event, page, "save_avatar")
        self.assertTrue(after.html.startswith(f'<div data-dj-view="{page.view_id}"'))
        self.assertNotIn("<html", after.html)
        self.assertEqual(after.uploads["slots"], page.uploads["slots"])
