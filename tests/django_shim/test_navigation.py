"""A page navigation between the end of an upload and the POST that consumes it loses nothing."""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks

from .files import png_bytes
from .support import Browser, ShimServerTestCase, in_thread


class NavigationTests(ShimServerTestCase):

    @inlineCallbacks
    def test_navigating_elsewhere_and_back_then_posting_consumes_the_upload(self):
        browser = Browser()
        page = yield in_thread(browser.open, "/files/")
        [result] = yield self.upload(page, "files", ("kept.png", png_bytes()))
        self.assertTrue(result.ok)

        def wander():
            # Other pages, and a fresh instance of the same page, in the same session.
            browser.open("/gallery/")
            browser.open("/docs/")
            browser.open("/files/")
            return browser.open(f"/files/?dj_view={page.view_id}")

        back = yield in_thread(wander)
        self.assertEqual(back.view_id, page.view_id, "the stored instance is rendered again")
        self.assertEqual(self.server.verifier(back.token, back.handshake).session,
                         self.server.verifier(page.token, page.handshake).session)
        after = yield in_thread(browser.event, back, "save")
        self.assertIn("<li>kept.png</li>", after.html)
        self.assertEqual(self.entries(), [])

    @inlineCallbacks
    def test_the_original_pages_post_still_works_after_other_pages_were_opened(self):
        browser = Browser()
        page = yield in_thread(browser.open, "/files/")
        yield self.upload(page, "files", ("late.png", png_bytes()))
        for path in ("/files/", "/profile/", "/gallery/"):
            yield in_thread(browser.open, path)
        after = yield in_thread(browser.event, page, "save")
        self.assertIn("<li>late.png</li>", after.html)

    @inlineCallbacks
    def test_state_survives_between_requests_of_the_same_view(self):
        browser = Browser()
        page = yield in_thread(browser.open, "/files/")
        yield in_thread(browser.event, page, "bump", by="2")
        after = yield in_thread(browser.event, page, "bump", by="3")
        self.assertIn('<p id="counter">5</p>', after.html)
