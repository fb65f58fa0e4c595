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

#: Control message types and the fields each must carry (with their JSON types).
CLIENT_MESSAGES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "auth": {"token": str},
    "announce": {"ref": str, "slot": str, "name": str, "mime": str, "size": object},
    "cancel": {"entry": int},
    "resume": {"entry": int},
}
SERVER_MESSAGES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "welcome": {"protocol": int, "session": str, "slots": dict, "entries": list, "max_parallel": int,
                "max_frame": int},
    "accepted": {"ref": str, "entry": int, "offset": int, "window": int, "chunk_size": int},
    "rejected": {"ref": str, "code": str, "message": str},
    "ack": {"entry": int, "offset": int},
    "complete": {"entry": int, "size": int, "sha256": str},
    "cancelled": {"entry": int},
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


def decode_message(text: str | bytes, schema: dict[str, dict[str, type | tuple[type, ...]]]) -> dict[str, Any]:
    """Parse and check one control message against ``schema`` (one of the two tables above)."""
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
    for name, expected in required.items():
        value = message.get(name)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise UploadError(ErrorCode.PROTOCOL_ERROR, f"{message['type']}: field {name!r} is missing or invalid")
    return message
