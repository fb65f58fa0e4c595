"""Assembling a server: storage, registry, WebSocket resource, and a standalone ``twisted.web`` Site.

:class:`UploadServer` is what any Twisted program (and the twistd plugin, and the Django shim) builds to accept
uploads; :class:`UploadService` runs it under ``twistd`` with its listening endpoints.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

from twisted.application import service, strports
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import File

from . import DEFAULT_WS_PATH
from .connection import ConnectionLimits
from .records import DirectoryRecords
from .registry import DEFAULT_MAX_SESSION_ENTRIES, UploadRegistry
from .staticfiles import static_root
from .storage import IEntryStore, TempFileStore
from .tokens import TokenVerifier

log = Logger()

STATIC_URL_PATH = "/static/twisted_uploads"


def default_upload_dir() -> str:
    """Where a standalone server's uploads go when nothing is configured: ``<tempdir>/twisted-uploads-<uid>/standalone``.

    Django projects get a directory of their own beside it (``django_shim.conf.default_upload_dir``). Sharing a
    directory is safe in any case: a server only ever takes over the records of servers that are gone.
    """
    return os.path.join(tempfile.gettempdir(), f"twisted-uploads-{os.getuid()}", "standalone")


class UploadServer:
    """Everything that accepts uploads: a store, the registry, and the WebSocket resource to mount."""

    def __init__(self, upload_dir: str | None, verifier: TokenVerifier, *, clock: IReactorTime | None = None,
                 allowed_origins: Iterable[str] = (), limits: ConnectionLimits | None = None,
                 resume_grace: float = 300.0, complete_ttl: float = 3600.0,
                 max_session_bytes: int = 10 * 1024**3, store: IEntryStore | None = None,
                 max_session_entries: int = DEFAULT_MAX_SESSION_ENTRIES, max_open_files: int | None = None) -> None:
        if clock is None:
            from twisted.internet import reactor as clock  # type: ignore[assignment]
        self.clock: IReactorTime = clock
        self.verifier = verifier
        self.allowed_origins = tuple(allowed_origins)
        self.limits = limits or ConnectionLimits()
        self._registry_options = dict(resume_grace=resume_grace, complete_ttl=complete_ttl,
                                      max_session_bytes=max_session_bytes, max_session_entries=max_session_entries,
                                      max_open_files=max_open_files)
        self.store: IEntryStore
        self.registry: UploadRegistry
        self.use_store(store or TempFileStore(upload_dir or default_upload_dir()))
        from .websocket import make_resource

        self.resource = make_resource(self)

    def use_store(self, store: IEntryStore) -> None:
        """Store entries in ``store``, recovering what a dead server left there (replaces an unused store).

        Recovery gives back every complete entry for the rest of its TTL and every paused one for the rest of its
        grace; files of servers still running on the same directory are never touched.
        """
        previous = getattr(self, "registry", None)
        if previous is not None:
            if any(True for _ in previous):
                raise RuntimeError("the upload server already holds entries; its store cannot change now")
            previous.shutdown()
        self.store = store
        records = None
        root = getattr(store, "root", None)
        if isinstance(root, Path) and hasattr(self.clock, "callInThread"):
            # A real reactor: its thread pool syncs records, so no fsync ever stalls an upload's acks.
            records = DirectoryRecords(root, run_in_thread=self.clock.callInThread)  # type: ignore[attr-defined]
        self.registry = UploadRegistry(store, self.clock, records=records,
                                       **self._registry_options)  # type: ignore[arg-type]
        self.registry.recover()

    def use_registry(self, registry: UploadRegistry) -> None:
        """Serve from ``registry`` (a cluster registry) from the next connection on; the unused one is stopped."""
        previous = self.registry
        if any(True for _ in previous):
            raise RuntimeError("the upload server already holds entries; its registry cannot change now")
        previous.shutdown()
        self.registry = registry
        self.store = registry.store

    def set_lifetimes(self, *, resume_grace: float | None = None, complete_ttl: float | None = None) -> None:
        """Change how long paused and finished entries wait (applies to entries that change state from now on)."""
        for name, value in (("resume_grace", resume_grace), ("complete_ttl", complete_ttl)):
            if value is not None:
                self._registry_options[name] = value
                setattr(self.registry, name, value)

    def mount(self, root: Resource, path: str = DEFAULT_WS_PATH) -> None:
        """Put the WebSocket resource at ``path`` under ``root``."""
        put_child(root, path, self.resource)

    def standalone_site(self, ws_path: str = DEFAULT_WS_PATH) -> Site:
        """A Site with the WebSocket at ``ws_path`` and the browser client under ``/static/twisted_uploads/``."""
        root = Resource()
        self.mount(root, ws_path)
        put_child(root, STATIC_URL_PATH, File(str(static_root())))
        return Site(root, timeout=self.http_idle_timeout)

    @property
    def http_idle_timeout(self) -> float:
        """Seconds an HTTP connection may stay silent before the site drops it.

        twisted.web's default is 12 hours, so sockets that never finish a handshake (slow-loris) would pile up.
        Once upgraded, a WebSocket is no longer an HTTP channel; the auth timeout and chunk timeouts take over.
        """
        return max(self.limits.auth_timeout, 1.0)

    def shutdown(self) -> None:
        """Stop timers and close files; every entry's record stays for the next start to recover."""
        self.registry.shutdown()


def put_child(root: Resource, path: str, child: Resource) -> None:
    """Mount ``child`` at a multi-segment ``path`` (``/uploads/ws``), creating intermediate resources."""
    segments = [s for s in path.strip("/").split("/") if s]
    if not segments:
        raise ValueError("cannot mount at the site root")
    parent = root
    for segment in segments[:-1]:
        key = segment.encode("utf-8")
        existing = parent.children.get(key)
        if existing is None:
            existing = Resource()
            parent.putChild(key, existing)
        parent = existing
    parent.putChild(segments[-1].encode("utf-8"), child)


def server_endpoint_description(description: str) -> str:
    """Accept ``tls:`` as a synonym for Twisted's ``ssl:`` server endpoints."""
    return "ssl:" + description[4:] if description.startswith("tls:") else description


class UploadService(service.MultiService):
    """Runs a Site on one or more strports endpoints and shuts the upload server down cleanly."""

    def __init__(self, upload_server: UploadServer, site: Site, listen: Iterable[str]) -> None:
        super().__init__()
        self.upload_server = upload_server
        for description in listen:
            strports.service(server_endpoint_description(description), site).setServiceParent(self)

    def stopService(self):  # type: ignore[no-untyped-def]
        self.upload_server.shutdown()
        return super().stopService()
