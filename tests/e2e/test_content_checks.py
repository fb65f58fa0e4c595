"""The content checks end to end: what a client sends over a real socket and what the server answers."""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks

from twisted_uploads.client import FileUpload, UploadClient
from twisted_uploads.slots import SlotConfig

from ..support import pdf_bytes
from .support import ServerTestCase


class ContentCheckTests(ServerTestCase):

    @inlineCallbacks
    def outcome(self, client, entry: int):
        """The entry's verdict: its ``error`` or ``complete`` message, whichever comes."""
        while True:
            message = yield client.next()
            if message.get("entry") == entry and message["type"] in ("error", "complete"):
                return message

    @inlineCallbacks
    def test_pdf_bytes_named_bin_and_declared_png_fail_with_type_mismatch(self):
        client = yield self.raw_client(self.token())
        data = pdf_bytes()
        accepted = yield client.announce("pic.bin", len(data), mime="image/png")
        client.send_chunk(accepted["entry"], 0, data)
        verdict = yield self.outcome(client, accepted["entry"])
        self.assertEqual((verdict["type"], verdict.get("code")), ("error", "type_mismatch"))

    @inlineCallbacks
    def test_an_extensionless_img_onerror_file_fails_with_active_content(self):
        client = yield self.raw_client(self.token())
        data = b"<img src=x onerror=alert(document.cookie)>"
        accepted = yield client.announce("avatar", len(data), mime="")
        client.send_chunk(accepted["entry"], 0, data)
        verdict = yield self.outcome(client, accepted["entry"])
        self.assertEqual((verdict["type"], verdict.get("code")), ("error", "active_content"))

    @inlineCallbacks
    def test_files_the_cli_declares_by_their_name_complete(self):
        # The Python client declares mimetypes' guess: text/plain for notes.txt.gz, text/csv for a CSV whose first
        # bytes happen to be a bitmap's signature.
        import gzip

        files = [self.make_file(0, "sales.csv", b"BMW,2024,17\nAudi,2024,12\n"),
                 self.make_file(0, "notes.txt.gz", gzip.compress(b"notes" * 100))]
        client = UploadClient(self.url, self.token(files=SlotConfig(max_entries=2)))
        results = yield client.upload([FileUpload.from_path(path, "files") for path in files])
        self.assertEqual([result.ok for result in results], [True, True], results)
