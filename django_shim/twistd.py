"""Django mode of ``twistd uploads``: Django, the upload WebSocket and static files on one port.

``twistd -n uploads --settings mysite.settings --listen tcp:8000`` builds an ``UploadServer`` and calls
:func:`make_django_site`, which

1. puts crochet in ``no_setup`` mode *before* Django is set up, so nothing starts a second reactor;
2. sets Django up and wraps its WSGI application in ``twisted.web.wsgi.WSGIResource`` (the reactor's thread pool
   runs the views, which reach the reactor through the bridge);
3. applies the project's ``UPLOADS_*`` settings to the server (token verifier, allowed origins, TTLs, upload
   directory — command-line options given explicitly win) and installs it as the bridge's server;
4. returns a Site whose root hands every path to Django except the WebSocket path, ``STATIC_URL`` and, when
   ``UPLOADS_SERVE_MEDIA`` (default ``DEBUG``), ``MEDIA_URL`` — users' files, served by
   :class:`~django_shim.media.MediaFile` so that none can run in the site's origin (real type, ``nosniff``,
   ``attachment`` for anything a browser could execute).

Node mode (``--node``, scale-out): ``twistd -n uploads --settings mysite.settings --node --listen tcp:PORT`` serves
only the upload WebSocket — no WSGI, no Django view, no static files — verifying the project's Django tokens
(session-bound, :class:`~django_shim.tokens.DjangoTokenVerifier`) with the Origin checks from the settings, as one
upload node of the cluster named by ``UPLOADS_REDIS_URL`` (``--redis`` overrides it) storing into
``UPLOADS_STORAGE`` (``--storage``). Django itself runs elsewhere (gunicorn, uvicorn) and binds no port.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from twisted.application.service import IService
from twisted.internet import reactor
from twisted.logger import Logger
from twisted.python import usage
from twisted.web.resource import IResource, NoResource, Resource
from twisted.web.server import Request, Site
from twisted.web.static import File
from twisted.web.wsgi import WSGIResource
from twisted_uploads import DEFAULT_WS_PATH
from twisted_uploads.service import UploadServer, UploadService
from twisted_uploads.staticfiles import static_root
from twisted_uploads.storage import TempFileStore

from . import bridge
from .media import FALLBACK_TYPE, MediaFile

log = Logger()

#: Seconds an HTTP connection of the one-port site may stay silent (a browser's keep-alive is shorter).
DJANGO_HTTP_IDLE_TIMEOUT = 60.0


def _segments(path: str) -> list[bytes]:
    return [segment.encode("utf-8") for segment in path.strip("/").split("/") if segment]


class OnePortResource(Resource):
    """The site root: mounted prefixes go to their resources, every other path to the WSGI application.

    A ``WSGIResource`` is a leaf and takes no children, so the routing happens here, by path prefix, and a
    request for Django is handed over with its path segments put back (``SCRIPT_NAME`` stays empty).
    """

    def __init__(self, application: IResource) -> None:
        super().__init__()
        self._application = application
        self._mounts: list[tuple[list[bytes], IResource]] = []

    def mount(self, path: str, resource: IResource) -> None:
        """Serve ``path`` (and everything under it) with ``resource``; longer prefixes win."""
        segments = _segments(path)
        if not segments:
            raise ValueError("the site root belongs to the WSGI application")
        self._mounts = [(s, r) for s, r in self._mounts if s != segments]
        self._mounts.append((segments, resource))
        self._mounts.sort(key=lambda mount: len(mount[0]), reverse=True)

    def getChildWithDefault(self, name: bytes, request: Request) -> IResource:
        path = [name, *request.postpath]
        for prefix, resource in self._mounts:
            if path[: len(prefix)] == prefix:
                for _ in prefix[1:]:
                    request.prepath.append(request.postpath.pop(0))
                return resource
        request.postpath.insert(0, request.prepath.pop())
        return self._application

    def render(self, request: Request) -> Any:
        return self._application.render(request)


class UnlistedFile(File):
    """The project's own static files: never a listing or an index page, never a sniffed or guessed-HTML type.

    Unknown types go out as ``application/octet-stream`` (Twisted's default would be ``text/html``), with
    ``X-Content-Type-Options: nosniff``. Users' files (``MEDIA_ROOT``) get :class:`~django_shim.media.MediaFile`.
    """

    indexNames: list[str] = []

    def __init__(self, path: str, defaultType: str = FALLBACK_TYPE, *args: Any, **kwargs: Any) -> None:
        super().__init__(path, FALLBACK_TYPE, *args, **kwargs)

    def directoryListing(self) -> IResource:
        return NoResource()

    def render_GET(self, request: Request) -> Any:
        request.setHeader(b"x-content-type-options", b"nosniff")
        return super().render_GET(request)

    render_HEAD = render_GET


class StaticFinderResource(Resource):
    """Serves ``STATIC_URL`` through Django's staticfiles finders (no ``collectstatic`` needed in development)."""

    def getChild(self, path: bytes, request: Request) -> IResource:
        from django.contrib.staticfiles import finders
        from django.core.exceptions import SuspiciousFileOperation

        relative = "/".join(segment.decode("utf-8", "replace") for segment in [path, *request.postpath])
        request.prepath.extend(request.postpath)
        request.postpath = []
        try:
            found = finders.find(relative)
        except SuspiciousFileOperation:
            found = None
        if not found or not isinstance(found, str) or not os.path.isfile(found):
            return NoResource()
        return UnlistedFile(found)


def _local_path(url: str | None) -> str | None:
    """The path of a same-site URL setting (``/static/``), or None for another host or an empty setting."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return None
    return "/" + parts.path.strip("/")


def configure_upload_server(upload_server: UploadServer, options: Mapping[str, Any] | None = None) -> None:
    """Apply the project's ``UPLOADS_*`` settings to a server built from command-line options.

    The verifier always becomes the Django one. Origins, upload directory and TTLs come from the settings when
    the project defines them and the command line did not override them.
    """
    from django.conf import settings

    from .conf import uploads_settings
    from .tokens import DjangoTokenVerifier

    options = options or {}
    config = uploads_settings()
    upload_server.verifier = DjangoTokenVerifier(config.secret, config.fallback_secrets,
                                                 session_cookie=config.session_cookie)
    if not options.get("allowed-origins"):
        upload_server.allowed_origins = config.allowed_origins
    upload_server.set_lifetimes(
        resume_grace=config.resume_grace if hasattr(settings, "UPLOADS_RESUME_GRACE") else None,
        complete_ttl=config.complete_ttl if hasattr(settings, "UPLOADS_COMPLETE_TTL") else None)
    wanted = Path(config.upload_dir).resolve()
    store = upload_server.store
    if not options.get("upload-dir") and isinstance(store, TempFileStore) and store.root != wanted:
        # The server was built before Django's settings were readable and holds nothing yet: move it to the
        # project's directory (recovering what a dead server of the project left there).
        upload_server.use_store(TempFileStore(wanted))


def make_django_site(options: Mapping[str, Any], upload_server: UploadServer) -> Site:
    """Build the one-port Site for ``twistd uploads --settings ...`` (see the module docstring)."""
    bridge.use_twistd_reactor()
    if options.get("settings"):
        os.environ["DJANGO_SETTINGS_MODULE"] = options["settings"]
    from django.conf import settings
    from django.core.wsgi import get_wsgi_application

    from .conf import uploads_settings

    application = get_wsgi_application()
    configure_upload_server(upload_server, options)
    bridge.install(upload_server)
    config = uploads_settings()

    root = OnePortResource(WSGIResource(reactor, reactor.getThreadPool(), application))
    ws_paths = {_local_path(config.ws_url), options.get("ws-path") or DEFAULT_WS_PATH}
    for ws_path in filter(None, ws_paths):
        root.mount(ws_path, upload_server.resource)
    client = UnlistedFile(str(static_root()))
    root.mount("/static/twisted_uploads", client)
    static_path = _local_path(getattr(settings, "STATIC_URL", None))
    if static_path:
        root.mount(f"{static_path}/twisted_uploads", client)
        static_root_setting = getattr(settings, "STATIC_ROOT", None)
        if not settings.DEBUG and static_root_setting and Path(static_root_setting).is_dir():
            root.mount(static_path, UnlistedFile(str(static_root_setting)))
        else:
            root.mount(static_path, StaticFinderResource())
    media_path = _local_path(getattr(settings, "MEDIA_URL", None))
    media_root = getattr(settings, "MEDIA_ROOT", None)
    if config.serve_media and media_path and media_root:
        Path(media_root).mkdir(parents=True, exist_ok=True)
        root.mount(media_path, MediaFile(str(media_root)))
    log.info("Django project {settings} on one port: WebSocket at {ws}, static at {static}",
             settings=os.environ.get("DJANGO_SETTINGS_MODULE"), ws=sorted(filter(None, ws_paths)),
             static=static_path)
    # Django's pages and posts keep an HTTP channel busy; only a silent one is dropped (slow-loris).
    return Site(root, timeout=max(DJANGO_HTTP_IDLE_TIMEOUT, upload_server.http_idle_timeout))


def _load_project(options: Mapping[str, Any]) -> None:
    """Make the project importable from the current directory and point Django at its settings."""
    import sys

    os.environ["DJANGO_SETTINGS_MODULE"] = options["settings"]
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


def make_django_service(options: Mapping[str, Any]) -> IService:
    """``twistd uploads --settings mod``: the one-port Django service (called by the twistd plugin).

    With ``--node``, an upload node instead (:func:`make_node_service`). Lives here rather than in
    ``twisted_uploads.tap`` so that the reactor half never imports Django or the shim.
    """
    from twisted_uploads.tap import build_upload_server, no_verifier

    if options.get("node"):
        return make_node_service(options)
    _load_project(options)
    if not options.get("upload-dir"):
        # Read the project's directory before the server exists, so it recovers that one and no other.
        import django

        from .conf import uploads_settings

        bridge.use_twistd_reactor()
        django.setup()
        options = {**options, "upload-dir": str(uploads_settings().upload_dir)}
    # make_django_site installs the Django token verifier on the server and returns the one-port Site.
    upload_server = build_upload_server(options, no_verifier)  # type: ignore[arg-type]
    service = UploadService(upload_server, make_django_site(options, upload_server), options["listen"])
    from .conf import uploads_settings

    config = uploads_settings()
    redis_url = options.get("redis") or config.redis_url
    if redis_url:
        # A scale-out project served on one port too: this process is one more node of the cluster, and its
        # views reach the cluster registry through the installed bridge like any single-process one.
        from twisted_uploads.tap import join_cluster

        join_cluster(service, upload_server, redis_url, options.get("storage") or config.storage,
                     local_dir=options["upload-dir"], s3_options=dict(config.s3_options),
                     timeout=float(config.redis_timeout))
    return service


def make_node_service(options: Mapping[str, Any]) -> IService:
    """``twistd uploads --settings mod --node``: the upload WebSocket only, as a node of the Redis cluster.

    Raises ``usage.UsageError`` (one clear sentence, no traceback from the plugin) when the project has no
    ``UPLOADS_REDIS_URL`` and none is given with ``--redis``: a node without the shared registry would be a second
    single-process server whose files no Django worker can see.
    """
    import django

    from twisted_uploads.tap import build_upload_server, join_cluster, no_verifier

    from .conf import uploads_settings

    _load_project(options)
    bridge.use_twistd_reactor()
    django.setup()
    config = uploads_settings()
    redis_url = options.get("redis") or config.redis_url
    if not redis_url:
        raise usage.UsageError(
            f"--node serves uploads for a cluster, but {options['settings']} sets no UPLOADS_REDIS_URL (and no "
            "--redis was given): set UPLOADS_REDIS_URL = 'redis://host:6379/0' in the settings Django and every "
            "node share, or drop --node to serve Django and uploads in one process.")
    storage = options.get("storage") or config.storage
    upload_dir = options.get("upload-dir") or str(config.upload_dir)
    node_options = {**options, "upload-dir": upload_dir}
    upload_server = build_upload_server(node_options, no_verifier)  # type: ignore[arg-type]
    configure_upload_server(upload_server, node_options)
    root = Resource()
    ws_paths = {_local_path(config.ws_url), options.get("ws-path") or DEFAULT_WS_PATH}
    for ws_path in sorted(filter(None, ws_paths)):
        upload_server.mount(root, ws_path)
    service = UploadService(upload_server, Site(root, timeout=upload_server.http_idle_timeout), options["listen"])
    # The cluster service is imported here only: a project that never runs --node needs none of it.
    join_cluster(service, upload_server, redis_url, storage, local_dir=upload_dir,
                 s3_options=dict(config.s3_options), timeout=float(config.redis_timeout))
    log.info("Upload node for {settings}: WebSocket at {ws}, registry in Redis, store {store}",
             settings=options["settings"], ws=sorted(filter(None, ws_paths)), store=storage or upload_dir)
    return service
