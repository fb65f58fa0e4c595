"""UploadEntry over an EntryInfo snapshot: the seed's properties, lazy file and data, hard-link hand-over."""

from __future__ import annotations

import os
from pathlib import Path

from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.test import override_settings
from twisted.trial import unittest

from django_shim.entries import StoredUploadedFile, UploadEntry
from twisted_uploads.entries import EntryInfo, EntryStatus


def info(path: str | None, size: int, status: EntryStatus = EntryStatus.COMPLETE, **extra) -> EntryInfo:
    fields = dict(entry_id=7, ref="r7", slot="files", client_name="a.bin", client_type="application/octet-stream",
                  client_size=size, received=size if status is EntryStatus.COMPLETE else 0, status=status,
                  sha256="ab" * 32 if status is EntryStatus.COMPLETE else None, path=path)
    fields.update(extra)
    return EntryInfo(**fields)


class UploadEntryTests(unittest.TestCase):

    def stored(self, content: bytes) -> str:
        directory = Path(self.mktemp())
        directory.mkdir(parents=True)
        path = directory / "7"
        path.write_bytes(content)
        return str(path)

    def test_it_exposes_the_seeds_properties(self):
        entry = UploadEntry(info(self.stored(b"x" * 10), 10))
        self.assertEqual((entry.client_name, entry.client_type, entry.client_size), ("a.bin",
                         "application/octet-stream", 10))
        self.assertEqual((entry.progress, entry.complete, entry.error), (100, True, None))
        self.assertEqual((entry.ref, entry.upload_name, entry.status), ("r7", "files", "complete"))

    def test_nothing_is_opened_until_file_or_data_is_asked_for(self):
        path = self.stored(b"x")
        entry = UploadEntry(info(path, 1))
        os.unlink(path)  # would make any eager open fail
        self.assertEqual(entry.client_size, 1)

    @override_settings(FILE_UPLOAD_MAX_MEMORY_SIZE=100)
    def test_small_files_are_in_memory_uploaded_files(self):
        entry = UploadEntry(info(self.stored(b"small"), 5))
        self.assertIsInstance(entry.file, InMemoryUploadedFile)
        self.assertEqual(entry.file.read(), b"small")
        self.assertEqual(entry.data, b"small")

    @override_settings(FILE_UPLOAD_MAX_MEMORY_SIZE=100)
    def test_large_files_stay_on_disk_and_data_reads_them_on_demand(self):
        content = os.urandom(1000)
        entry = UploadEntry(info(self.stored(content), 1000))
        self.assertIsInstance(entry.file, StoredUploadedFile)
        self.assertEqual(entry.file.size, 1000)
        self.assertEqual(entry.data, content)
        entry.close()

    @override_settings(FILE_UPLOAD_MAX_MEMORY_SIZE=100)
    def test_storage_moves_a_link_and_the_entry_keeps_its_bytes_until_consumed(self):
        content = os.urandom(1000)
        path = self.stored(content)
        entry = UploadEntry(info(path, 1000))
        storage = FileSystemStorage(location=self.mktemp())
        name = storage.save("out.bin", entry.file)
        self.assertEqual(Path(storage.path(name)).read_bytes(), content)
        self.assertEqual(Path(path).read_bytes(), content, "the stored file is still there for a retry")
        entry.close()
        self.assertEqual(sorted(os.listdir(Path(path).parent)), ["7"], "no link left behind")

    @override_settings(FILE_UPLOAD_MAX_MEMORY_SIZE=100)
    def test_close_removes_links_storage_did_not_take(self):
        path = self.stored(os.urandom(1000))
        entry = UploadEntry(info(path, 1000))
        link = entry.file.temporary_file_path()
        self.assertTrue(os.path.exists(link))
        entry.close()
        self.assertFalse(os.path.exists(link))

    def test_a_failed_entry_has_a_readable_error_its_code_and_no_bytes(self):
        entry = UploadEntry(info(None, 10, EntryStatus.ERROR, error="type_mismatch",
                                 error_message="content is PNG, not PDF"))
        self.assertEqual(entry.error, "content is PNG, not PDF")
        self.assertEqual(entry.error_code, "type_mismatch")
        self.assertIsNone(entry.file)
        self.assertIsNone(entry.data)

    def test_an_error_without_a_message_falls_back_to_the_codes_sentence(self):
        entry = UploadEntry(info(None, 10, EntryStatus.ERROR, error="too_large"))
        self.assertEqual(entry.error, "The file is larger than allowed.")

    def test_an_entry_in_progress_reports_progress_and_no_file(self):
        entry = UploadEntry(info(None, 200, EntryStatus.UPLOADING, received=50))
        self.assertEqual((entry.progress, entry.complete), (25, False))
        self.assertIsNone(entry.file)
