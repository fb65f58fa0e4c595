"""Tokens minted with django.core.signing and checked by the verifier the reactor side calls."""

from __future__ import annotations

from django.core import signing
from twisted.trial import unittest

from django_shim.tokens import TOKEN_SALT, DjangoTokenVerifier, mint_token, token_matches_session
from twisted_uploads.errors import UploadError
from twisted_uploads.slots import SlotConfig
from twisted_uploads.tokens import Handshake, TokenGrant

SECRET = "a-test-upload-secret-0123456789"
SLOTS = {"avatar": SlotConfig(accept=".png", max_file_size=5_000_000)}


def with_session(session_key: str = "k", cookie: str = "sessionid") -> Handshake:
    """The handshake of a browser that holds the Django session ``session_key``."""
    return Handshake(origin="http://localhost:8000", host="localhost:8000", cookies={cookie: session_key})


class TokenTests(unittest.TestCase):

    def assertRefused(self, verifier: DjangoTokenVerifier, token: object,
                      handshake: Handshake | None = None) -> UploadError:
        handshake = handshake or with_session()
        with self.assertRaises(UploadError) as caught:
            verifier(token, handshake)  # type: ignore[arg-type]
        self.assertEqual(caught.exception.code.value, "invalid_token")
        return caught.exception

    def test_a_minted_token_grants_its_session_and_slots(self):
        token = mint_token(SECRET, "upload-session", SLOTS, 60, "django-session", now=1000.0)
        grant = DjangoTokenVerifier(SECRET, now=lambda: 1030.0)(token, with_session("django-session"))
        self.assertEqual(grant, TokenGrant("upload-session", SLOTS, 1060.0))

    def test_an_expired_token_is_refused(self):
        token = mint_token(SECRET, "s", SLOTS, 60, "k", now=1000.0)
        error = self.assertRefused(DjangoTokenVerifier(SECRET, now=lambda: 1060.0), token)
        self.assertIn("expired", error.message)

    def test_a_token_signed_with_another_key_is_refused(self):
        token = mint_token("another-secret-0123456789abcdef", "s", SLOTS, 60, "k")
        self.assertRefused(DjangoTokenVerifier(SECRET), token)

    def test_a_token_with_edited_slots_is_refused(self):
        token = mint_token(SECRET, "s", SLOTS, 60, "k")
        payload = signing.loads(token, key=SECRET, salt=TOKEN_SALT)
        payload["slots"]["avatar"]["max_file_size"] = 10**12
        # Re-signing needs the key; without it, swapping in the edited payload breaks the signature.
        forged = signing.dumps(payload, key="guess", salt=TOKEN_SALT, compress=True)
        self.assertRefused(DjangoTokenVerifier(SECRET), forged)

    def test_signatures_for_other_purposes_are_not_tokens(self):
        other = signing.dumps({"v": 1, "session": "s", "slots": {}, "exp": 10**10}, key=SECRET, salt="other")
        self.assertRefused(DjangoTokenVerifier(SECRET), other)

    def test_garbage_is_refused(self):
        verifier = DjangoTokenVerifier(SECRET)
        for token in ("", "x", "a:b:c", None, 42):
            self.assertRefused(verifier, token)

    def test_malformed_slots_are_refused(self):
        token = signing.dumps({"v": 1, "session": "s", "slots": {"a": {"max_entries": 0}}, "exp": 10**10},
                              key=SECRET, salt=TOKEN_SALT)
        self.assertRefused(DjangoTokenVerifier(SECRET), token)

    def test_a_rotated_key_is_still_accepted_while_it_is_a_fallback(self):
        token = mint_token("old-secret-0123456789abcdef", "s", SLOTS, 60, "k")
        DjangoTokenVerifier(SECRET, fallback_secrets=("old-secret-0123456789abcdef",))(token, with_session())

    def test_the_token_is_bound_to_its_django_session_without_revealing_the_key(self):
        token = mint_token(SECRET, "s", SLOTS, 60, "the-session-key")
        self.assertTrue(token_matches_session(token, SECRET, "the-session-key"))
        self.assertFalse(token_matches_session(token, SECRET, "another-session"))
        self.assertNotIn("the-session-key", str(signing.loads(token, key=SECRET, salt=TOKEN_SALT)))


class SessionBindingTests(unittest.TestCase):
    """A token is good only on a handshake carrying the session cookie of the page it was minted for."""

    def setUp(self) -> None:
        self.token = mint_token(SECRET, "upload-session", SLOTS, 60, "the-session-key")
        self.verifier = DjangoTokenVerifier(SECRET)

    def assertRefused(self, handshake: Handshake, reason: str) -> None:
        with self.assertRaises(UploadError) as caught:
            self.verifier(self.token, handshake)
        self.assertEqual(caught.exception.code.value, "invalid_token")
        self.assertIn(reason, caught.exception.message)

    def test_the_session_it_was_minted_for_is_accepted(self):
        self.assertEqual(self.verifier(self.token, with_session("the-session-key")).session, "upload-session")

    def test_no_cookie_at_all_is_refused(self):
        self.assertRefused(Handshake(), "without the session cookie")

    def test_other_cookies_but_not_the_session_one_are_refused(self):
        self.assertRefused(Handshake(cookies={"csrftoken": "x", "other": "the-session-key"}),
                           "without the session cookie")

    def test_an_empty_session_cookie_is_refused(self):
        self.assertRefused(with_session(""), "without the session cookie")

    def test_another_session_is_refused(self):
        self.assertRefused(with_session("another-session-key"), "another browser session")

    def test_the_cookie_name_follows_session_cookie_name(self):
        verifier = DjangoTokenVerifier(SECRET, session_cookie="app_session")
        self.assertEqual(verifier(self.token, with_session("the-session-key", "app_session")).session,
                         "upload-session")
        with self.assertRaises(UploadError):
            verifier(self.token, with_session("the-session-key", "sessionid"))

    def test_a_token_minted_before_a_secret_rotation_stays_bound(self):
        old = "old-secret-0123456789abcdef"
        token = mint_token(old, "s", SLOTS, 60, "the-session-key")
        verifier = DjangoTokenVerifier(SECRET, fallback_secrets=(old,))
        self.assertEqual(verifier(token, with_session("the-session-key")).session, "s")
        with self.assertRaises(UploadError):
            verifier(token, with_session("another-session-key"))

    def test_a_token_without_a_binding_is_refused(self):
        unbound = signing.dumps({"v": 1, "session": "s", "slots": {}, "exp": 10**10}, key=SECRET, salt=TOKEN_SALT,
                                compress=True)
        with self.assertRaises(UploadError):
            self.verifier(unbound, with_session("the-session-key"))
