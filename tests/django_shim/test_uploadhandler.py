"""SlotUploadHandler: a slot's limits applied while Django's multipart parser reads the post.

The parser is Django's own, fed a real multipart body through a stream that, on every read, looks at the part
directory — so what the handler has on disk at each moment is measured, not taken from its own counters.
"""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import MemoryFileUploadHandler, TemporaryFileUploadHandler
from django.http.multipartparser import MultiPartParser
from twisted.trial import unittest

from django_shim.uploadhandler import ReadUpload, SlotUploadHandler, sweep_parts
from twisted_uploads.errors import ErrorCode
from twisted_uploads.slots import SlotConfig
from twisted_uploads.validation import HEAD_BYTES

from .files import png_bytes

BOUNDARY = "----twisted-uploads-test-boundary"
CHUNK = SlotUploadHandler.chunk_size


def multipart(*parts: tuple[str, str | None, bytes]) -> bytes:
    """A multipart/form-data body of ``(field, file name or None, content)`` parts."""
    body = b""
    for field, filename, content in parts:
        body += f"--{BOUNDARY}\r\n".encode()
        if filename is None:
            body += f'Content-Disposition: form-data; name="{field}"\r\n\r\n'.encode()
        else:
            body += (f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n").encode()
        body += content + b"\r\n"
    return body + f"--{BOUNDARY}--\r\n".encode()


class WatchedBody:
    """A request body that records, at every read, the largest file in ``directory`` and every name seen there."""

    def __init__(self, data: bytes, directory: Path) -> None:
        self._data = io.BytesIO(data)
        self.directory = directory
        self.largest = 0
        self.names: set[str] = set()
        #: How many body bytes had been read when a part file seen before was first found gone.
        self.read_when_gone: int | None = None

    def read(self, size: int = -1) -> bytes:
        present = {path.name: path.stat().st_size for path in self.directory.iterdir()}
        self.largest = max([self.largest, *present.values()])
        if self.read_when_gone is None and self.names - set(present):
            self.read_when_gone = self._data.tell()
        self.names |= set(present)
        return self._data.read(size)


class SlotUploadHandlerTests(unittest.TestCase):

    def setUp(self) -> None:
        self.parts = Path(self.mktemp())
        self.parts.mkdir()

    def parse(self, body: bytes, slots: dict[str, SlotConfig], existing: int = 0, django_handlers: bool = False,
              truncate: int | None = None):
        self.handler = SlotUploadHandler(None, slots, self.parts, (lambda slot: existing) if existing else None)
        handlers = [self.handler]
        if django_handlers:
            handlers += [MemoryFileUploadHandler(), TemporaryFileUploadHandler()]
        if truncate is not None:
            body = body[:truncate]
        self.body = WatchedBody(body, self.parts)
        meta = {"CONTENT_TYPE": f"multipart/form-data; boundary={BOUNDARY}", "CONTENT_LENGTH": str(len(body))}
        post, files = MultiPartParser(meta, self.body, handlers).parse()
        self.addCleanup(self.handler.discard)
        return post, files

    def test_a_file_over_max_file_size_is_refused_with_too_large_while_it_is_read(self):
        slots = {"avatar": SlotConfig(max_file_size=200_000)}
        post, files = self.parse(multipart(("avatar", "me.png", png_bytes(pad_to=1_000_000)),
                                           ("after", None, b"yes")), slots)
        [upload] = files.getlist("avatar")
        self.assertIsInstance(upload, ReadUpload)
        self.assertEqual(upload.error.code, ErrorCode.TOO_LARGE)
        self.assertEqual(upload.error.message, "me.png is 1.0 MB; the limit is 200.0 kB.")
        self.assertEqual(upload.size, 1_000_000, "every byte sent is counted, stored or not")
        self.assertLessEqual(self.body.largest, 200_000, "never more than max_file_size on disk")
        self.assertIsNone(upload.path)
        self.assertEqual(list(self.parts.iterdir()), [])
        self.assertEqual(post["after"], "yes", "the fields after the refused file are still read")

    def test_the_refusal_comes_within_a_chunk_of_the_limit(self):
        slots = {"avatar": SlotConfig(max_file_size=200_000)}
        body = multipart(("avatar", "me.png", png_bytes(pad_to=3_000_000)))
        self.parse(body, slots)
        file_start = body.index(b"\r\n\r\n") + 4
        self.assertIsNotNone(self.body.read_when_gone)
        self.assertLessEqual(self.body.read_when_gone, file_start + 200_000 + CHUNK)

    def test_an_accepted_file_is_hashed_and_its_head_kept_while_it_is_read(self):
        content = png_bytes(pad_to=300_000)
        _, files = self.parse(multipart(("avatar", "me.png", content)), {"avatar": SlotConfig()})
        [upload] = files.getlist("avatar")
        self.assertIsNone(upload.error)
        self.assertEqual(upload.sha256, hashlib.sha256(content).hexdigest())
        self.assertEqual(upload.head, content[:HEAD_BYTES])
        self.assertEqual((upload.size, upload.bytes_written), (300_000, 300_000))
        self.assertEqual(Path(upload.path).read_bytes(), content)
        self.assertEqual(Path(upload.path).parent, self.parts.resolve())

    def test_a_handed_over_part_file_is_not_deleted_with_the_request(self):
        _, files = self.parse(multipart(("avatar", "me.png", png_bytes())), {"avatar": SlotConfig()})
        [upload] = files.getlist("avatar")
        path = upload.hand_over()
        upload.close()
        self.handler.discard()
        self.assertTrue(Path(path).exists())

    def test_a_part_file_not_handed_over_is_deleted_when_the_request_ends(self):
        _, files = self.parse(multipart(("avatar", "me.png", png_bytes())), {"avatar": SlotConfig()})
        [upload] = files.getlist("avatar")
        self.handler.discard()
        self.assertEqual(list(self.parts.iterdir()), [])

    def test_files_beyond_max_entries_are_refused_before_a_byte_is_written(self):
        slots = {"docs": SlotConfig(max_entries=2)}
        _, files = self.parse(multipart(*[("docs", f"{n}.png", png_bytes(pad_to=100_000)) for n in range(3)]), slots)
        first, second, third = files.getlist("docs")
        self.assertEqual([first.error, second.error], [None, None])
        self.assertEqual(third.error.code, ErrorCode.TOO_MANY_FILES)
        self.assertEqual(third.bytes_written, 0)
        self.assertEqual(len(self.body.names), 2, "no part file was ever created for the third")

    def test_entries_the_slot_already_has_count_towards_max_entries(self):
        _, files = self.parse(multipart(("avatar", "me.png", png_bytes())), {"avatar": SlotConfig(max_entries=1)},
                              existing=1)
        [upload] = files.getlist("avatar")
        self.assertEqual(upload.error.code, ErrorCode.TOO_MANY_FILES)

    def test_a_file_whose_head_fails_the_content_check_stops_being_written(self):
        spoofed = b"just some text, named like an image\n" * 30_000
        _, files = self.parse(multipart(("avatar", "me.png", spoofed)), {"avatar": SlotConfig()})
        [upload] = files.getlist("avatar")
        self.assertEqual(upload.error.code, ErrorCode.TYPE_MISMATCH)
        self.assertLessEqual(self.body.largest, CHUNK, "refused with the chunk that completed its head")
        self.assertEqual(list(self.parts.iterdir()), [])

    def test_active_content_is_refused_from_its_first_bytes(self):
        _, files = self.parse(multipart(("avatar", "avatar", b"<img src=x onerror=alert(1)>")),
                              {"avatar": SlotConfig()})
        [upload] = files.getlist("avatar")
        self.assertEqual(upload.error.code, ErrorCode.ACTIVE_CONTENT)

    def test_a_file_the_slot_does_not_accept_is_refused_before_a_byte_is_written(self):
        _, files = self.parse(multipart(("avatar", "cv.pdf", b"%PDF-1.4\n" * 10_000)),
                              {"avatar": SlotConfig(accept=".png")})
        [upload] = files.getlist("avatar")
        self.assertEqual(upload.error.code, ErrorCode.NOT_ACCEPTED)
        self.assertEqual(self.body.names, set())

    def test_a_part_file_that_cannot_be_created_fails_that_file_with_storage_failed(self):
        slots = {"avatar": SlotConfig(), "other": SlotConfig()}
        self.handler = SlotUploadHandler(None, slots, self.parts / "gone", None)
        body = multipart(("avatar", "me.png", png_bytes()), ("after", None, b"yes"))
        meta = {"CONTENT_TYPE": f"multipart/form-data; boundary={BOUNDARY}", "CONTENT_LENGTH": str(len(body))}
        post, files = MultiPartParser(meta, io.BytesIO(body), [self.handler]).parse()
        self.assertEqual(files["avatar"].error.code, ErrorCode.STORAGE_FAILED)
        self.assertEqual(post["after"], "yes")

    def test_a_write_that_fails_mid_file_fails_that_file_with_storage_failed(self):
        # A real failing write: the parse runs in a child process whose file-size limit (RLIMIT_FSIZE) makes the
        # part file's write fail with EFBIG after 100 kB, as a full disk fails it with ENOSPC.
        body = Path(self.mktemp())
        body.write_bytes(multipart(("avatar", "big.png", png_bytes(pad_to=400_000)),
                                   ("avatar", "small.png", png_bytes()), ("after", None, b"yes")))
        script = textwrap.dedent(f"""
            import io, resource, signal
            from pathlib import Path
            import django
            from django.conf import settings
            settings.configure()
            django.setup()
            from django.http.multipartparser import MultiPartParser
            from django_shim.uploadhandler import SlotUploadHandler
            from twisted_uploads.slots import SlotConfig
            body = Path({str(body.resolve())!r}).read_bytes()
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.RLIM_INFINITY))
            handler = SlotUploadHandler(None, {{"avatar": SlotConfig(max_entries=2)}}, Path({str(self.parts)!r}))
            meta = {{"CONTENT_TYPE": "multipart/form-data; boundary={BOUNDARY}", "CONTENT_LENGTH": str(len(body))}}
            post, files = MultiPartParser(meta, io.BytesIO(body), [handler]).parse()
            big, small = files.getlist("avatar")
            print(big.error.code.value if big.error else "stored", small.error, post["after"], big.path)
        """)
        result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        self.assertEqual(result.stdout.split(), ["storage_failed", "None", "yes", "None"], result.stderr[-2000:])

    def test_files_of_other_fields_go_to_djangos_handlers(self):
        _, files = self.parse(multipart(("avatar", "me.png", png_bytes()), ("other", "notes.txt", b"hello")),
                              {"avatar": SlotConfig()}, django_handlers=True)
        self.assertIsInstance(files["avatar"], ReadUpload)
        self.assertIsInstance(files["other"], UploadedFile)
        self.assertEqual(files["other"].read(), b"hello")

    def test_a_post_cut_off_in_the_middle_of_a_file_leaves_no_part_file(self):
        body = multipart(("avatar", "me.png", png_bytes(pad_to=500_000)))
        self.parse(body, {"avatar": SlotConfig()}, truncate=300_000)
        self.assertEqual(list(self.parts.iterdir()), [])


class SweepTests(unittest.TestCase):
    """Part files a crashed process left behind are deleted; live ones and other files are not."""

    def test_only_stale_part_files_are_deleted(self):
        directory = Path(self.mktemp())
        directory.mkdir()
        stale, live, other = directory / "nojs-old.part", directory / "nojs-new.part", directory / "keep.part"
        for path in (stale, live, other):
            path.write_bytes(b"x")
        two_days_ago = time.time() - 2 * 86400
        os.utime(stale, (two_days_ago, two_days_ago))
        os.utime(other, (two_days_ago, two_days_ago))
        self.assertEqual(sweep_parts(directory), 1)
        self.assertEqual(sorted(p.name for p in directory.iterdir()), ["keep.part", "nojs-new.part"])
