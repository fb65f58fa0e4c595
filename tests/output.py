"""What a test's child processes print, followed line by line: waits wake on each line (or on an exit), never on
a timer, so a slow machine only makes them wait longer, not fail.

:class:`ProcessOutput` copies each followed process's stdout (stderr merged into it) to a log file as it comes and
keeps the lines; one object may follow several processes (a server and its gateway) as one stream of lines.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from pathlib import Path
from typing import IO


class ProcessOutput:
    """The lines of the processes it follows, and a condition notified at each line and at each end of output."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        #: Followed processes whose output has ended (and which have been reaped: ``poll()`` shows their exit).
        self.ended = 0
        self._changed = threading.Condition()
        self._readers: list[threading.Thread] = []

    def follow(self, process: subprocess.Popen[bytes], log_path: Path) -> None:
        """Read ``process``'s stdout (it must be a pipe) into ``log_path`` and :attr:`lines` until it ends."""
        assert process.stdout is not None
        reader = threading.Thread(target=self._read, args=(process, process.stdout, log_path), daemon=True)
        self._readers.append(reader)
        reader.start()

    def _read(self, process: subprocess.Popen[bytes], stream: IO[bytes], log_path: Path) -> None:
        with stream, open(log_path, "ab") as log:
            for raw in stream:
                log.write(raw)
                log.flush()
                with self._changed:
                    self.lines.append(raw.decode(errors="replace"))
                    self._changed.notify_all()
        process.wait()
        with self._changed:
            self.ended += 1
            self._changed.notify_all()

    def join(self, timeout: float) -> None:
        """Wait for the readers (they end at EOF, once the processes and their children are gone)."""
        for reader in self._readers:
            reader.join(timeout)

    def mark(self) -> tuple[int, int]:
        """Where the output is now, for :meth:`said` and :meth:`wait_past`."""
        with self._changed:
            return len(self.lines), self.ended

    def said(self, text: str, since: int = 0) -> bool:
        """Whether a line from the ``since``-th on contains ``text``."""
        with self._changed:
            return any(text in line for line in self.lines[since:])

    def wait_past(self, mark: tuple[int, int], deadline: float) -> None:
        """Return once a line was printed or an output ended after ``mark``, or at ``deadline`` (monotonic)."""
        with self._changed:
            self._changed.wait_for(lambda: (len(self.lines), self.ended) != mark,
                                   timeout=max(0.0, deadline - time.monotonic()))

    def wait_for(self, pattern: str, count: int, timeout: float, what: str) -> list[re.Match[str]]:
        """The first ``count`` lines matching ``pattern``, once printed; raises if every followed output ended or
        ``timeout`` seconds passed first (``what`` names the process in the error)."""
        deadline = time.monotonic() + timeout
        compiled = re.compile(pattern)
        with self._changed:
            while True:
                found = [m for m in map(compiled.search, self.lines) if m is not None]
                if len(found) >= count:
                    return found[:count]
                remaining = deadline - time.monotonic()
                exited = self._readers and self.ended >= len(self._readers)
                if exited or remaining <= 0:
                    state = "exited" if exited else f"wrote nothing matching it after {timeout:g} s"
                    raise RuntimeError(f"{what} {state} (waiting for {pattern!r} x{count}):\n"
                                       + "".join(self.lines[-20:]))
                self._changed.wait(remaining)
