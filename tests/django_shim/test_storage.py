"""``entry.file`` in Django's storage API and model FileFields; what consuming removes, and what it keeps."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from django.conf import settings
from twisted.internet.defer import inlineCallbacks

from ..support import stored_files
from .files import png_bytes
from .support import Browser, ShimServerTestCase, in_thread
from .testapp.models import Attachment


def saved_items(page_html: str) -> list[str]:
    return re.findall(r"<li>([^<]+)</li>", page_html)


class StorageTests(ShimServerTestCase):

    @inlineCallbacks
    def test_default_storage_saves_small_files_from_memory_and_large_ones_by_path(self):
        browser = Browser()
        page = yield in_thread(browser.open, "/files/")
        small, large = png_bytes(pad_to=1000), png_bytes(pad_to=300_000)
        results = yield self.upload(page, "files", ("small.png", small), ("large.png", large))
        self.assertTrue(all(r.ok for r in results))
        yield in_thread(browser.event, page, "save")

        def saved_state():
            from django_shim.state import SESSION_KEY

            session = browser.client.session
            return session[SESSION_KEY][page.view_id]["a"]["saved"]

        saved = {item["name"]: item for item in (yield in_thread(saved_state))}
        self.assertTrue(saved["small.png"]["in_memory"])
        self.assertFalse(saved["large.png"]["in_memory"])
        for name, content in (("small.png", small), ("large.png", large)):
            stored = Path(settings.MEDIA_ROOT, saved[name]["path"])
            self.assertEqual(stored.read_bytes(), content)
            self.assertEqual(saved[name]["sha256"], hashlib.sha256(content).hexdigest())
        self.assertEqual(stored_files(self.upload_dir), [])

    @inlineCallbacks
    def test_entry_file_goes_into_a_model_filefield_unchanged(self):
        browser = Browser()
        page = yield in_thread(browser.open, "/files/")
        content = png_bytes(pad_to=50_000)
        yield self.upload(page, "files", ("scan.png", content))
        yield in_thread(browser.event, page, "attach", title="Scan")

        def stored():
            attachment = Attachment.objects.get(title="Scan")
            with attachment.document.open("rb") as handle:
                return attachment.document.name, handle.read()

        name, data = yield in_thread(stored)
        self.assertTrue(name.startswith("attachments/scan"))
        self.assertEqual(data, content)

    @inlineCallbacks
    def test_a_loop_body_that_raises_keeps_that_entry_and_the_rest(self):
        browser = Browser()
        page = yield in_thread(browser.open, "/files/")
        files = [("one.png", png_bytes()), ("two.png", png_bytes(pad_to=500)), ("three.png", png_bytes(pad_to=900))]
        results = yield self.upload(page, "files", *files)
        self.assertTrue(all(r.ok for r in results))
        yield in_thread(browser.event, page, "refuse", name="two.png")
        failure = yield self.assertFailure(in_thread(browser.event, page, "save"), RuntimeError)
        self.assertIn("two.png", str(failure))
        self.assertEqual([e.client_name for e in self.entries()], ["two.png", "three.png"])

        yield in_thread(browser.event, page, "refuse", name="")
        after = yield in_thread(browser.event, page, "save")
        # one.png's state survived the failed request: the state is saved even when a handler raises.
        self.assertEqual(saved_items(after.html), ["one.png", "two.png", "three.png"])
        self.assertEqual(self.entries(), [])
        two = Path(settings.MEDIA_ROOT, "saved").glob("two*.png")
        self.assertEqual([p.read_bytes() for p in two], [png_bytes(pad_to=500)])
