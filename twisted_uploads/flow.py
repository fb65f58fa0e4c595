"""An adaptive flow-control window per entry, free of sockets and of the protocol (DESIGN.md §8).

A fixed window caps one upload at window / RTT: 4 MiB at 100 ms is 40 MiB/s while the TCP under it could carry a
gigabit. :class:`WindowController` sizes an entry's window the way a TCP sender sizes its congestion window, from
what the server sees of its own acks:

* **RTT** from ack timing: a client may send beyond the highest limit it was granted (``offset + window`` of an
  ack) only after that ack reached it, so the first byte past the previous limit arrives at least one round trip
  after the ack that lifted it. The smallest such delay is the round-trip time (``min_rtt``); a client that sends
  slower than it may (app-limited) only makes samples longer, and the minimum ignores those.
* **Delivery rate** from acks: bytes acknowledged over the last round trip or more.
* **Startup** (TCP's slow start, BBR's exit rule): while the pipe is not known to be full, the window doubles
  once per round while ``STARTUP_GAIN`` x rate x ``min_rtt`` exceeds it (the client is window-limited). The rate
  an ack measures is the one the window of a round trip earlier allowed, so comparing with 2 x rate would stop
  doubling early; 2/ln 2 (about 2.9, BBR's startup gain) makes up for that lag. The pipe is full once the rate
  has grown by less than 25% in three rounds in a row (a round: one ``min_rtt``); startup then ends and the window
  is set to the steady target below, which may shrink it (it drains the queue startup built). A writer backlog
  ends startup too.
* **Steady window** = ``gain`` x rate x ``min_rtt``: the bandwidth-delay product with headroom, since acks come a
  quarter window apart (up to a quarter of the window is received but not yet acknowledged) and the server has
  jitter of its own; 2.5 measured 0.98 / 0.95 of plain TCP at 50 / 100 ms where 2.0 gave 0.91 / 0.90. Never below
  ``floor``, never above ``maximum`` or the entry's share of the server's budget; it keeps growing (at most once
  per round, at most x2) if the rate grows.
* **The starting window** may be larger than the floor: on an idle server a long fat link is then full from the
  first round trip instead of after several, and startup's exit brings a short link back to the floor.
* **Shrinks** when the server falls behind (the writer's backlog above ``backlog_limit``: halved, at most once per
  round trip, and it does not grow back until the backlog has drained to half the limit; the floor drops with it,
  like TCP's ssthresh) and at once when many uploads share the budget (:meth:`set_share`).

Time comes from an injected ``IReactorTime``; the controller does nothing by itself. The connection calls
:meth:`accepted`, :meth:`received` for every data frame (one comparison on the hot path), :meth:`acked` when it
sends an ack (its return value is the window to announce with that ack), :meth:`backlog` when the entry's writer
reports, and :meth:`set_share` when the number of uploads changes. Windows are whole chunks.
"""

from __future__ import annotations

from collections import deque

from twisted.internet.interfaces import IReactorTime

#: Windows never go below this many chunks (acks every quarter window need at least one chunk per quarter).
MIN_WINDOW_CHUNKS = 4
#: Rate samples kept for the windowed maximum (about as many round trips, at four acks per window).
RATE_SAMPLES = 16
#: The startup gain: 2/ln 2, so that a window sized from a round trip's old rate still doubles per round trip.
STARTUP_GAIN = 2.89
#: Startup ends when the rate grew by less than this factor ...
FULL_PIPE_GROWTH = 1.25
#: ... in this many rounds in a row.
FULL_PIPE_ROUNDS = 3


class WindowController:
    """The adaptive window of one entry; see the module docstring for the rules."""

    def __init__(self, clock: IReactorTime, chunk_size: int, initial: int, *, maximum: int,
                 minimum: int | None = None, floor: int | None = None, gain: float = 2.5,
                 backlog_limit: int | None = None) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be positive")
        minimum = MIN_WINDOW_CHUNKS * chunk_size if minimum is None else minimum
        floor = initial if floor is None else floor
        if not 0 < minimum <= floor <= initial <= maximum:
            raise ValueError("windows must satisfy 0 < minimum <= floor <= initial <= maximum")
        if gain < 1:
            raise ValueError("gain must be at least 1")
        self.clock = clock
        self.chunk_size = chunk_size
        self.minimum = self._chunks(minimum, at_least=1)
        self.maximum = self._chunks(maximum, at_least=self.minimum // chunk_size)
        self.gain = gain
        self.backlog_limit = backlog_limit if backlog_limit is not None else max(4 * chunk_size, initial // 4)
        #: The window announced last, in bytes (whole chunks).
        self.window = min(self.maximum, max(self.minimum, self._chunks(initial, at_least=1)))
        #: The smallest steady window (startup's exit never goes below it), lowered by each backlog halving.
        self.floor = min(self.window, max(self.minimum, self._chunks(floor, at_least=1)))
        #: True until the pipe is found full (or the writer falls behind): the window grows by ``STARTUP_GAIN``.
        self.startup = True
        self.share = self.maximum
        #: Smallest ack-to-data delay seen (seconds), or None before the first sample.
        self.min_rtt: float | None = None
        #: Highest limit (offset + window) granted so far; the client may have sent up to it.
        self.limit = 0
        self._next_threshold: int | None = None  # first byte offset whose arrival closes an RTT sample
        self._grants: deque[tuple[int, float]] = deque()  # (previous limit, time the limit was lifted past it)
        self._acks: deque[tuple[float, int]] = deque()  # (time, offset) of acks, for the delivery rate
        self._rates: deque[float] = deque(maxlen=RATE_SAMPLES)
        self._last_round = float("-inf")
        self._full_rate = 0.0
        self._full_rounds = 0
        self._hold_until = float("-inf")
        self._pending = 0

    # -- events from the connection ------------------------------------------------------------------------

    def accepted(self, offset: int) -> int:
        """The entry was accepted (or resumed) at ``offset``; returns the window to put in ``accepted``."""
        now = self.clock.seconds()
        self._acks.clear()
        self._acks.append((now, offset))
        self._grants.clear()
        self._next_threshold = None
        self.limit = 0
        self._grant(offset, now)
        return self.window

    def received(self, offset: int) -> None:
        """Bytes up to ``offset`` have arrived (call per data frame: one comparison unless an RTT sample ends)."""
        threshold = self._next_threshold
        if threshold is None or offset <= threshold:
            return
        now = self.clock.seconds()
        grants = self._grants
        lifted = None
        while grants and offset > grants[0][0]:
            lifted = grants.popleft()[1]
        self._next_threshold = grants[0][0] if grants else None
        if lifted is not None:
            sample = now - lifted
            if sample > 0 and (self.min_rtt is None or sample < self.min_rtt):
                self.min_rtt = sample

    def acked(self, offset: int) -> int:
        """The server acknowledges ``offset`` now; returns the window to announce with this ack."""
        now = self.clock.seconds()
        self._sample_rate(now, offset)
        self._adapt(now)
        self._grant(offset, now)
        return self.window

    def backlog(self, pending: int) -> None:
        """The entry's writer holds ``pending`` bytes received but not yet stored."""
        self._pending = pending
        if pending <= self.backlog_limit:
            return
        now = self.clock.seconds()
        if now < self._hold_until:
            return  # one halving per round trip, as TCP reduces once per loss event
        self.window = max(self.minimum, self._chunks(self.window // 2, at_least=1))
        self.floor = min(self.floor, self.window)
        self.startup = False
        self._hold_until = now + (self.min_rtt or 0.0)

    def set_share(self, share: int) -> None:
        """This entry's share of the server-wide budget (bytes); a smaller share shrinks the window at once."""
        self.share = max(self.minimum, self._chunks(share, at_least=1))
        if self.window > self.share:
            self.window = self.share

    # -- derived values --------------------------------------------------------------------------------------

    @property
    def ack_step(self) -> int:
        """Bytes between acks: a quarter of the window, at least one chunk (the client must never wait long)."""
        return max(self.chunk_size, self.window // 4)

    @property
    def delivery_rate(self) -> float | None:
        """Bytes per second: the highest recent rate measured over a round trip or more, or None."""
        return max(self._rates) if self._rates else None

    @property
    def bdp(self) -> int | None:
        """The bandwidth-delay product estimated from the rate and ``min_rtt``, or None before both exist."""
        rate = self.delivery_rate
        if rate is None or self.min_rtt is None:
            return None
        return int(rate * self.min_rtt)

    # -- internals -------------------------------------------------------------------------------------------

    def _chunks(self, n: int, at_least: int) -> int:
        return max(at_least, n // self.chunk_size) * self.chunk_size

    def _grant(self, offset: int, now: float) -> None:
        new_limit = offset + self.window
        if new_limit > self.limit:
            # Bytes beyond the old limit can only be sent once this grant has reached the client.
            self._grants.append((max(self.limit, offset), now))
            if self._next_threshold is None:
                self._next_threshold = self._grants[0][0]
            self.limit = new_limit

    def _sample_rate(self, now: float, offset: int) -> None:
        acks = self._acks
        acks.append((now, offset))
        if self.min_rtt is None:
            return
        # The base: the latest ack at least one round trip old (so a burst of a window never reads as the rate).
        horizon = now - self.min_rtt
        while len(acks) > 1 and acks[1][0] <= horizon:
            acks.popleft()
        base_time, base_offset = acks[0]
        if base_time <= horizon and now > base_time:
            self._rates.append((offset - base_offset) / (now - base_time))

    def _adapt(self, now: float) -> None:
        cap = min(self.maximum, self.share)
        if self.window > cap:
            self.window = cap
            return
        bdp = self.bdp
        if bdp is None or self.min_rtt is None:
            return
        if now - self._last_round < self.min_rtt:
            return  # one decision per round trip: the last one has not shown its effect yet
        self._last_round = now
        if self.startup and self._pipe_full():
            self.startup = False
            # Drain what startup queued: the steady target, even when that is below the current window.
            self.window = self._target(bdp, self.gain, cap)
            return
        if now < self._hold_until or self._pending > self.backlog_limit // 2:
            return  # the server is behind: no growth until the writer has caught up
        if self.startup:
            # Window-limited (the lagging rate already asks for more than the window): double, as slow start does.
            if STARTUP_GAIN * bdp > self.window:
                self.window = min(cap, 2 * self.window)
            return
        target = self._target(bdp, self.gain, cap)
        if target > self.window:
            self.window = min(target, 2 * self.window)

    def _target(self, bdp: int, gain: float, cap: int) -> int:
        return min(cap, max(self.floor, self._chunks(int(gain * bdp), at_least=1)))

    def _pipe_full(self) -> bool:
        """BBR's full-pipe test, once per round: has the rate stopped growing by 25% for three rounds?"""
        rate = self.delivery_rate or 0.0
        if rate >= self._full_rate * FULL_PIPE_GROWTH:
            self._full_rate = rate
            self._full_rounds = 0
            return False
        self._full_rounds += 1
        return self._full_rounds >= FULL_PIPE_ROUNDS
