"""Tests for twisted_uploads.tokens: the standalone HMAC token (docs/protocol.md §3, "Tokens")."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import TestCase

from twisted_uploads.errors import ErrorCode, UploadError
from twisted_uploads.slots import SlotConfig
from twisted_uploads.tokens import (Handshake, HMACTokenVerifier, TokenGrant, grant_from_payload, make_token,
                                    parse_cookie_header)

from .support import SECRET, fuzz

NOW = 1_700_000_000.0
SLOTS = {"avatar": SlotConfig(accept=".png", max_file_size=5_000_000), "docs": SlotConfig(max_entries=10)}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def sign(payload: Any, secret: str = SECRET) -> str:
    """A token built from the documented format, independently of the code under test."""
    payload_part = b64(json.dumps(payload).encode("utf-8"))
    signature = b64(hmac.new(secret.encode("utf-8"), payload_part.encode("ascii"), hashlib.sha256).digest())
    return f"{payload_part}.{signature}"


def payload(**overrides: Any) -> dict[str, Any]:
    base = {"v": 1, "session": "s1", "exp": NOW + 60, "slots": {"avatar": {"accept": ".png"}}}
    base.update(overrides)
    return base


class TokenTests(TestCase):
    """make_token and HMACTokenVerifier agree, and nothing else gets through."""

    def setUp(self) -> None:
        self.now = NOW
        self.verify = HMACTokenVerifier(SECRET, clock=lambda: self.now)

    def assertInvalid(self, token: object) -> UploadError:
        error = self.assertRaises(UploadError, self.verify, token)
        self.assertEqual(error.code, ErrorCode.INVALID_TOKEN)
        return error

    def test_token_round_trips_session_and_slots(self) -> None:
        grant = self.verify(make_token(SECRET, "session-9", SLOTS, ttl=60, now=NOW))
        self.assertEqual((grant.session, grant.slots), ("session-9", SLOTS))

    def test_grant_expiry_is_issue_time_plus_ttl(self) -> None:
        self.assertEqual(self.verify(make_token(SECRET, "s", SLOTS, ttl=60, now=NOW)).expires_at, NOW + 60)

    def test_grant_is_a_token_grant(self) -> None:
        self.assertIsInstance(self.verify(make_token(SECRET, "s", SLOTS, now=NOW)), TokenGrant)

    def test_bytes_secret_equals_text_secret(self) -> None:
        self.assertEqual(make_token(SECRET.encode(), "s", SLOTS, now=NOW), make_token(SECRET, "s", SLOTS, now=NOW))

    def test_token_in_documented_format_verifies(self) -> None:
        self.assertEqual(self.verify(sign(payload())).slots, {"avatar": SlotConfig(accept=".png")})

    def test_token_is_url_safe_without_padding(self) -> None:
        token = make_token(SECRET, "s" * 37, SLOTS, now=NOW)
        self.assertFalse(set(token) - set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."))

    def test_token_signed_with_other_secret_is_invalid(self) -> None:
        self.assertInvalid(make_token("another-secret-that-is-long", "s", SLOTS, now=NOW))

    def test_forged_signature_is_invalid(self) -> None:
        payload_part = make_token(SECRET, "s", SLOTS, now=NOW).split(".")[0]
        self.assertInvalid(payload_part + "." + b64(b"\x00" * 32))

    def test_tampered_payload_is_invalid(self) -> None:
        payload_part, signature = make_token(SECRET, "s", SLOTS, now=NOW).split(".")
        raised = json.loads(base64.urlsafe_b64decode(payload_part + "=="))
        raised["slots"]["avatar"]["max_file_size"] = 10**12
        self.assertInvalid(b64(json.dumps(raised).encode()) + "." + signature)

    def test_payload_of_other_token_with_this_signature_is_invalid(self) -> None:
        first = make_token(SECRET, "alice", SLOTS, now=NOW)
        second = make_token(SECRET, "bob", SLOTS, now=NOW)
        self.assertInvalid(second.split(".")[0] + "." + first.split(".")[1])

    def test_expired_token_is_invalid(self) -> None:
        token = make_token(SECRET, "s", SLOTS, ttl=60, now=NOW)
        self.now = NOW + 61
        self.assertIn("expired", self.assertInvalid(token).message)

    def test_token_at_its_expiry_instant_is_invalid(self) -> None:
        token = make_token(SECRET, "s", SLOTS, ttl=60, now=NOW)
        self.now = NOW + 60
        self.assertInvalid(token)

    def test_token_just_before_expiry_is_valid(self) -> None:
        token = make_token(SECRET, "s", SLOTS, ttl=60, now=NOW)
        self.now = NOW + 59.9
        self.assertEqual(self.verify(token).session, "s")

    def test_missing_token_is_invalid(self) -> None:
        self.assertInvalid(None)

    def test_empty_token_is_invalid(self) -> None:
        self.assertInvalid("")

    def test_token_without_dot_is_invalid(self) -> None:
        self.assertInvalid(make_token(SECRET, "s", SLOTS, now=NOW).replace(".", ""))

    def test_token_with_two_dots_is_invalid(self) -> None:
        self.assertInvalid(make_token(SECRET, "s", SLOTS, now=NOW) + ".x")

    def test_non_string_token_is_invalid(self) -> None:
        self.assertInvalid(12345)

    def test_non_ascii_payload_part_is_invalid(self) -> None:
        self.assertInvalid("\u00e9." + b64(b"\x00" * 32))

    def test_non_ascii_signature_is_invalid(self) -> None:
        self.assertInvalid(make_token(SECRET, "s", SLOTS, now=NOW).split(".")[0] + ".\u00e9")

    def test_signed_garbage_payload_is_invalid(self) -> None:
        payload_part = "not-base64-json"
        signature = b64(hmac.new(SECRET.encode(), payload_part.encode(), hashlib.sha256).digest())
        self.assertInvalid(f"{payload_part}.{signature}")

    def test_signed_non_object_payload_is_invalid(self) -> None:
        self.assertInvalid(sign([1, 2, 3]))

    def test_other_token_version_is_invalid(self) -> None:
        self.assertInvalid(sign(payload(v=2)))

    def test_payload_without_session_is_invalid(self) -> None:
        self.assertInvalid(sign({k: v for k, v in payload().items() if k != "session"}))

    def test_payload_with_empty_session_is_invalid(self) -> None:
        self.assertInvalid(sign(payload(session="")))

    def test_payload_with_numeric_session_is_invalid(self) -> None:
        self.assertInvalid(sign(payload(session=7)))

    def test_payload_without_expiry_is_invalid(self) -> None:
        self.assertInvalid(sign({k: v for k, v in payload().items() if k != "exp"}))

    def test_payload_with_string_expiry_is_invalid(self) -> None:
        self.assertInvalid(sign(payload(exp="tomorrow")))

    def test_payload_without_slots_is_invalid(self) -> None:
        self.assertInvalid(sign({k: v for k, v in payload().items() if k != "slots"}))

    def test_invalid_slot_config_in_payload_is_invalid_token(self) -> None:
        self.assertInvalid(sign(payload(slots={"avatar": {"chunk_size": 10}})))

    def test_unknown_slot_field_in_payload_is_invalid_token(self) -> None:
        self.assertInvalid(sign(payload(slots={"avatar": {"max_size": 10}})))

    def test_non_object_slots_in_payload_is_invalid_token(self) -> None:
        self.assertInvalid(sign(payload(slots=[".png"])))

    def test_short_secret_cannot_make_tokens(self) -> None:
        self.assertRaises(ValueError, make_token, "short", "s", SLOTS)

    def test_short_secret_cannot_verify_tokens(self) -> None:
        self.assertRaises(ValueError, HMACTokenVerifier, "fifteen-bytes!!")

    def test_sixteen_byte_secret_is_enough(self) -> None:
        HMACTokenVerifier("sixteen-bytes!!!")

    def test_grant_from_payload_is_shared_with_other_verifiers(self) -> None:
        self.assertEqual(grant_from_payload(payload(), NOW).session, "s1")

    @fuzz
    @given(st.text(alphabet=st.characters(max_codepoint=127), max_size=80))
    def test_any_ascii_string_is_invalid_not_a_crash(self, token: str) -> None:
        self.assertInvalid(token)

    @fuzz
    @given(st.text(max_size=40), st.text(max_size=40))
    def test_any_dotted_string_is_invalid_not_a_crash(self, left: str, right: str) -> None:
        self.assertInvalid(f"{left}.{right}")



class HandshakeTests(TestCase):
    """What a verifier learns about the handshake, and that a standalone token does not depend on it."""

    def test_hmac_tokens_are_bearer_tokens_whatever_the_handshake(self) -> None:
        token = make_token(SECRET, "s", {"files": SlotConfig()}, 60)
        verify = HMACTokenVerifier(SECRET)
        sessions = {verify(token, handshake).session for handshake in (
            Handshake(), Handshake(origin="https://elsewhere.example", cookies={"sessionid": "x"}))}
        self.assertEqual(sessions, {"s"})

    def test_cookie_header_is_parsed_by_name(self) -> None:
        self.assertEqual(dict(parse_cookie_header("sessionid=abc; csrftoken=x-y")),
                         {"sessionid": "abc", "csrftoken": "x-y"})

    def test_a_malformed_pair_does_not_hide_the_others(self) -> None:
        self.assertEqual(dict(parse_cookie_header('junk; =v; a"b=c; sessionid=abc; weird=1,2')),
                         {'a"b': "c", "sessionid": "abc", "weird": "1,2"})

    def test_a_name_sent_twice_keeps_its_last_value_as_django_does(self) -> None:
        self.assertEqual(parse_cookie_header("sessionid=old; sessionid=new")["sessionid"], "new")

    def test_quoted_values_are_unquoted(self) -> None:
        self.assertEqual(parse_cookie_header('pref="a b"')["pref"], "a b")

    def test_no_header_is_no_cookies(self) -> None:
        self.assertEqual(dict(parse_cookie_header(None)), {})
