"""Durable entry records: what a restarted server needs to recover every entry it had (DESIGN.md §5).

Each entry has a small JSON record beside its bytes, ``<session dir>/<entry id>.json``, written before the entry's
first byte is acknowledged and replaced atomically (write, fsync, rename) on every status change. Deadlines are
absolute times on the registry's clock (wall time in production), so a server that starts again knows how long each
recovered entry still has.

Several servers (or sites) may share one directory. Each server holds an exclusive ``flock`` on its own lock file
``.owners/<server id>.lock`` for as long as it runs, and stamps its id into the records it writes. At start a server
takes over only the records whose owner's lock is free — the owner died (``kill -9``, crash, deploy) — and leaves
every live server's records and files alone. Bytes with no record are deleted only once they are older than the
longest TTL, so a file another server has just opened (its record follows within the same reactor turn) is never
touched.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from twisted.logger import Logger
from zope.interface import Interface, implementer

from .storage import session_directory_name

log = Logger()

RECORD_VERSION = 1
RECORD_SUFFIX = ".json"
OWNERS_DIRECTORY = ".owners"


@dataclass
class EntryRecord:
    """Everything about an entry except its bytes, as stored."""

    session: str
    entry: int
    ref: str
    slot: str
    config: dict[str, Any]
    name: str
    type: str
    size: int
    status: str
    received: int = 0
    sha256: str | None = None
    error: str | None = None
    message: str | None = None
    detected_type: str | None = None
    relative_path: str | None = None
    fingerprint: Any = None
    #: Where a complete entry's bytes are (a path, or ``s3://bucket/key``); None before it is complete.
    location: str | None = None
    #: The writer's resumable state (an S3 upload id and its parts), so another process can continue the entry.
    store: dict[str, Any] | None = None
    #: Until when (registry clock) a consuming request holds the entry; None when unclaimed.
    claimed_until: float | None = None
    #: The application cancelled the entry while a request held it: it goes when the claim ends.
    cancel_pending: bool = False
    #: Absolute time (registry clock) after which the entry may be deleted; None while it is being streamed.
    deadline: float | None = None
    #: The id of the server that owns the entry (whose lock must be free before another server takes it over).
    server: str = ""
    v: int = RECORD_VERSION

    def to_json(self) -> bytes:
        """The record as stored."""
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> "EntryRecord":
        """Parse a stored record; raises ``ValueError`` for anything that is not one."""
        raw = json.loads(data)
        if not isinstance(raw, dict) or raw.get("v") != RECORD_VERSION:
            raise ValueError("not an entry record of this version")
        try:
            record = cls(**raw)
        except TypeError as error:
            raise ValueError(f"malformed entry record: {error}") from None
        if not isinstance(record.entry, int) or not isinstance(record.session, str) or not record.session:
            raise ValueError("malformed entry record")
        return record


class IEntryRecords(Interface):
    """Where the in-process registry keeps its entries' records (the seam a shared registry replaces)."""

    server_id: str  # type: ignore[misc]

    def save(record: EntryRecord, durable: bool) -> None:  # type: ignore[misc]
        """Write ``record`` atomically; ``durable`` also fsyncs it (status changes). Raises ``OSError``."""

    def delete(session_id: str, entry_id: int) -> None:  # type: ignore[misc]
        """Forget an entry's record (consumed, expired)."""

    def recover() -> list[EntryRecord]:  # type: ignore[misc]
        """Take over every record whose server is gone; return them, now stamped with this server's id."""

    def sweep(max_age: float) -> int:  # type: ignore[misc]
        """Delete bytes that have no record and are older than ``max_age`` seconds; return how many."""

    def close() -> None:  # type: ignore[misc]
        """Release this server's ownership (service stop): another server may then recover its records."""


@implementer(IEntryRecords)
class MemoryRecords:
    """Records that are not kept anywhere: for stores without a directory (nothing survives a restart)."""

    def __init__(self) -> None:
        self.server_id = secrets.token_hex(8)

    def save(self, record: EntryRecord, durable: bool) -> None:
        record.server = self.server_id

    def delete(self, session_id: str, entry_id: int) -> None:
        pass

    def recover(self) -> list[EntryRecord]:
        return []

    def sweep(self, max_age: float) -> int:
        return 0

    def close(self) -> None:
        pass


@implementer(IEntryRecords)
class DirectoryRecords:
    """Records as JSON files beside the entries' bytes under ``root`` (the temp-file store's root)."""

    def __init__(self, root: str | os.PathLike[str],
                 run_in_thread: Callable[..., None] | None = None) -> None:
        """``run_in_thread`` (e.g. ``reactor.callInThread``) moves the fsyncs off the calling thread.

        The write and the rename happen at once either way — that is what makes a record survive the process being
        killed, and what must precede the first acknowledgement. The fsyncs only guard against a power loss, so a
        server lets a thread pool do them rather than stall its reactor (about 3 ms each on a virtual disk).
        """
        self.root = Path(root).resolve()
        self._run_in_thread = run_in_thread
        self.server_id = secrets.token_hex(8)
        owners = self.root / OWNERS_DIRECTORY
        owners.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._lock_path = owners / f"{self.server_id}.lock"
        self._lock = open(self._lock_path, "wb")  # noqa: SIM115 - held for the server's lifetime
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _path(self, session_id: str, entry_id: int) -> Path:
        return self.root / session_directory_name(session_id) / f"{entry_id}{RECORD_SUFFIX}"

    def save(self, record: EntryRecord, durable: bool) -> None:
        record.server = self.server_id
        path = self._path(record.session, record.entry)
        path.parent.mkdir(mode=0o700, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{self.server_id}.tmp")
        with open(temporary, "wb") as target:
            target.write(record.to_json())
        os.replace(temporary, path)
        if durable:
            if self._run_in_thread is None:
                _sync(path)
            else:
                self._run_in_thread(_sync, path)

    def delete(self, session_id: str, entry_id: int) -> None:
        self._path(session_id, entry_id).unlink(missing_ok=True)

    def recover(self) -> list[EntryRecord]:
        recovered: list[EntryRecord] = []
        dead: dict[str, Any] = {}
        alive: set[str] = {self.server_id}
        try:
            for path in self._record_paths():
                record = _read_record(path)
                if record is None or record.server in alive:
                    continue
                if record.server not in dead:
                    lock = _take_lock_of(self.root / OWNERS_DIRECTORY, record.server)
                    if lock is None:
                        alive.add(record.server)
                        continue
                    dead[record.server] = lock
                # Read again under the dead owner's lock: a server that started at the same moment may have taken
                # the record over already (it rewrote the owner before releasing the lock).
                record = _read_record(path)
                if record is None or record.server not in dead:
                    continue
                self.save(record, durable=True)
                recovered.append(record)
        finally:
            for server_id, lock in dead.items():
                (self.root / OWNERS_DIRECTORY / f"{server_id}.lock").unlink(missing_ok=True)
                lock.close()
        if recovered:
            log.info("Recovered {count} upload entries in {root}", count=len(recovered), root=str(self.root))
        return recovered

    def sweep(self, max_age: float) -> int:
        removed = 0
        now = time.time()
        for directory in self._session_directories():
            directory_age = _age(directory, now)  # before removing anything changes it
            names = set(os.listdir(directory))
            recorded = {name[: -len(RECORD_SUFFIX)] for name in names if name.endswith(RECORD_SUFFIX)}
            for name in names:
                if name.endswith(RECORD_SUFFIX) or name.split(".", 1)[0] in recorded:
                    continue
                path = directory / name
                if _age(path, now) > max_age:
                    _remove(path)
                    removed += 1
            if not recorded and directory_age > max_age:
                try:
                    directory.rmdir()
                except OSError:
                    pass
        if removed:
            log.info("Swept {count} unrecorded upload files older than {age:g} s from {root}", count=removed,
                     age=max_age, root=str(self.root))
        return removed

    def close(self) -> None:
        if not self._lock.closed:
            self._lock_path.unlink(missing_ok=True)
            self._lock.close()

    def _session_directories(self) -> Iterator[Path]:
        try:
            children = list(self.root.iterdir())
        except FileNotFoundError:
            return
        for child in children:
            if len(child.name) == 32 and all(c in "0123456789abcdef" for c in child.name) and child.is_dir():
                yield child

    def _record_paths(self) -> Iterator[Path]:
        for directory in self._session_directories():
            for path in sorted(directory.glob(f"*{RECORD_SUFFIX}")):
                yield path


def _read_record(path: Path) -> EntryRecord | None:
    try:
        return EntryRecord.from_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        log.warn("Ignoring unreadable upload record {path}: {error}", path=str(path), error=error)
        return None


def _take_lock_of(owners: Path, server_id: str) -> Any:
    """The dead server's lock, held; or None while that server still runs."""
    if not server_id or "/" in server_id or server_id.startswith("."):
        return open(os.devnull, "rb")  # noqa: SIM115 - a record without a valid owner belongs to nobody
    try:
        lock = open(owners / f"{server_id}.lock", "ab")  # noqa: SIM115 - closed by recover()
    except OSError:
        return open(os.devnull, "rb")  # noqa: SIM115
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        lock.close()
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise
    return lock


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _remove(path: Path) -> None:
    try:
        if path.is_dir():
            return
        path.unlink()
    except FileNotFoundError:
        pass


def _sync(path: Path) -> None:
    """Make a written and renamed record durable: the file, then its directory (POSIX needs both)."""
    for target in (path, path.parent):
        try:
            descriptor = os.open(target, os.O_RDONLY)
        except OSError:
            continue  # replaced or removed meanwhile: the newer state is synced by its own call
        try:
            os.fsync(descriptor)
        except OSError as error:
            log.warn("Could not sync {path}: {error}", path=str(target), error=error)
        finally:
            os.close(descriptor)
