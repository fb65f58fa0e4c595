"""The only door from Django's threads to the reactor: crochet calls with timeouts.

The upload registry belongs to the reactor thread (no locks anywhere). A Django view, running in a WSGI thread,
reaches it only through :class:`UploadBridge`, which runs one registry method in the reactor thread per call and
waits for it at most ``UPLOADS_BRIDGE_TIMEOUT`` seconds; what comes back are frozen ``EntryInfo`` copies.

Failure is always an exception, never a hang:

* the reactor is not running, or has stopped → :class:`ReactorNotRunning`;
* the reactor does not answer in time → :class:`BridgeTimeout`;
* called from the reactor thread itself (where waiting would deadlock) → :class:`ReactorThreadCall`.

Process models (DESIGN.md §6):

* **twistd** — ``django_shim.twistd.make_django_site`` calls :func:`install` with the server it mounts, after
  putting crochet in ``no_setup`` mode: the reactor is twistd's.
* **runserver / another WSGI server** — :func:`start_standalone` (called by the AppConfig in runserver's reloader
  child, or lazily by the first view that needs the bridge) starts crochet's reactor thread and a WebSocket
  listener on ``UPLOADS_STANDALONE_LISTEN``, once per process.
* **tests** — trial runs the reactor in the main thread; the test calls ``crochet.no_setup()`` and
  :func:`install`, and runs the Django side in a thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import crochet
from twisted.internet import reactor as _global_reactor
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python import threadable
from twisted_uploads import DEFAULT_WS_PATH
from twisted_uploads.entries import EntryInfo
from twisted_uploads.slots import SlotConfig

if TYPE_CHECKING:
    from twisted.internet.interfaces import IListeningPort
    from twisted_uploads.service import UploadServer

log = Logger()
T = TypeVar("T")


class BridgeError(RuntimeError):
    """The upload server could not be reached from this Django thread."""


class ReactorNotRunning(BridgeError):
    """The reactor is not running (not started yet, or stopped): no upload call can be answered."""


class BridgeTimeout(BridgeError):
    """The reactor did not answer within the bridge timeout."""


class ReactorThreadCall(BridgeError):
    """A blocking bridge call was made from the reactor thread, where waiting would deadlock it."""


class BridgeNotConfigured(BridgeError):
    """No upload server is installed and none may be started in this process."""


class _Raised:
    """An exception raised in the reactor thread, carried back to the calling thread as a value."""

    def __init__(self, failure: Failure) -> None:
        self.failure = failure


class UploadBridge:
    """Blocking, time-limited access to one ``UploadServer``'s registry from non-reactor threads."""

    def __init__(self, server: UploadServer, timeout: float = 5.0, reactor: Any = None) -> None:
        self.server = server
        self.timeout = timeout
        self._reactor = reactor if reactor is not None else _global_reactor

    def call(self, function: Callable[..., T], *args: Any, timeout: float | None = None, **kwargs: Any) -> T:
        """Run ``function(*args, **kwargs)`` in the reactor thread and return its result (or raise its error).

        ``function`` may return a Deferred; its result is waited for within the same timeout.
        """
        if threadable.isInIOThread():
            raise ReactorThreadCall(
                f"{getattr(function, '__name__', function)!r} was called through the upload bridge from the reactor "
                "thread; the bridge blocks, so call the registry directly there or defer the Django code to a "
                "thread (deferToThread).")
        if not self._reactor.running:
            raise ReactorNotRunning(
                "The Twisted reactor is not running, so the upload server cannot answer. Serve the project with "
                "'twistd -n uploads --settings ...', or let django_shim start its own reactor (runserver).")
        limit = self.timeout if timeout is None else timeout

        def guarded() -> Deferred[Any]:
            # Errors travel as values: a Failure left in an EventualResult nobody reads any more (after a timeout)
            # would be logged as "Unhandled error" when it is garbage-collected.
            return maybeDeferred(function, *args, **kwargs).addErrback(_Raised)

        try:
            result = crochet.run_in_reactor(guarded)()
        except crochet.ReactorStopped:
            raise ReactorNotRunning("The Twisted reactor has stopped; the upload server is gone.") from None
        try:
            value = result.wait(limit)
        except crochet.TimeoutError:
            result.cancel()
            raise BridgeTimeout(
                f"The upload server did not answer {getattr(function, '__name__', 'a call')!r} within {limit:g} s "
                "(UPLOADS_BRIDGE_TIMEOUT); the reactor may be blocked or overloaded.") from None
        except crochet.ReactorStopped:
            raise ReactorNotRunning("The Twisted reactor stopped before answering.") from None
        if isinstance(value, _Raised):
            value.failure.raiseException()
        return value  # type: ignore[no-any-return]

    # -- the registry calls the shim needs ------------------------------------------------------------------------
    def list_entries(self, session_id: str, slot: str | None = None) -> list[EntryInfo]:
        """Every unconsumed entry of an upload session (optionally one slot), oldest first."""
        return self._registry_call("list_entries", session_id, slot)

    def claim_complete(self, session_id: str, slot: str) -> list[EntryInfo]:
        """Claim the slot's complete entries for this request (no other request gets them), oldest first."""
        return self._registry_call("claim_complete", session_id, slot)

    def release(self, session_id: str, entry_ids: list[int]) -> None:
        """Give claimed entries back untouched (the consuming code raised or the transaction rolled back)."""
        self._registry_call("release", session_id, list(entry_ids))

    def consume(self, session_id: str, entry_id: int) -> None:
        """Delete an entry's file and forget it (idempotent)."""
        self._registry_call("consume", session_id, entry_id)

    def cancel(self, session_id: str, ref_or_entry_id: str | int) -> EntryInfo:
        """Cancel an entry; raises ``UploadError(unknown_entry)`` if the session has no such entry."""
        return self._registry_call("cancel", session_id, ref_or_entry_id)

    def ingest_file(self, session_id: str, slots: dict[str, SlotConfig], slot: str, client_name: str,
                    client_type: str, source_path: str | None, **details: Any) -> EntryInfo:
        """Record a file posted without the WebSocket, validated by the same rules (the no-JS fallback).

        ``details`` are :meth:`UploadRegistry.ingest_file`'s keywords (``size``, ``sha256``, ``head``, ``error``,
        ``relative_path``): an upload handler that hashed the file while Django read it leaves no file work to the
        reactor thread.
        """
        timeout = self.timeout
        if details.get("sha256") is None and source_path is not None:
            # Hashing happens in the reactor thread then: allow for the file's size (20 MB/s).
            timeout += os.path.getsize(source_path) / 20e6
        return self._registry_call("ingest_file", session_id, slots, slot, client_name, client_type, source_path,
                                   timeout=timeout, **details)

    def _registry_call(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        def in_reactor() -> Any:
            # The registry is looked up in the reactor thread too: nothing of it is touched from here.
            return getattr(self.server.registry, method)(*args, **kwargs)

        in_reactor.__name__ = method
        return self.call(in_reactor, timeout=timeout)


_lock = threading.Lock()
_installed: UploadBridge | None = None
_standalone_port: IListeningPort | None = None


def install(server: UploadServer, timeout: float | None = None) -> UploadBridge:
    """Make ``server`` the one the shim's views talk to (twistd and tests); returns the bridge."""
    global _installed
    from .conf import uploads_settings

    with _lock:
        _installed = UploadBridge(server, uploads_settings().bridge_timeout if timeout is None else timeout)
        return _installed


def uninstall() -> None:
    """Forget the installed server (tests)."""
    global _installed
    with _lock:
        _installed = None


def installed() -> UploadBridge | None:
    """The installed bridge, if any, without starting anything."""
    return _installed


def get_bridge() -> UploadBridge:
    """The bridge views use: the installed one, or a standalone server started on first use."""
    bridge = _installed
    if bridge is not None:
        return bridge
    return start_standalone()


def use_twistd_reactor() -> None:
    """Tell crochet the reactor is run by someone else (twistd, trial): never start a reactor thread."""
    try:
        crochet.no_setup()
    except RuntimeError:
        # crochet was already initialised: no_setup twice is harmless, and if something called crochet.setup()
        # first, its reactor thread is the one that runs and calls still work.
        pass


def start_standalone() -> UploadBridge:
    """Start crochet's reactor thread and the WebSocket listener (runserver / other WSGI servers), once.

    Raises :class:`BridgeNotConfigured` if ``UPLOADS_STANDALONE_LISTEN`` is ``None``.
    """
    global _installed, _standalone_port
    from .conf import uploads_settings

    with _lock:
        if _installed is not None:
            return _installed
        config = uploads_settings()
        if not config.standalone_listen:
            raise BridgeNotConfigured(
                "No upload server runs in this process and UPLOADS_STANDALONE_LISTEN is None. Serve the project with "
                "'twistd -n uploads --settings ...' or set UPLOADS_STANDALONE_LISTEN (e.g. 'tcp:8001').")
        crochet.setup()
        server, port = _start_listener(config.standalone_listen, timeout=max(config.bridge_timeout, 10.0))
        _standalone_port = port
        _installed = UploadBridge(server, config.bridge_timeout)
        log.info("Upload WebSocket listening on {address}", address=port.getHost())
        return _installed


def standalone_port() -> IListeningPort | None:
    """The standalone listener's port (to build the WebSocket URL from), if one was started."""
    return _standalone_port


def _start_listener(description: str, timeout: float) -> tuple[UploadServer, IListeningPort]:
    from twisted.internet import endpoints
    from twisted_uploads.service import UploadServer, server_endpoint_description

    from .conf import uploads_settings
    from .tokens import DjangoTokenVerifier

    config = uploads_settings()
    if threadable.isInIOThread():
        raise ReactorThreadCall("start_standalone() must not be called from the reactor thread")

    @crochet.wait_for(timeout=timeout)
    def start() -> Any:
        server = UploadServer(str(config.upload_dir), DjangoTokenVerifier(config.secret, config.fallback_secrets,
                                                                          session_cookie=config.session_cookie),
                              allowed_origins=config.allowed_origins, resume_grace=config.resume_grace,
                              complete_ttl=config.complete_ttl)
        ws_path = urlsplit(config.ws_url).path or DEFAULT_WS_PATH
        endpoint = endpoints.serverFromString(_global_reactor, server_endpoint_description(description))
        _global_reactor.addSystemEventTrigger("before", "shutdown", server.shutdown)
        return endpoint.listen(server.standalone_site(ws_path)).addCallback(lambda port: (server, port))

    try:
        return start()  # type: ignore[no-any-return]
    except crochet.TimeoutError:
        raise BridgeTimeout(f"The standalone upload listener on {description} did not start in {timeout:g} s") \
            from None
