"""Ownership: a view reaches only its own upload session, and the server accepts only genuine, fresh tokens."""

from __future__ import annotations

import time

from twisted.internet.defer import inlineCallbacks

from django_shim.conf import uploads_settings
from django_shim.tokens import mint_token
from twisted_uploads.slots import SlotConfig
from tests.e2e.support import RawClient

from .files import png_bytes
from .support import Browser, ShimServerTestCase, in_thread


class SessionIsolationTests(ShimServerTestCase):

    @inlineCallbacks
    def test_another_sessions_view_sees_nothing(self):
        owner, stranger = Browser(), Browser()
        page = yield in_thread(owner.open, "/files/")
        [result] = yield self.upload(page, "files", ("secret.png", png_bytes()))
        self.assertTrue(result.ok)

        theirs = yield in_thread(stranger.open, "/files/")
        listed = yield in_thread(stranger.event, theirs, "list_uploads")
        self.assertNotIn("secret.png", listed.html)
        self.assertEqual(len(self.entries()), 1, "the owner's entry is untouched")

    @inlineCallbacks
    def test_a_stolen_view_id_does_not_reach_the_owners_uploads(self):
        owner, stranger = Browser(), Browser()
        page = yield in_thread(owner.open, "/files/")
        yield self.upload(page, "files", ("secret.png", png_bytes()))
        theirs = yield in_thread(stranger.open, "/files/")
        # The stranger posts the owner's view id with their own CSRF token: the id means nothing in their session.
        response = yield in_thread(stranger.client.post, "/files/", {
            "dj_view": page.view_id, "dj_event": "save", "csrfmiddlewaretoken": theirs.csrf},
            headers={"X-DJ-Request": "1"})
        self.assertEqual(response.status_code, 200)
        self.assertNotIn(page.view_id, response.content.decode())
        self.assertNotIn("secret.png", response.content.decode())
        self.assertEqual(len(self.entries()), 1)

    @inlineCallbacks
    def test_each_page_gets_its_own_upload_session(self):
        browser = Browser()
        first = yield in_thread(browser.open, "/files/")
        second = yield in_thread(browser.open, "/files/")
        self.assertNotEqual(first.view_id, second.view_id)
        grants = [self.server.verifier(page.token, page.handshake) for page in (first, second)]
        self.assertNotEqual(grants[0].session, grants[1].session)


class SessionBindingTests(ShimServerTestCase):
    """A page's token opens the upload socket only together with the session cookie of the browser it was
    rendered for: a token copied out of the page is not a key (docs/protocol.md §3)."""

    @inlineCallbacks
    def assertRefusedOverTheSocket(self, page, headers):  # type: ignore[no-untyped-def]
        client = yield RawClient.connect(self.ws_url, headers=headers)
        self.addCleanup(client.abort)
        client.send_json(type="auth", token=page.token)
        error = yield client.next("error")
        yield client.closed
        self.assertEqual((error["code"], client.close_code), ("invalid_token", 4001))
        return error

    @inlineCallbacks
    def test_a_copied_token_without_the_session_cookie_is_refused(self):
        page = yield in_thread(Browser().open, "/files/")
        error = yield self.assertRefusedOverTheSocket(page, None)
        self.assertIn("session cookie", error["message"])

    @inlineCallbacks
    def test_a_copied_token_with_another_browsers_session_cookie_is_refused(self):
        page = yield in_thread(Browser().open, "/files/")
        thief = yield in_thread(Browser().open, "/files/")
        self.assertNotEqual(page.cookies["sessionid"], thief.cookies["sessionid"])
        error = yield self.assertRefusedOverTheSocket(page, thief.cookie_headers)
        self.assertIn("another browser session", error["message"])

    @inlineCallbacks
    def test_the_token_with_its_session_cookie_is_welcomed(self):
        page = yield in_thread(Browser().open, "/files/")
        client = yield RawClient.connect(self.ws_url, headers=page.cookie_headers)
        self.addCleanup(client.abort)
        client.send_json(type="auth", token=page.token)
        welcome = yield client.next("welcome")
        self.assertEqual(sorted(welcome["slots"]), sorted(page.uploads["slots"]))

    @inlineCallbacks
    def test_a_copied_token_cannot_list_or_take_over_the_owners_entries(self):
        page = yield in_thread(Browser().open, "/files/")
        owner = yield RawClient.connect(self.ws_url, headers=page.cookie_headers)
        self.addCleanup(owner.abort)
        owner.send_json(type="auth", token=page.token)
        yield owner.next("welcome")
        accepted = yield owner.announce("mine.bin", 10_000, slot="files")
        owner.send_chunk(accepted["entry"], 0, b"m" * 1000)
        yield self.assertRefusedOverTheSocket(page, {"Cookie": "sessionid=guessed"})
        owner.send_chunk(accepted["entry"], 1000, b"m" * 9000)
        complete = yield owner.next("complete")
        self.assertEqual(complete["size"], 10_000)

    @inlineCallbacks
    def test_a_fresh_session_is_saved_before_its_first_token_is_minted(self):
        # A first visit has no session key until the session is saved; the token must be bound to the key the
        # browser then receives, or the page's own socket would be refused.
        browser = Browser()
        self.assertEqual(browser.cookies(), {})
        page = yield in_thread(browser.open, "/files/")
        grant = self.server.verifier(page.token, page.handshake)
        self.assertTrue(grant.session)


class TokenTests(ShimServerTestCase):

    @inlineCallbacks
    def test_a_forged_token_is_refused(self):
        browser = Browser()
        page = yield in_thread(browser.open, "/files/")
        payload, _, signature = page.token.rpartition(":")
        forged = payload + ":" + ("A" if signature[0] != "A" else "B") + signature[1:]
        [result] = yield self.upload(page, "files", ("a.png", png_bytes()), token=forged)
        self.assertEqual((result.status, result.code), ("error", "invalid_token"))
        self.assertEqual(self.entries(), [])

    @inlineCallbacks
    def test_a_token_with_raised_limits_is_refused(self):
        config = uploads_settings()
        # Signed with another key: what a client minting its own limits would have to do.
        token = mint_token("not-the-server-secret-0123456789", "s", {"files": SlotConfig(max_file_size=10**12)},
                           60, "k")
        client = yield RawClient.connect(self.ws_url)
        self.addCleanup(client.abort)
        client.send_json(type="auth", token=token)
        error = yield client.next("error")
        self.assertEqual(error["code"], "invalid_token")
        self.assertTrue(config.secret)

    @inlineCallbacks
    def test_an_expired_token_is_refused(self):
        config = uploads_settings()
        expired = mint_token(config.secret, "session-x", {"files": SlotConfig()}, 60, "key",
                             now=time.time() - 120)
        client = yield RawClient.connect(self.ws_url)
        self.addCleanup(client.abort)
        client.send_json(type="auth", token=expired)
        error = yield client.next("error")
        self.assertEqual(error["code"], "invalid_token")
        self.assertIn("expired", error["message"])


class CancelAndListTests(ShimServerTestCase):

    @inlineCallbacks
    def test_cancel_upload_from_a_view_drops_the_entry(self):
        browser = Browser()
        page = yield in_thread(browser.open, "/files/")
        [kept, dropped] = yield self.upload(page, "files", ("keep.png", png_bytes()), ("drop.png", png_bytes()))
        yield in_thread(browser.event, page, "cancel", ref=dropped.ref)
        self.assertEqual([e.client_name for e in self.entries()], ["keep.png"])
        saved = yield in_thread(browser.event, page, "save")
        self.assertIn("keep.png", saved.html)
        self.assertNotIn("drop.png", saved.html)

    @inlineCallbacks
    def test_cancel_upload_stops_an_upload_in_progress_and_tells_its_client(self):
        browser = Browser()
        page = yield in_thread(browser.open, "/files/")
        client = yield RawClient.connect(self.ws_url, headers=page.cookie_headers)
        self.addCleanup(client.abort)
        client.send_json(type="auth", token=page.token)
        yield client.next("welcome")
        accepted = yield client.announce("big.bin", 100_000, slot="files", ref="r-big")
        client.send_chunk(accepted["entry"], 0, b"x" * 1000)
        yield in_thread(browser.event, page, "cancel", ref="r-big")
        cancelled = yield client.next("cancelled")
        self.assertEqual(cancelled["ref"], "r-big")

    @inlineCallbacks
    def test_cancelling_an_unknown_ref_is_harmless(self):
        browser = Browser()
        page = yield in_thread(browser.open, "/files/")
        yield in_thread(browser.event, page, "cancel", ref="nope")
        self.assertEqual(self.entries(), [])

    @inlineCallbacks
    def test_get_uploads_lists_in_progress_entries_and_consume_leaves_them(self):
        browser = Browser()
        page = yield in_thread(browser.open, "/files/")
        client = yield RawClient.connect(self.ws_url, headers=page.cookie_headers)
        self.addCleanup(client.abort)
        client.send_json(type="auth", token=page.token)
        yield client.next("welcome")
        accepted = yield client.announce("half.bin", 10_000, slot="files", ref="r-half")
        client.send_chunk(accepted["entry"], 0, b"y" * 5000)
        [done] = yield self.upload(page, "files", ("done.png", png_bytes()))
        self.assertTrue(done.ok)

        def list_then_save():
            listed = browser.event(page, "list_uploads")
            saved = browser.event(page, "save")
            return listed, saved

        listed, saved = yield in_thread(list_then_save)
        self.assertIn("done.png", saved.html)
        remaining = self.entries()
        self.assertEqual([e.client_name for e in remaining], ["half.bin"], "in-progress entries stay")
        self.assertEqual(remaining[0].status.value, "uploading")
