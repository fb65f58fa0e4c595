"""How an :class:`~twisted_uploads.records.EntryRecord` is kept in a Redis hash (layout: :mod:`.redisscripts`).

The fields the Lua scripts decide on are hash fields of their own, the rest one JSON document, so a script changes
a status or a claim without decoding or re-encoding JSON (Redis's cjson would turn ``[]`` into ``{}`` and round
floats to 14 digits).
"""

from __future__ import annotations

import json
from dataclasses import asdict, fields
from typing import Any, Sequence

from twisted.logger import Logger

from .records import EntryRecord

log = Logger()

#: Record fields the scripts read or decide on, kept as hash fields of their own rather than inside ``json``.
SCRIPT_FIELDS = ("session", "status", "server", "deadline", "claimed_until", "cancel_pending", "error", "message")
#: Read-only copies the scripts need (bounds, lookup by ref); they stay in ``json`` too.
INDEX_FIELDS = ("slot", "size", "ref")
_RECORD_FIELDS = {f.name for f in fields(EntryRecord)}


def encode_record(record: EntryRecord) -> list[str]:
    """The record as hash field/value pairs (absent = None)."""
    data = asdict(record)
    data.pop("entry")
    body = {name: value for name, value in data.items() if name not in SCRIPT_FIELDS}
    pairs = ["json", json.dumps(body, separators=(",", ":"), sort_keys=True)]
    for name in INDEX_FIELDS:
        pairs += [name, str(data[name])]
    for name in SCRIPT_FIELDS:
        value = data[name]
        if value is None or value is False:
            continue
        if name == "cancel_pending":
            value = "1"
        elif isinstance(value, float):
            value = repr(value)
        pairs += [name, str(value)]
    return pairs


def decode_record(flat: Sequence[Any]) -> EntryRecord | None:
    """A record from its hash (a flat field/value list); None, logged, for one that is not a record."""
    if not flat:
        return None
    stored = dict(zip(flat[::2], flat[1::2]))
    try:
        data = json.loads(stored["json"])
        data["entry"] = int(stored["entry"])
        data["session"] = stored["session"]
        data["status"] = stored["status"]
        data["server"] = stored.get("server", "")
        for name in ("deadline", "claimed_until"):
            data[name] = float(stored[name]) if stored.get(name) else None
        data["cancel_pending"] = stored.get("cancel_pending") == "1"
        data["error"] = stored.get("error")
        data["message"] = stored.get("message")
        return EntryRecord(**{name: value for name, value in data.items() if name in _RECORD_FIELDS})
    except (KeyError, TypeError, ValueError) as error:
        log.warn("Ignoring a malformed entry record in Redis: {error}", error=error)
        return None
