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
                               ORIGINS``)                                  handshake accepts
``UPLOADS_BRIDGE_TIMEOUT``     ``5.0``                                     seconds a view waits for the reactor
``UPLOADS_RESUME_GRACE``       ``300``                                     seconds a paused entry may be resumed
``UPLOADS_COMPLETE_TTL``       ``3600``                                    seconds a finished entry waits to be
                                                                           consumed
``UPLOADS_STANDALONE_LISTEN``  ``"tcp:8001:interface=127.0.0.1"``          endpoint of the WebSocket listener
                                                                           started under runserver / another
                                                                           WSGI server (``None``: never start)
``UPLOADS_MAX_VIEWS``          ``20``                                      view states kept per Django session
``UPLOADS_PAGE_TEMPLATE``      ``"django_shim/page.html"``                 page that wraps a fragment template
``UPLOADS_SERVE_MEDIA``        ``DEBUG``                                   twistd serves ``MEDIA_ROOT`` at
                                                                           ``MEDIA_URL``
=============================  ==========================================  ====================================
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
from dataclasses import dataclass
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
                       trusted_origins: list[str] | tuple[str, ...] = ()) -> tuple[str, ...]:
    """Turn ``ALLOWED_HOSTS`` patterns into host patterns for the ``Origin`` check.

    Each item is a bare host pattern in Django's ``ALLOWED_HOSTS`` syntax (``"example.com"``, ``".example.com"``
    for subdomains, ``"*"`` for any) or a full origin from ``CSRF_TRUSTED_ORIGINS``; the port of an ``Origin`` is
    ignored for bare hosts because a standalone listener runs on another port than the page.
    """
    hosts = list(allowed_hosts)
    if debug and not hosts:
        hosts = list(_DEBUG_HOSTS)
    return tuple(dict.fromkeys([*hosts, *trusted_origins]))


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
        origins = origins_from_hosts(settings.ALLOWED_HOSTS, settings.DEBUG,
                                     getattr(settings, "CSRF_TRUSTED_ORIGINS", ()))
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
    )


@receiver(setting_changed)
def _drop_cache(*, setting: str, **kwargs: Any) -> None:
    """Forget the resolved settings when a test overrides a setting they derive from."""
    global _cached
    if setting.startswith("UPLOADS_") or setting in {
        "SECRET_KEY", "SECRET_KEY_FALLBACKS", "ALLOWED_HOSTS", "DEBUG", "CSRF_TRUSTED_ORIGINS", "BASE_DIR",
    }:
        _cached = None
