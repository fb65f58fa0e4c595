"""Without JavaScript: the same markup posts the files with the form, and the view consumes the same entries."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from twisted.internet.defer import inlineCallbacks

from django_shim.uploadhandler import part_directory
from twisted_uploads.entries import EntryStatus

from .files import gif_bytes, pdf_bytes, png_bytes
from .support import Browser, Page, ShimServerTestCase, in_thread


class WatchedInput:
    """A request body that, on every read, records the largest file in each watched directory."""

    def __init__(self, stream, directories: list[Path]) -> None:
        self._stream = stream
        self.largest = {directory: 0 for directory in directories}

    def _look(self) -> None:
        for directory in self.largest:
            sizes = [path.stat().st_size for path in directory.iterdir() if path.is_file()]
            self.largest[directory] = max([self.largest[directory], *sizes])

    def read(self, *args):
        self._look()
        return self._stream.read(*args)

    def readline(self, *args):
        self._look()
        return self._stream.readline(*args)


class WatchingClient(Client):
    """Django's test client, its request bodies watched (what is on disk while Django reads them)."""

    def __init__(self, directories: list[Path], **kwargs) -> None:
        super().__init__(**kwargs)
        self.directories = directories
        self.inputs: list[WatchedInput] = []

    def request(self, **request):
        if "wsgi.input" in request:
            request["wsgi.input"] = WatchedInput(request["wsgi.input"], self.directories)
            self.inputs.append(request["wsgi.input"])
        return super().request(**request)


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


class ReadWhilePostedTests(ShimServerTestCase):
    """No-JS posts are size-checked while Django reads them, and their refusals shown on the re-rendered page."""

    def setUp(self) -> None:
        super().setUp()
        self.parts = part_directory()
        self.django_tmp = Path(settings.FILE_UPLOAD_TEMP_DIR)
        self.browser = Browser()
        self.browser.client = WatchingClient([self.parts, self.django_tmp], enforce_csrf_checks=True)

    def submit(self, path: str, handler: str, files: dict[str, object]):
        """Post the handler's form with ``files`` but no event: the entries stay in the server to be looked at."""
        page = self.browser.open(path)
        fields = {name: value for name, value in form_fields(page, handler).items() if name != "dj_event"}
        response = self.browser.client.post(f"{path}?dj_view={page.view_id}", {**fields, **files})
        return page, response

    def part_files(self) -> list[Path]:
        return [p for p in self.parts.iterdir() if p.name.startswith("nojs-")]

    @inlineCallbacks
    def test_a_file_above_max_file_size_is_refused_while_read_never_stored_whole(self):
        big = png_bytes(pad_to=5_300_000)  # ProfileView: max_file_size=5_000_000
        page, response = yield in_thread(self.submit, "/profile/", "save_avatar",
                                         {"avatar": SimpleUploadedFile("me.png", big, "image/png")})
        self.assertEqual(response.status_code, 303)
        [watched] = self.browser.client.inputs
        self.assertLessEqual(watched.largest[self.parts], 5_000_000)
        self.assertEqual(watched.largest[self.django_tmp], 0, "Django spooled no copy of the file")
        [entry] = self.entries()
        self.assertEqual((entry.status, entry.error, entry.path), (EntryStatus.ERROR, "too_large", None))
        self.assertEqual(entry.client_size, 5_300_000)
        self.assertEqual(self.part_files(), [])

    @inlineCallbacks
    def test_a_post_without_the_view_id_in_its_url_is_checked_against_the_sessions_view_state(self):
        page = yield in_thread(self.browser.open, "/profile/")
        response = yield in_thread(self.browser.client.post, "/profile/", {
            "dj_view": page.view_id, "csrfmiddlewaretoken": page.csrf,
            "avatar": SimpleUploadedFile("me.png", png_bytes(pad_to=5_300_000), "image/png")})
        self.assertEqual(response.status_code, 303)
        [watched] = self.browser.client.inputs
        self.assertLessEqual(watched.largest[self.parts], 5_000_000)
        self.assertEqual(watched.largest[self.django_tmp], 0)
        [entry] = self.entries()
        self.assertEqual(entry.error, "too_large")

    @inlineCallbacks
    def test_the_page_after_a_refused_post_lists_the_refusal(self):
        page, response = yield in_thread(self.submit, "/profile/", "save_avatar",
                                         {"avatar": SimpleUploadedFile("me.png", png_bytes(pad_to=5_100_000),
                                                                       "image/png")})
        after = yield in_thread(self.browser.open, response["Location"])
        self.assertIn('<span class="upload-errors" role="alert" data-dj-upload-errors="avatar">'
                      '<span class="upload-error">me.png: The file is larger than allowed.</span></span>', after.html)

    @inlineCallbacks
    def test_the_seed_profile_view_lists_a_pdf_named_png_after_a_plain_post(self):
        # The case: the seed's save_avatar runs (it only ever sees complete entries) and the page it
        # redirects to says why the avatar was not taken — no 500.
        def post():
            page = self.browser.open("/profile/")
            return self.browser.client.post(f"/profile/?dj_view={page.view_id}", {
                **form_fields(page, "save_avatar"),
                "avatar": SimpleUploadedFile("cv.png", pdf_bytes(), "image/png")})

        response = yield in_thread(post)
        self.assertEqual(response.status_code, 303)
        after = yield in_thread(self.browser.open, response["Location"])
        self.assertIn("cv.png: The file&#x27;s content does not match its type or extension.", after.html)
        self.assertNotIn("/media/avatars/cv", after.html)

    @inlineCallbacks
    def test_a_refusal_is_listed_once(self):
        page, response = yield in_thread(self.submit, "/profile/", "save_avatar",
                                         {"avatar": SimpleUploadedFile("me.png", b"not a png", "image/png")})
        first = yield in_thread(self.browser.open, response["Location"])
        again = yield in_thread(self.browser.open, response["Location"])
        self.assertIn("me.png: The file&#x27;s content does not match", first.html)
        self.assertNotIn("upload-errors", again.html)

    @inlineCallbacks
    def test_an_accepted_post_is_hashed_while_read_and_adopted_by_the_server(self):
        content = png_bytes(pad_to=200_000)
        page, response = yield in_thread(self.submit, "/files/", "save",
                                         {"files": SimpleUploadedFile("a.png", content, "image/png")})
        self.assertEqual(response.status_code, 303)
        [entry] = self.entries()
        self.assertEqual(entry.status, EntryStatus.COMPLETE)
        self.assertEqual(entry.sha256, hashlib.sha256(content).hexdigest())
        self.assertEqual(Path(entry.path).read_bytes(), content)
        [watched] = self.browser.client.inputs
        self.assertEqual(watched.largest[self.django_tmp], 0, "Django spooled no copy of the file")
        self.assertEqual(self.part_files(), [])

    @inlineCallbacks
    def test_the_no_js_forms_post_to_their_view_id(self):
        page = yield in_thread(self.browser.open, "/profile/")
        self.assertIn(f'action="/profile/?dj_view={page.view_id}"', page.html)
        gallery = yield in_thread(self.browser.open, "/gallery/")
        self.assertIn(f'action="/gallery/?dj_view={gallery.view_id}" hidden>', gallery.html)

    @inlineCallbacks
    def test_a_post_refused_for_its_csrf_token_leaves_no_part_file(self):
        page = yield in_thread(self.browser.open, "/profile/")
        response = yield in_thread(self.browser.client.post, f"/profile/?dj_view={page.view_id}", {
            "dj_view": page.view_id, "dj_event": "save_avatar",
            "avatar": SimpleUploadedFile("me.png", png_bytes(pad_to=100_000), "image/png")})
        self.assertEqual(response.status_code, 403)
        self.assertEqual(self.entries(), [])
        self.assertEqual(self.part_files(), [])

    @inlineCallbacks
    def test_a_post_for_a_view_the_session_has_no_state_of_still_records_its_files(self):
        # The CSRF cookie comes from another page; ProfileView has no state in this session, so no slot is known
        # before the body is read: Django reads the file and the registry checks it afterwards.
        other = yield in_thread(self.browser.open, "/document/")
        content = png_bytes(pad_to=10_000)

        def post():
            return self.browser.client.post("/profile/", {
                "csrfmiddlewaretoken": other.csrf, "dj_event": "save_avatar",
                "avatar": SimpleUploadedFile("fresh.png", content, "image/png")})

        response = yield in_thread(post)
        self.assertEqual(response.status_code, 303)
        after = yield in_thread(self.browser.open, response["Location"])
        self.assertIn('src="/media/avatars/fresh', after.html)
