"""Without JavaScript: the same markup posts the files with the form, and the view consumes the same entries."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from twisted.internet.defer import inlineCallbacks

from .files import gif_bytes, pdf_bytes, png_bytes
from .support import Browser, Page, ShimServerTestCase, in_thread


def form_fields(page: Page, handler: str) -> dict[str, str]:
    """The hidden fields the server put into the dj-submit form for ``handler`` (what a browser would post)."""
    start = page.html.index(f'dj-submit="{handler}"')
    form = page.html[start: page.html.index("</form>", start)]
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form))


class NoJavaScriptTests(ShimServerTestCase):

    def submit(self, browser: Browser, path: str, handler: str, files: dict[str, object]):
        page = browser.open(path)
        response = browser.client.post(path, {**form_fields(page, handler), **files})
        return page, response

    @inlineCallbacks
    def test_a_plain_multipart_post_is_consumed_like_a_websocket_upload(self):
        browser = Browser()
        content = png_bytes(pad_to=10_000)
        page, response = yield in_thread(self.submit, browser, "/profile/", "save_avatar",
                                         {"avatar": SimpleUploadedFile("me.png", content, "image/png")})
        self.assertEqual(response.status_code, 303)
        self.assertEqual(response["Location"], f"/profile/?dj_view={page.view_id}")
        after = yield in_thread(browser.open, response["Location"])
        self.assertEqual(after.view_id, page.view_id)
        self.assertIn('src="/media/avatars/me', after.html)
        [stored] = [p for p in Path(settings.MEDIA_ROOT, "avatars").iterdir() if p.read_bytes() == content]
        self.assertTrue(stored.name.startswith("me"))
        self.assertEqual(self.entries(), [])

    @inlineCallbacks
    def test_posted_files_meet_the_same_rules_and_errors_reach_the_view(self):
        browser = Browser()
        files = {"docs": [SimpleUploadedFile("fine.pdf", pdf_bytes(), "application/pdf"),
                          SimpleUploadedFile("spoofed.pdf", png_bytes(), "application/pdf"),
                          SimpleUploadedFile("song.mp3", b"ID3" + b"\0" * 100, "audio/mpeg")]}
        page, response = yield in_thread(self.submit, browser, "/docs/", "process_uploads", files)
        after = yield in_thread(browser.open, response["Location"])
        self.assertIn("fine.pdf</a>", after.html)
        failed = {entry.client_name: entry.error for entry in self.entries()}
        self.assertEqual(failed, {"spoofed.pdf": "type_mismatch", "song.mp3": "not_accepted"})

    @inlineCallbacks
    def test_posting_more_files_than_max_entries_errors_the_extra_ones(self):
        browser = Browser()
        files = {"docs": [SimpleUploadedFile(f"{n}.pdf", pdf_bytes(), "application/pdf") for n in range(4)]}
        page, response = yield in_thread(self.submit, browser, "/docs/", "process_uploads", files)
        after = yield in_thread(browser.open, response["Location"])
        self.assertEqual(after.html.count(".pdf</a>"), 3)
        self.assertEqual([(entry.client_name, entry.error) for entry in self.entries()], [("3.pdf", "too_many_files")])

    @inlineCallbacks
    def test_the_gallery_button_posts_the_form_less_input_through_the_hidden_form(self):
        browser = Browser()
        page = yield in_thread(browser.open, "/gallery/")
        form_id = f"dj-form-{page.view_id}"
        self.assertIn(f'<input type="file" dj-upload="photos" name="photos" accept=".jpg,.png,.webp,.gif" multiple '
                      f'form="{form_id}">', page.html)
        self.assertIn(f'name="dj_event" value="upload_photos" type="submit" form="{form_id}"', page.html)

        def post():
            return browser.client.post("/gallery/", {
                "dj_view": page.view_id, "csrfmiddlewaretoken": page.csrf, "dj_event": "upload_photos",
                "photos": [SimpleUploadedFile("cat.gif", gif_bytes(), "image/gif")]})

        response = yield in_thread(post)
        after = yield in_thread(browser.open, response["Location"])
        self.assertIn('alt="cat.gif"', after.html)

    @inlineCallbacks
    def test_a_post_without_the_csrf_token_is_refused(self):
        browser = Browser()
        page = yield in_thread(browser.open, "/profile/")
        response = yield in_thread(browser.client.post, "/profile/", {
            "dj_view": page.view_id, "dj_event": "save_avatar",
            "avatar": SimpleUploadedFile("me.png", png_bytes(), "image/png")})
        self.assertEqual(response.status_code, 403)
        self.assertEqual(self.entries(), [], "nothing is ingested before the CSRF check")
