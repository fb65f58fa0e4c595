"""``twistd uploads``: command-line options and the service they build.

Standalone mode (default) serves the upload WebSocket and the browser client; ``--settings`` switches to Django
mode, where the same port also serves the Django project (see ``django_shim.twistd``).
"""

from __future__ import annotations

import os

from twisted.application.service import IService
from twisted.python import usage

from . import DEFAULT_WS_PATH
from .connection import ConnectionLimits
from .registry import DEFAULT_MAX_SESSION_ENTRIES
from .service import UploadServer, UploadService, default_upload_dir
from .errors import ErrorCode, UploadError
from .tokens import HMACTokenVerifier

SECRET_ENV = "TWISTED_UPLOADS_SECRET"


class Options(usage.Options):
    """Options of ``twistd uploads``."""

    synopsis = "[options]"
    longdesc = ("Chunked, resumable, validated file uploads over WebSocket. Standalone by default; "
                "with --settings, also serves a Django project on the same port.")

    optParameters = [
        ["ws-path", None, DEFAULT_WS_PATH, "URL path of the upload WebSocket."],
        ["upload-dir", None, None, "Directory for uploaded files and their records (default: "
         "<tempdir>/twisted-uploads-<uid>/standalone; with --settings, the project's UPLOADS_DIR). Several servers "
         "may share one: each recovers only what a dead server left."],
        ["secret", None, None, f"Token secret for standalone mode (default: ${SECRET_ENV})."],
        ["settings", None, None, "Django settings module: serve that project on the same port (Django mode)."],
        ["auth-timeout", None, 10.0, "Seconds a new connection has to authenticate.", float],
        ["max-parallel", None, 8, "Entries one connection may upload at once.", int],
        ["window", None, None,
         "Fix every entry's flow-control window at this many chunks (default: adaptive, starting at "
         "16 MiB on an idle server, then about 2.5 times the link's bandwidth-delay product and at least 4 MiB, "
         "announced with each ack).",
         int],
        ["window-budget", None, 64 * 1024 * 1024,
         "Bytes all uploads may keep unacknowledged together; the uploads and the open connections share it.", int],
        ["max-frame", None, 8 * 1024 * 1024 + 12, "Largest WebSocket frame or message, in bytes.", int],
        ["resume-grace", None, 300.0, "Seconds an interrupted upload waits for a resume (0: delete on disconnect).",
         float],
        ["complete-ttl", None, 3600.0, "Seconds a finished upload waits to be consumed.", float],
        ["max-session-bytes", None, 10 * 1024**3, "Bytes one upload session may declare in total.", int],
        ["max-session-entries", None, DEFAULT_MAX_SESSION_ENTRIES,
         "Entries one upload session may hold in any state (failed and cancelled ones count until they expire).",
         int],
        ["redis", None, None, "Redis URL (redis://host:port/db): run as one upload node of a cluster whose records, "
         "claims and deadlines live there (docs/deploy.md). With --settings the default is UPLOADS_REDIS_URL."],
        ["storage", None, None, "Where a cluster node stores entries: a directory shared by every node, or "
         "s3://bucket/prefix/ (credentials and endpoint from boto3's usual sources, e.g. AWS_ENDPOINT_URL). With "
         "--settings the default is UPLOADS_STORAGE."],
        ["max-open-files", None, None,
         "Upload files the server keeps open at once (default: half the file-descriptor limit, at most 4096); "
         "beyond it new and resumed uploads get server_busy.", int],
    ]

    optFlags = [
        ["node", None, "With --settings: serve only the upload WebSocket (no Django views), as one upload node of "
         "the cluster named by UPLOADS_REDIS_URL; Django runs elsewhere (gunicorn, uvicorn)."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["allowed-origins"] = []

    def opt_listen(self, description: str) -> None:
        """A strports endpoint to listen on (repeatable), e.g. tcp:8000 or ssl:8443:privateKey=key.pem."""
        self["listen"].append(description)

    def opt_allowed_origin(self, origin: str) -> None:
        """An Origin allowed to open the WebSocket (repeatable; default: same origin only)."""
        self["allowed-origins"].append(origin)

    def postOptions(self) -> None:
        if not self["listen"]:
            self["listen"] = ["tcp:8000"]
        if not self["settings"]:
            self["secret"] = self["secret"] or os.environ.get(SECRET_ENV)
            if not self["secret"]:
                raise usage.UsageError(f"standalone mode needs --secret or ${SECRET_ENV} to verify upload tokens")
            if len(self["secret"].encode("utf-8")) < 16:
                raise usage.UsageError("the secret must be at least 16 bytes long")
        if self["node"] and not self["settings"]:
            raise usage.UsageError("--node needs --settings (a standalone server with --redis is already a node)")
        if self["storage"] and not (self["redis"] or self["settings"]):
            raise usage.UsageError("--storage is for cluster nodes: give --redis too")
        if self["max-session-entries"] < 1 or (self["max-open-files"] is not None and self["max-open-files"] < 1):
            raise usage.UsageError("--max-session-entries and --max-open-files must be at least 1")
        if self["resume-grace"] < 0 or self["complete-ttl"] <= 0 or self["max-session-bytes"] < 1:
            raise usage.UsageError("--resume-grace must be >= 0, --complete-ttl > 0 and --max-session-bytes >= 1 "
                                   "(a finished upload must live long enough to be consumed)")
        try:
            self["limits"] = ConnectionLimits(self["auth-timeout"], self["max-parallel"], self["window"],
                                              self["max-frame"], self["window-budget"])
        except ValueError as error:
            raise usage.UsageError(str(error)) from None


def build_upload_server(options: Options, verifier) -> UploadServer:  # type: ignore[no-untyped-def]
    """The UploadServer the options describe, verifying tokens with ``verifier``."""
    return UploadServer(options["upload-dir"] or default_upload_dir(), verifier,
                        allowed_origins=options["allowed-origins"], limits=options["limits"],
                        resume_grace=options["resume-grace"], complete_ttl=options["complete-ttl"],
                        max_session_bytes=options["max-session-bytes"],
                        max_session_entries=options["max-session-entries"], max_open_files=options["max-open-files"])


def no_verifier(token: str, handshake: object = None):  # type: ignore[no-untyped-def]
    """Refuse every token: the placeholder until an application installs its verifier (Django mode)."""
    raise UploadError(ErrorCode.INVALID_TOKEN, "no token verifier is configured")


def makeService(options: Options) -> IService:
    """Build the standalone service; ``--settings`` is dispatched to the Django shim by the plugin."""
    if options["settings"]:
        raise usage.UsageError("Django mode is started by the twistd plugin (twisted/plugins/uploads_plugin.py)")
    upload_server = build_upload_server(options, HMACTokenVerifier(options["secret"]))
    service = UploadService(upload_server, upload_server.standalone_site(options["ws-path"]), options["listen"])
    if options["redis"]:
        join_cluster(service, upload_server, options["redis"], options["storage"],
                     local_dir=options["upload-dir"] or default_upload_dir())
    return service


def join_cluster(parent: IService, upload_server: UploadServer, redis_url: str, storage: str | None, *,
                 local_dir: str, s3_options: dict | None = None, timeout: float = 2.0) -> IService:
    """Make ``upload_server`` a cluster node: its registry in Redis, its entries in ``storage``.

    The cluster service starts before the listeners (a connection never meets the single-process registry).
    """
    from .clusternode import cluster_service
    from .stores import store_from_setting

    store = store_from_setting(storage, local_dir=local_dir, s3_options=s3_options or {})
    node = cluster_service(upload_server, redis_url, store, timeout=timeout)
    parent.addService(node)  # type: ignore[attr-defined]
    # MultiService starts children in order: move the node in front of the listeners.
    children = parent.services  # type: ignore[attr-defined]
    children.insert(0, children.pop())
    return node
