"""The one set of error codes shared by the server, the Python client, the browser client and the docs.

Codes are values at the protocol edge (``{"code": "too_large"}``) and :class:`UploadError` exceptions inside
Python APIs. ``static/uploads.js`` mirrors :data:`MESSAGES`; ``tests/test_errors.py`` keeps the two equal.
"""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    """Every reason an upload, an entry or a connection can fail (docs/protocol.md §9)."""

    INVALID_TOKEN = "invalid_token"
    FORBIDDEN_ORIGIN = "forbidden_origin"
    PROTOCOL_ERROR = "protocol_error"
    UNKNOWN_SLOT = "unknown_slot"
    TOO_LARGE = "too_large"
    NOT_ACCEPTED = "not_accepted"
    ACTIVE_CONTENT = "active_content"
    TOO_MANY_FILES = "too_many_files"
    SERVER_BUSY = "server_busy"
    QUOTA_EXCEEDED = "quota_exceeded"
    TYPE_MISMATCH = "type_mismatch"
    SIZE_MISMATCH = "size_mismatch"
    BAD_OFFSET = "bad_offset"
    FRAME_TOO_LARGE = "frame_too_large"
    UNKNOWN_ENTRY = "unknown_entry"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    STORAGE_FAILED = "storage_failed"
    TOO_MANY_ENTRIES = "too_many_entries"
    UNREACHABLE = "unreachable"
    REGISTRY_UNAVAILABLE = "registry_unavailable"

    def __str__(self) -> str:
        return self.value


#: A readable sentence per code, used when a more specific message is not available.
MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.INVALID_TOKEN: "The upload token is missing, invalid or expired.",
    ErrorCode.FORBIDDEN_ORIGIN: "This page's origin may not upload here.",
    ErrorCode.PROTOCOL_ERROR: "The upload client broke the protocol.",
    ErrorCode.UNKNOWN_SLOT: "There is no upload field of that name.",
    ErrorCode.TOO_LARGE: "The file is larger than allowed.",
    ErrorCode.NOT_ACCEPTED: "This type of file is not accepted here.",
    ErrorCode.ACTIVE_CONTENT: "SVG, HTML and JavaScript files are not accepted here.",
    ErrorCode.TOO_MANY_FILES: "Too many files for this field.",
    ErrorCode.SERVER_BUSY: "Too many uploads at once; try again shortly.",
    ErrorCode.QUOTA_EXCEEDED: "This page has uploaded as much as it may.",
    ErrorCode.TYPE_MISMATCH: "The file's content does not match its type or extension.",
    ErrorCode.SIZE_MISMATCH: "The file sent more bytes than it declared.",
    ErrorCode.BAD_OFFSET: "A chunk arrived at the wrong position.",
    ErrorCode.FRAME_TOO_LARGE: "A chunk was larger than the field's chunk size.",
    ErrorCode.UNKNOWN_ENTRY: "No such upload in this session.",
    ErrorCode.TIMEOUT: "The upload stalled and timed out.",
    ErrorCode.CANCELLED: "The upload was cancelled.",
    ErrorCode.STORAGE_FAILED: "The server could not store the file.",
    ErrorCode.TOO_MANY_ENTRIES: "This page has started too many uploads; reload it to start again.",
    ErrorCode.UNREACHABLE: "The upload server cannot be reached; retrying.",
    ErrorCode.REGISTRY_UNAVAILABLE: "The upload registry cannot be reached; try again shortly.",
}

#: WebSocket close codes (docs/protocol.md §10).
CLOSE_NORMAL = 1000
CLOSE_TOO_BIG = 1009
CLOSE_INVALID_TOKEN = 4001
CLOSE_PROTOCOL_ERROR = 4002
CLOSE_AUTH_TIMEOUT = 4003
#: The server cannot serve right now (its registry is unreachable, or it failed unexpectedly): reconnect later.
#: Autobahn sends only 1000 and 3000-4999, so this stands for WebSocket's 1013 "try again later".
CLOSE_TRY_AGAIN = 4013

#: Which close code ends a connection for a connection-level error.
CLOSE_CODES: dict[ErrorCode, int] = {
    ErrorCode.INVALID_TOKEN: CLOSE_INVALID_TOKEN,
    ErrorCode.PROTOCOL_ERROR: CLOSE_PROTOCOL_ERROR,
    ErrorCode.TIMEOUT: CLOSE_AUTH_TIMEOUT,
    ErrorCode.REGISTRY_UNAVAILABLE: CLOSE_TRY_AGAIN,
}


class UploadError(Exception):
    """An upload failure carrying its :class:`ErrorCode`; ``str()`` is the readable message."""

    def __init__(self, code: ErrorCode | str, message: str | None = None) -> None:
        self.code = ErrorCode(code)
        self.message = message or MESSAGES[self.code]
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"UploadError({self.code.value!r}, {self.message!r})"
