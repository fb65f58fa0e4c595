"""Shared fixtures for the sans-IO tests: real file bytes built in code, a recording transport, a harness.

Nothing here touches the network or the real clock: time is a ``task.Clock`` and storage a ``TempFileStore`` in a
test's own temp directory.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import struct
import zipfile
import zlib
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from twisted.internet.task import Clock

from twisted_uploads.codec import SERVER_MESSAGES, decode_message, encode_chunk, encode_message
from twisted_uploads.connection import ConnectionLimits, UploadConnection
from twisted_uploads.entries import Entry
from twisted_uploads.records import OWNERS_DIRECTORY
from twisted_uploads.registry import UploadRegistry
from twisted_uploads.slots import SlotConfig
from twisted_uploads.storage import TempFileStore
from twisted_uploads.tokens import HMACTokenVerifier, make_token

SECRET = "test-secret-of-thirty-two-bytes!"

#: Property tests: reproducible, no example database written into the tree, no wall-clock deadline.
fuzz = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])


# -- file contents --------------------------------------------------------------------------------------------

def png_bytes(pad_to: int = 0) -> bytes:
    """A valid 1×1 grey PNG, optionally followed by junk up to ``pad_to`` bytes (magic bytes are what count)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    image = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
             + chunk(b"IEND", b""))
    return _pad(image, pad_to)


def jpeg_bytes(pad_to: int = 0) -> bytes:
    """A JPEG start: SOI, a JFIF APP0 segment, EOI."""
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    return _pad(b"\xff\xd8\xff\xe0" + struct.pack(">H", len(app0) + 2) + app0 + b"\xff\xd9", pad_to)


def gif_bytes() -> bytes:
    """A 1×1 GIF89a."""
    return (b"GIF89a" + struct.pack("<HH", 1, 1) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
            + b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")


def webp_bytes() -> bytes:
    """A RIFF/WEBP container with a (lossless) VP8L chunk header."""
    body = b"WEBPVP8L" + struct.pack("<I", 14) + b"\x2f" + b"\x00" * 13
    return b"RIFF" + struct.pack("<I", len(body)) + body


def pdf_bytes() -> bytes:
    """A tiny PDF."""
    return b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"


def docx_bytes() -> bytes:
    """A ZIP with the parts that make it a Word document."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", '<?xml version="1.0"?><Types/>')
        archive.writestr("word/document.xml", '<?xml version="1.0"?><w:document/>')
    return buffer.getvalue()


SVG_BYTES = (b'<?xml version="1.0" encoding="UTF-8"?>\n'
             b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>\n')
HTML_BYTES = b"<!DOCTYPE html>\n<html><body><script>alert(1)</script></body></html>\n"
JS_BYTES = b"alert(document.cookie);\n"


def text_bytes(size: int) -> bytes:
    """``size`` bytes of plain ASCII text that no magic-byte sniffer recognises, different at every offset."""
    line = b"".join(b"line %06d of plain text\n" % number for number in range(size // 24 + 1))
    return line[:size]


def _pad(data: bytes, pad_to: int) -> bytes:
    return data + b"\x00" * max(0, pad_to - len(data))


def stored_files(root: str | os.PathLike[str], *, records: bool = True) -> list[Path]:
    """Files uploads left under a store's root: their bytes and (unless ``records=False``) their records.

    The servers' own lock files (``.owners/``) are not uploads' and are left out.
    """
    return sorted(p for p in Path(root).rglob("*")
                  if p.is_file() and OWNERS_DIRECTORY not in p.parts and (records or p.suffix != ".json"))


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


# -- recording doubles ---------------------------------------------------------------------------------------

class FakeTransport:
    """Records what an :class:`UploadConnection` sends; every message is checked against the server schema."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.closed: tuple[int, str] | None = None

    def send_text(self, text: str) -> None:
        if self.closed is not None:
            raise AssertionError(f"sent {text} after closing")
        self.sent.append(decode_message(text, SERVER_MESSAGES))

    def close(self, code: int, reason: str) -> None:
        if self.closed is not None:
            raise AssertionError("closed twice")
        self.closed = (code, reason)

    def take(self) -> list[dict[str, Any]]:
        """The messages sent since the last call."""
        sent, self.sent = self.sent, []
        return sent

    def types(self) -> list[str]:
        """The types of the messages sent since the last :meth:`take`."""
        return [message["type"] for message in self.sent]

    def last(self) -> dict[str, Any]:
        """The most recent message."""
        return self.sent[-1]


class RecordingOwner:
    """An ``EntryOwner`` that remembers each change it is told about."""

    def __init__(self) -> None:
        self.changes: list[tuple[int, str]] = []

    def entry_changed(self, entry: Entry) -> None:
        self.changes.append((entry.entry_id, entry.status.value))


# -- a server without sockets ---------------------------------------------------------------------------------

DEFAULT_SLOTS = {
    "files": SlotConfig(max_entries=4, chunk_size=1024, max_file_size=1_000_000),
    "avatar": SlotConfig(accept=".jpg,.png,.webp", max_file_size=100_000, chunk_size=1024),
}


class Server:
    """A registry on a temp-file store and a ``Clock``, plus token minting and connection factory."""

    def __init__(self, root: str, *, resume_grace: float = 300.0, complete_ttl: float = 3600.0,
                 max_session_bytes: int = 10 * 1024**3, limits: ConnectionLimits | None = None) -> None:
        self.clock = Clock()
        self.store = TempFileStore(root)
        self.registry = UploadRegistry(self.store, self.clock, resume_grace=resume_grace,
                                       complete_ttl=complete_ttl, max_session_bytes=max_session_bytes)
        self.verifier = HMACTokenVerifier(SECRET, clock=self.clock.seconds)
        self.limits = limits or ConnectionLimits(window_chunks=16)

    def token(self, session: str = "session-1", slots: dict[str, SlotConfig] | None = None,
              ttl: float = 3600.0) -> str:
        """A token valid at the clock's current time."""
        return make_token(SECRET, session, DEFAULT_SLOTS if slots is None else slots, ttl, now=self.clock.seconds())

    def connect(self) -> Client:
        """A new connection that has not authenticated yet."""
        transport = FakeTransport()
        connection = UploadConnection(self.registry, self.verifier, self.clock, transport, self.limits)
        connection.connection_made()
        return Client(connection, transport)

    def client(self, session: str = "session-1", slots: dict[str, SlotConfig] | None = None) -> Client:
        """A connection authenticated to ``session``, with the welcome already read."""
        client = self.connect()
        client.send("auth", token=self.token(session, slots))
        [welcome] = client.transport.take()
        assert welcome["type"] == "welcome", welcome
        client.welcome = welcome
        return client


class Client:
    """Speaks the protocol to one :class:`UploadConnection`."""

    def __init__(self, connection: UploadConnection, transport: FakeTransport) -> None:
        self.connection = connection
        self.transport = transport
        self.welcome: dict[str, Any] | None = None

    def send(self, message_type: str, **fields: Any) -> None:
        self.connection.text_received(encode_message(message_type, **fields))

    def frame(self, entry_id: int, offset: int, payload: bytes) -> None:
        self.connection.binary_received(encode_chunk(entry_id, offset, payload))

    def announce(self, name: str = "data.txt", size: int = 0, slot: str = "files", mime: str = "text/plain",
                 ref: str = "f1") -> dict[str, Any]:
        """Announce a file and return the server's answer, removed from the transport's record.

        Messages sent before the announce, and any sent after its answer (``complete`` for an empty file), stay.
        """
        answered_at = len(self.transport.sent)
        self.send("announce", ref=ref, slot=slot, name=name, mime=mime, size=size)
        return self.transport.sent.pop(answered_at)

    def stream(self, entry_id: int, data: bytes, chunk_size: int = 1024, start: int = 0) -> None:
        """Send ``data[start:]`` in frames of ``chunk_size`` bytes."""
        for offset in range(start, len(data), chunk_size):
            self.frame(entry_id, offset, data[offset:offset + chunk_size])

    def upload(self, data: bytes, name: str = "data.txt", slot: str = "files", mime: str = "text/plain",
               ref: str = "f1", chunk_size: int = 1024) -> int:
        """Announce and stream a whole file; return its entry id."""
        accepted = self.announce(name, len(data), slot, mime, ref)
        assert accepted["type"] == "accepted", accepted
        self.stream(accepted["entry"], data, chunk_size)
        return accepted["entry"]


def as_json(message: dict[str, Any]) -> str:
    """A message as the compact JSON the codec writes."""
    return json.dumps(message, separators=(",", ":"))
