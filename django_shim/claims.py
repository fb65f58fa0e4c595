"""Claims a request holds on entries it is consuming, and when they end: consumed after commit, else released.

``consume_uploaded_entries()`` claims a slot's complete entries in the reactor (so no other request can get them)
and consumes each one once the loop body for it returned. Inside ``transaction.atomic()`` the delete waits for the
commit (``transaction.on_commit``): a rolled-back transaction must not lose the file it failed to record. Whatever
the request still holds when it ends — the body raised, the loop was left early, the transaction rolled back — is
released here on ``request_finished``, so the entries are there for the next request at once rather than when the
claim's own TTL runs out (the safety net for code that runs outside a request).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from django.core.signals import request_finished
from django.db import transaction
from django.dispatch import receiver
from twisted.logger import Logger

if TYPE_CHECKING:
    from .bridge import UploadBridge

log = Logger()

_held = threading.local()


def _claims() -> dict[tuple[int, str, int], "UploadBridge"]:
    held = getattr(_held, "claims", None)
    if held is None:
        held = _held.claims = {}
    return held


def hold(bridge: "UploadBridge", session_id: str, entry_ids: list[int]) -> None:
    """Remember claims this thread's request took (released when the request ends unless consumed)."""
    for entry_id in entry_ids:
        _claims()[(id(bridge), session_id, entry_id)] = bridge


def consume_after_commit(bridge: "UploadBridge", session_id: str, entry_id: int) -> None:
    """Delete the entry now, or after the current transaction commits."""

    def consume() -> None:
        _claims().pop((id(bridge), session_id, entry_id), None)
        bridge.consume(session_id, entry_id)

    # Outside atomic() there is nothing to wait for (and a project without a database has no transactions).
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(consume)
    else:
        consume()


def release(bridge: "UploadBridge", session_id: str, entry_ids: list[int]) -> None:
    """Give claimed entries back now."""
    for entry_id in entry_ids:
        _claims().pop((id(bridge), session_id, entry_id), None)
    bridge.release(session_id, entry_ids)


def release_all() -> int:
    """Release every claim this thread still holds (the request ended); return how many."""
    held = _claims()
    if not held:
        return 0
    grouped: dict[tuple[int, str], tuple["UploadBridge", list[int]]] = {}
    for (bridge_id, session_id, entry_id), bridge in held.items():
        grouped.setdefault((bridge_id, session_id), (bridge, []))[1].append(entry_id)
    held.clear()
    count = 0
    for (_bridge_id, session_id), (bridge, entry_ids) in grouped.items():
        try:
            bridge.release(session_id, entry_ids)
            count += len(entry_ids)
        except Exception as error:  # noqa: BLE001 - the claim's TTL still frees them; the response must not fail
            log.warn("Could not release upload claims at the end of a request: {error}", error=error)
    return count


@receiver(request_finished)
def _release_at_request_end(**kwargs: Any) -> None:
    release_all()
