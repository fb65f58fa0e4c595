"""Where entry bytes go: a writer interface (the seam for S3 and friends) and the default temp-file store.

Each upload session gets its own directory; an entry is written to ``<entry id>.part`` and renamed to
``<entry id>`` once complete, so a crash never leaves a partial file that looks finished.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any, BinaryIO, Callable

from twisted.logger import Logger
from zope.interface import Attribute, Interface, implementer

log = Logger()



class IEntryWriter(Interface):
    """Receives one entry's bytes in order.

    ``suspend``, ``close`` and ``abort`` return their result or a Deferred of it (a remote store finishes in a
    thread); callers wrap them in ``maybeDeferred`` where they must wait. ``write`` never waits on anything but the
    local disk.
    """

    durable = Attribute("Bytes a resume (by this or another process) can recover; acknowledgements never exceed it.")
    pending = Attribute("Bytes written but not durable yet (the connection stops reading while this is large).")

    def write(data: bytes) -> None:  # type: ignore[misc]
        """Append ``data``; raise ``OSError`` when the bytes cannot be kept."""

    def watch(callback: Callable[[int], None]) -> None:  # type: ignore[misc]
        """Call ``callback(durable)`` in the reactor thread whenever ``durable`` grows after a ``write`` returned."""

    def state() -> dict[str, Any]:  # type: ignore[misc]
        """What another process needs to continue this entry (kept in its record); empty for local files."""

    def suspend() -> None:  # type: ignore[misc]
        """Release the open file but keep the bytes (a paused entry holds no file descriptor)."""

    def close() -> str:  # type: ignore[misc]
        """Finish the entry and return the location of the stored file."""

    def abort() -> None:  # type: ignore[misc]
        """Discard everything written so far."""


class IEntryStore(Interface):
    """Opens writers and owns stored files until they are consumed or expire."""

    def open(session_id: str, entry_id: int) -> IEntryWriter:  # type: ignore[misc]
        """Start storing a new entry."""

    def reopen(session_id: str, entry_id: int, offset: int) -> IEntryWriter:  # type: ignore[misc]
        """Continue a partial entry at ``offset`` (bytes beyond it are dropped); ``OSError`` if it is gone."""

    def partial_size(session_id: str, entry_id: int) -> int | None:  # type: ignore[misc]
        """Bytes a partial entry holds, or None when there is none."""

    def read_partial(session_id: str, entry_id: int) -> BinaryIO:  # type: ignore[misc]
        """The partial entry's bytes from the start (to rebuild its hash after a restart)."""

    def complete_location(session_id: str, entry_id: int) -> str | None:  # type: ignore[misc]
        """Where a complete entry's file is, or None when it is gone."""

    def adopt(session_id: str, entry_id: int, source_path: str) -> str:  # type: ignore[misc]
        """Take over an already complete file (the no-JavaScript fallback); return its new location."""

    def delete(location: str) -> None:  # type: ignore[misc]
        """Remove a stored file once consumed, cancelled or expired."""

    def delete_partial(session_id: str, entry_id: int) -> None:  # type: ignore[misc]
        """Remove a partial entry's bytes that no writer holds open (a paused or recovered entry). Idempotent."""

    def discard_session(session_id: str) -> None:  # type: ignore[misc]
        """Remove what is left of a session that has no entries any more."""

    def move_partial(from_session: str, to_session: str, entry_id: int) -> None:  # type: ignore[misc]
        """Hand a partial entry's bytes (no writer open) to another session of the same store."""


def session_directory_name(session_id: str) -> str:
    """A file-system-safe, fixed-length directory name for any session id."""
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()[:32]


@implementer(IEntryWriter)
class TempFileWriter:
    """Streams one entry into ``<dir>/<entry id>.part``.

    Unbuffered: each chunk is one ``write()`` straight from the frame's memory. A user-space buffer would add a
    copy and, at 1 MiB per entry, cost 200 MiB of RSS for 200 concurrent uploads (docs/benchmarks.md). What was
    written is in the kernel's page cache when ``write()`` returns, so an acknowledged offset survives the process
    dying (``kill -9``); only a power loss can take bytes that were not yet synced.
    """

    #: Bytes written never wait for anything: nothing is pending, everything written is what a resume finds.
    pending = 0

    def __init__(self, directory: Path, entry_id: int, offset: int | None = None) -> None:
        self.durable = offset or 0
        self._final = directory / str(entry_id)
        self._partial = directory / f"{entry_id}.part"
        if offset is None:
            self._file = open(self._partial, "wb", buffering=0)
        else:
            self._file = open(self._partial, "r+b", buffering=0)
            self._file.truncate(offset)
            self._file.seek(offset)

    def write(self, data: bytes) -> None:
        file = self._file
        if file.closed:
            raise OSError(0, "the entry's file is not open")
        view = memoryview(data)
        while view:
            written = file.write(view)
            view = view[written:]
        self.durable += len(data)

    def watch(self, callback: Callable[[int], None]) -> None:
        """Never called back: ``durable`` already grew when ``write`` returned."""

    def state(self) -> dict[str, Any]:
        return {}

    def suspend(self) -> None:
        self._file.close()

    def close(self) -> str:
        self._file.close()
        os.replace(self._partial, self._final)
        return str(self._final)

    def abort(self) -> None:
        try:
            self._file.close()
        except OSError:
            pass
        self._partial.unlink(missing_ok=True)


@implementer(IEntryStore)
class TempFileStore:
    """The default store: one directory per session under ``root``.

    Layout (no guarantee beyond the records, docs/protocol.md §8): ``<root>/<session dir>/<entry id>.part`` while
    streaming, ``<entry id>`` once complete, ``<entry id>.json`` its record, ``.owners/`` the servers' locks.
    """

    def __init__(self, root: str | os.PathLike[str], *, threaded: bool = False, reactor: Any = None,
                 threads: int | None = None) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        #: Write and hash each entry in a worker thread (twisted_uploads.threadedwriter) instead of on the reactor.
        self.threaded = threaded
        self._pool: Any = None
        self._reactor = reactor
        self._threads = threads
        #: Threaded writers still finishing on a partial file (a pause): a writer reopened on it waits for them.
        self._draining: dict[Path, Any] = {}

    def _writer(self, directory: Path, entry_id: int, offset: int | None) -> Any:
        if not self.threaded:
            return TempFileWriter(directory, entry_id, offset)
        from twisted.internet.defer import Deferred

        from .threadedwriter import DEFAULT_THREADS, ThreadedFileWriter, WriterPool

        if self._pool is None:
            self._pool = WriterPool(self._reactor, self._threads or DEFAULT_THREADS)
        partial = directory / f"{entry_id}.part"
        previous = self._draining.get(partial)
        after: Any = None
        if previous is not None:
            after = Deferred()
            previous.addBoth(lambda result: (after.callback(None), result)[1])
        writer = ThreadedFileWriter(directory, entry_id, offset, self._pool, after=after)
        drained = writer.drained
        self._draining[partial] = drained

        def forget(result: object) -> object:
            if self._draining.get(partial) is drained:
                del self._draining[partial]
            return result

        drained.addBoth(forget)
        return writer

    def stop(self) -> None:
        """Join the worker threads of a threaded store (they are also stopped when the reactor shuts down)."""
        if self._pool is not None:
            self._pool.stop()

    def _session_dir(self, session_id: str) -> Path:
        directory = self.root / session_directory_name(session_id)
        directory.mkdir(mode=0o700, exist_ok=True)
        return directory

    def open(self, session_id: str, entry_id: int) -> TempFileWriter:
        return self._writer(self._session_dir(session_id), entry_id, None)

    def reopen(self, session_id: str, entry_id: int, offset: int) -> TempFileWriter:
        return self._writer(self.root / session_directory_name(session_id), entry_id, offset)

    def partial_size(self, session_id: str, entry_id: int) -> int | None:
        try:
            return (self.root / session_directory_name(session_id) / f"{entry_id}.part").stat().st_size
        except FileNotFoundError:
            return None

    def read_partial(self, session_id: str, entry_id: int) -> BinaryIO:
        return open(self.root / session_directory_name(session_id) / f"{entry_id}.part", "rb")

    def complete_location(self, session_id: str, entry_id: int) -> str | None:
        path = self.root / session_directory_name(session_id) / str(entry_id)
        return str(path) if path.is_file() else None

    def adopt(self, session_id: str, entry_id: int, source_path: str) -> str:
        target = self._session_dir(session_id) / str(entry_id)
        shutil.move(source_path, target)
        return str(target)

    def delete(self, location: str) -> None:
        path = Path(location)
        if path.parent.parent != self.root:
            raise ValueError(f"{location} is not a file of this store")
        path.unlink(missing_ok=True)

    def delete_partial(self, session_id: str, entry_id: int) -> None:
        (self.root / session_directory_name(session_id) / f"{entry_id}.part").unlink(missing_ok=True)

    def move_partial(self, from_session: str, to_session: str, entry_id: int) -> None:
        source = self.root / session_directory_name(from_session) / f"{entry_id}.part"
        target = self._session_dir(to_session) / f"{entry_id}.part"
        os.replace(source, target)
        draining = self._draining.pop(source, None)
        if draining is not None:
            # A paused threaded writer still finishing writes into the moved file (its descriptor follows it).
            self._draining[target] = draining
            draining.addBoth(lambda result: (self._draining.pop(target, None)
                                             if self._draining.get(target) is draining else None, result)[1])

    def discard_session(self, session_id: str) -> None:
        # Only an empty directory goes: another server sharing the root may have just opened a file in it.
        try:
            (self.root / session_directory_name(session_id)).rmdir()
        except OSError:
            pass
