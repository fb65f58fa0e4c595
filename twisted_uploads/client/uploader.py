"""The Twisted upload client: one connection at a time, many files, automatic reconnect and resume.

Files are read with ``os.pread`` one chunk at a time, so memory stays bounded by the window whatever the file
size. Progress comes from the server's acks (what the server stored), never from bytes handed to the socket.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import random
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol, connectWS
from twisted.internet.defer import Deferred
from twisted.logger import Logger

from .. import SUBPROTOCOL
from ..codec import HEADER_SIZE, SERVER_MESSAGES, decode_message, encode_chunk_header, encode_message
from ..errors import CLOSE_INVALID_TOKEN, CLOSE_PROTOCOL_ERROR, ErrorCode, UploadError
from ..slots import MAX_CHUNK_SIZE

log = Logger()

#: Largest frame the client sends or accepts: the largest chunk size a slot may have, plus the header.
MAX_FRAME = MAX_CHUNK_SIZE + HEADER_SIZE

#: Seconds the server gets to answer our close frame.
CLOSE_GRACE = 5.0

#: Close codes after which reconnecting cannot help.
FATAL_CLOSE_CODES = {CLOSE_INVALID_TOKEN: ErrorCode.INVALID_TOKEN, CLOSE_PROTOCOL_ERROR: ErrorCode.PROTOCOL_ERROR}


@dataclass
class UploadResult:
    """How one file ended."""

    ref: str
    name: str
    size: int
    status: str  # complete | error | cancelled
    code: str | None = None
    message: str | None = None
    sha256: str | None = None
    local_sha256: str | None = None
    entry_id: int | None = None
    resumes: int = 0

    @property
    def ok(self) -> bool:
        """Complete, and the server's SHA-256 equals the one computed while reading the file."""
        return self.status == "complete" and self.sha256 == self.local_sha256


@dataclass
class FileUpload:
    """One file on its way up: where it is on disk, and how far the server has it."""

    path: Path
    slot: str
    name: str
    mime: str
    size: int
    ref: str = field(default_factory=lambda: secrets.token_hex(8))
    entry_id: int | None = None
    sent: int = 0
    acked: int = 0
    window: int = 0
    chunk_size: int = 65536
    status: str = "queued"  # queued | announced | uploading | complete | error | cancelled
    result: UploadResult | None = None
    resumes: int = 0
    _hash: Any = field(default_factory=hashlib.sha256)
    _hashed: int = 0

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], slot: str, name: str | None = None,
                  mime: str | None = None) -> "FileUpload":
        """Describe a file on disk for upload to ``slot``."""
        file_path = Path(path)
        file_name = name or file_path.name
        guessed = mime if mime is not None else (mimetypes.guess_type(file_name)[0] or "")
        return cls(file_path, slot, file_name, guessed, file_path.stat().st_size)

    @property
    def finished(self) -> bool:
        return self.status in ("complete", "error", "cancelled")


class _ClientProtocol(WebSocketClientProtocol):
    factory: "_ClientFactory"

    def onOpen(self) -> None:
        self.factory.client._connected(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if not isBinary:
            self.factory.client._message(self, payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.client._disconnected(self, code, reason)


class _ClientFactory(WebSocketClientFactory):
    protocol = _ClientProtocol

    def __init__(self, client: "UploadClient", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.client._disconnected(None, None, reason.getErrorMessage())


class UploadClient:
    """Uploads files to one server with one token, reconnecting and resuming until every file finished."""

    def __init__(self, url: str, token: str, *, reactor: Any = None, parallel: int = 4,
                 window_chunks: int | None = None, max_retries: int = 8, origin: str | None = None,
                 on_progress: Callable[[FileUpload], None] | None = None) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.url = url
        self.token = token
        self.reactor = reactor
        self.parallel = parallel
        self.window_chunks = window_chunks
        self.max_retries = max_retries
        self.origin = origin
        self.on_progress = on_progress
        self.files: list[FileUpload] = []
        self.reconnects = 0
        self._protocol: _ClientProtocol | None = None
        self._failures = 0
        self._max_parallel = parallel
        self._done: Deferred[list[UploadResult]] | None = None
        self._fds: dict[str, int] = {}
        self._close_timer: Any = None

    # -- public API ----------------------------------------------------------------------------------------

    def upload(self, files: Iterable[FileUpload]) -> "Deferred[list[UploadResult]]":
        """Upload ``files``; the Deferred fires with one :class:`UploadResult` per file, in order."""
        self.files.extend(files)
        self._done = Deferred()
        if not self.files or all(f.finished for f in self.files):
            self._check_done()
        elif self._protocol is not None:
            self._pump()
        else:
            self._connect()
        return self._done

    def cancel(self, ref: str) -> None:
        """Cancel one file, on the server too when it has started."""
        upload = next((f for f in self.files if f.ref == ref), None)
        if upload is None or upload.finished:
            return
        if upload.entry_id is not None and self._protocol is not None:
            self._send({"type": "cancel", "entry": upload.entry_id})
        else:
            self._finish(upload, "cancelled", ErrorCode.CANCELLED.value, "cancelled")

    def drop_connection(self) -> None:
        """Abort the current socket without a close handshake (tests use it to prove resume works)."""
        if self._protocol is not None and self._protocol.transport is not None:
            self._protocol.transport.abortConnection()

    # -- connection ----------------------------------------------------------------------------------------

    def _connect(self) -> None:
        factory = _ClientFactory(self, url=self.url, protocols=[SUBPROTOCOL], origin=self.origin)
        # Autobahn's handshake timers are replaced by ours (cancellable, on self.reactor).
        factory.setProtocolOptions(autoFragmentSize=0, tcpNoDelay=True, maxFramePayloadSize=MAX_FRAME,
                                   maxMessagePayloadSize=MAX_FRAME, openHandshakeTimeout=0, closeHandshakeTimeout=0)
        connectWS(factory)

    def _connected(self, protocol: _ClientProtocol) -> None:
        self._protocol = protocol
        self._send({"type": "auth", "token": self.token})
        # Pipelined behind auth (the server handles messages in order): resumes and announces go out without
        # waiting for welcome, so a small file completes two round trips after the socket opens.
        for upload in self.files:
            if upload.entry_id is not None and not upload.finished:
                upload.status = "announced"
                upload.resumes += 1
                self._send({"type": "resume", "entry": upload.entry_id})
        self._pump()

    def _disconnected(self, protocol: _ClientProtocol | None, code: int | None, reason: str | None) -> None:
        if protocol is not None and protocol is not self._protocol:
            return
        self._protocol = None
        if self._close_timer is not None:
            if self._close_timer.active():
                self._close_timer.cancel()
            self._close_timer = None
        fatal = FATAL_CLOSE_CODES.get(code or 0)
        unfinished = [f for f in self.files if not f.finished]
        if fatal is not None:
            for upload in unfinished:
                self._finish(upload, "error", fatal.value, reason or fatal.value)
            self._check_done()
            return
        if not unfinished:
            self._check_done()
            return
        self._failures += 1
        if self._failures > self.max_retries:
            for upload in unfinished:
                self._finish(upload, "error", ErrorCode.TIMEOUT.value,
                             f"gave up after {self.max_retries} reconnects: {reason}")
            return
        for upload in unfinished:
            if upload.status in ("announced",) and upload.entry_id is None:
                upload.status = "queued"  # the announce may never have arrived; announce again
        delay = min(10.0, 0.2 * 2 ** (self._failures - 1)) * (0.5 + random.random() / 2)
        log.info("Upload connection lost ({reason}); reconnecting in {delay:.1f}s", reason=reason, delay=delay)
        self.reconnects += 1
        self.reactor.callLater(delay, self._connect)

    def _send(self, message: dict[str, Any]) -> None:
        assert self._protocol is not None
        kind = message.pop("type")
        self._protocol.sendMessage(encode_message(kind, **message).encode("utf-8"), isBinary=False)

    # -- messages ------------------------------------------------------------------------------------------

    def _message(self, protocol: _ClientProtocol, payload: bytes) -> None:
        try:
            message = decode_message(payload, SERVER_MESSAGES)
        except UploadError as error:
            log.error("Server sent a bad message: {error}", error=error)
            protocol.sendClose(CLOSE_PROTOCOL_ERROR, "bad server message")
            return
        getattr(self, f"_on_{message['type']}")(message)

    def _by_entry(self, entry_id: Any) -> FileUpload | None:
        return next((f for f in self.files if f.entry_id == entry_id), None)

    def _on_welcome(self, message: dict[str, Any]) -> None:
        self._max_parallel = min(self.parallel, message["max_parallel"])
        self._pump()

    def _on_accepted(self, message: dict[str, Any]) -> None:
        upload = next((f for f in self.files if f.ref == message["ref"] and not f.finished), None)
        if upload is None:
            return
        upload.entry_id = message["entry"]
        upload.sent = upload.acked = message["offset"]
        upload.chunk_size = message["chunk_size"]
        window = message["window"]
        if self.window_chunks:
            window = min(window, self.window_chunks * upload.chunk_size)
        upload.window = max(window, upload.chunk_size)
        upload.status = "uploading"
        self._failures = 0
        self._send_chunks(upload)

    def _on_rejected(self, message: dict[str, Any]) -> None:
        upload = next((f for f in self.files if f.ref == message["ref"] and not f.finished), None)
        if upload is not None:
            self._finish(upload, "error", message["code"], message["message"])
        self._pump()

    def _on_ack(self, message: dict[str, Any]) -> None:
        upload = self._by_entry(message["entry"])
        if upload is None or upload.finished:
            return
        upload.acked = max(upload.acked, message["offset"])
        self._failures = 0
        if self.on_progress is not None:
            self.on_progress(upload)
        self._send_chunks(upload)

    def _on_complete(self, message: dict[str, Any]) -> None:
        upload = self._by_entry(message["entry"])
        if upload is None or upload.finished:
            return
        upload.acked = upload.sent = upload.size
        if upload._hashed < upload.size:
            self._hash_rest(upload)
        self._finish(upload, "complete", sha256=message["sha256"])
        self._pump()

    def _on_cancelled(self, message: dict[str, Any]) -> None:
        upload = self._by_entry(message["entry"])
        if upload is not None and not upload.finished:
            self._finish(upload, "cancelled", ErrorCode.CANCELLED.value, "cancelled")
        self._pump()

    def _on_error(self, message: dict[str, Any]) -> None:
        upload = self._by_entry(message.get("entry"))
        if upload is None:
            log.warn("Upload server error: {code}: {message}", code=message["code"], message=message["message"])
            return
        if message["code"] == ErrorCode.SERVER_BUSY.value:
            upload.status = "queued_resume"
            return
        self._finish(upload, "error", message["code"], message["message"])
        self._pump()

    # -- sending -------------------------------------------------------------------------------------------

    def _pump(self) -> None:
        """Announce queued files while fewer than the parallel limit are in flight."""
        if self._protocol is None:
            return
        active = sum(1 for f in self.files if f.status in ("announced", "uploading"))
        for upload in self.files:
            if active >= self._max_parallel:
                break
            if upload.status == "queued":
                upload.status = "announced"
                self._send({"type": "announce", "ref": upload.ref, "slot": upload.slot, "name": upload.name,
                            "mime": upload.mime, "size": upload.size})
                active += 1
            elif upload.status == "queued_resume":
                upload.status = "announced"
                self._send({"type": "resume", "entry": upload.entry_id})
                active += 1
        self._check_done()

    def _send_chunks(self, upload: FileUpload) -> None:
        protocol = self._protocol
        if protocol is None or upload.status != "uploading":
            return
        fd = self._fds.get(upload.ref)
        if fd is None:
            fd = self._fds[upload.ref] = os.open(upload.path, os.O_RDONLY)
        while upload.sent < upload.size and upload.sent - upload.acked < upload.window:
            chunk = os.pread(fd, min(upload.chunk_size, upload.size - upload.sent), upload.sent)
            if not chunk:
                self._finish(upload, "error", ErrorCode.SIZE_MISMATCH.value, f"{upload.path} shrank while uploading")
                return
            if upload.sent == upload._hashed:
                upload._hash.update(chunk)
                upload._hashed += len(chunk)
            protocol.sendMessage(encode_chunk_header(upload.entry_id or 0, upload.sent) + chunk, isBinary=True)
            upload.sent += len(chunk)

    def _hash_rest(self, upload: FileUpload) -> None:
        with open(upload.path, "rb") as source:
            source.seek(upload._hashed)
            while block := source.read(1 << 20):
                upload._hash.update(block)
        upload._hashed = upload.size

    def _finish(self, upload: FileUpload, status: str, code: str | None = None, message: str | None = None,
                sha256: str | None = None) -> None:
        upload.status = status
        fd = self._fds.pop(upload.ref, None)
        if fd is not None:
            os.close(fd)
        upload.result = UploadResult(upload.ref, upload.name, upload.size, status, code, message, sha256,
                                     upload._hash.hexdigest() if status == "complete" else None, upload.entry_id,
                                     upload.resumes)
        if self.on_progress is not None:
            self.on_progress(upload)
        self._check_done()

    def _check_done(self) -> None:
        if self._done is None or not all(f.finished for f in self.files):
            return
        if self._protocol is not None:
            # Finish the close handshake first, so callers never leave a half-open socket behind.
            if self._close_timer is None:
                self._protocol.sendClose(1000)
                self._close_timer = self.reactor.callLater(CLOSE_GRACE, self.drop_connection)
            return
        done, self._done = self._done, None
        done.callback([f.result for f in self.files if f.result is not None])
