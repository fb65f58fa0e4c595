"""Tests for twisted_uploads.storage: the temp-file store and its writers."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from twisted_uploads.storage import IEntryStore, IEntryWriter, TempFileStore, session_directory_name


class SessionDirectoryNameTests(TestCase):
    """Session ids never reach the file system as they are."""

    def test_name_is_32_hex_digits(self) -> None:
        name = session_directory_name("../../etc")
        self.assertEqual((len(name), set(name) <= set("0123456789abcdef")), (32, True))

    def test_name_is_stable(self) -> None:
        self.assertEqual(session_directory_name("s1"), session_directory_name("s1"))

    def test_sessions_get_different_names(self) -> None:
        self.assertNotEqual(session_directory_name("s1"), session_directory_name("s2"))


class TempFileStoreTests(TestCase):
    """One directory per session; ``<id>.part`` while uploading, ``<id>`` once complete."""

    def setUp(self) -> None:
        self.root = Path(self.mktemp())
        self.store = TempFileStore(self.root)
        self.session_dir = self.root.resolve() / session_directory_name("s1")

    def test_store_creates_its_root(self) -> None:
        self.assertTrue(self.root.is_dir())

    def test_store_provides_the_store_interface(self) -> None:
        self.assertTrue(verifyObject(IEntryStore, self.store))

    def test_writer_provides_the_writer_interface(self) -> None:
        writer = self.store.open("s1", 1)
        self.addCleanup(writer.abort)
        self.assertTrue(verifyObject(IEntryWriter, writer))

    def test_open_writes_a_part_file_in_the_session_directory(self) -> None:
        writer = self.store.open("s1", 7)
        self.addCleanup(writer.abort)
        self.assertEqual(os.listdir(self.session_dir), ["7.part"])

    def test_session_directory_is_private(self) -> None:
        self.addCleanup(self.store.open("s1", 7).abort)
        self.assertEqual(stat.S_IMODE(self.session_dir.stat().st_mode) & 0o077, 0)

    def test_close_renames_to_entry_id_and_returns_path(self) -> None:
        writer = self.store.open("s1", 7)
        writer.write(b"hello ")
        writer.write(memoryview(b"world"))
        path = writer.close()
        self.assertEqual((path, Path(path).read_bytes()), (str(self.session_dir / "7"), b"hello world"))

    def test_close_leaves_no_part_file(self) -> None:
        writer = self.store.open("s1", 7)
        writer.close()
        self.assertEqual(os.listdir(self.session_dir), ["7"])

    def test_abort_deletes_the_part_file(self) -> None:
        writer = self.store.open("s1", 7)
        writer.write(b"partial")
        writer.abort()
        self.assertEqual(os.listdir(self.session_dir), [])

    def test_abort_twice_is_harmless(self) -> None:
        writer = self.store.open("s1", 7)
        writer.abort()
        writer.abort()

    def test_delete_removes_a_stored_file(self) -> None:
        writer = self.store.open("s1", 7)
        path = writer.close()
        self.store.delete(path)
        self.assertFalse(os.path.exists(path))

    def test_delete_of_missing_file_is_harmless(self) -> None:
        self.store.delete(str(self.session_dir / "404"))

    def test_delete_refuses_files_outside_the_store(self) -> None:
        outside = Path(self.mktemp())
        outside.write_bytes(b"keep me")
        self.assertRaises(ValueError, self.store.delete, str(outside))
        self.assertTrue(outside.exists())

    def test_adopt_moves_the_file_into_the_session_directory(self) -> None:
        source = Path(self.mktemp())
        source.write_bytes(b"posted")
        path = self.store.adopt("s1", 9, str(source))
        self.assertEqual((Path(path).read_bytes(), source.exists(), path), (b"posted", False,
                                                                          str(self.session_dir / "9")))

    def test_discard_session_removes_its_empty_directory(self) -> None:
        self.store.delete(self.store.open("s1", 7).close())
        self.store.discard_session("s1")
        self.assertFalse(self.session_dir.exists())

    def test_discard_session_keeps_a_directory_that_still_holds_files(self) -> None:
        # Another server sharing the root may have just opened a file there.
        path = self.store.open("s1", 7).close()
        self.store.discard_session("s1")
        self.assertTrue(os.path.exists(path))

    def test_discard_of_unknown_session_is_harmless(self) -> None:
        self.store.discard_session("never-seen")

    def test_discard_session_leaves_other_sessions(self) -> None:
        path = self.store.open("s2", 8).close()
        self.store.discard_session("s1")
        self.assertTrue(os.path.exists(path))
