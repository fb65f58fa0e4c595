"""Tokens minted with django.core.signing and checked by the verifier the reactor side calls."""

from __future__ import annotations

from django.core import signing
from twisted.trial import unittest

from django_shim.tokens import TOKEN_SALT, DjangoTokenVerifier, mint_token, token_matches_session
from twisted_uploads.errors import UploadError
from twisted_uploads.slots import SlotConfig
from twisted_uploads.tokens import TokenGrant

SECRET = "a-test-upload-secret-0123456789"
SLOTS = {"avatar": SlotConfig(accept=".png", max_file_size=5_000_000)}


class TokenTests(unittest.TestCase):

    def assertRefused(self, verifier: DjangoTokenVerifier, token: object) -> UploadError:
        with self.assertRaises(UploadError) as caught:
            verifier(token)  # type: ignore[arg-type]
        self.assertEqual(caught.exception.code.value, "invalid_token")
        return caught.exception

    def test_a_minted_token_grants_its_session_and_slots(self):
        token = mint_token(SECRET, "upload-session", SLOTS, 60, "django-session", now=1000.0)
        grant = DjangoTokenVerifier(SECRET, now=lambda: 1030.0)(token)
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
        DjangoTokenVerifier(SECRET, fallback_secrets=("old-secret-0123456789abcdef",))(token)

    def test_the_token_is_bound_to_its_django_session_without_revealing_the_key(self):
        token = mint_token(SECRET, "s", SLOTS, 60, "the-session-key")
        self.assertTrue(token_matches_session(token, SECRET, "the-session-key"))
        self.assertFalse(token_matches_session(token, SECRET, "another-session"))
        self.assertNotIn("the-session-key", str(signing.loads(token, key=SECRET, salt=TOKEN_SALT)))
