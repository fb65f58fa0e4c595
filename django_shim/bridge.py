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
* **single process under another server** (runserver, ``gunicorn -w 1``, uvicorn) — the first view that needs the
  bridge (or runserver's AppConfig, in its serving child) starts crochet's reactor thread and a WebSocket listener
  on ``UPLOADS_STANDALONE_LISTEN``, once per process. A second process that finds the port taken (``gunicorn
  -w 2``) does not die and does not lose saves silently: it logs why, and every upload call in it raises
  :class:`UploadServerUnavailable`, which names ``UPLOADS_REDIS_URL`` as the fix.
* **scale-out** (``UPLOADS_REDIS_URL`` set) — Django binds no port at all: the bridge's calls go to a
  ``ClusterIndex`` over Redis (built by :func:`connect_index`, the one place that knows how), answered the same way
  by whichever worker asks.
* **tests** — trial runs the reactor in the main thread; the test calls ``crochet.no_setup()`` and
  :func:`install`, and runs the Django side in a thread.

crochet is set up lazily, in the process that makes the first call and never at import: a pre-forking server
(``gunicorn --preload``) imports the project in its master, and a reactor thread started there would not exist in
the forked workers (every call would time out). The pid that started the reactor is remembered, so a process forked
after that gets :class:`ReactorForked` with the explanation instead of a hang.
"""

from __future__ import annotations

import os
import sys
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

    from .conf import UploadsSettings

log = Logger()
T = TypeVar("T")

#: Seconds a freshly started reactor thread may take to run its first call.
REACTOR_START_TIMEOUT = 10.0


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


class UploadServerUnavailable(BridgeError):
    """This process's upload listener could not start (its port is taken), so it has no upload server to ask.

    Typically a second worker of a multi-process server in single-process mode: uploads reach the worker that
    holds the port, so answering from this one would lose them. The fix is scale-out mode (``UPLOADS_REDIS_URL``).
    """


class RedisUnreachable(BridgeError):
    """Redis at ``UPLOADS_REDIS_URL`` did not answer a PING (system check E011)."""


class ReactorForked(BridgeError):
    """The reactor thread was started in a parent process before it forked this one, which has no such thread."""


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
        return run_in_reactor(function, *args, timeout=self.timeout if timeout is None else timeout,
                              reactor=self._reactor, **kwargs)

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

    def _target(self) -> Any:
        """What answers the calls (looked up in the reactor thread): the server's registry."""
        return self.server.registry

    def _registry_call(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        def in_reactor() -> Any:
            # The registry is looked up in the reactor thread too: nothing of it is touched from here.
            return getattr(self._target(), method)(*args, **kwargs)

        in_reactor.__name__ = method
        return self.call(in_reactor, timeout=timeout)


class IndexBridge(UploadBridge):
    """Scale-out: the same calls, answered by the cluster index in Redis whichever worker or node asks.

    The index's methods have the registry's names and meaning and return Deferreds, which :meth:`call` waits for.
    """

    def __init__(self, index: Any, timeout: float = 5.0, reactor: Any = None) -> None:
        super().__init__(None, timeout, reactor)  # type: ignore[arg-type]
        self.index = index

    def _target(self) -> Any:
        return self.index

    def close(self) -> None:
        """Close the index's Redis connections (from a Django thread; the process's bridge is forgotten)."""
        global _own
        with _lock:
            if _own is not None and _own[1] is self:
                _own = None
        self.call(self.index.close)


class UnavailableBridge(UploadBridge):
    """The bridge of a process whose upload server could not start: every call raises the reason, at once."""

    def __init__(self, error: BridgeError) -> None:
        super().__init__(None, 0.0)  # type: ignore[arg-type]
        self.error = error

    def call(self, function: Callable[..., T], *args: Any, timeout: float | None = None, **kwargs: Any) -> T:
        raise type(self.error)(str(self.error))


def run_in_reactor(function: Callable[..., T], *args: Any, timeout: float, reactor: Any = None,
                   **kwargs: Any) -> T:
    """Run ``function`` in the reactor thread and wait at most ``timeout`` seconds for its (Deferred) result."""
    reactor = reactor if reactor is not None else _global_reactor
    if threadable.isInIOThread():
        raise ReactorThreadCall(
            f"{getattr(function, '__name__', function)!r} was called through the upload bridge from the reactor "
            "thread; the bridge blocks, so call the registry directly there or defer the Django code to a "
            "thread (deferToThread).")
    if not reactor.running:
        raise ReactorNotRunning(
            "The Twisted reactor is not running, so the upload server cannot answer. Serve the project with "
            "'twistd -n uploads --settings ...', or let django_shim start its own reactor (runserver).")

    def guarded() -> Deferred[Any]:
        # Errors travel as values: a Failure left in an EventualResult nobody reads any more (after a timeout)
        # would be logged as "Unhandled error" when it is garbage-collected.
        return maybeDeferred(function, *args, **kwargs).addErrback(_Raised)

    try:
        result = crochet.run_in_reactor(guarded)()
    except crochet.ReactorStopped:
        raise ReactorNotRunning("The Twisted reactor has stopped; the upload server is gone.") from None
    try:
        value = result.wait(timeout)
    except crochet.TimeoutError:
        result.cancel()
        raise BridgeTimeout(
            f"The upload server did not answer {getattr(function, '__name__', 'a call')!r} within {timeout:g} s "
            "(UPLOADS_BRIDGE_TIMEOUT); the reactor may be blocked or overloaded.") from None
    except crochet.ReactorStopped:
        raise ReactorNotRunning("The Twisted reactor stopped before answering.") from None
    if isinstance(value, _Raised):
        value.failure.raiseException()
    return value  # type: ignore[no-any-return]


_lock = threading.RLock()
_installed: UploadBridge | None = None
#: The bridge this process made for itself (standalone listener, cluster index or the reason it has none), by pid:
#: a forked child never uses its parent's.
_own: tuple[int, UploadBridge] | None = None
_standalone_port: tuple[int, IListeningPort] | None = None
#: The pid that started crochet's reactor thread (None: not started by the shim).
_reactor_pid: int | None = None
#: Set by :func:`use_twistd_reactor`: someone else runs the reactor, the shim never starts one.
_external_reactor = False
#: Set in a forked child whose parent was running a reactor at the fork: that reactor's thread is not here.
_forked_from_running_reactor: int | None = None


def _after_fork_in_child() -> None:
    global _forked_from_running_reactor
    if _global_reactor.running and _forked_from_running_reactor is None:
        _forked_from_running_reactor = os.getppid()


os.register_at_fork(after_in_child=_after_fork_in_child)


def install(server: UploadServer, timeout: float | None = None) -> UploadBridge:
    """Make ``server`` the one the shim's views talk to (twistd and tests); returns the bridge."""
    global _installed
    from .conf import uploads_settings

    with _lock:
        _installed = UploadBridge(server, uploads_settings().bridge_timeout if timeout is None else timeout)
        return _installed


def uninstall() -> None:
    """Forget the installed server and this process's own bridge (tests)."""
    global _installed, _own, _standalone_port
    with _lock:
        _installed = None
        _own = None
        _standalone_port = None


def installed() -> UploadBridge | None:
    """The installed bridge, if any, without starting anything."""
    return _installed


def _own_bridge() -> UploadBridge | None:
    own = _own
    return own[1] if own is not None and own[0] == os.getpid() else None


def get_bridge() -> UploadBridge:
    """The bridge views use: the installed one, else this process's own, made on first use.

    In scale-out mode that is the cluster index (no listener); otherwise a standalone listener started here —
    or, when that could not start, an :class:`UnavailableBridge` whose calls raise why.
    """
    bridge = _installed or _own_bridge()
    if bridge is not None:
        return bridge
    from .conf import uploads_settings

    if uploads_settings().scale_out:
        return _start_cluster()
    return _start_standalone()


def use_twistd_reactor() -> None:
    """Tell crochet the reactor is run by someone else (twistd, trial): never start a reactor thread."""
    global _external_reactor
    _external_reactor = True
    try:
        crochet.no_setup()
    except RuntimeError:
        # crochet was already initialised: no_setup twice is harmless, and if something called crochet.setup()
        # first, its reactor thread is the one that runs and calls still work.
        pass


def ensure_reactor() -> None:
    """Make sure a reactor runs for this process's calls: start crochet's thread here, once, if none does.

    Called on first use, never at import, so a pre-forking server's master starts nothing its workers would lack.
    """
    global _reactor_pid
    pid = os.getpid()
    with _lock:
        if _reactor_pid == pid:
            return
        if _reactor_pid is not None or _forked_from_running_reactor is not None:
            parent = _reactor_pid if _reactor_pid is not None else _forked_from_running_reactor
            raise ReactorForked(
                f"The Twisted reactor thread was started in process {parent}, which then forked this process "
                f"({pid}); a forked process has no reactor thread, so no upload call could be answered. Let "
                "django_shim start it lazily (do not call crochet.setup() or make upload calls at import time "
                "under a pre-forking server such as 'gunicorn --preload').")
        if _external_reactor or _global_reactor.running:
            return  # twistd, trial, or an application that runs its reactor itself
        crochet.setup()
        try:
            # The thread is started, not yet running the reactor: wait (on an event, bounded) until it answers.
            crochet.run_in_reactor(lambda: None)().wait(REACTOR_START_TIMEOUT)
        except crochet.TimeoutError:
            raise BridgeTimeout(f"crochet's reactor thread did not start within {REACTOR_START_TIMEOUT:g} s") \
                from None
        _reactor_pid = pid


def reactor_pid() -> int | None:
    """The pid of the process whose reactor thread the shim started (``None``: it started none)."""
    return _reactor_pid


def _prefork_master_possible() -> bool:
    """Whether this process may be a pre-forking server's master that will still fork workers."""
    return "gunicorn" in sys.modules or "uwsgi" in sys.modules


def start_standalone() -> UploadBridge | None:
    """Ask for this process's upload server (what a WSGI module calls at import; runserver's AppConfig too).

    In scale-out mode nothing is started (Django binds no port) and ``None`` is returned. Under a pre-forking
    server (gunicorn, uWSGI) the start waits for the first view that needs it, in the worker — the master that
    imported the WSGI module must not start a reactor its forks would not have — and ``None`` is returned. Otherwise
    the listener starts now, and :class:`BridgeNotConfigured` is raised if ``UPLOADS_STANDALONE_LISTEN`` is
    ``None``.
    """
    from .conf import uploads_settings

    if _installed is not None:
        return _installed
    if uploads_settings().scale_out or _prefork_master_possible():
        return None
    return _start_standalone()


def _start_standalone() -> UploadBridge:
    """Start crochet's reactor thread and the WebSocket listener in this process, once."""
    global _own, _standalone_port
    from twisted.internet.error import CannotListenError

    from .conf import uploads_settings

    with _lock:
        existing = _installed or _own_bridge()
        if existing is not None:
            return existing
        config = uploads_settings()
        if not config.standalone_listen:
            raise BridgeNotConfigured(
                "No upload server runs in this process and UPLOADS_STANDALONE_LISTEN is None. Serve the project with "
                "'twistd -n uploads --settings ...', set UPLOADS_STANDALONE_LISTEN (e.g. 'tcp:8001'), or use "
                "scale-out mode (UPLOADS_REDIS_URL and upload nodes).")
        ensure_reactor()
        try:
            server, port = _start_listener(config.standalone_listen, timeout=max(config.bridge_timeout, 10.0))
        except CannotListenError as error:
            reason = error.socketError.strerror if isinstance(error.socketError, OSError) else error.socketError
            unavailable = UploadServerUnavailable(
                f"This process (pid {os.getpid()}) has no upload server: its WebSocket listener could not bind "
                f"UPLOADS_STANDALONE_LISTEN = {config.standalone_listen!r} ({reason}). Another process holds the "
                "port — most likely another worker of this server (gunicorn -w N, uvicorn --workers N). In "
                "single-process mode the files live in the one process that listens, so this worker cannot see "
                "them: serve with one worker, or set UPLOADS_REDIS_URL (scale-out mode, with upload nodes "
                "'twistd -n uploads --settings ... --node') so that any number of workers share one registry.")
            log.error("{reason}", reason=str(unavailable))
            bridge: UploadBridge = UnavailableBridge(unavailable)
            _own = (os.getpid(), bridge)
            return bridge
        _standalone_port = (os.getpid(), port)
        bridge = UploadBridge(server, config.bridge_timeout)
        _own = (os.getpid(), bridge)
        log.info("Upload WebSocket listening on {address}", address=port.getHost())
        return bridge


def standalone_port(start: bool = False) -> IListeningPort | None:
    """This process's standalone listener (to build the WebSocket URL from), if it has one.

    With ``start``, a process that may run one (single-process mode, nothing installed, a listen address set) starts
    it now; one whose listener could not start raises :class:`UploadServerUnavailable`.
    """
    if start and _installed is None:
        from .conf import uploads_settings

        config = uploads_settings()
        if not config.scale_out and config.standalone_listen:
            bridge = _start_standalone()
            if isinstance(bridge, UnavailableBridge):
                raise type(bridge.error)(str(bridge.error))
    current = _standalone_port
    return current[1] if current is not None and current[0] == os.getpid() else None


def _start_cluster() -> UploadBridge:
    """Scale-out: connect this process to the cluster index (no listener); a failure is raised, and retried later."""
    global _own
    from .conf import uploads_settings

    with _lock:
        existing = _installed or _own_bridge()
        if existing is not None:
            return existing
        config = uploads_settings()
        ensure_reactor()
        index = run_in_reactor(connect_index, config, timeout=config.bridge_timeout + config.redis_timeout)
        bridge = IndexBridge(index, config.bridge_timeout)
        _own = (os.getpid(), bridge)
        log.info("Uploads in scale-out mode: registry in Redis at {url}, no listener in this process",
                 url=_redacted(config.redis_url))
        return bridge


def connect_index(config: UploadsSettings) -> Deferred[Any]:
    """Build the scale-out ``ClusterIndex`` (in the reactor thread): the only place that knows how."""
    try:
        from twisted_uploads.clusterindex import ClusterIndex
    except ImportError as error:
        raise BridgeNotConfigured(
            f"UPLOADS_REDIS_URL is set, but the cluster index cannot be imported ({error}); install the cluster "
            "extra: pip install 'twisted-uploads[cluster]'.") from None
    return ClusterIndex.connect(config.redis_url, make_store(config), timeout=config.redis_timeout)


def make_store(config: UploadsSettings) -> Any:
    """The store ``UPLOADS_STORAGE`` names (local ``UPLOADS_DIR``, a shared directory, or an S3 bucket)."""
    from twisted_uploads.stores import store_from_setting

    return store_from_setting(config.storage, local_dir=str(config.upload_dir), s3_options=dict(config.s3_options))


def _redacted(url: str | None) -> str:
    """A Redis URL without its password, for logs and messages."""
    parts = urlsplit(url or "")
    if parts.password is None:
        return url or ""
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def _start_listener(description: str, timeout: float) -> tuple[UploadServer, IListeningPort]:
    from twisted.internet import endpoints
    from twisted_uploads.service import UploadServer, server_endpoint_description

    from .conf import uploads_settings
    from .tokens import DjangoTokenVerifier

    config = uploads_settings()
    if threadable.isInIOThread():
        raise ReactorThreadCall("start_standalone() must not be called from the reactor thread")

    def start() -> Any:
        server = UploadServer(str(config.upload_dir), DjangoTokenVerifier(config.secret, config.fallback_secrets,
                                                                          session_cookie=config.session_cookie),
                              allowed_origins=config.allowed_origins, resume_grace=config.resume_grace,
                              complete_ttl=config.complete_ttl)
        ws_path = urlsplit(config.ws_url).path or DEFAULT_WS_PATH
        endpoint = endpoints.serverFromString(_global_reactor, server_endpoint_description(description))

        def listening(port: IListeningPort) -> tuple[UploadServer, IListeningPort]:
            _global_reactor.addSystemEventTrigger("before", "shutdown", server.shutdown)
            return server, port

        def failed(failure: Failure) -> Failure:
            server.shutdown()  # a server that never listened must not keep timers or files
            return failure

        return endpoint.listen(server.standalone_site(ws_path)).addCallbacks(listening, failed)

    try:
        return run_in_reactor(start, timeout=timeout)
    except BridgeTimeout:
        raise BridgeTimeout(f"The standalone upload listener on {description} did not start in {timeout:g} s") \
            from None


def probe_redis(url: str, timeout: float) -> None:
    """Connect to Redis at ``url`` and PING it within ``timeout`` seconds (system check E011); raise why not.

    Uses txredisapi in this process's reactor (started lazily like any bridge call); a refused connection, a
    wrong password or silence all become ``UploadError(registry_unavailable)`` naming the URL (password hidden).
    """
    ensure_reactor()
    run_in_reactor(_ping_redis, url, timeout, timeout=timeout + 1.0)


def _ping_redis(url: str, timeout: float) -> Deferred[None]:
    import txredisapi
    from twisted.internet.defer import ensureDeferred

    parts = urlsplit(url)
    database = int(parts.path.strip("/") or 0) if parts.scheme != "unix" else None
    if parts.scheme == "unix":
        connecting = txredisapi.UnixConnection(parts.path, dbid=None, reconnect=False,
                                               password=parts.password, connectTimeout=timeout,
                                               replyTimeout=timeout)
    else:
        connecting = txredisapi.Connection(parts.hostname or "127.0.0.1", parts.port or 6379, dbid=database,
                                           reconnect=False, password=parts.password, username=parts.username,
                                           ssl_context_factory=parts.scheme == "rediss", connectTimeout=timeout,
                                           replyTimeout=timeout)

    async def ping() -> None:
        connection = await connecting
        try:
            await connection.ping()
        finally:
            await connection.disconnect()

    def failed(failure: Failure) -> None:
        reason = failure.getErrorMessage() or failure.type.__name__  # type: ignore[union-attr]
        raise RedisUnreachable(f"Redis at {_redacted(url)} did not answer within {timeout:g} s: {reason}")

    return ensureDeferred(ping()).addErrback(failed)


def probe_store(config: UploadsSettings) -> None:
    """Ask the configured store whether it works (system check E014: the bucket exists, the credentials work)."""
    ensure_reactor()

    def check() -> Any:
        store = make_store(config)
        return store.check() if hasattr(store, "check") else None

    run_in_reactor(check, timeout=config.bridge_timeout + config.redis_timeout)
