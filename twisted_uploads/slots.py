"""A slot's configuration: what one named upload field accepts, in one place.

Every limit a slot imposes and every way of violating it is declared here or in :mod:`.validation`, so the
server, the Django shim's no-JS fallback and the docs agree (the idea of Phoenix's ``upload_config.ex``).
"""

from __future__ import annotations

import mimetypes
from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping

MIN_CHUNK_SIZE = 1024
MAX_CHUNK_SIZE = 8 * 1024 * 1024


def _normalise_accept(accept: str) -> tuple[str, ...]:
    return tuple(part.strip().lower() for part in accept.split(",") if part.strip())


@dataclass(frozen=True)
class SlotConfig:
    """The limits of one upload slot, with the seed's defaults (``allow_upload()``'s signature)."""

    accept: str = ""
    max_entries: int = 1
    max_file_size: int = 10_000_000
    chunk_size: int = 65536
    auto_upload: bool = True
    chunk_timeout: float = 10.0
    allow_active_content: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.accept, str):
            raise ValueError("accept must be a comma-separated string")
        for spec in _normalise_accept(self.accept):
            if not (spec.startswith(".") or "/" in spec):
                raise ValueError(f"accept entry {spec!r} is neither an .extension nor a MIME type")
        _require_int("max_entries", self.max_entries, 1)
        _require_int("max_file_size", self.max_file_size, 1)
        _require_int("chunk_size", self.chunk_size, MIN_CHUNK_SIZE, MAX_CHUNK_SIZE)
        if not isinstance(self.auto_upload, bool) or not isinstance(self.allow_active_content, bool):
            raise ValueError("auto_upload and allow_active_content must be booleans")
        if isinstance(self.chunk_timeout, bool) or not isinstance(self.chunk_timeout, (int, float)):
            raise ValueError("chunk_timeout must be a number of seconds")
        if not 0 < self.chunk_timeout <= 3600:
            raise ValueError("chunk_timeout must be between 0 and 3600 seconds")

    @property
    def accept_specs(self) -> tuple[str, ...]:
        """The ``accept`` entries, lower-cased and stripped."""
        return _normalise_accept(self.accept)

    def accepts(self, name: str, mime: str) -> bool:
        """Whether a file called ``name`` with declared type ``mime`` matches ``accept`` (empty accepts all).

        A MIME spec also matches a file whose type is only known from its extension, because browsers report an
        empty type for extensions they do not know.
        """
        specs = self.accept_specs
        if not specs:
            return True
        lower_name = name.lower()
        mimes = {m for m in (mime.lower().strip(), mimetypes.guess_type(lower_name)[0] or "") if m}
        for spec in specs:
            if spec.startswith("."):
                if lower_name.endswith(spec):
                    return True
            elif spec.endswith("/*"):
                if any(m.startswith(spec[:-1]) for m in mimes):
                    return True
            elif spec in mimes:
                return True
        return False

    def to_dict(self) -> dict[str, Any]:
        """The JSON form used in tokens and in the ``welcome`` message."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SlotConfig":
        """Build from the JSON form, ignoring nothing silently: unknown keys are an error."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown slot fields: {', '.join(sorted(unknown))}")
        return cls(**dict(data))


def _require_int(name: str, value: Any, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ValueError(f"{name} must be {bound}, not {value}")


def slots_from_dict(data: Mapping[str, Any]) -> dict[str, SlotConfig]:
    """Parse ``{name: slot-dict}`` (as carried by a token)."""
    if not isinstance(data, Mapping):
        raise ValueError("slots must be an object")
    result = {}
    for name, config in data.items():
        if not isinstance(name, str) or not name or len(name) > 100:
            raise ValueError("slot names must be non-empty strings of at most 100 characters")
        if not isinstance(config, Mapping):
            raise ValueError(f"slot {name!r} must be an object")
        result[name] = SlotConfig.from_dict(config)
    return result
