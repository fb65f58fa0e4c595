"""Tests for twisted_uploads.codec: chunk frames and control messages (docs/protocol.md §1, §5)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import TestCase

from twisted_uploads.codec import (CLIENT_MESSAGES, CLIENT_OPTIONAL_FIELDS, HEADER_SIZE, MAX_CONTROL_BYTES,
                                   SERVER_MESSAGES, decode_chunk, decode_message, encode_chunk, encode_chunk_header,
                                   encode_message)
from twisted_uploads.errors import ErrorCode, UploadError

from .support import fuzz

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


class ChunkHeaderTests(TestCase):
    """The 12-byte binary header: entry id u32 BE, offset u64 BE."""

    def test_header_is_twelve_bytes(self) -> None:
        self.assertEqual(HEADER_SIZE, 12)
        self.assertEqual(len(encode_chunk_header(1, 2)), 12)

    def test_header_is_big_endian_entry_then_offset(self) -> None:
        self.assertEqual(encode_chunk_header(0x01020304, 0x05),
                         b"\x01\x02\x03\x04" + b"\x00" * 7 + b"\x05")

    def test_chunk_is_header_then_payload(self) -> None:
        self.assertEqual(encode_chunk(7, 9, b"abc"), encode_chunk_header(7, 9) + b"abc")

    def test_decode_returns_entry_offset_and_payload(self) -> None:
        entry_id, offset, payload = decode_chunk(encode_chunk(17, 65536, b"payload"))
        self.assertEqual((entry_id, offset, bytes(payload)), (17, 65536, b"payload"))

    def test_decoded_payload_is_a_view_not_a_copy(self) -> None:
        self.assertIsInstance(decode_chunk(encode_chunk(1, 0, b"x"))[2], memoryview)

    def test_largest_entry_and_offset_round_trip(self) -> None:
        entry_id, offset, _ = decode_chunk(encode_chunk(2**32 - 1, 2**64 - 1, b"x"))
        self.assertEqual((entry_id, offset), (2**32 - 1, 2**64 - 1))

    @fuzz
    @given(st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1), st.binary(min_size=1, max_size=64))
    def test_any_chunk_round_trips(self, entry_id: int, offset: int, payload: bytes) -> None:
        decoded = decode_chunk(encode_chunk(entry_id, offset, payload))
        self.assertEqual((decoded[0], decoded[1], bytes(decoded[2])), (entry_id, offset, payload))

    def test_header_without_payload_is_protocol_error(self) -> None:
        error = self.assertRaises(UploadError, decode_chunk, encode_chunk_header(1, 0))
        self.assertEqual(error.code, ErrorCode.PROTOCOL_ERROR)

    def test_empty_frame_is_protocol_error(self) -> None:
        self.assertEqual(self.assertRaises(UploadError, decode_chunk, b"").code, ErrorCode.PROTOCOL_ERROR)

    def test_entry_id_above_32_bits_cannot_be_encoded(self) -> None:
        self.assertRaises(Exception, encode_chunk_header, 2**32, 0)

    @fuzz
    @given(st.binary(max_size=40))
    def test_any_bytes_decode_or_raise_protocol_error(self, frame: bytes) -> None:
        try:
            entry_id, offset, payload = decode_chunk(frame)
        except UploadError as error:
            self.assertEqual(error.code, ErrorCode.PROTOCOL_ERROR)
            self.assertLessEqual(len(frame), HEADER_SIZE)
        else:
            self.assertEqual(len(payload), len(frame) - HEADER_SIZE)


class EncodeMessageTests(TestCase):
    """Control messages are one compact JSON object with a type."""

    def test_message_is_json_object_with_type_and_fields(self) -> None:
        self.assertEqual(json.loads(encode_message("ack", entry=1, offset=2)),
                         {"type": "ack", "entry": 1, "offset": 2})

    def test_message_has_no_insignificant_whitespace(self) -> None:
        self.assertNotIn(" ", encode_message("ack", entry=1, offset=2))

    @fuzz
    @given(st.sampled_from(sorted(CLIENT_MESSAGES)), st.data())
    def test_every_client_message_round_trips(self, message_type: str, data: st.DataObject) -> None:
        fields = {name: data.draw(_value_for(expected)) for name, expected in CLIENT_MESSAGES[message_type].items()}
        decoded = decode_message(encode_message(message_type, **fields), CLIENT_MESSAGES)
        self.assertEqual(decoded, {"type": message_type, **fields})

    @fuzz
    @given(st.sampled_from(sorted(SERVER_MESSAGES)), st.data())
    def test_every_server_message_round_trips(self, message_type: str, data: st.DataObject) -> None:
        fields = {name: data.draw(_value_for(expected)) for name, expected in SERVER_MESSAGES[message_type].items()}
        decoded = decode_message(encode_message(message_type, **fields), SERVER_MESSAGES)
        self.assertEqual(decoded, {"type": message_type, **fields})


def _value_for(expected: type | tuple[type, ...]) -> st.SearchStrategy:
    if expected is int:
        return st.integers(0, 2**53)
    if expected is str:
        return st.text(max_size=20)
    if expected is dict:
        return st.dictionaries(st.text(max_size=5), st.integers(), max_size=3)
    if expected is list:
        return st.lists(st.integers(), max_size=3)
    return st.integers(0, 100)


class DecodeMessageTests(TestCase):
    """Anything malformed is a protocol_error, never another exception."""

    def assertProtocolError(self, text: str | bytes, schema=CLIENT_MESSAGES) -> UploadError:
        error = self.assertRaises(UploadError, decode_message, text, schema)
        self.assertEqual(error.code, ErrorCode.PROTOCOL_ERROR)
        return error

    def test_valid_auth_decodes(self) -> None:
        self.assertEqual(decode_message('{"type":"auth","token":"t"}', CLIENT_MESSAGES),
                         {"type": "auth", "token": "t"})

    def test_bytes_decode_like_text(self) -> None:
        self.assertEqual(decode_message(b'{"type":"cancel","entry":3}', CLIENT_MESSAGES),
                         {"type": "cancel", "entry": 3})

    def test_extra_fields_are_kept(self) -> None:
        self.assertEqual(decode_message('{"type":"resume","entry":1,"x":2}', CLIENT_MESSAGES)["x"], 2)

    def test_malformed_json_is_protocol_error(self) -> None:
        self.assertProtocolError('{"type": "auth",')

    def test_invalid_utf8_is_protocol_error(self) -> None:
        self.assertProtocolError(b'{"type":"auth","token":"\xff"}')

    def test_json_array_is_protocol_error(self) -> None:
        self.assertProtocolError('[{"type":"auth","token":"t"}]')

    def test_json_scalar_is_protocol_error(self) -> None:
        self.assertProtocolError('"auth"')

    def test_missing_type_is_protocol_error(self) -> None:
        self.assertProtocolError('{"token":"t"}')

    def test_non_string_type_is_protocol_error(self) -> None:
        self.assertProtocolError('{"type":1}')

    def test_unknown_type_is_protocol_error(self) -> None:
        self.assertProtocolError('{"type":"upload"}')

    def test_server_type_from_client_is_protocol_error(self) -> None:
        self.assertProtocolError('{"type":"ack","entry":1,"offset":2}')

    def test_client_type_in_server_schema_is_protocol_error(self) -> None:
        self.assertProtocolError('{"type":"auth","token":"t"}', SERVER_MESSAGES)

    def assertInvalidToken(self, text: str) -> None:
        error = self.assertRaises(UploadError, decode_message, text, CLIENT_MESSAGES)
        self.assertEqual(error.code, ErrorCode.INVALID_TOKEN)

    def test_auth_without_token_is_invalid_token(self) -> None:
        self.assertInvalidToken('{"type":"auth"}')

    def test_auth_with_numeric_token_is_invalid_token(self) -> None:
        self.assertInvalidToken('{"type":"auth","token":5}')

    def test_auth_with_null_token_is_invalid_token(self) -> None:
        self.assertInvalidToken('{"type":"auth","token":null}')

    def test_cancel_with_string_entry_is_protocol_error(self) -> None:
        self.assertProtocolError('{"type":"cancel","entry":"17"}')

    def test_cancel_with_boolean_entry_is_protocol_error(self) -> None:
        self.assertProtocolError('{"type":"cancel","entry":true}')

    def test_resume_with_float_entry_is_protocol_error(self) -> None:
        self.assertProtocolError('{"type":"resume","entry":1.0}')

    def test_resume_without_entry_is_protocol_error(self) -> None:
        self.assertProtocolError('{"type":"resume"}')

    def test_announce_missing_each_string_field_is_protocol_error(self) -> None:
        full = {"type": "announce", "ref": "f1", "slot": "s", "name": "a.txt", "mime": "text/plain", "size": 1}
        for field in ("ref", "slot", "name", "mime"):
            message = {k: v for k, v in full.items() if k != field}
            self.assertProtocolError(json.dumps(message))

    def test_announce_with_numeric_name_is_protocol_error(self) -> None:
        self.assertProtocolError('{"type":"announce","ref":"f","slot":"s","name":1,"mime":"","size":1}')

    def test_announce_missing_size_is_protocol_error(self) -> None:
        self.assertProtocolError('{"type":"announce","ref":"f","slot":"s","name":"a","mime":""}')

    def test_announce_with_string_size_is_protocol_error(self) -> None:
        self.assertProtocolError('{"type":"announce","ref":"f","slot":"s","name":"a","mime":"","size":"9"}')

    def test_announce_with_fractional_size_is_protocol_error(self) -> None:
        self.assertProtocolError('{"type":"announce","ref":"f","slot":"s","name":"a","mime":"","size":9.5}')

    def test_announce_with_boolean_size_is_protocol_error(self) -> None:
        self.assertProtocolError('{"type":"announce","ref":"f","slot":"s","name":"a","mime":"","size":true}')

    def test_announce_size_range_is_left_to_validation(self) -> None:
        # A negative or huge size is an integer: its range is the announce-level `too_large` (protocol.md §4).
        message = decode_message('{"type":"announce","ref":"f","slot":"s","name":"a","mime":"","size":-9}',
                                 CLIENT_MESSAGES)
        self.assertEqual(message["size"], -9)

    def test_announce_with_numeric_ref_is_protocol_error(self) -> None:
        self.assertProtocolError('{"type":"announce","ref":7,"slot":"s","name":"a","mime":"","size":1}')

    def test_optional_relative_path_must_be_a_string(self) -> None:
        text = '{"type":"announce","ref":"f","slot":"s","name":"a","mime":"","size":1,"relative_path":3}'
        error = self.assertRaises(UploadError, decode_message, text, CLIENT_MESSAGES, CLIENT_OPTIONAL_FIELDS)
        self.assertEqual(error.code, ErrorCode.PROTOCOL_ERROR)

    def test_optional_relative_path_may_be_absent_or_a_string(self) -> None:
        base = {"type": "announce", "ref": "f", "slot": "s", "name": "a", "mime": "", "size": 1}
        for message in (base, {**base, "relative_path": "photos/a"}):
            self.assertEqual(decode_message(json.dumps(message), CLIENT_MESSAGES, CLIENT_OPTIONAL_FIELDS), message)

    def test_error_names_the_field(self) -> None:
        error = self.assertProtocolError('{"type":"announce","ref":"f","slot":"s","name":"a","mime":""}')
        self.assertIn("size", error.message)

    def test_message_longer_than_limit_is_protocol_error(self) -> None:
        padding = "x" * MAX_CONTROL_BYTES
        self.assertProtocolError(json.dumps({"type": "auth", "token": padding}))

    def test_message_at_limit_decodes(self) -> None:
        skeleton = '{"type":"auth","token":""}'
        text = skeleton.replace('""', '"' + "x" * (MAX_CONTROL_BYTES - len(skeleton)) + '"')
        self.assertEqual(len(text), MAX_CONTROL_BYTES)
        self.assertEqual(decode_message(text, CLIENT_MESSAGES)["type"], "auth")

    def test_deeply_nested_json_is_protocol_error(self) -> None:
        self.assertProtocolError("[" * 5000)

    def test_deeply_nested_field_is_protocol_error(self) -> None:
        self.assertProtocolError('{"type":"auth","token":"t","x":' + "[" * 5000 + "]" * 5000 + "}")

    @fuzz
    @given(st.binary(max_size=200))
    def test_any_bytes_decode_or_raise_protocol_error(self, data: bytes) -> None:
        self._decodes_or_protocol_error(data)

    @fuzz
    @given(st.text(max_size=200))
    def test_any_text_decodes_or_raises_protocol_error(self, text: str) -> None:
        self._decodes_or_protocol_error(text)

    @fuzz
    @given(JSON_VALUES)
    def test_any_json_value_decodes_or_raises_protocol_error(self, value: object) -> None:
        self._decodes_or_protocol_error(json.dumps(value))

    @fuzz
    @given(st.sampled_from(sorted(CLIENT_MESSAGES)), st.dictionaries(st.sampled_from(
        ["token", "ref", "slot", "name", "mime", "size", "entry", "relative_path"]), JSON_VALUES, max_size=7))
    def test_any_fields_decode_or_raise_protocol_error(self, message_type: str, fields: dict) -> None:
        self._decodes_or_protocol_error(json.dumps({**fields, "type": message_type}))

    def _decodes_or_protocol_error(self, text: str | bytes) -> None:
        try:
            message = decode_message(text, CLIENT_MESSAGES, CLIENT_OPTIONAL_FIELDS)
        except UploadError as error:
            # A token that is not a string is the token's fault (close 4001); anything else is the protocol's.
            self.assertIn(error.code, (ErrorCode.PROTOCOL_ERROR, ErrorCode.INVALID_TOKEN))
            if error.code is ErrorCode.INVALID_TOKEN:
                self.assertNotIsInstance(json.loads(text).get("token"), str)
            return
        self.assertIn(message["type"], CLIENT_MESSAGES)
        for name, expected in CLIENT_MESSAGES[message["type"]].items():
            self.assertIsInstance(message.get(name), expected)
            self.assertFalse(isinstance(message[name], bool))
        for name, expected in CLIENT_OPTIONAL_FIELDS.get(message["type"], {}).items():
            if name in message:
                self.assertIsInstance(message[name], expected)
