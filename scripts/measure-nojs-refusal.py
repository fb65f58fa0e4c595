"""How much of a too-large no-JS post is stored, and how soon it is refused: ``.venv/bin/python scripts/measure-nojs-refusal.py``.

Feeds Django's own multipart parser a post of one file for a 5 MB slot (6 MB, 50 MB, 500 MB, generated on the fly,
never held in memory) through django_shim's SlotUploadHandler, and looks at the part directory on every read of
the body: the largest part file ever on disk, and how far into the file the body had been read when the part was
deleted (the refusal).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import django
from django.conf import settings

settings.configure()
django.setup()

from django.http.multipartparser import MultiPartParser  # noqa: E402

from django_shim.uploadhandler import SlotUploadHandler  # noqa: E402
from twisted_uploads.slots import SlotConfig  # noqa: E402

BOUNDARY = "----measure"
LIMIT = 5_000_000
SIGNATURE = b"\x89PNG\r\n\x1a\n"


class GeneratedPost:
    """A multipart body with one ``size``-byte PNG-looking file, generated as it is read; watches ``parts``."""

    def __init__(self, size: int, parts: Path) -> None:
        self.head = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="avatar"; filename="me.png"\r\n'
                     f"Content-Type: image/png\r\n\r\n").encode()
        self.tail = f"\r\n--{BOUNDARY}--\r\n".encode()
        self.size, self.parts = size, parts
        self.length = len(self.head) + size + len(self.tail)
        self.position = 0
        self.largest_part = 0
        self.read_when_refused: int | None = None
        self._seen: set[str] = set()

    def _byte_source(self, position: int, count: int) -> bytes:
        file_start, file_end = len(self.head), len(self.head) + self.size
        if position < file_start:
            return self.head[position: min(file_start, position + count)]
        if position < file_end:
            offset = position - file_start
            if offset < len(SIGNATURE):
                return SIGNATURE[offset:]
            return bytes(min(count, file_end - position))
        return self.tail[position - file_end: position - file_end + count]

    def read(self, count: int = -1) -> bytes:
        present = {path.name: path.stat().st_size for path in self.parts.iterdir()}
        self.largest_part = max([self.largest_part, *present.values()])
        if self.read_when_refused is None and self._seen - set(present):
            self.read_when_refused = self.position - len(self.head)
        self._seen |= set(present)
        count = self.length - self.position if count < 0 else count
        out = bytearray()
        while count > 0 and self.position < self.length:
            piece = self._byte_source(self.position, count)
            out += piece
            self.position += len(piece)
            count -= len(piece)
        return bytes(out)


def main() -> None:
    print(f"slot max_file_size = {LIMIT:,} B, handler chunk = {SlotUploadHandler.chunk_size:,} B")
    for size in (6_000_000, 50_000_000, 500_000_000):
        parts = Path(tempfile.mkdtemp(prefix="measure-nojs-"))
        post = GeneratedPost(size, parts)
        handler = SlotUploadHandler(None, {"avatar": SlotConfig(max_file_size=LIMIT)}, parts)
        meta = {"CONTENT_TYPE": f"multipart/form-data; boundary={BOUNDARY}", "CONTENT_LENGTH": str(post.length)}
        started = time.perf_counter()
        _, files = MultiPartParser(meta, post, [handler]).parse()
        elapsed = time.perf_counter() - started
        upload = files["avatar"]
        print(f"posted {size:>11,} B: {upload.error.code.value}; largest part on disk {post.largest_part:,} B; "
              f"refused {post.read_when_refused:,} B into the file; parsed in {elapsed:.2f} s; "
              f"left on disk {sum(p.stat().st_size for p in parts.iterdir()):,} B")
        parts.rmdir()


if __name__ == "__main__":
    main()
