"""Where the client connects, and what a refused connection means.

Two questions the connection code should not answer inline: is this URL one a WebSocket client can open at all
(checked before any socket, so a typo is a usage error and not a silent retry loop), and, when the opening
handshake fails, is the refusal final (HTTP 403, 404: retrying cannot help) or passing (connection refused, HTTP 503
while a deploy restarts the server: retry with backoff)?
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from .. import DEFAULT_WS_PATH
from ..errors import ErrorCode, UploadError

WEBSOCKET_SCHEMES = ("ws", "wss")
#: What a user meant when they pasted a page's URL.
_SUGGESTED_SCHEMES = {"http": "ws", "https": "wss"}


def check_url(url: str, *, default_path: str | None = None) -> str:
    """``url`` if a WebSocket client can open it; raises ``ValueError`` with a readable reason otherwise.

    With ``default_path`` (the CLI passes ``/uploads/ws``), a URL without a path gets that path instead of the
    server's root, where no upload endpoint lives.
    """
    parts = urlsplit(url.strip())
    if parts.scheme not in WEBSOCKET_SCHEMES:
        suggestion = _SUGGESTED_SCHEMES.get(parts.scheme)
        if suggestion is not None:
            meant = urlunsplit((suggestion, *parts[1:]))
            raise ValueError(f"{url!r} is not a WebSocket URL; did you mean {meant}?")
        example = f"ws://{parts.netloc or 'localhost:8000'}{DEFAULT_WS_PATH}"
        raise ValueError(f"{url!r} is not a WebSocket URL (ws:// or wss://), e.g. {example}")
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port") from None
    path = parts.path
    if default_path is not None and path in ("", "/"):
        path = default_path
    return urlunsplit((parts.scheme, parts.netloc, path or "/", parts.query, ""))


@dataclass(frozen=True)
class Refusal:
    """Why a connection attempt failed, and whether trying again could change the answer."""

    error: UploadError
    final: bool


def handshake_refusal(url: str, status_line: str | None, reason: str, origin: str | None) -> Refusal:
    """Classify a failed opening handshake from the server's HTTP status line (None: no HTTP answer at all)."""
    if not status_line:
        return Refusal(UploadError(ErrorCode.UNREACHABLE, f"{url} did not answer as a WebSocket server: {reason}"),
                       final=True)
    parts = status_line.split(None, 2)
    try:
        status = int(parts[1])
    except (IndexError, ValueError):
        return Refusal(UploadError(ErrorCode.UNREACHABLE, f"{url} answered {status_line!r}, not HTTP"), final=True)
    text = parts[2].strip() if len(parts) > 2 else ""
    if status == 403:
        who = f"the Origin {origin}" if origin else "this client"
        return Refusal(UploadError(ErrorCode.FORBIDDEN_ORIGIN,
                                   f"{url} refused {who} (HTTP 403{': ' + text if text else ''})"), final=True)
    if status == 404:
        path = urlsplit(url).path
        hint = "" if path == DEFAULT_WS_PATH else f"; the default path is {DEFAULT_WS_PATH}"
        return Refusal(UploadError(ErrorCode.UNREACHABLE,
                                   f"no upload endpoint at {url} (HTTP 404){hint}"), final=True)
    if status == 101:
        # Switching Protocols, but the upgrade itself was malformed (missing headers, no subprotocol): a
        # server that is not ours, or a proxy that mangles the handshake.
        return Refusal(UploadError(ErrorCode.UNREACHABLE, f"{url}: WebSocket handshake failed: {reason}"),
                       final=True)
    # 5xx (a proxy whose upstream restarts) and 429 may pass; any other answer will be the same next time.
    passing = status >= 500 or status in (408, 429)
    return Refusal(UploadError(ErrorCode.UNREACHABLE,
                               f"{url} answered HTTP {status}{' ' + text if text else ''} instead of opening a "
                               f"WebSocket"), final=not passing)
