"""Upload tokens: what a page is allowed to upload, signed by the application.

The server trusts only slot configs that arrive inside a verified token, so a client can never raise its own
limits. Verification is injected (any ``Callable[[str, Handshake], TokenGrant]``): it sees the token and the
WebSocket handshake it arrived on, so a verifier can bind a token to something only the legitimate browser has (the
Django shim's verifier, built on ``django.core.signing``, requires the session cookie of the page the token was
minted for). Standalone servers use :class:`HMACTokenVerifier` with a shared secret: its tokens are bearer tokens by
design, valid for whoever holds them until they expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from http.cookies import CookieError, SimpleCookie
from types import MappingProxyType
from typing import Any, Callable, Mapping

from .errors import ErrorCode, UploadError
from .slots import SlotConfig, slots_from_dict

TOKEN_VERSION = 1


@dataclass(frozen=True)
class TokenGrant:
    """What a verified token allows: one upload session and its slots, until ``expires_at`` (Unix time)."""

    session: str
    slots: dict[str, SlotConfig]
    expires_at: float
    #: Upload sessions of earlier pages whose paused entries this page may continue (resume after a reload); the
    #: application lists only sessions of the same user, and the signature keeps the list as it wrote it.
    adopt: tuple[str, ...] = ()


@dataclass(frozen=True)
class Handshake:
    """What the WebSocket handshake said about the client, for verifiers that bind a token to more than itself.

    ``origin`` is the ``Origin`` header (None for non-browser clients), ``host`` the ``Host`` header, ``cookies``
    the request's cookies by name, ``peer`` the remote address (``"tcp4:127.0.0.1:53122"``) and ``secure`` whether
    the socket is TLS. The default is an empty handshake: what a client without a browser presents.
    """

    origin: str | None = None
    host: str = ""
    cookies: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    peer: str = ""
    secure: bool = False


def parse_cookie_header(header: str | None) -> Mapping[str, str]:
    """The cookies of a ``Cookie`` request header, by name; malformed pairs are skipped, not fatal.

    Each ``name=value`` pair is parsed on its own (``SimpleCookie`` gives up on the whole header at the first pair
    it dislikes, and browsers send values it dislikes). A name sent twice keeps its last value, as Django does, so
    the verifier sees the session Django saw.
    """
    cookies: dict[str, str] = {}
    for pair in (header or "").split(";"):
        name, sep, value = pair.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name:
            continue
        if len(value) >= 2 and value[0] == value[-1] == '"':
            parsed = SimpleCookie()
            try:
                parsed.load(f"{name}={value}")
            except CookieError:
                continue
            morsel = parsed.get(name)
            value = morsel.value if morsel is not None else value
        cookies[name] = value
    return MappingProxyType(cookies)


#: The verifier seam: turn a token presented on a handshake into a grant, or raise ``UploadError(invalid_token)``.
TokenVerifier = Callable[[str, Handshake], TokenGrant]


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(secret: bytes, payload_part: str) -> str:
    return _b64encode(hmac.new(secret, payload_part.encode("ascii"), hashlib.sha256).digest())


def _secret_bytes(secret: str | bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    if len(key) < 16:
        raise ValueError("the upload secret must be at least 16 bytes long")
    return key


def make_token(secret: str | bytes, session: str, slots: Mapping[str, SlotConfig], ttl: float = 3600.0,
               now: float | None = None, adopt: tuple[str, ...] = ()) -> str:
    """Mint a standalone token for ``session`` granting ``slots`` for ``ttl`` seconds.

    ``adopt`` names earlier sessions of the same user whose paused entries this one may continue.
    """
    issued = time.time() if now is None else now
    payload: dict[str, Any] = {"v": TOKEN_VERSION, "session": session, "exp": issued + ttl,
                               "slots": {name: slot.to_dict() for name, slot in slots.items()}}
    if adopt:
        payload["adopt"] = list(adopt)
    payload_part = _b64encode(json.dumps(payload, separators=(",", ":")).encode("utf-8"))
    return f"{payload_part}.{_signature(_secret_bytes(secret), payload_part)}"


def grant_from_payload(payload: Mapping[str, Any], now: float) -> TokenGrant:
    """Check a decoded token payload (shared with other verifiers) and build the grant."""
    try:
        session, expires_at = payload["session"], payload["exp"]
        slots = slots_from_dict(payload["slots"])
    except (KeyError, TypeError, ValueError) as error:
        raise UploadError(ErrorCode.INVALID_TOKEN, f"malformed token payload: {error}") from None
    if not isinstance(session, str) or not session or not isinstance(expires_at, (int, float)):
        raise UploadError(ErrorCode.INVALID_TOKEN, "malformed token payload")
    if expires_at <= now:
        raise UploadError(ErrorCode.INVALID_TOKEN, "the upload token has expired; reload the page")
    return TokenGrant(session, slots, float(expires_at), adopt_from_payload(payload))


#: Earlier pages a token may name for adoption.
MAX_ADOPT_SESSIONS = 10


def adopt_from_payload(payload: Mapping[str, Any]) -> tuple[str, ...]:
    """The token's ``adopt`` list: upload session ids, at most :data:`MAX_ADOPT_SESSIONS`, anything else ignored."""
    listed = payload.get("adopt")
    if not isinstance(listed, list):
        return ()
    return tuple(s for s in listed if isinstance(s, str) and 0 < len(s) <= 200)[:MAX_ADOPT_SESSIONS]


class HMACTokenVerifier:
    """Verifies tokens made by :func:`make_token` with the same secret.

    The handshake is ignored: a standalone token is a bearer token, and whoever holds it may use it until it
    expires. Keep its ``ttl`` short and send it only over TLS to the pages and clients meant to have it.
    """

    def __init__(self, secret: str | bytes, clock: Callable[[], float] = time.time) -> None:
        self._secret = _secret_bytes(secret)
        self._clock = clock

    def __call__(self, token: str, handshake: Handshake | None = None) -> TokenGrant:
        if not isinstance(token, str) or not token.isascii() or token.count(".") != 1:
            raise UploadError(ErrorCode.INVALID_TOKEN, "missing or malformed upload token")
        payload_part, signature = token.split(".")
        if not hmac.compare_digest(signature, _signature(self._secret, payload_part)):
            raise UploadError(ErrorCode.INVALID_TOKEN, "the upload token's signature is not valid")
        try:
            payload = json.loads(_b64decode(payload_part))
        except ValueError:
            raise UploadError(ErrorCode.INVALID_TOKEN, "malformed upload token") from None
        if not isinstance(payload, dict) or payload.get("v") != TOKEN_VERSION:
            raise UploadError(ErrorCode.INVALID_TOKEN, "unsupported upload token version")
        return grant_from_payload(payload, self._clock())
