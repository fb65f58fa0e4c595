"""System checks (``manage.py check``) for a misconfigured upload setup, each with the fix in its hint.

=========================  ==================================================================================
id                         problem
=========================  ==================================================================================
``twisted_uploads.E001``   no key to sign upload tokens with (no ``UPLOADS_SECRET`` and an empty ``SECRET_KEY``,
                           or an ``UPLOADS_SECRET`` shorter than 16 characters)
``twisted_uploads.E002``   an impossible limit (a TTL or timeout that is not a positive number…)
``twisted_uploads.E003``   ``UPLOADS_WS_URL`` is neither a path nor a ``ws://`` / ``wss://`` URL
``twisted_uploads.E004``   runserver with no WebSocket endpoint (``UPLOADS_STANDALONE_LISTEN = None``)
``twisted_uploads.E005``   ``UPLOADS_STANDALONE_LISTEN`` is not a Twisted server endpoint description
``twisted_uploads.E006``   sessions are not enabled (view state and token binding live in the session)
``twisted_uploads.E007``   ``UPLOADS_DIR`` cannot be created or written
``twisted_uploads.E008``   the session engine changes the session key on every save (``signed_cookies``), so upload
                           tokens cannot be bound to the session
``twisted_uploads.E009``   ``SESSION_COOKIE_PATH`` does not cover the upload socket's path, so browsers never send
                           the session cookie there and every token is refused
``twisted_uploads.W001``   staticfiles cannot find the browser client (finder missing)
``twisted_uploads.W002``   the allowed origins contain ``*`` (``ALLOWED_HOSTS = ["*"]``): the WebSocket's ``Origin``
                           check is off
=========================  ==================================================================================
"""

from __future__ import annotations

import os
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
    if running_runserver and not config.standalone_listen and not parts.scheme:
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
