"""Every ``UPLOADS_*`` setting, with its default, read in one place.

The rest of the shim asks :func:`uploads_settings` and never reads ``django.conf.settings.UPLOADS_*`` itself, so a
default is defined exactly once and ``override_settings`` in tests takes effect (the cache is dropped on Django's
``setting_changed`` signal).

=============================  ==========================================  ====================================
setting                        default                                     meaning
=============================  ==========================================  ====================================
``UPLOADS_SECRET``             derived from ``SECRET_KEY``                 key signing the page's upload token
``UPLOADS_WS_URL``             ``"/uploads/ws"``                           WebSocket URL given to the browser; a
                                                                           path is resolved against the page's
                                                                           host (and, in standalone mode, the
                                                                           standalone listener's port)
``UPLOADS_DIR``                ``<tempdir>/twisted-uploads-<uid>/          where the server streams entries and
                               <settings module>-<hash of BASE_DIR>``      keeps their records (one per project)
``UPLOADS_TOKEN_TTL``          ``3600``                                    seconds a page's upload token is valid
``UPLOADS_ALLOWED_ORIGINS``    from ``ALLOWED_HOSTS`` (+ ``CSRF_TRUSTED_   ``Origin`` values the WebSocket
                               ORIGINS``), see :func:`origins_from_hosts`  handshake accepts
``UPLOADS_BRIDGE_TIMEOUT``     ``5.0``                                     seconds a view waits for the reactor
``UPLOADS_RESUME_GRACE``       ``300``                                     seconds a paused entry may be resumed
``UPLOADS_COMPLETE_TTL``       ``3600``                                    seconds a finished entry waits to be
                                                                           consumed
``UPLOADS_STANDALONE_LISTEN``  ``"tcp:8001:interface=127.0.0.1"``          endpoint of the WebSocket listener
                                                                           started under runserver / another
                                                                           WSGI server (``None``: never start);
                                                                           ignored in scale-out mode
``UPLOADS_MAX_VIEWS``          ``20``                                      view states kept per Django session
``UPLOADS_PAGE_TEMPLATE``      ``"django_shim/page.html"``                 page that wraps a fragment template
``UPLOADS_SERVE_MEDIA``        ``DEBUG``                                   twistd serves ``MEDIA_ROOT`` at
                                                                           ``MEDIA_URL``
``UPLOADS_REDIS_URL``          ``None``                                    ``None``: single-process mode (the
                                                                           registry lives in the one process
                                                                           that serves uploads). A
                                                                           ``redis://`` URL: scale-out mode —
                                                                           Django starts no listener and asks
                                                                           the cluster index in Redis; upload
                                                                           nodes (``twistd uploads --node``)
                                                                           receive the files
``UPLOADS_REDIS_TIMEOUT``      ``2.0``                                     seconds one Redis round trip may
                                                                           take before it fails with
                                                                           ``registry_unavailable``
``UPLOADS_STORAGE``            ``None``                                    where complete files are: ``None``
                                                                           = ``UPLOADS_DIR``; a path = a
                                                                           directory shared by every node;
                                                                           ``"s3://bucket/prefix/"`` = S3
                                                                           (needs ``UPLOADS_REDIS_URL``)
``UPLOADS_S3_OPTIONS``         ``{}``                                      keywords for ``boto3.client("s3",
                                                                           ...)``: ``endpoint_url``,
                                                                           ``region_name``, ``aws_access_key_
                                                                           id``, ``aws_secret_access_key``
                                                                           (otherwise boto3's credential chain)
=============================  ==========================================  ====================================
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.crypto import salted_hmac

#: Salt of the key derived from ``SECRET_KEY`` when ``UPLOADS_SECRET`` is not set, so the upload key differs from
#: the one Django signs sessions and cookies with.
SECRET_DERIVATION_SALT = "twisted_uploads.secret"

DEFAULT_WS_URL = "/uploads/ws"
DEFAULT_STANDALONE_LISTEN = "tcp:8001:interface=127.0.0.1"

#: Hosts Django itself allows when ``DEBUG`` is on and ``ALLOWED_HOSTS`` is empty.
_DEBUG_HOSTS = ("localhost", ".localhost", "127.0.0.1", "[::1]")


@dataclass(frozen=True)
class UploadsSettings:
    """The resolved ``UPLOADS_*`` settings (see the module docstring for each one)."""

    secret: str
    fallback_secrets: tuple[str, ...]
    ws_url: str
    ws_url_is_default: bool
    upload_dir: Path
    token_ttl: float
    allowed_origins: tuple[str, ...]
    bridge_timeout: float
    resume_grace: float
    complete_ttl: float
    standalone_listen: str | None
    max_views: int
    page_template: str
    serve_media: bool
    #: ``SESSION_COOKIE_NAME``: the cookie the token verifier reads the session key from at the handshake.
    session_cookie: str = "sessionid"
    #: ``UPLOADS_REDIS_URL``: ``None`` = single-process mode; set = scale-out (no listener in Django).
    redis_url: str | None = None
    redis_timeout: float = 2.0
    #: ``UPLOADS_STORAGE``: ``None`` (``UPLOADS_DIR``), a shared directory, or ``"s3://bucket/prefix/"``.
    storage: str | None = None
    s3_options: dict[str, Any] = field(default_factory=dict)
    #: Whether the project set ``UPLOADS_STANDALONE_LISTEN`` itself (scale-out ignores it: check W003 says so).
    standalone_listen_explicit: bool = False

    @property
    def scale_out(self) -> bool:
        """Scale-out mode: Redis holds the registry, upload nodes receive files, Django binds no port."""
        return bool(self.redis_url)

    @property
    def s3_storage(self) -> bool:
        """Whether complete files live in an S3 bucket (``UPLOADS_STORAGE = "s3://..."``)."""
        return isinstance(self.storage, str) and self.storage.startswith("s3://")


def derive_secret(secret_key: str) -> str:
    """Return the upload signing key derived from a Django ``SECRET_KEY``."""
    return salted_hmac(SECRET_DERIVATION_SALT, "uploads", secret=secret_key, algorithm="sha256").hexdigest()


def default_upload_dir() -> Path:
    """``<tempdir>/twisted-uploads-<uid>/<project>-<hash>``: one directory per project, kept across restarts.

    The project is told apart by its settings module and ``BASE_DIR`` (or the settings file's folder), so two
    sites of the same user never share uploads by accident; restarts of one site find their entries again.
    """
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    module = os.environ.get("DJANGO_SETTINGS_MODULE") or getattr(settings, "SETTINGS_MODULE", "") or "django"
    base = getattr(settings, "BASE_DIR", None)
    if base is None:
        settings_module = sys.modules.get(module)
        base = os.path.dirname(os.path.abspath(getattr(settings_module, "__file__", "") or os.getcwd()))
    digest = hashlib.sha256(f"{module}\0{os.path.abspath(str(base))}".encode("utf-8")).hexdigest()[:12]
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", module)[:60]
    return Path(tempfile.gettempdir()) / f"twisted-uploads-{uid}" / f"{slug}-{digest}"


def origins_from_hosts(allowed_hosts: list[str] | tuple[str, ...], debug: bool,
                       trusted_origins: list[str] | tuple[str, ...] = (),
                       page_ports: tuple[int, ...] = ()) -> tuple[str, ...]:
    """Turn ``ALLOWED_HOSTS`` (and ``CSRF_TRUSTED_ORIGINS``) into the upload socket's allowed origins.

    A full origin from ``CSRF_TRUSTED_ORIGINS`` is kept as it is: its scheme, host and port must match exactly.
    A bare host pattern from ``ALLOWED_HOSTS`` (``"example.com"``, ``".example.com"``, ``"[::1]"``) allows that
    host with the page's scheme (the socket's: ``http`` for ``ws://``, ``https`` for ``wss://``) on the ports pages
    are actually served from: the socket's own port (``twistd`` serves pages and socket on one port) and each of
    ``page_ports`` (under runserver the page is on runserver's port and the socket on the standalone listener's,
    so runserver's port is added as ``"example.com:8000"``). ``"*"`` stays ``"*"``: any origin, which system check
    ``twisted_uploads.W002`` warns about. Anything else — a page on another port of the same host, ``https`` pages
    behind a TLS-terminating proxy — must be listed as a full origin in ``CSRF_TRUSTED_ORIGINS`` or
    ``UPLOADS_ALLOWED_ORIGINS``.
    """
    hosts = list(allowed_hosts)
    if debug and not hosts:
        hosts = list(_DEBUG_HOSTS)
    origins: list[str] = []
    for host in hosts:
        origins.append(host)
        if host != "*" and "://" not in host:
            origins.extend(f"{host}:{port}" for port in page_ports)
    return tuple(dict.fromkeys([*origins, *trusted_origins]))


def runserver_port(argv: list[str] | None = None) -> int | None:
    """The port ``manage.py runserver`` serves pages on, when this process is runserver; None otherwise.

    Read with runserver's own argument parser and address syntax, so ``runserver 0.0.0.0:8123``,
    ``runserver [::1]:8123``, ``runserver 8123`` and a bare ``runserver`` (its default port) all give the port.
    """
    argv = sys.argv if argv is None else argv
    if len(argv) < 2 or argv[1] != "runserver":
        return None
    try:
        from django.core.management import get_commands, load_command_class
        from django.core.management.commands.runserver import naiveip_re

        command = load_command_class(get_commands()["runserver"], "runserver")
        options, _ = command.create_parser(argv[0], "runserver").parse_known_args(argv[2:])
        if not options.addrport:
            return int(command.default_port)
        match = re.match(naiveip_re, options.addrport)
        return int(match.group("port")) if match else None
    except (SystemExit, KeyError, ImportError, AttributeError, ValueError):
        return None  # runserver itself will refuse these arguments


def _number(name: str, default: float) -> Any:
    return getattr(settings, name, default)


_cached: UploadsSettings | None = None


def uploads_settings() -> UploadsSettings:
    """Return the resolved settings, computed once per settings change."""
    global _cached
    if _cached is None:
        _cached = _resolve()
    return _cached


def _resolve() -> UploadsSettings:
    explicit_secret = getattr(settings, "UPLOADS_SECRET", None)
    if explicit_secret:
        secret, fallbacks = str(explicit_secret), ()
    else:
        try:
            secret_key = getattr(settings, "SECRET_KEY", "") or ""
        except ImproperlyConfigured:  # Django refuses to hand out an empty SECRET_KEY; E001 explains it
            secret_key = ""
        secret = derive_secret(secret_key) if secret_key else ""
        fallbacks = tuple(derive_secret(key) for key in getattr(settings, "SECRET_KEY_FALLBACKS", ()) or ())
    ws_url = getattr(settings, "UPLOADS_WS_URL", None)
    upload_dir = getattr(settings, "UPLOADS_DIR", None)
    origins = getattr(settings, "UPLOADS_ALLOWED_ORIGINS", None)
    if origins is None:
        port = runserver_port()
        origins = origins_from_hosts(settings.ALLOWED_HOSTS, settings.DEBUG,
                                     getattr(settings, "CSRF_TRUSTED_ORIGINS", ()),
                                     page_ports=(port,) if port is not None else ())
    return UploadsSettings(
        secret=secret,
        fallback_secrets=fallbacks,
        ws_url=ws_url if ws_url is not None else DEFAULT_WS_URL,
        ws_url_is_default=ws_url is None,
        upload_dir=Path(upload_dir) if upload_dir else default_upload_dir(),
        token_ttl=_number("UPLOADS_TOKEN_TTL", 3600),
        allowed_origins=tuple(origins),
        bridge_timeout=_number("UPLOADS_BRIDGE_TIMEOUT", 5.0),
        resume_grace=_number("UPLOADS_RESUME_GRACE", 300),
        complete_ttl=_number("UPLOADS_COMPLETE_TTL", 3600),
        standalone_listen=getattr(settings, "UPLOADS_STANDALONE_LISTEN", DEFAULT_STANDALONE_LISTEN),
        max_views=_number("UPLOADS_MAX_VIEWS", 20),
        page_template=getattr(settings, "UPLOADS_PAGE_TEMPLATE", "django_shim/page.html"),
        serve_media=bool(getattr(settings, "UPLOADS_SERVE_MEDIA", settings.DEBUG)),
        session_cookie=str(getattr(settings, "SESSION_COOKIE_NAME", "sessionid")),
        redis_url=getattr(settings, "UPLOADS_REDIS_URL", None) or None,
        redis_timeout=_number("UPLOADS_REDIS_TIMEOUT", 2.0),
        storage=_storage(getattr(settings, "UPLOADS_STORAGE", None)),
        s3_options=getattr(settings, "UPLOADS_S3_OPTIONS", None) or {},
        standalone_listen_explicit=hasattr(settings, "UPLOADS_STANDALONE_LISTEN"),
    )


def _storage(value: Any) -> str | None:
    """``UPLOADS_STORAGE`` as a string (a ``Path`` is accepted), ``None`` for the local ``UPLOADS_DIR``."""
    if value is None or value == "":
        return None
    return os.fspath(value) if isinstance(value, os.PathLike) else value


@receiver(setting_changed)
def _drop_cache(*, setting: str, **kwargs: Any) -> None:
    """Forget the resolved settings when a test overrides a setting they derive from."""
    global _cached
    if setting.startswith("UPLOADS_") or setting in {
        "SECRET_KEY", "SECRET_KEY_FALLBACKS", "ALLOWED_HOSTS", "DEBUG", "CSRF_TRUSTED_ORIGINS", "BASE_DIR",
        "SESSION_COOKIE_NAME",
    }:
        _cached = None
