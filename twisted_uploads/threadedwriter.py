"""A local entry writer that writes and hashes off the reactor thread (issue 9, "disk work off the reactor").

:class:`ThreadedFileWriter` has the shape of every :class:`~twisted_uploads.storage.IEntryWriter`: ``write``
returns at once, having queued the chunk; a worker writes it to ``<entry id>.part`` and feeds it to the entry's
running SHA-256 (both release the GIL), in order. ``durable`` is what the worker wrote, and grows by ``watch``
callbacks delivered in the reactor thread; the connection acknowledges only up to it, so the client's window is the
back-pressure: a writer never holds more than one window of queued chunks (``pending``) in memory.

Each writer is a *strand*: its jobs run one at a time, in order, on a small thread pool shared by the store, so 200
uploads do not need 200 threads and one slow disk write delays only its own entry. A writer reopened on a file whose
previous writer is still draining (a pause and a quick resume) starts its jobs only once that one finished.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from pathlib import Path
from typing import Any, Callable

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from .storage import IEntryWriter

log = Logger()

#: Worker threads a store shares between all its writers (hashing is CPU work: more threads than cores only adds
#: contention; a few more than one keep a slow disk write of one entry from holding up the others).
DEFAULT_THREADS = 4
#: Queued chunks the worker writes with one ``writev`` (fewer syscalls when it fell behind; the bytes are not copied).
WRITEV_BATCH = 64


class WriterPool:
    """The store's worker threads: started on first use, stopped when the reactor shuts down (or by ``stop``).

    Plain threads on a ``queue.SimpleQueue`` rather than Twisted's ``ThreadPool``: a strand is handed over once
    per burst of chunks, often once per chunk, and the C queue costs a fraction of ``callInThread``'s Python.
    """

    def __init__(self, reactor: Any = None, threads: int = DEFAULT_THREADS) -> None:
        if reactor is None:
            from twisted.internet import reactor as default_reactor

            reactor = default_reactor
        self.reactor = reactor
        self._count = threads
        self._queue: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._trigger: Any = None

    def call(self, function: Callable[[], None]) -> None:
        """Run ``function`` in a worker thread."""
        if not self._threads:
            self._threads = [threading.Thread(target=self._work, name=f"twisted-uploads-writer-{n}", daemon=True)
                             for n in range(self._count)]
            for thread in self._threads:
                thread.start()
            self._trigger = self.reactor.addSystemEventTrigger("during", "shutdown", self.stop)
        self._queue.put(function)

    def _work(self) -> None:
        while (function := self._queue.get()) is not None:
            try:
                function()
            except Exception:  # a bug in a job must not kill the thread that serves every other entry
                log.failure("An upload writer job failed")

    def stop(self) -> None:
        """Finish the queued jobs and join the threads (idempotent)."""
        threads, self._threads = self._threads, []
        trigger, self._trigger = self._trigger, None
        if trigger is not None and self.reactor.running:
            self.reactor.removeSystemEventTrigger(trigger)
        for _ in threads:
            self._queue.put(None)
        for thread in threads:
            thread.join()


@implementer(IEntryWriter)
class ThreadedFileWriter:
    """Streams one entry into ``<dir>/<entry id>.part`` from a worker thread; see the module docstring.

    ``hashes``: the writer feeds the entry's running hash itself (:meth:`write_hashed`), so the reactor never
    hashes. ``suspend`` and ``abort`` return Deferreds that never fail (failures are logged); ``close`` returns
    the location, at once when nothing is queued, else as a Deferred that fails with the ``OSError``.
    """

    hashes = True

    def __init__(self, directory: Path, entry_id: int, offset: int | None, pool: WriterPool,
                 after: Deferred[None] | None = None) -> None:
        self._final = directory / str(entry_id)
        self._partial = directory / f"{entry_id}.part"
        self._pool = pool
        self._reactor = pool.reactor
        #: Bytes the worker wrote (the file holds them); written by the worker thread, read by the reactor.
        self.durable = offset or 0
        #: Bytes handed to ``write`` (reactor thread only).
        self._queued_to = self.durable
        self._jobs: deque[Any] = deque()
        self._lock = threading.Lock()
        self._running = False
        self._ready = after is None
        self._error: OSError | None = None
        self._discarding = False
        self._finished = False
        self._callback: Callable[[int], None] | None = None
        self._notify_scheduled = False
        self._notified = self.durable
        self._file: Any = None
        self._renamed = False
        #: Fires (in the reactor thread) once the writer's first last job (suspend, close, abort) ran: from then on
        #: another writer may open the same file (the store waits on this for a quick resume).
        self.drained: Deferred[None] = Deferred()
        if after is None:
            self._open(offset)  # a syscall or two: done here so an idle writer can close at once (empty files)
        else:
            # The previous writer of this file is still finishing: open once it has, in the worker, first.
            self._jobs.append(_Step(self, lambda: self._open(offset)))
            after.addBoth(self._start)

    # -- the reactor side -------------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Bytes queued but not written yet (what this writer holds in memory)."""
        return self._queued_to - self.durable

    def write(self, data: bytes | memoryview) -> None:
        self.write_hashed(data, None)

    def write_hashed(self, data: bytes | memoryview, digest: Any) -> None:
        """Queue ``data``; the worker writes it, then feeds it to ``digest`` (when given), in order."""
        if self._error is not None:
            raise self._error
        if self._finished:
            raise OSError(0, "the entry's file is not open")
        self._queued_to += len(data)
        # Handed over at once: a chunk held back to batch it delays its ack, and with a small window every ack
        # waits for it (64 KiB per 2 ms of holding is 32 MiB/s). Chunks that arrive while the worker is busy
        # batch by themselves: they queue, and the worker writes them with one writev.
        self._submit((data, digest))

    def watch(self, callback: Callable[[int], None]) -> None:
        self._callback = callback

    def state(self) -> dict[str, Any]:
        return {}

    def suspend(self) -> Deferred[None]:
        """Write what is queued, then close the file (a paused entry keeps every byte it was sent)."""
        return self._finish(self._close_file, "pause")

    def close(self) -> str | Deferred[str]:
        if self._error is not None:
            raise self._error
        with self._lock:
            idle = self._ready and not self._running and not self._jobs
        if idle and not self._finished:
            self._finished = True
            self._complete_file()
            return str(self._final)
        done: Deferred[str] = Deferred()
        self._finished = True
        self._submit(_Final(self, self._complete_file, done))
        return done.addCallback(lambda _: str(self._final))

    def abort(self) -> Deferred[None]:
        """Drop what is queued and delete the file (also after a ``close`` that is still in flight)."""
        self._discarding = True
        return self._finish(self._discard_file, "discard")

    def _finish(self, job: Callable[[], None], doing: str) -> Deferred[None]:
        if self._finished and doing == "pause":
            return succeed(None)
        self._finished = True
        done: Deferred[None] = Deferred()
        self._submit(_Final(self, job, done))

        def failed(failure: Failure) -> None:
            log.warn("Could not {doing} upload file {path}: {error}", doing=doing, path=str(self._partial),
                     error=failure.getErrorMessage())

        return done.addErrback(failed)

    def _start(self, result: object) -> object:
        """The previous writer of the file finished: run the jobs queued meanwhile."""
        with self._lock:
            self._ready = True
            start = bool(self._jobs) and not self._running
            self._running = self._running or start
        if start:
            self._pool.call(self._drain)
        return None

    def _notify(self) -> None:
        self._notify_scheduled = False
        durable = self.durable
        if durable > self._notified:
            self._notified = durable
            if self._callback is not None:
                self._callback(durable)

    # -- the strand ---------------------------------------------------------------------------------------------

    def _submit(self, *jobs: Any) -> None:
        with self._lock:
            self._jobs.extend(jobs)
            if self._running or not self._ready:
                return
            self._running = True
        self._pool.call(self._drain)

    def _drain(self) -> None:
        """Worker thread: run the queued jobs in order until none is left."""
        while True:
            with self._lock:
                if not self._jobs:
                    self._running = False
                    return
                job = self._jobs.popleft()
                batch = [job]
                if type(job) is tuple:
                    while len(batch) < WRITEV_BATCH and self._jobs and type(self._jobs[0]) is tuple:
                        batch.append(self._jobs.popleft())
            if type(job) is tuple:
                self._write_batch(batch)
            else:
                job.run()

    def _write_batch(self, batch: list[tuple[Any, Any]]) -> None:
        if self._error is not None or self._discarding:
            return
        try:
            views = [memoryview(data) for data, _ in batch]
            while views:
                written = os.writev(self._file.fileno(), views)
                while views and written >= len(views[0]):
                    written -= len(views[0])
                    views.pop(0)
                if views and written:
                    views[0] = views[0][written:]
        except (OSError, ValueError) as error:
            self._error = error if isinstance(error, OSError) else OSError(0, str(error))
            return
        for data, digest in batch:
            if digest is not None:
                digest.update(data)
        self.durable += sum(len(data) for data, _ in batch)
        if not self._notify_scheduled:
            self._notify_scheduled = True
            self._reactor.callFromThread(self._notify)

    def _open(self, offset: int | None) -> None:
        if offset is None:
            self._file = open(self._partial, "wb", buffering=0)
        else:
            self._file = open(self._partial, "r+b", buffering=0)
            self._file.truncate(offset)
            self._file.seek(offset)

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
        if self._error is not None:
            raise self._error

    def _complete_file(self) -> None:
        self._close_file()
        if self._discarding:
            raise OSError(0, "the upload was discarded")
        os.replace(self._partial, self._final)
        self._renamed = True

    def _discard_file(self) -> None:
        try:
            if self._file is not None:
                self._file.close()
        except OSError:
            pass
        self._partial.unlink(missing_ok=True)
        if self._renamed:
            self._final.unlink(missing_ok=True)  # a close that finished just before the abort

    def _final_done(self, done: Deferred[Any], outcome: object) -> None:
        """Reactor thread: a last job ran; tell its caller, and the store that the file is free again."""
        if not self.drained.called:
            self.drained.callback(None)
        done.callback(outcome) if not isinstance(outcome, Failure) else done.errback(outcome)


class _Step:
    """A job before the writes (the open of a reopened file): a failure fails the writes that follow."""

    def __init__(self, writer: ThreadedFileWriter, job: Callable[[], None]) -> None:
        self.writer = writer
        self.job = job

    def run(self) -> None:
        try:
            self.job()
        except OSError as error:
            self.writer._error = error


class _Final:
    """A writer's last job (close, suspend, abort): its outcome goes to ``done`` in the reactor thread."""

    def __init__(self, writer: ThreadedFileWriter, job: Callable[[], None], done: Deferred[Any]) -> None:
        self.writer = writer
        self.job = job
        self.done = done

    def run(self) -> None:
        outcome: object = None
        try:
            self.job()
        except OSError as error:
            outcome = Failure(error)
        self.writer._reactor.callFromThread(self.writer._final_done, self.done, outcome)
