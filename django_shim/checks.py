"""System checks (``manage.py check``) for a misconfigured upload setup, each with the fix in its hint.

=========================  ==================================================================================
id                         problem
=========================  ==================================================================================
``twisted_uploads.E001``   no key to sign upload tokens with (no ``UPLOADS_SECRET`` and an empty ``SECRET_KEY``,
                           or an ``UPLOADS_SECRET`` shorter than 16 characters)
``twisted_uploads.E002``   an impossible limit (a TTL or timeout that is not a positive number…)
``twisted_uploads.E003``   ``UPLOADS_WS_URL`` is neither a path nor a ``ws://`` / ``wss://`` URL
``twisted_uploads.E004``   runserver with no WebSocket endpoint (``UPLOADS_STANDALONE_LISTEN = None``, single-process mode)
``twisted_uploads.E005``   ``UPLOADS_STANDALONE_LISTEN`` is not a Twisted server endpoint description
``twisted_uploads.E006``   sessions are not enabled (view state and token binding live in the session)
``twisted_uploads.E007``   ``UPLOADS_DIR`` cannot be created or written
``twisted_uploads.E008``   the session engine changes the session key on every save (``signed_cookies``), so upload
                           tokens cannot be bound to the session
``twisted_uploads.E009``   ``SESSION_COOKIE_PATH`` does not cover the upload socket's path, so browsers never send
                           the session cookie there and every token is refused
``twisted_uploads.E010``   ``UPLOADS_REDIS_URL`` is not a ``redis://``, ``rediss://`` or ``unix://`` URL, or
                           ``UPLOADS_REDIS_TIMEOUT`` is not a positive number of seconds
``twisted_uploads.E011``   Redis at ``UPLOADS_REDIS_URL`` does not answer (refused, wrong password, timeout)
``twisted_uploads.E012``   ``UPLOADS_STORAGE`` / ``UPLOADS_S3_OPTIONS`` are impossible: S3 without
                           ``UPLOADS_REDIS_URL`` (only scale-out nodes write to a bucket), an ``s3://`` URL
                           without a bucket, options that are not a dict, a shared directory that is not writable
``twisted_uploads.E013``   S3 storage but no credentials: none in ``UPLOADS_S3_OPTIONS`` and none in boto3's chain
                           (environment, ``~/.aws``, instance role)
``twisted_uploads.E014``   the S3 store refuses to work: unknown bucket, credentials refused, endpoint down
``twisted_uploads.W001``   staticfiles cannot find the browser client (finder missing)
``twisted_uploads.W002``   the allowed origins contain ``*`` (``ALLOWED_HOSTS = ["*"]``): the WebSocket's ``Origin``
                           check is off
``twisted_uploads.W003``   scale-out mode with ``UPLOADS_STANDALONE_LISTEN`` set: it is ignored (Django binds no
                           port; upload nodes serve the WebSocket)
``twisted_uploads.W004``   several worker processes (``gunicorn -w N``, ``uvicorn --workers N``,
                           ``WEB_CONCURRENCY``) in single-process mode: only one can hold the listener and the files
``twisted_uploads.W005``   scale-out with the local ``UPLOADS_DIR`` as storage: Django and every node must run on
                           one host and share that directory
=========================  ==================================================================================

E011 and E014 talk to Redis and the bucket (bounded by ``UPLOADS_REDIS_TIMEOUT`` / the bridge timeout) and only run
when the settings they need passed; silence them with ``SILENCED_SYSTEM_CHECKS`` where the network is not there
(a build step). Gunicorn runs no system checks, so the process-model checks (E010, E012, W003, W004, W005 — those
that need no network) are logged at its startup by the AppConfig (:func:`log_process_model_warnings`).
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from numbers import Real
from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register

from .conf import uploads_settings

TAG = "twisted_uploads"
FINDER = "django_shim.finders.UploadsClientFinder"


def _is_positive(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and value > 0


def _is_non_negative(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and value >= 0


@register(TAG, Tags.security)
def check_secret(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E001: tokens need a signing key."""
    explicit = getattr(settings, "UPLOADS_SECRET", None)
    if explicit is not None and len(str(explicit)) < 16:
        return [Error("UPLOADS_SECRET is shorter than 16 characters.",
                      hint="Use a long random value, or remove UPLOADS_SECRET to derive one from SECRET_KEY.",
                      id="twisted_uploads.E001")]
    if not uploads_settings().secret:
        return [Error("There is no key to sign upload tokens with: SECRET_KEY is empty and UPLOADS_SECRET is "
                      "not set.", hint="Set SECRET_KEY (or UPLOADS_SECRET) to a long random value.",
                      id="twisted_uploads.E001")]
    return []


@register(TAG)
def check_limits(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E002: every TTL and timeout must be a number in its range."""
    config = uploads_settings()
    problems = []
    for name, value, valid, rule in (
        ("UPLOADS_TOKEN_TTL", config.token_ttl, _is_positive, "a positive number of seconds"),
        ("UPLOADS_BRIDGE_TIMEOUT", config.bridge_timeout, _is_positive, "a positive number of seconds"),
        ("UPLOADS_RESUME_GRACE", config.resume_grace, _is_non_negative, "a number of seconds ≥ 0"),
        ("UPLOADS_COMPLETE_TTL", config.complete_ttl, _is_positive,
         "a positive number of seconds (finished uploads must wait for the view to consume them)"),
        ("UPLOADS_MAX_VIEWS", config.max_views, lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
         "an integer ≥ 1"),
    ):
        if not valid(value):
            problems.append(Error(f"{name} = {value!r} is impossible.", hint=f"{name} must be {rule}.",
                                  id="twisted_uploads.E002"))
    if not problems and config.bridge_timeout > 60:
        problems.append(Error(f"UPLOADS_BRIDGE_TIMEOUT = {config.bridge_timeout!r} s would hold a request thread "
                              "that long when the reactor is stuck.", hint="Use a few seconds (default 5).",
                              id="twisted_uploads.E002"))
    return problems


@register(TAG)
def check_websocket_endpoint(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E003-E005: the browser must have a WebSocket to connect to."""
    config = uploads_settings()
    problems: list[CheckMessage] = []
    parts = urlsplit(str(config.ws_url))
    if not isinstance(config.ws_url, str) or not (
            (not parts.scheme and not parts.netloc and config.ws_url.startswith("/"))
            or (parts.scheme in ("ws", "wss") and parts.netloc)):
        problems.append(Error(f"UPLOADS_WS_URL = {config.ws_url!r} is not a WebSocket endpoint.",
                              hint="Use a path served by twistd (the default '/uploads/ws') or a full "
                                   "ws:// or wss:// URL.", id="twisted_uploads.E003"))
    running_runserver = len(sys.argv) > 1 and sys.argv[1] == "runserver"
    if running_runserver and not config.standalone_listen and not parts.scheme and not config.scale_out:
        problems.append(Error("runserver serves no upload WebSocket: UPLOADS_STANDALONE_LISTEN is None and "
                              "UPLOADS_WS_URL is a path on runserver's own port, which cannot serve it.",
                              hint="Set UPLOADS_STANDALONE_LISTEN (e.g. 'tcp:8001'), or serve the project with "
                                   "'twistd -n uploads --settings ...'.", id="twisted_uploads.E004"))
    if config.standalone_listen:
        try:
            from twisted.internet.endpoints import serverFromString
            from twisted.internet.testing import MemoryReactor
            from twisted_uploads.service import server_endpoint_description

            serverFromString(MemoryReactor(), server_endpoint_description(str(config.standalone_listen)))
        except (ValueError, TypeError, KeyError) as error:
            problems.append(Error(f"UPLOADS_STANDALONE_LISTEN = {config.standalone_listen!r} is not a server "
                                  f"endpoint ({error}).", hint="Use e.g. 'tcp:8001' or 'tcp:8001:interface=127.0.0.1'.",
                                  id="twisted_uploads.E005"))
    return problems


@register(TAG)
def check_sessions(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E006: LiveView state and the token binding need Django sessions."""
    middleware = list(getattr(settings, "MIDDLEWARE", None) or [])
    if not apps.is_installed("django.contrib.sessions") or not any(
            path.endswith("SessionMiddleware") for path in middleware):
        return [Error("django_shim needs Django sessions: LiveView state and upload ownership live in them.",
                      hint="Add 'django.contrib.sessions' to INSTALLED_APPS and "
                           "'django.contrib.sessions.middleware.SessionMiddleware' to MIDDLEWARE.",
                      id="twisted_uploads.E006")]
    return []


#: Session engines whose key changes whenever the session is saved: a token cannot stay bound to such a key.
_UNBINDABLE_SESSION_ENGINES = ("django.contrib.sessions.backends.signed_cookies",)


@register(TAG, Tags.security)
def check_session_binding(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E008-E009: the handshake must carry a session cookie whose key the token can be bound to."""
    problems: list[CheckMessage] = []
    engine = str(getattr(settings, "SESSION_ENGINE", ""))
    if engine in _UNBINDABLE_SESSION_ENGINES:
        problems.append(Error(
            f"SESSION_ENGINE = {engine!r} changes the session key on every save, so the page's upload token cannot "
            "be bound to the browser session and every upload socket would be refused (invalid_token).",
            hint="Use a server-side session engine: 'django.contrib.sessions.backends.db' (the default), 'cache', "
                 "'cached_db' or 'file'. LiveView state lives in the session, and would not fit in a cookie "
                 "anyway.", id="twisted_uploads.E008"))
    cookie_path = str(getattr(settings, "SESSION_COOKIE_PATH", "/") or "/")
    ws_path = urlsplit(str(uploads_settings().ws_url)).path or "/"
    if not (ws_path == cookie_path.rstrip("/") or ws_path.startswith(cookie_path.rstrip("/") + "/")):
        problems.append(Error(
            f"SESSION_COOKIE_PATH = {cookie_path!r} does not cover the upload socket's path {ws_path!r}: browsers "
            "send the session cookie only under that path, so every upload token would be refused "
            "(invalid_token).", hint="Set SESSION_COOKIE_PATH to '/' (the default) or a prefix of UPLOADS_WS_URL's "
                                     "path, or mount the socket under it.", id="twisted_uploads.E009"))
    return problems


@register(TAG, Tags.security)
def check_origins(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W002: ``*`` among the allowed origins turns the handshake's ``Origin`` check off."""
    if "*" not in [str(origin).strip() for origin in uploads_settings().allowed_origins]:
        return []
    return [Warning("The upload WebSocket accepts any Origin: '*' is among its allowed origins (from "
                    "ALLOWED_HOSTS = ['*'] or UPLOADS_ALLOWED_ORIGINS), so any web page may open it in a visitor's "
                    "browser.", hint="List your sites in ALLOWED_HOSTS, or set UPLOADS_ALLOWED_ORIGINS to their "
                                     "origins (e.g. ['https://example.com']).", id="twisted_uploads.W002")]


@register(TAG)
def check_upload_dir(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E007: the server must be able to store files where it is told to."""
    directory = uploads_settings().upload_dir
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return [Error(f"UPLOADS_DIR {directory} cannot be created: {error.strerror}.",
                      hint="Point UPLOADS_DIR at a writable directory.", id="twisted_uploads.E007")]
    if not os.access(directory, os.W_OK | os.X_OK):
        return [Error(f"UPLOADS_DIR {directory} is not writable by this user.",
                      hint="Point UPLOADS_DIR at a writable directory.", id="twisted_uploads.E007")]
    return []


@register(TAG, Tags.staticfiles)
def check_client_finder(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W001: without the finder, runserver and collectstatic do not know the browser client."""
    if not apps.is_installed("django.contrib.staticfiles"):
        return []
    from django.contrib.staticfiles import finders

    if finders.find("twisted_uploads/uploads.js"):
        return []
    return [Warning("staticfiles cannot find twisted_uploads/uploads.js, so pages load no upload client under "
                    "runserver and collectstatic skips it.",
                    hint=f"Add '{FINDER}' to STATICFILES_FINDERS (keep Django's default finders too).",
                    id="twisted_uploads.W001")]


_REDIS_SCHEMES = ("redis", "rediss", "unix")


def _redis_url_problems(url: Any, timeout: Any) -> list[CheckMessage]:
    problems: list[CheckMessage] = []
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in _REDIS_SCHEMES or (parts.scheme != "unix" and not parts.hostname) \
            or (parts.scheme == "unix" and not parts.path):
        problems.append(Error(f"UPLOADS_REDIS_URL = {url!r} is not a Redis URL.",
                              hint="Use e.g. 'redis://127.0.0.1:6379/0' (or rediss:// for TLS, "
                                   "unix:///run/redis.sock), or None for single-process mode.",
                              id="twisted_uploads.E010"))
    if not _is_positive(timeout):
        problems.append(Error(f"UPLOADS_REDIS_TIMEOUT = {timeout!r} is impossible.",
                              hint="UPLOADS_REDIS_TIMEOUT must be a positive number of seconds (default 2).",
                              id="twisted_uploads.E010"))
    return problems


def _storage_problems() -> list[CheckMessage]:
    config = uploads_settings()
    problems: list[CheckMessage] = []
    if not isinstance(config.s3_options, dict):
        problems.append(Error(f"UPLOADS_S3_OPTIONS = {config.s3_options!r} is not a dict.",
                              hint="Give the keywords of boto3.client('s3', ...): {'endpoint_url': ..., "
                                   "'region_name': ...}.", id="twisted_uploads.E012"))
    storage = config.storage
    if storage is None:
        return problems
    if not isinstance(storage, str):
        return [*problems, Error(f"UPLOADS_STORAGE = {storage!r} is neither a path nor an s3:// URL.",
                                 hint="Use None (UPLOADS_DIR), '/srv/uploads' or 's3://bucket/prefix/'.",
                                 id="twisted_uploads.E012")]
    if config.s3_storage:
        if not urlsplit(storage).netloc:
            problems.append(Error(f"UPLOADS_STORAGE = {storage!r} names no bucket.",
                                  hint="Use 's3://bucket/' or 's3://bucket/prefix/'.", id="twisted_uploads.E012"))
        if not config.scale_out:
            problems.append(Error(
                f"UPLOADS_STORAGE = {storage!r} is S3, but UPLOADS_REDIS_URL is not set: in single-process mode the "
                "one server writes to UPLOADS_DIR, and only scale-out upload nodes write to a bucket.",
                hint="Set UPLOADS_REDIS_URL and run upload nodes ('twistd -n uploads --settings ... --node'), or "
                     "remove UPLOADS_STORAGE.", id="twisted_uploads.E012"))
        return problems
    if "://" in storage:
        return [*problems, Error(f"UPLOADS_STORAGE = {storage!r} is neither a path nor an s3:// URL.",
                                 hint="Use None (UPLOADS_DIR), '/srv/uploads' or 's3://bucket/prefix/'.",
                                 id="twisted_uploads.E012")]
    directory = os.path.abspath(storage)
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK | os.X_OK):
        problems.append(Error(f"UPLOADS_STORAGE {directory} is not a writable directory.",
                              hint="Create it (shared by every upload node and Django worker) or fix its "
                                   "permissions.", id="twisted_uploads.E012"))
    return problems


def _s3_has_credentials(options: dict[str, Any]) -> bool:
    if options.get("aws_access_key_id") and options.get("aws_secret_access_key"):
        return True
    try:
        import boto3
        from botocore.exceptions import BotoCoreError
    except ImportError:
        return True  # E014 reports the missing client library with the store's own words
    try:
        return boto3.session.Session().get_credentials() is not None
    except BotoCoreError:  # e.g. AWS_PROFILE names a profile that does not exist: no credentials either
        return False


@register(TAG)
def check_scale_out(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E010, E012, E013, W003, W005: the scale-out settings make sense together (no network)."""
    config = uploads_settings()
    problems: list[CheckMessage] = []
    if config.scale_out:
        problems += _redis_url_problems(config.redis_url, config.redis_timeout)
        if config.standalone_listen_explicit and config.standalone_listen:
            problems.append(Warning(
                f"UPLOADS_STANDALONE_LISTEN = {config.standalone_listen!r} is ignored: with UPLOADS_REDIS_URL set "
                "Django starts no listener in any process; upload nodes serve the WebSocket.",
                hint="Remove UPLOADS_STANDALONE_LISTEN, and route UPLOADS_WS_URL to the nodes ('twistd -n uploads "
                     "--settings ... --node --listen ...' behind the proxy).", id="twisted_uploads.W003"))
        if config.storage is None:
            problems.append(Warning(
                "Scale-out with UPLOADS_STORAGE = None keeps files in each node's UPLOADS_DIR "
                f"({config.upload_dir}): Django and every upload node must run on this host and share it.",
                hint="Set UPLOADS_STORAGE to a directory every host mounts, or to 's3://bucket/prefix/'.",
                id="twisted_uploads.W005"))
    problems += _storage_problems()
    if config.s3_storage and isinstance(config.s3_options, dict) and not any(
            p.id == "twisted_uploads.E012" for p in problems) and not _s3_has_credentials(config.s3_options):
        problems.append(Error(
            f"UPLOADS_STORAGE = {config.storage!r} is S3, but there are no credentials: UPLOADS_S3_OPTIONS has no "
            "aws_access_key_id / aws_secret_access_key and boto3 finds none (environment, ~/.aws, instance role).",
            hint="Put aws_access_key_id and aws_secret_access_key in UPLOADS_S3_OPTIONS, or set "
                 "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY for every Django and node process.",
            id="twisted_uploads.E013"))
    return problems


@register(TAG)
def check_cluster_reachable(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """E011, E014: Redis answers, and the bucket exists and accepts the credentials (talks to both)."""
    config = uploads_settings()
    if not config.scale_out or check_scale_out():
        return []  # nothing to reach, or the settings themselves are wrong (reported above)
    from . import bridge
    from twisted_uploads.errors import UploadError

    problems: list[CheckMessage] = []
    try:
        bridge.probe_redis(str(config.redis_url), float(config.redis_timeout))
    except bridge.ReactorThreadCall:
        return []  # run from the reactor thread (twistd): nothing may block it
    except (UploadError, bridge.BridgeError) as error:
        problems.append(Error(f"Redis at UPLOADS_REDIS_URL does not answer: {getattr(error, 'message', error)}",
                              hint="Start Redis, or fix UPLOADS_REDIS_URL (host, port, password, database). Every "
                                   "upload call fails with registry_unavailable until it answers.",
                              id="twisted_uploads.E011"))
    if config.s3_storage:
        try:
            bridge.probe_store(config)
        except (UploadError, bridge.BridgeError, ImportError) as error:
            problems.append(Error(f"The S3 store {config.storage} is not usable: "
                                  f"{getattr(error, 'message', error)}",
                                  hint="Create the bucket, check UPLOADS_S3_OPTIONS (endpoint_url, region_name, "
                                       "credentials) and that the credentials may read and write it.",
                                  id="twisted_uploads.E014"))
    return problems


def worker_processes(argv: list[str] | None = None, environ: dict[str, str] | None = None) -> int | None:
    """How many worker processes the server running this process starts, when it says so; None otherwise.

    Read from gunicorn's own command-line parser (``-w``, ``--workers``, ``GUNICORN_CMD_ARGS``,
    ``WEB_CONCURRENCY``) or uvicorn's ``--workers``. A count set only in a gunicorn config file is not seen here;
    the second worker's failed bind still says so at its first upload call.
    """
    argv = sys.argv if argv is None else argv
    environ = dict(os.environ) if environ is None else environ
    program = os.path.basename(argv[0]) if argv else ""
    if "gunicorn" in program:
        try:
            from gunicorn.config import Config
        except ImportError:
            return None
        arguments = [*shlex.split(environ.get("GUNICORN_CMD_ARGS", "")), *argv[1:]]
        try:
            parsed = Config().parser().parse_known_args(arguments)[0]
        except SystemExit:
            return None
        if parsed.workers is not None:
            return int(parsed.workers)
        concurrency = environ.get("WEB_CONCURRENCY", "")
        return int(concurrency) if concurrency.isdigit() else 1
    if "uvicorn" in program:
        for index, argument in enumerate(argv):
            match = re.fullmatch(r"--workers(?:=(\d+))?", argument)
            if match:
                value = match.group(1) or (argv[index + 1] if index + 1 < len(argv) else "")
                return int(value) if value.isdigit() else None
        concurrency = environ.get("WEB_CONCURRENCY", "")
        return int(concurrency) if concurrency.isdigit() else 1
    return None


@register(TAG)
def check_process_model(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """W004: several worker processes cannot share the single-process registry."""
    workers = worker_processes()
    if workers is None or workers <= 1 or uploads_settings().scale_out:
        return []
    return [Warning(
        f"This server starts {workers} worker processes, but uploads are in single-process mode "
        "(UPLOADS_REDIS_URL is not set): only one worker can hold the upload listener and its files; in every "
        "other worker upload calls raise UploadServerUnavailable.",
        hint="Set UPLOADS_REDIS_URL (scale-out mode: Redis, upload nodes 'twistd -n uploads --settings ... --node' "
             "behind the proxy), or run one worker (gunicorn -w 1 --threads N).", id="twisted_uploads.W004")]


def log_process_model_warnings() -> None:
    """Log, at a server's startup, what the network-free process-model checks find (gunicorn runs no checks).

    Python's ``logging``, not ``twisted.logger``: in a gunicorn master no reactor runs and nothing routes Twisted's
    log events anywhere yet, while Python's logging reaches the server's stderr (its last-resort handler at least).
    """
    import logging

    log = logging.getLogger("django_shim")
    for message in [*check_process_model(), *check_scale_out()]:
        log.log(logging.ERROR if message.is_serious() else logging.WARNING, "%s: %s HINT: %s", message.id,
                message.msg, message.hint)
