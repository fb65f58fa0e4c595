"""Seeded generators of hostile inputs: broken JSON, wrong types, missing fields, huge numbers, bad frames.

Each input is ``(kind, payload, is_binary)``. The generator knows the connection's own entries (from the server's
replies) so that it can also send frames with wrong offsets, too many bytes or oversized payloads *for entries that
exist*, which are the inputs that reach the deepest code.
"""

from __future__ import annotations

import json
import random
import secrets
import struct
from dataclasses import dataclass, field
from typing import Any

from twisted_uploads.codec import encode_chunk
from twisted_uploads.slots import SlotConfig
from twisted_uploads.tokens import make_token

from ..support import pdf_bytes, png_bytes
from .support import SECRET

#: The slots every hostile session is granted: small chunks, so oversized frames are cheap to send.
CHUNK = 4096
SLOTS = {"files": SlotConfig(max_entries=4, max_file_size=200_000, chunk_size=CHUNK),
         "avatar": SlotConfig(accept=".png,.jpg", max_file_size=100_000, chunk_size=CHUNK)}
#: The entry id the sync probe cancels: never a real entry, so its ``unknown_entry`` answer marks "all answered".
PROBE_ENTRY = 2**32 - 1
PROBE = json.dumps({"type": "cancel", "entry": PROBE_ENTRY}).encode()

_WEIRD_VALUES: list[Any] = [None, True, False, 0, -1, 1.5, 2**64, -(2**63), 10**30, 1e308, float("nan"),
                            float("inf"), "", "x" * 300, "\u0000\u202e", [], [1, 2], {}, {"a": 1}]
_WEIRD_NAMES = ["../../etc/passwd", "..", ".hidden", "a\u0000b.txt", "C:\\boot.ini", "x" * 5000, "😀.png",
                "\u202egnp.exe", "a/b/c.png", " ", "con.txt", "file.svg", "page.html", "run.js"]


def hostile_token(rng: random.Random) -> str:
    return make_token(SECRET, f"hostile-{rng.getrandbits(64):x}", SLOTS, 3600)


@dataclass
class OwnEntry:
    entry: int
    size: int
    sent: int = 0


@dataclass
class HostileInputs:
    """The inputs of one hostile worker; ``observe`` feeds it the server's replies."""

    rng: random.Random
    entries: dict[int, OwnEntry] = field(default_factory=dict)
    finished: list[int] = field(default_factory=list)
    refs: list[str] = field(default_factory=list)
    #: Declared sizes of announces not answered yet, by ref.
    announced: dict[str, int] = field(default_factory=dict)

    # -- what the server said ---------------------------------------------------------------------------------
    def observe(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            kind, entry = message.get("type"), message.get("entry")
            if kind == "accepted" and isinstance(entry, int):
                self.entries[entry] = OwnEntry(entry, self.announced.pop(message.get("ref"), 0), message["offset"])
            elif kind in ("complete", "cancelled", "error") and isinstance(entry, int) and entry in self.entries:
                del self.entries[entry]
                self.finished.append(entry)

    # -- before authentication (each ends its socket) ----------------------------------------------------------
    def before_auth(self) -> tuple[str, bytes, bool]:
        rng = self.rng
        choice = rng.randrange(9)
        if choice == 0:
            return "binary before auth", rng.randbytes(rng.randrange(0, 64)), True
        if choice == 1:
            return "garbage token", _json(type="auth", token=rng.randbytes(40).hex()), False
        if choice == 2:
            return "expired token", _json(type="auth", token=make_token(SECRET, "x", SLOTS, -5)), False
        if choice == 3:
            return "forged token", _json(type="auth", token=make_token("not-the-secret-0123456789", "x", SLOTS)), False
        if choice == 4:
            return "non-string token", _json(type="auth", token=rng.choice([None, 1, [], {}, True, 2**70])), False
        if choice == 5:
            return "auth without token", _json(type="auth"), False
        if choice == 6:
            return "announce before auth", _json(type="announce", ref="a", slot="files", name="a", mime="",
                                                 size=1), False
        if choice == 7:
            return "oversized auth", _json(type="auth", token="A" * rng.randrange(16_400, 40_000)), False
        return "bad JSON before auth", self._broken_json(), False

    # -- after authentication ------------------------------------------------------------------------------------
    def after_auth(self) -> tuple[str, bytes, bool]:
        rng = self.rng
        roll = rng.random()
        if roll < 0.10:
            return self._closing_text()
        if roll < 0.14:
            return self._closing_binary()
        if roll < 0.40:
            return self._announce()
        if roll < 0.55:
            return self._entry_message()
        if roll < 0.85:
            return self._frame_for_own_entry()
        return self._frame_for_unknown_entry()

    def _closing_text(self) -> tuple[str, bytes, bool]:
        rng = self.rng
        choice = rng.randrange(8)
        if choice == 0:
            return "bad JSON", self._broken_json(), False
        if choice == 1:
            return "JSON that is not an object", _json_value(rng.choice([[1, 2], 3, "s", None, True])), False
        if choice == 2:
            return "unknown message type", _json(type=rng.choice(["hello", "", "ANNOUNCE", "ack", "welcome"])), False
        if choice == 3:
            return "second auth", _json(type="auth", token=hostile_token(rng)), False
        if choice == 4:
            return "missing field", self._missing_field(), False
        if choice == 5:
            return "oversized control message", _json(type="cancel", entry=1, pad="p" * rng.randrange(16_400,
                                                                                                       60_000)), False
        if choice == 6:
            return "invalid UTF-8", b'{"type": "cancel", "entry": 1, "x": "\xff\xfe"}', False
        return "deeply nested JSON", b"[" * 50_000 + b"]" * 50_000, False

    def _closing_binary(self) -> tuple[str, bytes, bool]:
        rng = self.rng
        if rng.random() < 0.5:
            return "short binary frame", rng.randbytes(rng.randrange(0, 13)), True
        return "frame above max_frame", encode_chunk(rng.getrandbits(32), 0, rng.randbytes(70_000)), True

    def _announce(self) -> tuple[str, bytes, bool]:
        rng = self.rng
        ref = rng.choice([secrets.token_hex(4), secrets.token_hex(4), "", "r" * 65, *self.refs[-2:]])
        fields: dict[str, Any] = {"type": "announce", "ref": ref, "slot": rng.choice(["files", "avatar", "nope"]),
                                  "name": rng.choice(["a.bin", "b.png", "c.pdf", *_WEIRD_NAMES]),
                                  "mime": rng.choice(["", "image/png", "application/pdf", "text/html", "\u0000"]),
                                  "size": rng.choice([0, 1, 10, 5000, 150_000, 10**12, -1, 2**70, 1.5, "12",
                                                      None, float("nan")])}
        kind = "announce"
        if rng.random() < 0.3:
            name = rng.choice(["ref", "slot", "name", "mime", "size"])
            fields[name] = rng.choice(_WEIRD_VALUES)
            kind = "announce with a wrong-typed field"
        if isinstance(fields["ref"], str) and isinstance(fields["size"], int) and not isinstance(fields["size"], bool):
            self.announced[fields["ref"]] = fields["size"]
            self.refs.append(fields["ref"])
        return kind, _json(**fields), False

    def _missing_field(self) -> bytes:
        rng = self.rng
        message = rng.choice([{"type": "announce", "ref": "m", "slot": "files", "name": "m.bin", "mime": "",
                               "size": 5},
                              {"type": "resume", "entry": 1}, {"type": "cancel", "entry": 1}])
        message.pop(rng.choice([k for k in message if k != "type"]))
        return _json(**message)

    def _entry_message(self) -> tuple[str, bytes, bool]:
        rng = self.rng
        kind = rng.choice(["cancel", "resume"])
        pool = [*self.entries, *self.finished[-3:]]
        if pool and rng.random() < 0.6:
            return f"{kind} of an own entry", _json(type=kind, entry=rng.choice(pool)), False
        entry = rng.choice([rng.getrandbits(32) % PROBE_ENTRY, 0, -1, 2**64, 1.5, "7", None, [1]])
        return f"{kind} of an unknown or malformed entry", _json(type=kind, entry=entry), False

    def _frame_for_own_entry(self) -> tuple[str, bytes, bool]:
        rng = self.rng
        uploading = [e for e in self.entries.values() if e.size > 0]
        if not uploading:
            # Something to break: a real entry in the plain slot (or, sometimes, a PNG that will turn out a PDF).
            ref = secrets.token_hex(4)
            slot, name, size = ("files", "t.bin", 50_000) if rng.random() < 0.8 else ("avatar", "t.png", 20_000)
            self.announced[ref] = size
            self.refs.append(ref)
            return "announce (a target)", _json(type="announce", ref=ref, slot=slot, name=name,
                                                 mime="image/png" if slot == "avatar" else "", size=size), False
        entry = rng.choice(uploading)
        choice = rng.randrange(5)
        if choice == 0:
            payload = rng.randbytes(rng.randrange(1, CHUNK))
            offset = rng.choice([entry.sent + 1, max(0, entry.sent - 1), 2**63, entry.size])
            return "frame at a wrong offset", encode_chunk(entry.entry, offset, payload), True
        if choice == 1:
            return "payload above chunk_size", encode_chunk(entry.entry, entry.sent,
                                                             rng.randbytes(CHUNK + rng.randrange(1, 8000))), True
        if choice == 2:
            over = entry.size - entry.sent + rng.randrange(1, 100)
            if over > CHUNK:
                entry_bytes = rng.randbytes(CHUNK)
                entry.sent += CHUNK
                return "a correct chunk", encode_chunk(entry.entry, entry.sent - CHUNK, entry_bytes), True
            return "bytes beyond the declared size", encode_chunk(entry.entry, entry.sent, rng.randbytes(over)), True
        if choice == 3:
            head = pdf_bytes() if entry.sent == 0 else rng.randbytes(64)
            entry.sent += len(head)
            return "content of another type", encode_chunk(entry.entry, entry.sent - len(head), head), True
        payload = png_bytes()[: rng.randrange(1, 40)] if entry.sent == 0 else rng.randbytes(rng.randrange(1, CHUNK))
        entry.sent += len(payload)
        return "a correct chunk", encode_chunk(entry.entry, entry.sent - len(payload), payload), True

    def _frame_for_unknown_entry(self) -> tuple[str, bytes, bool]:
        rng = self.rng
        if self.finished and rng.random() < 0.3:
            return "frame for a finished entry", encode_chunk(rng.choice(self.finished), 0, b"late"), True
        header = struct.pack(">IQ", rng.getrandbits(32) % PROBE_ENTRY, rng.getrandbits(64))
        return "frame for an unknown entry", header + rng.randbytes(rng.randrange(1, 2000)), True

    def _broken_json(self) -> bytes:
        rng = self.rng
        valid = _json(type="announce", ref="r", slot="files", name="n.bin", mime="", size=10)
        choice = rng.randrange(4)
        if choice == 0:
            return valid[: rng.randrange(1, len(valid) - 1)]
        if choice == 1:
            mutated = bytearray(valid)
            for _ in range(rng.randrange(1, 6)):
                mutated[rng.randrange(len(mutated))] = rng.choice(b'{}[]",:\\ 0x')
            return bytes(mutated) if bytes(mutated) != valid else b"{"
        if choice == 2:
            return rng.choice([b"", b" ", b"null", b"{'type': 'auth'}", b'{"type": "auth",}', b"\x00" * 10])
        return rng.randbytes(rng.randrange(1, 300)).decode("latin-1").encode("utf-8")


def _json(**fields: Any) -> bytes:
    return json.dumps(fields).encode("utf-8")


def _json_value(value: Any) -> bytes:
    return json.dumps(value).encode("utf-8")
