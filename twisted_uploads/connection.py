"""The per-connection protocol state machine (docs/protocol.md), free of sockets.

Messages and bytes come in through :meth:`UploadConnection.text_received` and
:meth:`UploadConnection.binary_received`; replies go out through the small :class:`Transport` the adapter passes
in. Time comes from an injected ``IReactorTime``. The Autobahn adapter in :mod:`.websocket` is a thin translation
layer, so every rule here is tested without a network (``tests/test_connection.py``).
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import Any, Callable, Protocol

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from . import PROTOCOL_VERSION
from .codec import (CLIENT_MESSAGES, CLIENT_OPTIONAL_FIELDS, HEADER_SIZE, PRE_AUTH_FRAME_LIMIT, decode_chunk,
                    decode_message, encode_message)
from .entries import Entry, EntryStatus
from .flow import WindowController
from .errors import CLOSE_CODES, CLOSE_TRY_AGAIN, ErrorCode, UploadError
from .registry import MAX_REF_LENGTH, UploadRegistry, UploadSession
from .tokens import Handshake, TokenVerifier

log = Logger()


class Transport(Protocol):
    """What the state machine needs from a WebSocket.

    A transport may also offer ``limit_frames(max_frame)`` to tighten the framing layer's frame limit once the
    token names the slots (the Autobahn adapter does); the state machine uses it when present.
    """

    def send_text(self, text: str) -> None:
        """Send one text frame."""

    def close(self, code: int, reason: str) -> None:
        """Close the WebSocket with ``code``."""


class ConnectionState(Enum):
    """A connection waits for ``auth``, then is open until it closes."""

    AWAITING_AUTH = "awaiting_auth"
    OPEN = "open"
    CLOSED = "closed"


#: The default flow-control window per entry. Enough to keep loopback and LAN pipes full (docs/benchmarks.md); it
#: bounds how much a client keeps unacknowledged, not what the server holds in memory (the server stores as it reads).
DEFAULT_WINDOW_BYTES = 4 * 1024 * 1024
#: An adaptive entry's first window, when its share of the budget allows: a 1 Gbit/s link at 100 ms (a 12.5 MB
#: bandwidth-delay product) is full from the first round trip; startup's exit (flow.py) brings the window of a
#: shorter or slower link back down to its bandwidth-delay product, never below DEFAULT_WINDOW_BYTES.
INITIAL_ADAPTIVE_WINDOW_BYTES = 16 * 1024 * 1024
MIN_WINDOW_CHUNKS = 4
#: Bytes all uploads on the server may keep in flight together: with many uploads each gets a share (never below
#: MIN_WINDOW_CHUNKS), so acks stay timely instead of queueing behind hundreds of full windows.
DEFAULT_WINDOW_BUDGET = 64 * 1024 * 1024


class ConnectionLimits:
    """Server-wide limits a connection enforces (docs/protocol.md §11)."""

    def __init__(self, auth_timeout: float = 10.0, max_parallel: int = 8, window_chunks: int | None = None,
                 max_frame: int = 8 * 1024 * 1024 + 12, window_budget: int = DEFAULT_WINDOW_BUDGET,
                 adaptive_window: bool = True) -> None:
        if auth_timeout <= 0 or max_parallel < 1 or (window_chunks is not None and window_chunks < 1) \
                or max_frame < 1024 or window_budget < 1:
            raise ValueError("connection limits must be positive")
        self.auth_timeout = auth_timeout
        self.max_parallel = max_parallel
        #: Chunks per entry's window; None sizes it to DEFAULT_WINDOW_BYTES whatever the chunk size.
        self.window_chunks = window_chunks
        self.max_frame = max_frame
        self.window_budget = window_budget
        #: Grow each entry's window towards the bandwidth-delay product (flow.py), announced with each ack;
        #: False keeps the window ``accepted`` announced (and ``--window`` fixes it).
        self.adaptive_window = adaptive_window and window_chunks is None


class UploadConnection:
    """One client connection: authentication, announces, chunks, acks, cancel and resume.

    The registry may answer at once or with a Deferred (a cluster registry asks Redis first). Control messages are
    handled one at a time, in order: while one waits for its answer the next ones queue, so ``welcome`` precedes
    every reply and two announces of one ref can never both pass. Data frames never wait: they belong to entries
    already accepted.
    """

    def __init__(self, registry: UploadRegistry, verifier: TokenVerifier, clock: IReactorTime,
                 transport: Transport, limits: ConnectionLimits | None = None,
                 handshake: Handshake | None = None) -> None:
        self.registry = registry
        self.verifier = verifier
        #: What the WebSocket handshake said (Origin, cookies…); the verifier sees it with the token.
        self.handshake = handshake or Handshake()
        self.clock = clock
        self.transport = transport
        self.limits = limits or ConnectionLimits()
        self.state = ConnectionState.AWAITING_AUTH
        self.session: UploadSession | None = None
        #: Upload sessions of earlier pages (same user, listed by the token) whose paused entries may be adopted.
        self._adopt_from: tuple[str, ...] = ()
        self._auth_timer: IDelayedCall | None = None
        #: Per entry streamed here: (offset last acknowledged, bytes between acks = a quarter of its window).
        self._acks: dict[int, tuple[int, int]] = {}
        #: Per entry streamed here, its adaptive window (none when the limits fix the window).
        self._flows: dict[int, WindowController] = {}
        #: Entries taken over by another connection (maybe of a newer page): their frames still in flight are
        #: dropped without a word, even once the entry belongs to another session.
        self._moved: set[int] = set()
        #: Entries whose last byte arrived and whose completion the registry is still storing.
        self._finishing: set[int] = set()
        #: Control messages that arrived while an earlier one was still being answered.
        self._queue: deque[str | bytes] = deque()
        self._busy = False
        #: Bytes by which the store's durable offset grows at once (an S3 part; 0 for local files), read once:
        #: the ack check on every data frame uses it.
        self._durable_step = int(getattr(registry.store, "durable_step", 0) or 0)

    # -- events from the adapter ---------------------------------------------------------------------------

    def connection_made(self) -> None:
        """Start the clock on authentication."""
        self._auth_timer = self.clock.callLater(self.limits.auth_timeout, self._auth_timed_out)

    def connection_lost(self) -> None:
        """The socket is gone: pause this connection's unfinished entries for a later resume."""
        self._stop_auth_timer()
        if self.state is ConnectionState.OPEN and self.session is not None:
            self.registry.detach(self.session, self)
        self.state = ConnectionState.CLOSED

    def text_received(self, text: str | bytes) -> None:
        """Handle one control message (after the ones before it were answered)."""
        if self.state is ConnectionState.CLOSED:
            return
        if self._busy:
            self._queue.append(text)
            return
        while True:
            waiting = self._handle_text(text)
            if waiting is not None:
                self._busy = True
                waiting.addBoth(self._answered)
                return
            if not self._queue or self.state is ConnectionState.CLOSED:
                return
            text = self._queue.popleft()

    def _answered(self, result: object) -> None:
        self._busy = False
        if isinstance(result, Failure):
            self._internal_error(result)
        if self._queue and self.state is not ConnectionState.CLOSED:
            self.text_received(self._queue.popleft())

    def _handle_text(self, text: str | bytes) -> Deferred[Any] | None:
        """Handle one message; a Deferred when its answer waits for the registry."""
        try:
            message = decode_message(text, CLIENT_MESSAGES, CLIENT_OPTIONAL_FIELDS)
            if self.state is ConnectionState.AWAITING_AUTH:
                if message["type"] != "auth":
                    raise UploadError(ErrorCode.PROTOCOL_ERROR, "the first message must be auth")
                return self._authenticate(message["token"])
            handler = getattr(self, f"_on_{message['type']}")
            return handler(message)
        except UploadError as error:
            self._close_with(error)
        return None

    def _internal_error(self, failure: Failure) -> None:
        """A bug or an unexpected failure below us: logged with its traceback, the connection closed cleanly."""
        if failure.check(UploadError):
            self._close_with(failure.value)
            return
        log.failure("Upload connection failed unexpectedly", failure)
        self._close_with(UploadError(ErrorCode.SERVER_BUSY, "the server failed unexpectedly; try again"),
                         CLOSE_TRY_AGAIN)

    def binary_received(self, frame: bytes) -> None:
        """Handle one data frame: the hot path, kept to dictionary look-ups and one write."""
        if self.state is not ConnectionState.OPEN:
            if self.state is ConnectionState.AWAITING_AUTH:
                self._close_with(UploadError(ErrorCode.PROTOCOL_ERROR, "data before auth"))
            return
        try:
            entry_id, offset, payload = decode_chunk(frame)
        except UploadError as error:
            self._close_with(error)
            return
        session = self.session
        assert session is not None
        if entry_id in self._moved:
            return
        entry = self._lookup(entry_id)
        if entry is None:
            return
        if entry.owner is not self or entry.status is not EntryStatus.UPLOADING or entry_id in self._finishing:
            return  # in flight after a cancel, a failure or a move to another connection: dropped quietly
        try:
            completed = entry.receive(offset, payload)
            entry.last_activity = self.clock.seconds()
        except UploadError as error:
            self._forget_flow(entry_id)
            self.registry.fail(session, entry, error)
            self._send_entry_error(entry)
            return
        if completed:
            self._complete(session, entry)
            return
        flow = self._flows.get(entry_id)
        if flow is not None:
            flow.received(entry.received)
        self._maybe_ack(entry)

    def _maybe_ack(self, entry: Entry) -> None:
        """Acknowledge what is durable once a quarter of the window more is (a remote store's parts lag)."""
        writer = entry.writer
        durable = entry.received if writer is None else min(entry.received, writer.durable)
        entry_id = entry.entry_id
        acked, step = self._acks.get(entry_id, (0, entry.slot.chunk_size))
        # A remote store's durable offset grows a part at a time: each growth is worth an ack at once.
        if durable - acked < (1 if self._durable_step else step):
            return
        flow = self._flows.get(entry_id)
        if flow is None:
            self._acks[entry_id] = (durable, step)
            self._send("ack", entry=entry_id, offset=durable)
        else:
            flow.set_share(self._budget_share())
            window = max(flow.acked(durable), self._window_floor(entry.slot.chunk_size))
            self._acks[entry_id] = (durable, flow.ack_step)
            self._send("ack", entry=entry_id, offset=durable, window=window)

    def _durable_grew(self, entry: Entry) -> Callable[[int], None]:
        """The writer's callback: a part became durable while the client may be waiting for its ack."""
        def grew(_durable: int) -> None:
            if self.state is ConnectionState.OPEN and entry.owner is self \
                    and entry.status is EntryStatus.UPLOADING and entry.entry_id not in self._finishing:
                self._maybe_ack(entry)
        return grew

    def _complete(self, session: UploadSession, entry: Entry) -> None:
        """Every byte arrived: the client hears ``complete`` once the registry stored the entry as complete."""
        entry_id = entry.entry_id
        self._finishing.add(entry_id)
        self._forget_flow(entry_id)

        def stored(_: object) -> None:
            self._finishing.discard(entry_id)
            if self.state is ConnectionState.OPEN and entry.owner is self:
                self._send("ack", entry=entry_id, offset=entry.received)
                self._send("complete", entry=entry_id, size=entry.client_size, sha256=entry.sha256)

        def refused(failure: Failure) -> None:
            self._finishing.discard(entry_id)
            failure.trap(UploadError)
            # The registry failed the entry (content check, store): its answer, not the connection's end.
            if self.state is ConnectionState.OPEN and entry.owner is self:
                self._send_entry_error(entry)

        maybeDeferred(self.registry.complete, session, entry).addCallbacks(stored, refused).addErrback(
            lambda failure: log.failure("Completing upload {entry} failed", failure, entry=entry_id))

    def entry_changed(self, entry: Entry) -> None:
        """The registry changed one of our entries (application cancel, timeout, claimed elsewhere)."""
        self._forget_flow(entry.entry_id)
        if self.state is not ConnectionState.OPEN:
            return
        if entry.owner is not self and not entry.status.finished:
            # Another connection of the session resumed it: its frames from here are dropped (binary_received
            # checks the owner), so tell the client to stop sending rather than let it wait for acks.
            self._moved.add(entry.entry_id)
            self._send("moved", entry=entry.entry_id, ref=entry.ref)
        elif entry.status is EntryStatus.CANCELLED:
            self._send("cancelled", entry=entry.entry_id, ref=entry.ref)
        elif entry.status is EntryStatus.ERROR:
            self._send_entry_error(entry)

    # -- control messages ------------------------------------------------------------------------------------

    def _authenticate(self, token: str) -> Deferred[None] | None:
        grant = self.verifier(token, self.handshake)
        self._stop_auth_timer()
        self._adopt_from = grant.adopt
        opened = self.registry.open_session(grant.session, grant.slots)
        if not isinstance(opened, Deferred):
            self._opened(opened, grant.session)
            return None
        return opened.addCallback(self._opened, grant.session)

    def _opened(self, session: UploadSession, session_id: str) -> Deferred[None] | None:
        if self.state is ConnectionState.CLOSED:
            return None  # the socket went while the registry answered; nothing was attached
        self.session = session
        self.registry.attach(session)
        self.state = ConnectionState.OPEN
        offered = self.registry.adoptable(self._adopt_from, session)
        if not isinstance(offered, Deferred):
            self._welcome(offered, session_id)
            return None
        return offered.addCallback(self._welcome, session_id)

    def _welcome(self, adoptable: list[Any], session_id: str) -> None:
        if self.state is not ConnectionState.OPEN or self.session is None:
            return
        max_frame = self._frame_limit(self.session)
        limit_frames = getattr(self.transport, "limit_frames", None)
        if limit_frames is not None:
            limit_frames(max_frame)
        slots = {name: {**slot.to_dict(), "window": self._window(slot.chunk_size)}
                 for name, slot in self.session.slots.items()}
        self._send("welcome", protocol=PROTOCOL_VERSION, session=session_id, slots=slots,
                   entries=[entry.info().to_dict() for entry in self.session.entries.values()],
                   adoptable=[info.to_dict() for info in adoptable],
                   max_parallel=self.limits.max_parallel, max_frame=max_frame)

    def _frame_limit(self, session: UploadSession) -> int:
        """The largest frame this connection reads from now on: the largest chunk the session may send plus the
        header (paused entries keep the chunk size of the token they were announced under), never below what a
        control message may need, never above the server's ``max_frame``. ``welcome`` states this number."""
        chunk_sizes = [slot.chunk_size for slot in session.slots.values()]
        chunk_sizes += [e.slot.chunk_size for e in session.entries.values() if not e.status.finished]
        largest = max(chunk_sizes, default=0) + HEADER_SIZE
        return min(self.limits.max_frame, max(largest, PRE_AUTH_FRAME_LIMIT))

    def _on_auth(self, message: dict[str, Any]) -> None:
        raise UploadError(ErrorCode.PROTOCOL_ERROR, "already authenticated")

    def _on_announce(self, message: dict[str, Any]) -> Deferred[None] | None:
        session = self.session
        assert session is not None
        ref = message["ref"]
        return self._answer_stream(ref, lambda: self.registry.announce(
            session, self, ref, message["slot"], message["name"], message["mime"], message["size"],
            relative_path=message.get("relative_path"), fingerprint=message.get("fingerprint")))

    def _on_adopt(self, message: dict[str, Any]) -> Deferred[None] | None:
        """Continue a paused entry of an earlier page (resume after a reload) under this page's ``ref``."""
        session = self.session
        assert session is not None
        entry_id, ref = message["entry"], message["ref"]

        def adopt() -> Entry | Deferred[Entry]:
            source = self._earlier_session_of(entry_id)
            if source is None:
                raise UploadError(ErrorCode.UNKNOWN_ENTRY, f"no paused upload {entry_id} to continue")
            return self.registry.adopt(source, entry_id, session, self, ref=ref)

        return self._answer_stream(ref, adopt)

    def _answer_stream(self, ref: str, start: Callable[[], Any]) -> Deferred[None] | None:
        """Run an announce or adopt: ``accepted`` for the entry it gives, ``rejected`` with its error's code."""
        def rejected(error: UploadError) -> None:
            if self.state is ConnectionState.OPEN:
                self._send("rejected", ref=ref[:MAX_REF_LENGTH], code=error.code.value, message=error.message)

        try:
            self._check_new_stream(ref)
            result = start()
        except UploadError as error:
            rejected(error)
            return None
        if not isinstance(result, Deferred):
            self._send_accepted(result)
            return None

        def accepted(entry: Entry) -> None:
            if self.state is ConnectionState.OPEN and entry.owner is self:
                self._send_accepted(entry)

        def failed(failure: Failure) -> None:
            failure.trap(UploadError)
            rejected(failure.value)

        return result.addCallbacks(accepted, failed)

    def _on_discard(self, message: dict[str, Any]) -> Deferred[None] | None:
        """The user discarded an earlier page's interrupted upload instead of choosing the file again."""
        entry_id = message["entry"]
        source = self._earlier_session_of(entry_id)
        offered = source is not None and any(
            info.entry_id == entry_id for info in self.registry.adoptable_now([source], self._session()))
        if not offered:
            self._send("error", entry=entry_id, code=ErrorCode.UNKNOWN_ENTRY.value,
                       message=f"no interrupted upload {entry_id} to discard")
            return None

        def cancelled(info: Any) -> None:
            if self.state is ConnectionState.OPEN:
                self._send("cancelled", entry=entry_id, ref=info.ref)

        def failed(failure: Failure) -> None:
            failure.trap(UploadError)
            if self.state is ConnectionState.OPEN:
                self._send("error", entry=entry_id, code=failure.value.code.value, message=failure.value.message)

        return maybeDeferred(self.registry.cancel, source, entry_id).addCallbacks(cancelled, failed)

    def _check_new_stream(self, ref: str) -> None:
        """What an announce and an adopt must both pass: a fresh ref and a free place among max_parallel."""
        assert self.session is not None
        if not ref or len(ref) > MAX_REF_LENGTH or self.session.entry_by_ref(ref) is not None:
            raise UploadError(ErrorCode.PROTOCOL_ERROR, "ref must be 1-64 characters and unique in the session")
        if self._uploading_count() >= self.limits.max_parallel:
            raise UploadError(ErrorCode.SERVER_BUSY,
                              f"at most {self.limits.max_parallel} uploads at once per connection")

    def _earlier_session_of(self, entry_id: int) -> str | None:
        """The earlier page's upload session (named by the token) that holds ``entry_id``, if any."""
        return next((sid for sid in self._adopt_from if entry_id in self.registry.entry_ids(sid)), None)

    def _session(self) -> UploadSession:
        assert self.session is not None
        return self.session

    def _on_resume(self, message: dict[str, Any]) -> Deferred[None] | None:
        session = self.session
        assert session is not None
        entry = self._lookup(message["entry"])
        if entry is None:
            return None
        if entry.status.finished:
            return self._report_current(session, entry)
        if entry.owner is not self and self._uploading_count() >= self.limits.max_parallel:
            self._send("error", entry=entry.entry_id, ref=entry.ref, code=ErrorCode.SERVER_BUSY.value,
                       message=f"at most {self.limits.max_parallel} uploads at once per connection")
            return None
        def refused(error: UploadError) -> None:
            # Busy (open-file limit) or the stored bytes are gone: this entry's answer, not the connection's end.
            if self.state is ConnectionState.OPEN:
                self._send("error", entry=entry.entry_id, ref=entry.ref, code=error.code.value,
                           message=error.message)

        try:
            claimed = self.registry.claim(session, entry, self)
        except UploadError as error:
            refused(error)
            return None
        if not isinstance(claimed, Deferred):
            self._send_accepted(entry)
            return None

        def accepted(_: object) -> None:
            if self.state is not ConnectionState.OPEN:
                return
            if entry.status.finished:
                self._report_finished(entry)  # it finished elsewhere meanwhile (cancelled, complete)
            elif entry.owner is self:
                self._send_accepted(entry)

        def failed(failure: Failure) -> None:
            failure.trap(UploadError)
            refused(failure.value)

        return claimed.addCallbacks(accepted, failed)

    def _report_current(self, session: UploadSession, entry: Entry) -> Deferred[None] | None:
        """Answer a resume of a finished entry with what it is now: still there, or gone (consumed, expired)."""
        def answer(current: Entry | None) -> None:
            if self.state is not ConnectionState.OPEN:
                return
            if current is None:
                self._send("error", entry=entry.entry_id, code=ErrorCode.UNKNOWN_ENTRY.value,
                           message=f"no upload {entry.entry_id} in this session")
            else:
                self._report_finished(current)

        now = self.registry.current(session, entry)
        if not isinstance(now, Deferred):
            answer(now)
            return None

        def failed(failure: Failure) -> None:
            failure.trap(UploadError)
            if self.state is ConnectionState.OPEN:
                self._send("error", entry=entry.entry_id, ref=entry.ref, code=failure.value.code.value,
                           message=failure.value.message)

        return now.addCallbacks(answer, failed)

    def _on_cancel(self, message: dict[str, Any]) -> None:
        session = self.session
        assert session is not None
        entry = self._lookup(message["entry"])
        if entry is None:
            return
        # Cancelling a finished entry discards it too: the user replaced the file before the form was sent.
        told_by_registry = entry.owner is self and entry.status is not EntryStatus.CANCELLED
        self.registry.cancel_entry(session, entry)
        if not told_by_registry:
            self._send("cancelled", entry=entry.entry_id, ref=entry.ref)

    # -- helpers -----------------------------------------------------------------------------------------------

    def _lookup(self, entry_id: int) -> Entry | None:
        """The session's entry ``entry_id``, or None after telling the client ``unknown_entry``."""
        assert self.session is not None
        entry = self.session.entries.get(entry_id)
        if entry is None:
            self._send("error", entry=entry_id, code=ErrorCode.UNKNOWN_ENTRY.value,
                       message=f"no upload {entry_id} in this session")
        return entry

    def _window(self, chunk_size: int) -> int:
        chunks = self.limits.window_chunks or max(MIN_WINDOW_CHUNKS, DEFAULT_WINDOW_BYTES // chunk_size)
        return chunk_size * chunks

    def _uploading_count(self) -> int:
        assert self.session is not None
        return sum(1 for e in self.session.entries.values()
                   if e.owner is self and e.status is EntryStatus.UPLOADING)

    def _entry_window(self, chunk_size: int) -> int:
        """This entry's window: the slot's, or its share of the server-wide budget when many upload at once."""
        share = self._budget_share()
        return max(self._window_floor(chunk_size), min(self._window(chunk_size), share - share % chunk_size))


    def _window_floor(self, chunk_size: int) -> int:
        """The smallest window that cannot stall: a few chunks, and two of the store's durable steps (acks only
        come when a part is stored, so the client must be allowed to send the next part meanwhile)."""
        step = self._durable_step
        floor = max(MIN_WINDOW_CHUNKS * chunk_size, 2 * step + chunk_size if step else 0)
        return floor + (-floor) % chunk_size

    def _budget_share(self, among: int | None = None) -> int:
        """The window budget divided among ``among`` (default: the entries uploading on this server)."""
        count = self.registry.uploading_count() if among is None else among
        return self.limits.window_budget // max(1, count)

    def _forget_flow(self, entry_id: int) -> None:
        self._acks.pop(entry_id, None)
        self._flows.pop(entry_id, None)

    def _send_accepted(self, entry: Entry) -> None:
        chunk_size = entry.slot.chunk_size
        window = self._entry_window(chunk_size)
        if self.limits.adaptive_window:
            share = self._budget_share()
            # The first windows are also a share among the open connections: a burst of announces on open sockets
            # cannot overcommit the budget before the entries it brings are counted (growth is capped by `share`).
            opened = self._budget_share(among=self.registry.connection_count())
            floor = max(self._window_floor(chunk_size), min(window, opened - opened % chunk_size))
            first = min(INITIAL_ADAPTIVE_WINDOW_BYTES, share, opened)
            initial = max(floor, first - first % chunk_size)
            flow = WindowController(self.clock, chunk_size, initial, floor=floor,
                                    maximum=max(initial, self.limits.window_budget))
            flow.set_share(share)
            window = max(flow.accepted(entry.received), self._window_floor(chunk_size))
            self._flows[entry.entry_id] = flow
        if entry.writer is not None:
            entry.writer.watch(self._durable_grew(entry))
        # Acks must come at least every quarter of *this* entry's window, or its client stalls waiting for one.
        self._acks[entry.entry_id] = (entry.received, max(chunk_size, window // 4))
        self._send("accepted", ref=entry.ref, entry=entry.entry_id, offset=entry.received, window=window,
                   chunk_size=entry.slot.chunk_size)
        if entry.client_size == 0 and entry.status is EntryStatus.COMPLETE:
            self._report_finished(entry)

    def _report_finished(self, entry: Entry) -> None:
        if entry.status is EntryStatus.COMPLETE:
            self._send("complete", entry=entry.entry_id, size=entry.client_size, sha256=entry.sha256)
        elif entry.status is EntryStatus.ERROR:
            self._send_entry_error(entry)
        else:
            self._send("cancelled", entry=entry.entry_id, ref=entry.ref)

    def _send_entry_error(self, entry: Entry) -> None:
        assert entry.error is not None
        self._send("error", entry=entry.entry_id, ref=entry.ref, code=entry.error.value,
                   message=entry.error_message or "")

    def _send(self, message_type: str, **fields: Any) -> None:
        self.transport.send_text(encode_message(message_type, **fields))

    def _close_with(self, error: UploadError, close_code: int | None = None) -> None:
        if self.state is ConnectionState.CLOSED:
            return
        log.info("Closing upload connection: {code}: {message}", code=error.code.value, message=error.message)
        self._send("error", code=error.code.value, message=error.message)
        if close_code is None:
            close_code = CLOSE_CODES.get(error.code, CLOSE_CODES[ErrorCode.PROTOCOL_ERROR])
        self.transport.close(close_code, error.message)
        self.connection_lost()

    def _auth_timed_out(self) -> None:
        self._auth_timer = None
        self._close_with(UploadError(ErrorCode.TIMEOUT, "no authentication in time"))

    def _stop_auth_timer(self) -> None:
        if self._auth_timer is not None and self._auth_timer.active():
            self._auth_timer.cancel()
        self._auth_timer = None
