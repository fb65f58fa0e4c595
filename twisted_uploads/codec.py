"""Frames on the wire (docs/protocol.md §1, §5): JSON control messages and binary chunk frames.

Pure functions, shared by the server and the Python client. Decoding never trusts its input: anything malformed
raises :class:`~twisted_uploads.errors.UploadError` with ``protocol_error``.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from .errors import ErrorCode, UploadError

#: entry id (u32), byte offset (u64), both big-endian.
CHUNK_HEADER = struct.Struct(">IQ")
HEADER_SIZE = CHUNK_HEADER.size
MAX_CONTROL_BYTES = 16 * 1024
#: The framing layer's frame and message limit until ``auth`` names the slots: room for a control message that
#: is too long (answered ``protocol_error`` by :func:`decode_message`), nothing near a data chunk.
PRE_AUTH_FRAME_LIMIT = 2 * MAX_CONTROL_BYTES

#: Control message types and the fields each must carry (with their JSON types; ``int`` excludes booleans).
CLIENT_MESSAGES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "auth": {"token": str},
    "announce": {"ref": str, "slot": str, "name": str, "mime": str, "size": int},
    "cancel": {"entry": int},
    "resume": {"entry": int},
    "adopt": {"entry": int, "ref": str},
    "discard": {"entry": int},
}
#: Fields a client message may carry; when present they must have this type.
CLIENT_OPTIONAL_FIELDS: dict[str, dict[str, type | tuple[type, ...]]] = {
    "announce": {"relative_path": str, "fingerprint": (dict, str)},
}
#: The code for a missing or mistyped field, where it is not ``protocol_error``: a client that sends no usable
#: token is told its token is the problem (close 4001), as for any other token the verifier refuses.
FIELD_ERRORS: dict[tuple[str, str], ErrorCode] = {
    ("auth", "token"): ErrorCode.INVALID_TOKEN,
}
SERVER_MESSAGES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "welcome": {"protocol": int, "session": str, "slots": dict, "entries": list, "max_parallel": int,
                "max_frame": int},
    "accepted": {"ref": str, "entry": int, "offset": int, "window": int, "chunk_size": int},
    "rejected": {"ref": str, "code": str, "message": str},
    "ack": {"entry": int, "offset": int},
    "complete": {"entry": int, "size": int, "sha256": str},
    "cancelled": {"entry": int},
    "moved": {"entry": int, "ref": str},
    "error": {"code": str, "message": str},
}


def encode_chunk_header(entry_id: int, offset: int) -> bytes:
    """The 12-byte header that precedes a chunk's payload."""
    return CHUNK_HEADER.pack(entry_id, offset)


def encode_chunk(entry_id: int, offset: int, payload: bytes) -> bytes:
    """A whole binary frame: header then payload."""
    return CHUNK_HEADER.pack(entry_id, offset) + payload


def decode_chunk(frame: bytes) -> tuple[int, int, memoryview]:
    """Split a binary frame into (entry id, offset, payload view) without copying the payload."""
    if len(frame) <= HEADER_SIZE:
        raise UploadError(ErrorCode.PROTOCOL_ERROR, f"binary frame of {len(frame)} bytes has no payload")
    entry_id, offset = CHUNK_HEADER.unpack_from(frame)
    return entry_id, offset, memoryview(frame)[HEADER_SIZE:]


def encode_message(message_type: str, **fields: Any) -> str:
    """A control message as the JSON text of one WebSocket text frame."""
    return json.dumps({"type": message_type, **fields}, separators=(",", ":"))


def _has_type(value: Any, expected: type | tuple[type, ...]) -> bool:
    return isinstance(value, expected) and not (isinstance(value, bool) and bool not in _types(expected))


def _types(expected: type | tuple[type, ...]) -> tuple[type, ...]:
    return expected if isinstance(expected, tuple) else (expected,)


def decode_message(text: str | bytes, schema: dict[str, dict[str, type | tuple[type, ...]]],
                   optional: dict[str, dict[str, type | tuple[type, ...]]] | None = None) -> dict[str, Any]:
    """Parse and check one control message against ``schema`` (one of the two tables above).

    Every required field must be present with its type, and every ``optional`` field that is present too; anything
    else raises ``protocol_error`` (or the field's code in :data:`FIELD_ERRORS`) naming the field, so no handler
    ever sees a message it would have to second-guess.
    """
    if len(text) > MAX_CONTROL_BYTES:
        raise UploadError(ErrorCode.PROTOCOL_ERROR, "control message too long")
    try:
        message = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise UploadError(ErrorCode.PROTOCOL_ERROR, f"malformed JSON: {error}") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise UploadError(ErrorCode.PROTOCOL_ERROR, "a control message must be an object with a type")
    required = schema.get(message["type"])
    if required is None:
        raise UploadError(ErrorCode.PROTOCOL_ERROR, f"unknown message type {message['type']!r}")
    message_type = message["type"]
    for name, expected in required.items():
        if name not in message:
            raise UploadError(FIELD_ERRORS.get((message_type, name), ErrorCode.PROTOCOL_ERROR),
                              f"{message_type}: field {name!r} is missing")
        if not _has_type(message[name], expected):
            raise UploadError(FIELD_ERRORS.get((message_type, name), ErrorCode.PROTOCOL_ERROR),
                              f"{message_type}: field {name!r} must be {_type_name(expected)}")
    for name, expected in (optional or {}).get(message_type, {}).items():
        if name in message and not _has_type(message[name], expected):
            raise UploadError(ErrorCode.PROTOCOL_ERROR,
                              f"{message_type}: field {name!r} must be {_type_name(expected)}")
    return message


_JSON_NAMES = {str: "a string", int: "an integer", dict: "an object", list: "an array", bool: "a boolean",
               float: "a number"}


def _type_name(expected: type | tuple[type, ...]) -> str:
    return " or ".join(_JSON_NAMES.get(kind, kind.__name__) for kind in _types(expected))
