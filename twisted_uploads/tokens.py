"""Upload tokens: what a page is allowed to upload, signed by the application.

The server trusts only slot configs that arrive inside a verified token, so a client can never raise its own
limits. Verification is injected (any ``Callable[[str], TokenGrant]``): the Django shim passes one built on
``django.core.signing``; standalone servers use :class:`HMACTokenVerifier` with a shared secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
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


#: The verifier seam: turn a token into a grant or raise ``UploadError(invalid_token)``.
TokenVerifier = Callable[[str], TokenGrant]


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
               now: float | None = None) -> str:
    """Mint a standalone token for ``session`` granting ``slots`` for ``ttl`` seconds."""
    issued = time.time() if now is None else now
    payload = {"v": TOKEN_VERSION, "session": session, "exp": issued + ttl,
               "slots": {name: slot.to_dict() for name, slot in slots.items()}}
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
    return TokenGrant(session, slots, float(expires_at))


class HMACTokenVerifier:
    """Verifies tokens made by :func:`make_token` with the same secret."""

    def __init__(self, secret: str | bytes, clock: Callable[[], float] = time.time) -> None:
        self._secret = _secret_bytes(secret)
        self._clock = clock

    def __call__(self, token: str) -> TokenGrant:
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
