"""The txredisapi connections of a :class:`~twisted_uploads.redisstate.RedisState`, bounded in time.

Every call either answers within ``timeout`` seconds or fails with ``UploadError(registry_unavailable)`` naming
the Redis URL (never its password): a Redis that is down, refuses connections, returns an error or stops answering
(``DEBUG SLEEP``, a stopped process, a lost network) must not hang an upload node or a Django request.

A refused connection fails at once rather than at the timeout: the endpoint remembers whether the last attempt to
connect failed, and while there is no connection a call does not wait for one that is not coming (nor past the next
attempt, when that fails).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

import txredisapi
from twisted.internet import defer, error as net_error
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IProtocolFactory, IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from .errors import ErrorCode, UploadError

log = Logger()

#: Reconnection backoff (seconds): quick enough that a restarted Redis is used again within about a second.
RECONNECT_INITIAL_DELAY = 0.1
RECONNECT_MAX_DELAY = 1.0


@dataclass(frozen=True)
class RedisAddress:
    """Where a Redis is, parsed from ``redis://[[user]:password@]host[:port][/db]``."""

    host: str
    port: int
    db: int | None
    username: str | None
    password: str | None
    #: The URL without its password, for messages and logs.
    display: str

    @classmethod
    def parse(cls, url: str) -> "RedisAddress":
        """Parse ``url``; ``ValueError`` says what is wrong with it."""
        parts = urlsplit(url)
        if parts.scheme != "redis":
            raise ValueError(f"{url!r} is not a redis:// URL")
        if not parts.hostname:
            raise ValueError(f"{url!r} names no host")
        path = parts.path.strip("/")
        if path and not path.isdigit():
            raise ValueError(f"{url!r}: the path must be a database number")
        port = parts.port or 6379
        user = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        credentials = f"{user or ''}:***@" if password is not None else (f"{user}@" if user else "")
        display = f"redis://{credentials}{host}:{port}" + (f"/{path}" if path else "")
        return cls(parts.hostname, port, int(path) if path else None, user, password, display)


@implementer(IStreamClientEndpoint)
class WatchedEndpoint:
    """A client endpoint that remembers how its last connection attempt ended."""

    def __init__(self, wrapped: IStreamClientEndpoint) -> None:
        self._wrapped = wrapped
        #: Why the last attempt failed, or None after a success (or before any attempt ended).
        self.last_failure: str | None = None
        self._attempt_waiters: list[defer.Deferred[None]] = []

    def connect(self, protocol_factory: IProtocolFactory) -> "defer.Deferred[Any]":
        def usable(_: Any) -> None:
            self.last_failure = None
            self._attempt_ended()

        def connected(protocol: Any) -> Any:
            # An attempt succeeds once the connection is usable (AUTH and SELECT done), not at the TCP handshake.
            when_ready = getattr(protocol, "whenConnected", None)
            if when_ready is None:
                usable(None)
            else:
                when_ready().addCallback(usable)
            return protocol

        def failed(failure: Failure) -> Failure:
            self.last_failure = failure.getErrorMessage()
            self._attempt_ended()
            return failure

        return self._wrapped.connect(protocol_factory).addCallbacks(connected, failed)

    def report_failure(self, why: str) -> None:
        """The connection was made but is unusable (a wrong password, a missing database): the attempt failed."""
        self.last_failure = why
        self._attempt_ended()

    def attempt_ended(self) -> "defer.Deferred[None]":
        """Fires when the connection attempt under way ends, either way."""
        waiter: defer.Deferred[None] = defer.Deferred()
        self._attempt_waiters.append(waiter)
        return waiter

    def _attempt_ended(self) -> None:
        waiters, self._attempt_waiters = self._attempt_waiters, []
        for waiter in waiters:
            waiter.callback(None)


class EventSubscriber(txredisapi.SubscriberProtocol):
    """Subscribes to its factory's channel on every (re)connection and hands each event to the factory."""

    factory: "SubscriberFactory"

    def connectionMade(self) -> Any:
        result = super().connectionMade()
        self.whenConnected().addCallback(lambda _: self.factory.subscribe_on(self))
        return result

    def messageReceived(self, pattern: Any, channel: Any, message: Any) -> None:
        self.factory.deliver(message)


class SubscriberFactory(txredisapi.SubscriberFactory):
    """The reconnecting pub/sub connection of one node: its channel, its callbacks, its subscription count."""

    protocol = EventSubscriber
    initialDelay = RECONNECT_INITIAL_DELAY
    maxDelay = RECONNECT_MAX_DELAY

    def __init__(self, address: RedisAddress, channel: str) -> None:
        super().__init__(isLazy=True)
        self.deferred.addErrback(lambda _: None)  # failures show as a subscription that is not confirmed
        self.password, self.username = address.password, address.username
        self.channel = channel
        self.callbacks: list[Callable[[dict[str, Any]], None]] = []
        #: How many times a subscription was confirmed; each reconnection adds one.
        self.generation = 0
        self._generation_waiters: list[tuple[int, defer.Deferred[int]]] = []

    def subscribe_on(self, protocol: EventSubscriber) -> None:
        def confirmed(_: Any) -> None:
            self.generation += 1
            log.debug("Subscribed to {channel} (#{generation})", channel=self.channel, generation=self.generation)
            ready = [(after, d) for after, d in self._generation_waiters if self.generation > after]
            self._generation_waiters = [(a, d) for a, d in self._generation_waiters if self.generation <= a]
            for _after, waiter in ready:
                waiter.callback(self.generation)

        def failed(failure: Failure) -> None:
            log.warn("Could not subscribe to {channel}: {why}", channel=self.channel,
                     why=failure.getErrorMessage())

        protocol.subscribe(self.channel).addCallbacks(confirmed, failed)

    def subscribed(self, after: int) -> "defer.Deferred[int]":
        """Fires with the generation once a subscription newer than ``after`` is confirmed."""
        if self.generation > after and self.size:
            return defer.succeed(self.generation)
        entry: tuple[int, defer.Deferred[int]]

        def withdraw(_: Any) -> None:
            if entry in self._generation_waiters:
                self._generation_waiters.remove(entry)

        waiter: defer.Deferred[int] = defer.Deferred(withdraw)
        entry = (after, waiter)
        self._generation_waiters.append(entry)
        return waiter

    def deliver(self, message: Any) -> None:
        try:
            event = json.loads(message)
        except (TypeError, ValueError):
            log.warn("Ignoring a malformed event on {channel}: {message!r}", channel=self.channel, message=message)
            return
        if not isinstance(event, dict):
            return
        for callback in list(self.callbacks):
            try:
                callback(event)
            except Exception:  # a subscriber's bug must not stop the others or the connection
                log.failure("An event callback failed on {event}", event=event)


class CommandFactory(txredisapi.RedisFactory):
    """The command connection (one, pipelined: Redis runs commands one at a time anyway)."""

    initialDelay = RECONNECT_INITIAL_DELAY
    maxDelay = RECONNECT_MAX_DELAY
    endpoint: WatchedEndpoint | None = None

    def connectionError(self, why: str) -> None:
        # txredisapi calls this when AUTH or SELECT failed, and stops trying: tell the calls waiting for a
        # connection now, instead of letting them run into the timeout.
        if self.endpoint is not None:
            self.endpoint.report_failure(why)
        super().connectionError(why)


class BoundedRedis:
    """Commands and scripts with a deadline, their failures turned into ``registry_unavailable``."""

    def __init__(self, address: RedisAddress, timeout: float, reactor: Any) -> None:
        self.address = address
        self.timeout = timeout
        self.reactor = reactor
        self.endpoint = WatchedEndpoint(HostnameEndpoint(reactor, address.host, address.port, timeout=timeout))
        # Numbers stay strings (a session id of digits is not an int). Reply timeouts are call()'s, not
        # txredisapi's: its own fails the commands a caller issues from inside the failure callbacks.
        self.factory = CommandFactory(address.display, address.db, 1, isLazy=True, password=address.password,
                                      convertNumbers=False, username=address.username)
        self.factory.endpoint = self.endpoint
        # Connection errors reach the calls (through the endpoint); the factory's own Deferred would log them as
        # unhandled.
        self.factory.deferred.addErrback(lambda _: None)
        self.factory.startConnecting(self.endpoint)
        self.client = self.factory.handler

    def unavailable(self, why: str) -> UploadError:
        """The error every failure of this Redis becomes."""
        return UploadError(ErrorCode.REGISTRY_UNAVAILABLE, f"the upload registry at {self.address.display} {why}")

    def call(self, action: str, method: str, *args: Any) -> "defer.Deferred[Any]":
        """Run ``client.<method>(*args)``; ``action`` says what it was for in the error message.

        Past the timeout the connection is dropped (a Redis that stopped answering gets a fresh connection once it
        answers again) and the call fails once that connection is gone, so a caller that retries at once waits for
        the new connection instead of writing to the dead one. A call still waiting for a connection is withdrawn:
        it is never sent late.
        """
        if not self.factory.size and self.endpoint.last_failure is not None:
            return defer.fail(self.unavailable(f"cannot be reached ({self.endpoint.last_failure})"))
        outcome: defer.Deferred[Any] = defer.Deferred()
        result = defer.maybeDeferred(getattr(self.client, method), *args)

        def settle(value: Any) -> None:
            if outcome.called or not timer.active():
                return  # expired: expire() reports it
            timer.cancel()
            if isinstance(value, Failure):
                # On the next reactor turn: txredisapi fails every command waiting on a connection as it goes, and
                # a caller that retried synchronously would have its new command failed with them.
                self.reactor.callLater(0, outcome.errback, self._translate(value, action))
            else:
                outcome.callback(value)

        def expire() -> None:
            failure = Failure(self.unavailable(f"did not answer ({action}) within {self.timeout:g} s"))
            connection = self.factory.pool[0] if self.factory.pool else None
            if connection is not None and connection.connected:
                connection.whenDisconnected().addCallback(
                    lambda _: self.reactor.callLater(0, _fire, outcome, failure))
                connection.transport.abortConnection()
            else:
                self.reactor.callLater(0, _fire, outcome, failure)
            result.cancel()

        def attempt_ended(_: None) -> None:
            # Still waiting for a connection, and the attempt to make one failed: nothing is coming.
            why = self.endpoint.last_failure
            if why is not None and timer.active() and not outcome.called:
                timer.cancel()
                result.cancel()
                self.reactor.callLater(0, _fire, outcome, Failure(self.unavailable(f"cannot be reached ({why})")))

        timer = self.reactor.callLater(self.timeout, expire)
        result.addBoth(settle)
        if not self.factory.size and not outcome.called:
            self.endpoint.attempt_ended().addCallback(attempt_ended)
        return outcome

    def _translate(self, failure: Failure, action: str) -> Failure:
        if failure.check(txredisapi.ResponseError):
            return Failure(self.unavailable(f"refused {action}: {failure.getErrorMessage()}"))
        if failure.check(txredisapi.RedisError, net_error.ConnectError, net_error.ConnectionLost,
                         net_error.ConnectionDone, defer.CancelledError):
            return Failure(self.unavailable(f"failed during {action}: {failure.getErrorMessage()}"))
        return failure

    def script(self, action: str, source: str, *args: Any) -> "defer.Deferred[Any]":
        """Run a Lua script (EVALSHA, loading it on NOSCRIPT — after a Redis restart, say)."""
        return self.call(action, "eval", source, [], [str(a) for a in args])

    def close(self) -> "defer.Deferred[Any]":
        return self.factory.disconnect()


def _fire(outcome: "defer.Deferred[Any]", failure: Failure) -> None:
    if not outcome.called:
        outcome.errback(failure)
