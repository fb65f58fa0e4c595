"""The Twisted upload client: one connection at a time, many files, automatic reconnect and resume.

Files are read with ``os.pread`` one chunk at a time, so memory stays bounded by the window whatever the file
size. Progress comes from the server's acks (what the server stored), never from bytes handed to the socket.

Every way a run can end is bounded: a connection attempt gets ``connect_timeout`` seconds to reach ``welcome``; a
refusal that retrying cannot change (HTTP 403 or 404 at the handshake, close 4001 for the token) ends the run at
once; an open connection on which the server stays silent for ``stall_timeout`` while the client waits for it
is dropped; anything else is retried ``max_retries`` times in a row with exponential backoff, then the run ends
with ``unreachable``. When the run ended because of the connection rather than a file, :attr:`UploadClient.failure`
says why.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import random
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from autobahn.twisted.websocket import WebSocketClientFactory, WebSocketClientProtocol, connectWS
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

from .. import SUBPROTOCOL
from ..codec import CHUNK_HEADER, HEADER_SIZE, SERVER_MESSAGES, decode_message, encode_message
from ..errors import CLOSE_INVALID_TOKEN, CLOSE_PROTOCOL_ERROR, MESSAGES, ErrorCode, UploadError
from ..slots import MAX_CHUNK_SIZE
from .endpoint import Refusal, check_url, handshake_refusal

log = Logger()

#: Largest frame the client sends or accepts: the largest chunk size a slot may have, plus the header.
MAX_FRAME = MAX_CHUNK_SIZE + HEADER_SIZE

#: Seconds the server gets to answer our close frame.
CLOSE_GRACE = 5.0

#: Default seconds from starting a connection attempt to the server's ``welcome`` (TCP, handshake, auth).
CONNECT_TIMEOUT = 10.0

#: Default seconds an open connection may stay silent while the client waits for the server (an ack, an answer
#: to an announce or resume) before it is taken for dead (a half-open socket, a stuck server) and replaced.
STALL_TIMEOUT = 30.0

#: Default connection attempts in a row that may fail, without any upload progress in between, before giving up.
MAX_RETRIES = 5
#: Bytes the client lets queue in its own socket buffer before it waits for the socket to drain (Twisted pauses
#: the producer beyond the transport's ``bufferSize``). The window bounds what is unacknowledged; this bounds what
#: sits in the client's memory: a large window on a slow link queues in the kernel's send buffer (sized by TCP to
#: the link), not in the process, so a ``cancel`` is not stuck behind megabytes, and frames leave while hot in cache.
SEND_BUFFER = 256 * 1024

#: Backoff before reconnect attempt n: BACKOFF_FIRST * 2**(n-1), at most BACKOFF_MAX, times a jitter in [0.5, 1)
#: so many clients cut off together do not come back together. With the defaults a dead server is given up on
#: after at most 0.25 + 0.5 + 1 + 2 + 4 = 7.75 seconds of waiting.
BACKOFF_FIRST = 0.25
BACKOFF_MAX = 4.0

#: Close codes after which reconnecting cannot help.
FATAL_CLOSE_CODES = {CLOSE_INVALID_TOKEN: ErrorCode.INVALID_TOKEN, CLOSE_PROTOCOL_ERROR: ErrorCode.PROTOCOL_ERROR}

#: The server's messages as this client understands them: the codec's table, plus ``moved`` for servers whose
#: codec predates it (the message is then still understood when the server side lands).
CLIENT_VIEW_OF_SERVER_MESSAGES = {"moved": {"entry": int, "ref": str}, **SERVER_MESSAGES}

#: Statuses of a file that will not change any more.
FINISHED = frozenset({"complete", "error", "cancelled", "moved"})


@dataclass
class UploadResult:
    """How one file ended."""

    ref: str
    name: str
    size: int
    status: str  # complete | error | cancelled | moved
    code: str | None = None
    message: str | None = None
    sha256: str | None = None
    local_sha256: str | None = None
    entry_id: int | None = None
    resumes: int = 0
    #: When the file ended, on the client's clock: for a complete file, when the server's ``complete`` (stored,
    #: hashed) arrived, before the connection's close handshake.
    finished_at: float | None = None

    @property
    def ok(self) -> bool:
        """Complete, and the server's SHA-256 equals the one computed while reading the file."""
        return self.status == "complete" and self.sha256 == self.local_sha256

    @property
    def moved(self) -> bool:
        """Another connection of the same upload session took this file over: not a failure, not ours to finish."""
        return self.status == "moved"


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
    status: str = "queued"  # queued | queued_resume | announced | uploading | complete | error | cancelled | moved
    result: UploadResult | None = None
    resumes: int = 0
    _hash: Any = field(default_factory=hashlib.sha256)
    _hashed: int = 0

    @classmethod
    def from_path(cls, path: str | os.PathLike[str], slot: str, name: str | None = None,
                  mime: str | None = None) -> "FileUpload":
        """Describe a regular, readable file on disk for upload to ``slot`` (an empty slot: the token's only one).

        Raises ``OSError`` (``IsADirectoryError``, ``PermissionError``, ...) for anything else, before any
        connection, so a directory given by mistake never reaches the reading code.
        """
        file_path = Path(path)
        info = file_path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(21, "is a directory, not a file", str(file_path))
        if not stat.S_ISREG(info.st_mode):
            raise OSError(22, "is not a regular file", str(file_path))
        if not os.access(file_path, os.R_OK):
            raise PermissionError(13, "is not readable", str(file_path))
        file_name = name or file_path.name
        guessed = mime if mime is not None else (mimetypes.guess_type(file_name)[0] or "")
        return cls(file_path, slot, file_name, guessed, info.st_size)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


class _ClientProtocol(WebSocketClientProtocol):
    factory: "_ClientFactory"

    def connectionMade(self) -> None:
        self.factory.live = self
        super().connectionMade()

    def failHandshake(self, reason: str) -> None:
        # Autobahn keeps the server's status line; a 404 and a 403 deserve different answers than a reset.
        self.factory.refusal = handshake_refusal(self.factory.url, getattr(self, "http_status_line", None), reason,
                                                 self.factory.origin)
        super().failHandshake(reason)

    def onOpen(self) -> None:
        self.factory.client._opened(self.factory, self)

    def send_binary(self, frame: memoryview) -> None:
        """One binary message from a buffer the caller reuses as soon as this returns.

        Autobahn's ``sendFrame`` (what ``sendMessage`` ends in, minus its per-call checks: a ``bytes`` payload
        only, compression, fragmentation, none of which applies) masks the frame into a new ``bytes`` before
        queueing it, so the caller's buffer is free again at once.
        """
        if self.state == self.STATE_OPEN:
            self.sendFrame(opcode=2, payload=frame)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        if not isBinary:
            self.factory.client._message(self.factory, self, payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.client._closed(self.factory, code, reason)


@implementer(IPushProducer)
class _SendPacer:
    """The transport's producer for one connection: paused while the socket's buffer is above SEND_BUFFER,
    resumed (sending more chunks) once it drained."""

    def __init__(self, client: "UploadClient") -> None:
        self.client = client
        self.paused = False

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        if self.client._pacer is self:
            self.client._send_more()

    def stopProducing(self) -> None:
        self.paused = True


class _ClientFactory(WebSocketClientFactory):
    """One connection attempt: callbacks from an attempt the client has given up on are recognised and ignored."""

    protocol = _ClientProtocol

    def __init__(self, client: "UploadClient", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.client = client
        self.connector: Any = None
        self.live: _ClientProtocol | None = None
        self.refusal: Refusal | None = None

    def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
        self.client._closed(self, None, reason.getErrorMessage())

    def abort(self) -> None:
        """Drop this attempt, whatever stage it reached."""
        if self.live is not None and self.live.transport is not None:
            self.live.transport.abortConnection()
        elif self.connector is not None:
            self.connector.disconnect()


class UploadClient:
    """Uploads files to one server with one token, reconnecting and resuming until every file finished.

    ``clock`` runs the client's timers (tests pass a ``twisted.internet.task.Clock``); sockets always use the
    global reactor, as Autobahn's ``connectWS`` does. ``reactor`` is the older name for ``clock``. ``headers`` go
    with every handshake: a Django page's token is bound to its session, so a client using one sends that
    session's cookie (``headers={"Cookie": "sessionid=..."}``).
    """

    def __init__(self, url: str, token: str, *, reactor: Any = None, clock: Any = None, parallel: int = 4,
                 window_chunks: int | None = None, max_retries: int = MAX_RETRIES, origin: str | None = None,
                 connect_timeout: float = CONNECT_TIMEOUT, stall_timeout: float = STALL_TIMEOUT,
                 on_progress: Callable[[FileUpload], None] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        if parallel < 1 or max_retries < 0 or connect_timeout <= 0 or stall_timeout <= 0:
            raise ValueError("parallel must be at least 1, max_retries at least 0, the timeouts positive")
        clock = clock if clock is not None else reactor
        if clock is None:
            from twisted.internet import reactor as default_reactor

            clock = default_reactor
        self.url = check_url(url)
        self.token = token
        self.clock = clock
        self.parallel = parallel
        self.window_chunks = window_chunks
        self.max_retries = max_retries
        self.origin = origin
        self.headers = dict(headers) if headers else None
        self.connect_timeout = connect_timeout
        self.stall_timeout = stall_timeout
        self.on_progress = on_progress
        self.files: list[FileUpload] = []
        self.reconnects = 0
        #: Why the run ended for every unfinished file at once (the connection, not a file), or None.
        self.failure: UploadError | None = None
        self._attempt: _ClientFactory | None = None
        self._protocol: _ClientProtocol | None = None
        self._welcomed = False
        self._failures = 0
        self._busy_waits = 0
        self._max_parallel = parallel
        self._server_error: UploadError | None = None
        self._done: Deferred[list[UploadResult]] | None = None
        self._fds: dict[str, int] = {}
        self._frame = memoryview(bytearray(0))
        self._close_timer: Any = None
        self._answer_timer: Any = None
        self._retry_timer: Any = None
        self._busy_timer: Any = None
        self._pacer: _SendPacer | None = None
        self._send_turn = 0

    # -- public API ----------------------------------------------------------------------------------------

    def upload(self, files: Iterable[FileUpload]) -> "Deferred[list[UploadResult]]":
        """Upload ``files``; the Deferred fires with one :class:`UploadResult` per file, in order."""
        self.files.extend(files)
        done: Deferred[list[UploadResult]] = Deferred()
        self._done = done  # may fire (and be cleared) before we return: a URL that cannot even be tried
        if not self.files or all(f.finished for f in self.files):
            self._check_done()
        elif self._protocol is not None:
            self._pump()
        elif self._attempt is None and self._retry_timer is None:
            self._connect()
        return done

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
        self._retry_timer = None
        factory = _ClientFactory(self, url=self.url, protocols=[SUBPROTOCOL], origin=self.origin,
                                 headers=self.headers)
        # Autobahn's handshake timers are replaced by ours (cancellable, on self.clock).
        factory.setProtocolOptions(autoFragmentSize=0, tcpNoDelay=True, maxFramePayloadSize=MAX_FRAME,
                                   maxMessagePayloadSize=MAX_FRAME, openHandshakeTimeout=0, closeHandshakeTimeout=0)
        self._attempt = factory
        self._welcomed = False
        self._answer_timer = self.clock.callLater(self.connect_timeout, self._answer_overdue, factory)
        try:
            factory.connector = connectWS(factory, timeout=max(1, int(self.connect_timeout + 1)))
        except Exception as error:  # noqa: BLE001 - e.g. wss:// without pyOpenSSL; raised from a timer it would hang
            self._attempt = None
            self._answer_timer.cancel()
            self._answer_timer = None
            self._fail_run(UploadError(ErrorCode.UNREACHABLE, f"cannot open {self.url}: {error}"))

    def _answer_overdue(self, factory: _ClientFactory) -> None:
        """The server said nothing for too long: before ``welcome``, or while we wait for it on an open socket."""
        self._answer_timer = None
        if factory is not self._attempt:
            return
        if not self._welcomed:
            why = f"no answer from {self.url} within {self.connect_timeout:g} s"
        elif any(f.status in ("announced", "uploading") for f in self.files):
            why = f"the server sent nothing for {self.stall_timeout:g} s"
        else:
            self._answer_timer = self.clock.callLater(self.stall_timeout, self._answer_overdue, factory)
            return
        self._closed(factory, None, why)
        factory.abort()

    def _opened(self, factory: _ClientFactory, protocol: _ClientProtocol) -> None:
        if factory is not self._attempt:
            protocol.dropConnection(abort=True)
            return
        self._protocol = protocol
        self._server_error = None
        self._pacer = _SendPacer(self)
        if protocol.transport is not None:
            protocol.transport.bufferSize = SEND_BUFFER
            protocol.registerProducer(self._pacer, True)
        self._send({"type": "auth", "token": self.token})
        # Pipelined behind auth (the server handles messages in order): resumes and announces go out without
        # waiting for welcome, so a small file completes two round trips after the socket opens.
        for upload in self.files:
            if upload.entry_id is not None and not upload.finished:
                upload.status = "announced"
                upload.resumes += 1
                self._send({"type": "resume", "entry": upload.entry_id})
        self._pump()

    def _closed(self, factory: _ClientFactory, code: int | None, reason: str | None) -> None:
        """The end of one connection attempt, whether it never opened, was refused, or dropped later."""
        if factory is not self._attempt:
            return
        self._attempt = None
        self._protocol = None
        self._pacer = None
        for timer in (self._close_timer, self._answer_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._close_timer = self._answer_timer = None
        unfinished = [f for f in self.files if not f.finished]
        if not unfinished:
            self._check_done()
            return
        fatal = FATAL_CLOSE_CODES.get(code or 0)
        server_said = self._server_error
        if fatal is None and server_said is not None and server_said.code in FATAL_CLOSE_CODES.values():
            fatal = server_said.code  # the error arrived, its close frame did not (a proxy, a crash): still final
        if fatal is not None:
            self._fail_run(server_said if server_said is not None and server_said.code is fatal
                           else UploadError(fatal, reason or MESSAGES[fatal]))
            return
        if factory.refusal is not None and factory.refusal.final:
            self._fail_run(factory.refusal.error)
            return
        why = factory.refusal.error.message if factory.refusal is not None else (reason or "connection lost")
        self._failures += 1
        if self._failures > self.max_retries:
            attempts = "1 attempt" if self._failures == 1 else f"{self._failures} attempts in a row"
            self._fail_run(UploadError(ErrorCode.UNREACHABLE, f"cannot reach {self.url}: {why} ({attempts})"))
            return
        for upload in unfinished:
            if upload.status == "announced" and upload.entry_id is None:
                upload.status = "queued"  # the announce may never have arrived; announce again
        delay = self._backoff(self._failures)
        log.info("Upload connection lost ({reason}); reconnecting in {delay:.1f}s", reason=why, delay=delay)
        self.reconnects += 1
        self._retry_timer = self.clock.callLater(delay, self._connect)

    @staticmethod
    def _backoff(attempt: int) -> float:
        return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** (attempt - 1)) * (0.5 + random.random() / 2)

    def _fail_run(self, error: UploadError) -> None:
        """End every unfinished file with the connection's error: retrying cannot help, or was tried enough."""
        self.failure = error
        if self._retry_timer is not None and self._retry_timer.active():
            self._retry_timer.cancel()
        self._retry_timer = None
        for upload in self.files:
            if not upload.finished:
                self._finish(upload, "error", error.code.value, error.message)
        self._check_done()

    def _send(self, message: dict[str, Any]) -> None:
        assert self._protocol is not None
        kind = message.pop("type")
        self._protocol.sendMessage(encode_message(kind, **message).encode("utf-8"), isBinary=False)

    # -- messages ------------------------------------------------------------------------------------------

    def _message(self, factory: _ClientFactory, protocol: _ClientProtocol, payload: bytes) -> None:
        if factory is not self._attempt:
            return
        if self._answer_timer is not None and self._answer_timer.active():
            # Each message proves the connection alive: the next may take up to stall_timeout.
            self._answer_timer.reset(self.stall_timeout)
        try:
            message = decode_message(payload, CLIENT_VIEW_OF_SERVER_MESSAGES)
        except UploadError as error:
            log.error("Server sent a bad message: {error}", error=error)
            protocol.sendClose(CLOSE_PROTOCOL_ERROR, "bad server message")
            return
        getattr(self, f"_on_{message['type']}")(message)

    def _by_entry(self, entry_id: Any) -> FileUpload | None:
        if entry_id is None:
            return None
        return next((f for f in self.files if f.entry_id == entry_id), None)

    def _on_welcome(self, message: dict[str, Any]) -> None:
        self._welcomed = True
        self._max_parallel = min(self.parallel, message["max_parallel"])
        self._choose_slots(sorted(message["slots"]))
        self._pump()

    def _choose_slots(self, names: list[str]) -> None:
        """Files without a slot go to the token's only slot; with several, which one is the caller's choice."""
        waiting = [f for f in self.files if not f.slot and not f.finished]
        if not waiting:
            return
        if len(names) == 1:
            for upload in waiting:
                upload.slot = names[0]
            return
        granted = ", ".join(names) or "none"
        for upload in waiting:
            self._finish(upload, "error", ErrorCode.UNKNOWN_SLOT.value,
                         f"the token grants {len(names)} upload slots ({granted}); choose one")

    def _on_accepted(self, message: dict[str, Any]) -> None:
        # A resume is answered for its entry id (its ref may be another client's, if it announced the entry).
        upload = self._by_entry(message["entry"]) or next(
            (f for f in self.files if f.entry_id is None and f.ref == message["ref"]), None)
        if upload is None or upload.finished:
            return
        upload.entry_id = message["entry"]
        if message["offset"] > upload.acked:
            self._failures = 0  # the server holds more than it had acknowledged: progress
        upload.sent = upload.acked = message["offset"]
        upload.chunk_size = message["chunk_size"]
        self._take_window(upload, message["window"])
        upload.status = "uploading"
        self._send_chunks(upload)

    def _on_rejected(self, message: dict[str, Any]) -> None:
        upload = next((f for f in self.files if f.ref == message["ref"] and not f.finished), None)
        if upload is not None:
            if message["code"] == ErrorCode.SERVER_BUSY.value:
                self._server_busy(upload, "queued", message["message"])
                return
            self._finish(upload, "error", message["code"], message["message"])
        self._pump()

    def _take_window(self, upload: FileUpload, window: int) -> None:
        """Follow the window the server grants (``accepted``, and each ``ack`` when it adapts it)."""
        if self.window_chunks:
            # The server acks every quarter of the window it granted (protocol §5): a smaller window of ours
            # would stop short of the next ack and wait for it forever.
            ack_step = max(upload.chunk_size, window // 4)
            window = max(min(window, self.window_chunks * upload.chunk_size), ack_step)
        upload.window = max(window, upload.chunk_size)

    def _on_ack(self, message: dict[str, Any]) -> None:
        upload = self._by_entry(message["entry"])
        if upload is None or upload.finished:
            return
        window = message.get("window")
        if isinstance(window, int) and not isinstance(window, bool) and window > 0:
            self._take_window(upload, window)
        if message["offset"] > upload.acked:
            upload.acked = message["offset"]
            self._failures = 0
        if self.on_progress is not None:
            self.on_progress(upload)
        self._send_chunks(upload)

    def _on_complete(self, message: dict[str, Any]) -> None:
        upload = self._by_entry(message["entry"])
        if upload is None or upload.finished:
            return
        upload.acked = upload.sent = upload.size
        self._busy_waits = self._failures = 0
        try:
            if upload._hashed < upload.size:
                self._hash_rest(upload)
        except OSError as error:
            self._finish(upload, "error", None, f"stored, but {upload.path} could not be re-read to check it: "
                                                f"{error.strerror}")
        else:
            self._finish(upload, "complete", sha256=message["sha256"])
        self._pump()

    def _on_cancelled(self, message: dict[str, Any]) -> None:
        upload = self._by_entry(message["entry"])
        if upload is not None and not upload.finished:
            self._finish(upload, "cancelled", ErrorCode.CANCELLED.value, "cancelled")
        self._pump()

    def _on_moved(self, message: dict[str, Any]) -> None:
        """Another connection of this upload session resumed the entry: it streams it now, we stop."""
        upload = self._by_entry(message["entry"])
        if upload is None or upload.finished:
            return
        self._finish(upload, "moved", None, "another connection took this upload over")
        self._pump()

    def _on_error(self, message: dict[str, Any]) -> None:
        upload = self._by_entry(message.get("entry"))
        if upload is None:
            # A connection-level error (invalid_token before close 4001, ...): remembered for the close.
            try:
                self._server_error = UploadError(message["code"], message["message"])
            except ValueError:
                self._server_error = None
            log.warn("Upload server error: {code}: {message}", code=message["code"], message=message["message"])
            return
        if upload.finished:
            return
        if message["code"] == ErrorCode.SERVER_BUSY.value:
            self._server_busy(upload, "queued_resume", message["message"])
            return
        self._finish(upload, "error", message["code"], message["message"])
        self._pump()

    def _server_busy(self, upload: FileUpload, status: str, why: str) -> None:
        """The server has as many uploads of ours as it allows: wait for one of them, never fail for it.

        Announces pipelined before ``welcome`` may exceed the server's ``max_parallel``; those come back here and
        go again when a running upload finishes. If none of ours is running, the server is busy for a reason of
        its own: try again after a backoff, a bounded number of times.
        """
        upload.status = status
        uploading = sum(1 for f in self.files if f.status == "uploading")
        if uploading:
            self._max_parallel = max(1, min(self._max_parallel, uploading))
            return
        self._busy_waits += 1
        if self._busy_waits > self.max_retries:
            self._finish(upload, "error", ErrorCode.SERVER_BUSY.value, why)
            return
        if self._busy_timer is None or not self._busy_timer.active():
            self._busy_timer = self.clock.callLater(self._backoff(self._busy_waits), self._pump)

    # -- sending -------------------------------------------------------------------------------------------

    def _pump(self) -> None:
        """Announce queued files while fewer than the parallel limit are in flight."""
        if self._protocol is None:
            self._check_done()
            return
        active = sum(1 for f in self.files if f.status in ("announced", "uploading"))
        for upload in self.files:
            if active >= self._max_parallel:
                break
            if upload.status == "queued" and (upload.slot or self._welcomed):
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
        """Send what the window allows. Each chunk is read with ``preadv`` straight into one reused buffer, behind
        its header, and that buffer is the frame: no ``bytes`` per read, no header + payload join."""
        protocol = self._protocol
        if protocol is None or upload.status != "uploading":
            return
        try:
            fd = self._fds.get(upload.ref)
            if fd is None:
                fd = self._fds[upload.ref] = os.open(upload.path, os.O_RDONLY)
            frame = self._frame_buffer(upload.chunk_size)
            payload = frame[HEADER_SIZE:]
            entry_id = upload.entry_id or 0
            pacer = self._pacer
            while upload.sent < upload.size and upload.sent - upload.acked < upload.window \
                    and not (pacer is not None and pacer.paused):
                wanted = min(upload.chunk_size, upload.size - upload.sent)
                read = os.preadv(fd, [payload[:wanted]], upload.sent)
                if not read:
                    self._abandon(upload, ErrorCode.SIZE_MISMATCH.value, f"{upload.path} shrank while uploading")
                    return
                if upload.sent == upload._hashed:
                    upload._hash.update(payload[:read])
                    upload._hashed += read
                CHUNK_HEADER.pack_into(frame, 0, entry_id, upload.sent)
                protocol.send_binary(frame[:HEADER_SIZE + read])
                upload.sent += read
        except OSError as error:
            self._abandon(upload, None, f"cannot read {upload.path}: {error.strerror}")

    def _send_more(self) -> None:
        """The socket drained: the uploading files send what their windows allow until it is full again, starting
        one file further each time, so parallel files share the socket."""
        files = self.files
        self._send_turn = (self._send_turn + 1) % max(1, len(files))
        for upload in files[self._send_turn:] + files[:self._send_turn]:
            if self._pacer is None or self._pacer.paused:
                return
            if upload.status == "uploading":
                self._send_chunks(upload)

    def _frame_buffer(self, chunk_size: int) -> memoryview:
        """The one buffer chunks are read into (header + payload), grown to the largest chunk size seen."""
        if len(self._frame) < HEADER_SIZE + chunk_size:
            self._frame = memoryview(bytearray(HEADER_SIZE + chunk_size))
        return self._frame

    def _abandon(self, upload: FileUpload, code: str | None, message: str) -> None:
        """Stop a file the client itself cannot finish: cancel it on the server, which would wait for bytes."""
        if upload.entry_id is not None and self._protocol is not None:
            self._send({"type": "cancel", "entry": upload.entry_id})
        self._finish(upload, "error", code, message)
        self._pump()

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
                                     upload.resumes, self.clock.seconds())
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
                self._close_timer = self.clock.callLater(CLOSE_GRACE, self.drop_connection)
            return
        if self._attempt is not None:
            # A socket still connecting or handshaking: nothing left to send on it.
            attempt, self._attempt = self._attempt, None
            attempt.abort()
        for timer in (self._answer_timer, self._retry_timer, self._busy_timer):
            if timer is not None and timer.active():
                timer.cancel()
        self._answer_timer = self._retry_timer = self._busy_timer = None
        done, self._done = self._done, None
        done.callback([f.result for f in self.files if f.result is not None])
