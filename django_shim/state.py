"""Server-side view state: a LiveView's public attributes kept in the Django session between requests.

Each rendered page is one *view instance* with a random ``view id``; its state is stored under that id in the
session, so two tabs of the same page do not overwrite each other, and a view id only ever resolves inside the
Django session that created it (which is what confines an upload session to its owner). A few recent view states
are kept per session (``UPLOADS_MAX_VIEWS``) so navigating away and back — or a no-JavaScript POST that arrives
after another page was opened — still finds the state, while the session cannot grow without bound.

Values must survive Django's session serializer (JSON by default): :func:`check_serializable` names the attribute
that does not, instead of letting the session save fail later with no hint.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from django.contrib.sessions.backends.base import SessionBase

SESSION_KEY = "twisted_uploads.views"

_VIEW_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")


def new_view_id() -> str:
    """A fresh, unguessable view id (also safe inside HTML attributes and URLs)."""
    return secrets.token_urlsafe(12)


def new_upload_session_id() -> str:
    """A fresh, unguessable upload session id (the reactor side's unit of ownership)."""
    return secrets.token_urlsafe(18)


def looks_like_view_id(value: object) -> bool:
    """Reject obviously bogus ids before touching the session."""
    return isinstance(value, str) and 0 < len(value) <= 64 and set(value) <= _VIEW_ID_CHARS


@dataclass
class ViewState:
    """What is remembered of one view instance."""

    view_class: str
    attributes: dict[str, Any] = field(default_factory=dict)
    upload_session: str = ""
    upload_slots: dict[str, dict[str, Any]] = field(default_factory=dict)
    touched: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"c": self.view_class, "a": self.attributes, "u": self.upload_session,
                "s": self.upload_slots, "t": self.touched}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ViewState:
        return cls(view_class=data["c"], attributes=dict(data.get("a") or {}), upload_session=data.get("u", ""),
                   upload_slots=dict(data.get("s") or {}), touched=float(data.get("t", 0.0)))


class UnserializableState(TypeError):
    """A view attribute cannot be stored in the session."""


def check_serializable(view_class: str, attributes: dict[str, Any]) -> None:
    """Raise :class:`UnserializableState` naming the first attribute JSON cannot carry."""
    for name, value in attributes.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise UnserializableState(
                f"{view_class}.{name} = {value!r} cannot be kept between requests: view state is stored in the "
                f"Django session, so public attributes must be JSON values (str, int, float, bool, None, list, "
                f"dict). Prefix the attribute with '_' to keep it out of the state.") from exc


class ViewStateStore:
    """The view states of one Django session."""

    def __init__(self, session: SessionBase, max_views: int) -> None:
        self._session = session
        self._max_views = max(1, int(max_views))

    def load(self, view_id: str, view_class: str) -> ViewState | None:
        """Return the state of ``view_id`` if this session has it for this view class."""
        if not looks_like_view_id(view_id):
            return None
        raw = (self._session.get(SESSION_KEY) or {}).get(view_id)
        if not isinstance(raw, dict):
            return None
        try:
            state = ViewState.from_dict(raw)
        except (KeyError, TypeError, ValueError):
            return None
        return state if state.view_class == view_class else None

    def earlier_upload_sessions(self, view_class: str, except_view_id: str, limit: int) -> list[str]:
        """Upload sessions of this session's other views of ``view_class``, most recently used first.

        A page reloaded mid-upload is a new view instance; these are what its token lets it continue.
        """
        views = self._session.get(SESSION_KEY) or {}
        ordered = sorted(((float(raw.get("t", 0.0)), raw.get("u", "")) for view_id, raw in views.items()
                          if view_id != except_view_id and isinstance(raw, dict) and raw.get("c") == view_class),
                         reverse=True)
        return [upload_session for _touched, upload_session in ordered if upload_session][:limit]

    def save(self, view_id: str, state: ViewState) -> None:
        """Store ``state`` under ``view_id``, evicting the least recently used states beyond the limit."""
        check_serializable(state.view_class, state.attributes)
        state.touched = time.time()
        views = dict(self._session.get(SESSION_KEY) or {})
        views[view_id] = state.to_dict()
        if len(views) > self._max_views:
            ordered = sorted(views.items(), key=lambda item: float(item[1].get("t", 0.0)), reverse=True)
            views = dict(ordered[: self._max_views])
        self._session[SESSION_KEY] = views
