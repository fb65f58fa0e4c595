"""The page's upload-token renewal: what the browser client asks for when the server refused an expired token."""

from __future__ import annotations

from django.core import signing
from twisted.trial import unittest

from django_shim.conf import uploads_settings
from django_shim.liveview import TOKEN_RENEWAL_FIELD
from django_shim.tokens import TOKEN_SALT, DjangoTokenVerifier

from .support import Browser, Page, django_thread


def payload(token: str) -> dict:
    return signing.loads(token, key=uploads_settings().secret, salt=TOKEN_SALT)


class TokenRenewalTests(unittest.TestCase):

    def renew(self, browser: Browser, page: Page, headers: dict[str, str] | None = None, **fields: str):  # type: ignore[no-untyped-def]
        return browser.post(page, None, {"X-DJ-Request": "1"} if headers is None else headers,
                            **{TOKEN_RENEWAL_FIELD: "renew", **fields})

    @django_thread
    def test_a_renewed_token_grants_the_same_upload_session_and_slots(self):
        browser = Browser()
        page = browser.open("/profile/")
        response = self.renew(browser, page)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["content-type"], "application/json")
        renewed = response.json()["token"]
        old, new = payload(page.token), payload(renewed)
        self.assertEqual(new["session"], old["session"])
        self.assertEqual(new["slots"], old["slots"])
        self.assertEqual(new["sk"], old["sk"])
        verifier = DjangoTokenVerifier(uploads_settings().secret, session_cookie=uploads_settings().session_cookie)
        self.assertEqual(verifier(renewed, page.handshake).session, old["session"])

    @django_thread
    def test_renewal_runs_no_handler_even_when_an_event_is_named(self):
        browser = Browser()
        page = browser.open("/files/")
        self.assertEqual(self.renew(browser, page, dj_event="bump", by="5").status_code, 200)
        after = browser.event(page, "bump", by="1")
        self.assertIn('<p id="counter">1</p>', after.html)

    @django_thread
    def test_another_django_session_cannot_renew_a_view_it_does_not_own(self):
        owner, stranger = Browser(), Browser()
        page = owner.open("/profile/")
        strangers_page = stranger.open("/profile/")
        stolen = Page(page.path, page.html.replace(page.csrf, strangers_page.csrf))
        response = self.renew(stranger, stolen)
        self.assertEqual(response.status_code, 404)

    @django_thread
    def test_renewal_without_the_csrf_token_is_forbidden(self):
        browser = Browser()
        page = browser.open("/profile/")
        response = browser.client.post(page.path, {"dj_view": page.view_id, TOKEN_RENEWAL_FIELD: "renew"},
                                       headers={"X-DJ-Request": "1"})
        self.assertEqual(response.status_code, 403)

    @django_thread
    def test_an_unknown_view_id_gets_no_token(self):
        browser = Browser()
        page = browser.open("/profile/")
        response = browser.client.post(page.path, {"dj_view": "nope", "csrfmiddlewaretoken": page.csrf,
                                                   TOKEN_RENEWAL_FIELD: "renew"}, headers={"X-DJ-Request": "1"})
        self.assertEqual(response.status_code, 404)
