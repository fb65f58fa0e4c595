"""What the page needs besides the view's markup: the browser client's tags and the WebSocket URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.http import HttpRequest
from django.templatetags.static import static
from django.utils.html import format_html

from . import bridge
from .conf import uploads_settings

CLIENT_SCRIPT = "twisted_uploads/uploads.js"
CLIENT_STYLESHEET = "twisted_uploads/uploads.css"


def scripts_html() -> str:
    """``<link>`` and ``<script defer>`` for the browser client, through Django's static URL machinery."""
    return format_html('<link rel="stylesheet" href="{}"><script src="{}" defer></script>',
                       static(CLIENT_STYLESHEET), static(CLIENT_SCRIPT))


def websocket_url(request: HttpRequest) -> str:
    """The WebSocket URL for this page.

    A path (the default ``/uploads/ws``) is left for the browser to resolve against the page's host — the
    one-port twistd setup, and scale-out behind a proxy — except when this process runs a standalone listener
    (runserver, one gunicorn worker): then it points at that listener's port on the page's host name. The listener
    is started here if the process has none yet (the page must not point at a port nobody serves), and a process
    whose listener could not start raises :class:`~django_shim.bridge.UploadServerUnavailable`.
    """
    configured = uploads_settings().ws_url
    if urlsplit(configured).scheme:
        return configured
    port = bridge.standalone_port(start=True)
    if port is None:
        return configured
    scheme = "wss" if request.is_secure() else "ws"
    host = urlsplit(f"//{request.get_host()}").hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port.getHost().port}{configured}"
