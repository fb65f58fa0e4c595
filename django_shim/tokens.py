"""The page's upload token: minted by a Django view, verified by the reactor side.

A token is ``django.core.signing.dumps`` of ``{"v", "session", "slots", "exp", "sk"}`` with the salt
``twisted_uploads.token`` and the upload secret (``UPLOADS_SECRET``, by default derived from ``SECRET_KEY``).
``slots`` is the only place the server learns a slot's limits from, so a browser cannot raise its own limits;
``sk`` is a keyed hash of the Django session key, binding the token to the session that rendered the page. The
upload session id inside is random, lives in the view state in the Django session, and is the only handle the
server gives to entries.

:class:`DjangoTokenVerifier` is the callable the reactor side is given (``verify(token, handshake) ->
TokenGrant``). Besides signature, version and expiry it checks the binding: the WebSocket handshake must carry the
session cookie whose key the token was minted for, so a token copied out of a page is no use without the browser
session it belongs to. It never reads Django settings, so it is safe in the reactor thread.

The binding needs a session key that stays put while the page is open: a server-side session engine (``db``,
``cache``, ``cached_db``, ``file``). The ``signed_cookies`` engine changes its key on every save, so it cannot
bind — system check ``twisted_uploads.E008`` refuses it. A key Django rotates on purpose (``login()``'s
``cycle_key``, ``flush()`` at logout) invalidates the tokens of pages rendered before, which is what such a
rotation is for: those pages must be reloaded.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from django.core import signing
from django.utils.crypto import constant_time_compare, salted_hmac
from twisted_uploads.errors import ErrorCode, UploadError
from twisted_uploads.slots import SlotConfig
from twisted_uploads.tokens import MAX_ADOPT_SESSIONS, Handshake, TokenGrant, adopt_from_payload

TOKEN_SALT = "twisted_uploads.token"
SESSION_BINDING_SALT = "twisted_uploads.session"
TOKEN_VERSION = 1


def session_binding(secret: str, django_session_key: str) -> str:
    """Return the keyed hash of a Django session key that a token carries (never the key itself)."""
    return salted_hmac(SESSION_BINDING_SALT, django_session_key, secret=secret, algorithm="sha256").hexdigest()[:32]


def mint_token(secret: str, upload_session: str, slots: Mapping[str, SlotConfig], ttl: float,
               django_session_key: str, now: float | None = None, adopt: Sequence[str] = ()) -> str:
    """Sign a token granting ``upload_session`` the given slots for ``ttl`` seconds.

    ``adopt`` lists upload sessions of earlier pages *of the same Django session* whose paused entries this page
    may continue (resume after a reload); the signature keeps anyone from adding another user's.
    """
    issued = time.time() if now is None else now
    payload = {
        "v": TOKEN_VERSION,
        "session": upload_session,
        "slots": {name: config.to_dict() for name, config in slots.items()},
        "exp": int(issued + ttl),
        "sk": session_binding(secret, django_session_key),
    }
    if adopt:
        payload["adopt"] = list(adopt)[:MAX_ADOPT_SESSIONS]
    return signing.dumps(payload, key=secret, salt=TOKEN_SALT, compress=True)


def _load(token: str, secret: str, fallback_secrets: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(token, str) or not token or not secret:
        raise UploadError(ErrorCode.INVALID_TOKEN)
    try:
        payload = signing.loads(token, key=secret, salt=TOKEN_SALT, fallback_keys=list(fallback_secrets))
    except (signing.BadSignature, ValueError, UnicodeDecodeError) as exc:
        raise UploadError(ErrorCode.INVALID_TOKEN) from exc
    if not isinstance(payload, dict) or payload.get("v") != TOKEN_VERSION:
        raise UploadError(ErrorCode.INVALID_TOKEN, "The upload token has an unknown version.")
    return payload


class DjangoTokenVerifier:
    """Verify Django-minted tokens for the upload server: signature, version, expiry, slot configs and the
    session binding.

    Holds its keys and the session cookie's name (``SESSION_COOKIE_NAME``) instead of reading settings so that it
    can run in the reactor thread, and takes a clock function so expiry is testable.
    """

    def __init__(self, secret: str, fallback_secrets: tuple[str, ...] = (), now: Any = time.time, *,
                 session_cookie: str = "sessionid") -> None:
        self._secret = secret
        self._fallback_secrets = tuple(fallback_secrets)
        self._now = now
        self._session_cookie = session_cookie

    def __call__(self, token: str, handshake: Handshake) -> TokenGrant:
        """Return the grant a valid token presented with its session carries; raise ``UploadError(invalid_token)``
        otherwise."""
        payload = _load(token, self._secret, self._fallback_secrets)
        try:
            session = payload["session"]
            expires_at = float(payload["exp"])
            slots = {str(name): SlotConfig.from_dict(config) for name, config in dict(payload["slots"]).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise UploadError(ErrorCode.INVALID_TOKEN, "The upload token is malformed.") from exc
        if not isinstance(session, str) or not session:
            raise UploadError(ErrorCode.INVALID_TOKEN, "The upload token is malformed.")
        if expires_at <= self._now():
            raise UploadError(ErrorCode.INVALID_TOKEN, "The upload token has expired; reload the page.")
        self._check_binding(payload, handshake)
        return TokenGrant(session=session, slots=slots, expires_at=expires_at, adopt=adopt_from_payload(payload))

    def _check_binding(self, payload: Mapping[str, Any], handshake: Handshake) -> None:
        """The handshake's session cookie must be the one the token was minted for (a key under any of the
        secrets the signature may have been made with, so a rotated secret keeps working like the signature)."""
        session_key = handshake.cookies.get(self._session_cookie)
        if not session_key:
            raise UploadError(ErrorCode.INVALID_TOKEN, "The upload token was presented without the session cookie "
                                                       "of the page it belongs to; reload the page.")
        bound = str(payload.get("sk", ""))
        if not any(constant_time_compare(bound, session_binding(key, session_key))
                   for key in (self._secret, *self._fallback_secrets)):
            raise UploadError(ErrorCode.INVALID_TOKEN, "The upload token belongs to another browser session; "
                                                       "reload the page.")


def token_matches_session(token: str, secret: str, django_session_key: str,
                          fallback_secrets: tuple[str, ...] = ()) -> bool:
    """Tell whether a (signature-valid) token was minted for this Django session.

    For servers that can see the handshake's session cookie; the view side needs no such check because the upload
    session id is only reachable through the view state stored in the owning Django session.
    """
    try:
        payload = _load(token, secret, fallback_secrets)
    except UploadError:
        return False
    return constant_time_compare(str(payload.get("sk", "")), session_binding(secret, django_session_key))
