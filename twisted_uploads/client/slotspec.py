"""The command line's small languages: a slot (``NAME:field=value,...``), a size (``10MB``), a duration (``2h``).

Kept apart from the argument parser so every rule has one place, one error message and its own tests. Every
error is a ``ValueError`` whose text says what was wrong and what would be right.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from ..slots import SlotConfig

#: Byte units: decimal (SI) and binary (IEC), case-insensitive; "k", "m", "g" alone are refused (ambiguous).
SIZE_UNITS: dict[str, int] = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}
#: Duration units; a bare number is seconds.
DURATION_UNITS: dict[str, int] = {"": 1, "s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}

_NUMBER_WITH_UNIT = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*")

_INT_FIELDS = ("max_entries",)
_SIZE_FIELDS = ("max_file_size", "chunk_size")
_BOOL_FIELDS = ("auto_upload", "allow_active_content")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
SLOT_FIELDS = ("accept", "max_entries", "max_file_size", "chunk_size", "auto_upload", "chunk_timeout",
               "allow_active_content")

#: A field's start inside the spec: a comma (or the start), a known field name, "=".
_FIELD_START = re.compile(r"(?:^|,)\s*([A-Za-z_][A-Za-z0-9_]*)\s*=")


def parse_size(text: str) -> int:
    """``"10MB"`` → 10000000, ``"1GiB"`` → 1073741824, ``"65536"`` → 65536 (whole bytes only)."""
    match = _NUMBER_WITH_UNIT.fullmatch(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in SIZE_UNITS:
        raise ValueError(f"{text!r} is not a size; use bytes or a number with a unit: "
                         f"{', '.join(u for u in ('B', 'kB', 'MB', 'GB', 'TB', 'KiB', 'MiB', 'GiB', 'TiB'))} "
                         f"(e.g. 10MB, 1.5GiB)")
    value = Decimal(match.group(1)) * SIZE_UNITS[unit]
    if value != value.to_integral_value():
        raise ValueError(f"{text!r} is not a whole number of bytes")
    return int(value)


def parse_duration(text: str) -> float:
    """``"3600"`` or ``"3600s"`` → 3600.0, ``"15m"`` → 900.0, ``"2h"``, ``"1d"``; must be positive."""
    match = _NUMBER_WITH_UNIT.fullmatch(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in DURATION_UNITS:
        raise ValueError(f"{text!r} is not a duration; use seconds or a number with s, m, h or d (e.g. 90, 15m, 2h)")
    seconds = float(Decimal(match.group(1)) * DURATION_UNITS[unit])
    if seconds <= 0:
        raise ValueError(f"{text!r}: a duration must be positive")
    return seconds


def _split_fields(spec: str) -> list[tuple[str, str]]:
    """``accept=.png,.jpg,max_entries=3`` → [("accept", ".png,.jpg"), ("max_entries", "3")].

    A comma starts a new field only when ``name=`` follows it, so ``accept``'s own commas need no quoting; a value
    may also be quoted (``accept=".png,.jpg"``), as a shell user may expect.
    """
    fields: list[tuple[str, str]] = []
    position = 0
    spec = spec.strip()
    while position < len(spec):
        start = _FIELD_START.match(spec, position)
        if start is None:
            raise ValueError(f"expected field=value at {spec[position:]!r}")
        key, position = start.group(1), start.end()
        rest = spec[position:].lstrip()
        if rest[:1] in ("'", '"'):
            quote = rest[0]
            closing = rest.find(quote, 1)
            if closing < 0:
                raise ValueError(f"{key}: unterminated quote in {rest!r}")
            value = rest[1:closing]
            position = len(spec) - len(rest) + closing + 1
            if position < len(spec) and spec[position] != ",":
                raise ValueError(f"{key}: expected a comma after the quoted value, got {spec[position:]!r}")
        else:
            following = _FIELD_START.search(spec, position)
            end = following.start() if following is not None else len(spec)
            value, position = spec[position:end], end
        fields.append((key, value.strip()))
    return fields


def parse_slot(text: str) -> tuple[str, SlotConfig]:
    """``NAME`` or ``NAME:field=value,...`` → (name, SlotConfig), with readable errors for every mistake."""
    name, _, spec = text.partition(":")
    name = name.strip()
    if not name:
        raise ValueError(f"{text!r}: a slot needs a name before the colon, e.g. files:max_entries=3")
    values: dict[str, Any] = {}
    try:
        for key, value in _split_fields(spec):
            if key in values:
                raise ValueError(f"{key} given twice")
            if key in _INT_FIELDS:
                if not value.isdigit():
                    raise ValueError(f"{key} must be a whole number, got {value!r}")
                values[key] = int(value)
            elif key in _SIZE_FIELDS:
                values[key] = parse_size(value)
            elif key == "chunk_timeout":
                values[key] = parse_duration(value)
            elif key in _BOOL_FIELDS:
                if value.lower() not in _TRUE + _FALSE:
                    raise ValueError(f"{key} must be true or false, got {value!r}")
                values[key] = value.lower() in _TRUE
            elif key == "accept":
                # ";" was the old separator; it still works where a shell lets it through.
                values[key] = ",".join(part.strip() for part in re.split(r"[,;]", value) if part.strip())
            else:
                raise ValueError(f"unknown field {key!r} (fields: {', '.join(SLOT_FIELDS)})")
        return name, SlotConfig(**values)
    except ValueError as error:
        raise ValueError(f"slot {name!r}: {error}") from None
